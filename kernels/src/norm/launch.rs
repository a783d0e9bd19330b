//! Launch shapes for `norm.cu` (pure functions of the sizes) and its entry points.
//!
//! Forward and `*_bwd_dx_*` kernels use the row scheme of [`crate::reduce::launch::rows`]. The
//! parameter gradients (dγ, dβ) take two launches, planned together by [`param_grads`]: a
//! partial-sum kernel over (column tile, row block) and a finish kernel that adds the row
//! blocks' partials in order, with an f32 workspace in between. The plan depends only on
//! `(rows, n)`, so the gradients are bitwise reproducible.

use cudarc::driver::LaunchConfig;

use crate::reduce::launch::grid_for;

/// Every `extern "C"` entry point of `norm.cu`.
pub const KERNELS: &[&str] = &[
    "layer_norm_fwd_f32",
    "layer_norm_bwd_dx_f32",
    "layer_norm_bwd_dwdb_partial_f32",
    "layer_norm_bwd_dwdb_finish_f32",
    "rms_norm_fwd_f32",
    "rms_norm_bwd_dx_f32",
    "rms_norm_bwd_dw_partial_f32",
    "rms_norm_bwd_dw_finish_f32",
    "layer_norm_fwd_bf16",
    "layer_norm_bwd_dx_bf16",
    "layer_norm_bwd_dwdb_partial_bf16",
    "layer_norm_bwd_dwdb_finish_bf16",
    "rms_norm_fwd_bf16",
    "rms_norm_bwd_dx_bf16",
    "rms_norm_bwd_dw_partial_bf16",
    "rms_norm_bwd_dw_finish_bf16",
];

/// The shape of `*_fwd_*` and `*_bwd_dx_*` over `[rows, n]`.
pub fn rows(rows: usize, n: usize) -> LaunchConfig {
    crate::reduce::launch::rows(rows, n)
}

/// Columns per partial-sum block (`blockDim.x`; the kernel assumes exactly 32).
pub const PARTIAL_COLS: usize = 32;
/// Row lanes per partial-sum block (`blockDim.y`; the kernel assumes exactly 8).
pub const PARTIAL_ROW_LANES: usize = 8;
/// The partial-sum grid aims at about this many blocks (a few waves on a 132-SM H100).
pub const PARTIAL_TARGET_BLOCKS: usize = 1024;
/// A row block never has fewer rows than this (fewer would make the workspace and the finish
/// kernel's sums longer than the work they save).
pub const MIN_ROWS_PER_BLOCK: usize = 32;
/// CUDA's limit on `gridDim.y`.
const MAX_GRID_Y: usize = 65_535;
/// Threads per block of the finish kernels.
pub const FINISH_THREADS: u32 = 256;

/// The two launches of a parameter-gradient reduction and the workspace between them.
#[derive(Clone, Copy, Debug)]
pub struct ParamGradPlan {
    /// `*_partial_*`: block (32, 8, 1), grid (ceil(n / 32), row_blocks, 1).
    pub partial: LaunchConfig,
    /// `*_finish_*`: block (256, 1, 1), grid over the n columns.
    pub finish: LaunchConfig,
    /// The `rows_per_block` argument of the partial kernel.
    pub rows_per_block: usize,
    /// The `row_blocks` argument of the finish kernel (= `partial.grid_dim.1`).
    pub row_blocks: usize,
    /// f32 elements of the workspace: `row_blocks · k · n`, k = 2 for layer norm (dγ and dβ),
    /// 1 for RMS norm.
    pub workspace_f32_layer_norm: usize,
    pub workspace_f32_rms_norm: usize,
}

/// Plan dγ/dβ for `[rows, n]`. With `rows = 0` there is still one row block (it writes zero
/// partials, so the gradients come out 0).
pub fn param_grads(rows: usize, n: usize) -> ParamGradPlan {
    let col_tiles = n.div_ceil(PARTIAL_COLS).max(1);
    let wanted = PARTIAL_TARGET_BLOCKS.div_ceil(col_tiles);
    let most = rows.div_ceil(MIN_ROWS_PER_BLOCK).clamp(1, MAX_GRID_Y);
    let blocks = wanted.clamp(1, most);
    let rows_per_block = rows.div_ceil(blocks).max(1);
    // Recount, so no row block is empty.
    let row_blocks = rows.div_ceil(rows_per_block).max(1);
    ParamGradPlan {
        partial: LaunchConfig {
            grid_dim: (col_tiles as u32, row_blocks as u32, 1),
            block_dim: (PARTIAL_COLS as u32, PARTIAL_ROW_LANES as u32, 1),
            shared_mem_bytes: 0,
        },
        finish: LaunchConfig {
            grid_dim: (grid_for(n, FINISH_THREADS as usize), 1, 1),
            block_dim: (FINISH_THREADS, 1, 1),
            shared_mem_bytes: 0,
        },
        rows_per_block,
        row_blocks,
        workspace_f32_layer_norm: row_blocks * 2 * n,
        workspace_f32_rms_norm: row_blocks * n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_every_row_once() {
        for (rows, n) in [
            (0, 8),
            (1, 1),
            (31, 768),
            (4096, 768),
            (100_000, 64),
            (7, 100_000),
        ] {
            let p = param_grads(rows, n);
            assert_eq!(p.partial.grid_dim.1 as usize, p.row_blocks);
            assert!(p.row_blocks * p.rows_per_block >= rows);
            assert!(
                rows == 0 || (p.row_blocks - 1) * p.rows_per_block < rows,
                "empty block"
            );
            assert_eq!(p.partial.grid_dim.0 as usize, n.div_ceil(32).max(1));
            assert_eq!(p.partial.block_dim, (32, 8, 1));
            assert_eq!(p.workspace_f32_layer_norm, 2 * p.workspace_f32_rms_norm);
            assert!(p.row_blocks <= 65_535);
            assert!(p.rows_per_block >= MIN_ROWS_PER_BLOCK.min(rows.max(1)));
        }
    }

    #[test]
    fn typical_transformer_shape() {
        // 4096 tokens of width 768: 24 column tiles, ~43 row blocks of 96 rows.
        let p = param_grads(4096, 768);
        assert_eq!(p.partial.grid_dim.0, 24);
        assert_eq!(p.rows_per_block, 96);
        assert_eq!(p.row_blocks, 43);
        assert_eq!(p.finish.grid_dim, (3, 1, 1));
        assert_eq!(p.finish.block_dim, (256, 1, 1));
    }

    #[test]
    fn kernel_names_are_in_the_source() {
        let src = include_str!("norm.cu");
        for k in KERNELS {
            assert!(src.contains(&format!("void {k}(")), "{k} not in norm.cu");
        }
        assert_eq!(src.matches("extern \"C\" __global__").count(), KERNELS.len());
    }
}
