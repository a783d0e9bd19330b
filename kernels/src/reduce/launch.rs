//! Launch shapes for `reduce.cu`, as pure functions of the sizes (no GPU needed), and the list
//! of its entry points. The `.cu` file's header is the ABI; this file is the one place that
//! decides grid and block, so the launcher and the benchmarks agree.
//!
//! The row kernels of `reduce.cu`, `softmax.cu`, `norm.cu` and `loss.cu` share one scheme,
//! [`rows`]: a warp per row for rows of at most [`WARP_ROW_MAX`] elements, a whole block per
//! row above that. The kernels tell the two apart by `blockDim.x == 32`.

use cudarc::driver::LaunchConfig;

/// Every `extern "C"` entry point of `reduce.cu`.
pub const KERNELS: &[&str] = &[
    "reduce_sum_f32",
    "reduce_sum_bf16",
    "reduce_max_f32",
    "reduce_max_bf16",
    "reduce_min_f32",
    "reduce_min_bf16",
    "reduce_logsumexp_f32",
    "reduce_logsumexp_bf16",
    "reduce_var_f32",
    "reduce_var_bf16",
    "reduce_middle_sum_f32",
    "reduce_middle_sum_bf16",
    "reduce_middle_max_f32",
    "reduce_middle_max_bf16",
    "reduce_middle_min_f32",
    "reduce_middle_min_bf16",
];

/// Rows of at most this many elements get one warp each (at most 32 elements per lane, eight
/// 16-byte vectors of f32); longer rows get a block.
pub const WARP_ROW_MAX: usize = 1024;
/// Warps (rows) per block in warp mode.
pub const WARPS_PER_BLOCK: u32 = 8;
/// Elements per thread a block-mode row aims for; sets the block size from the row length.
pub const BLOCK_ELEMS_PER_THREAD: usize = 16;
/// Largest grid the launchers use. Every kernel grid-strides, so more work than this is correct;
/// 65536 blocks are hundreds of waves on any current GPU.
pub const MAX_GRID: u32 = 1 << 16;

/// `ceil(a / b)` as a grid size in `[1, MAX_GRID]`. An empty problem still gets one block,
/// which finds no work (a zero-sized grid is a launch error).
pub fn grid_for(work: usize, per_block: usize) -> u32 {
    work.div_ceil(per_block.max(1)).clamp(1, MAX_GRID as usize) as u32
}

/// Threads per block for a row of `n` elements in block mode: a power of two in `[128, 1024]`
/// giving each thread about [`BLOCK_ELEMS_PER_THREAD`] elements.
pub fn block_threads(n: usize) -> u32 {
    (n / BLOCK_ELEMS_PER_THREAD).next_power_of_two().clamp(128, 1024) as u32
}

/// Whether rows of length `n` run in warp mode.
pub fn warp_mode(n: usize) -> bool {
    n <= WARP_ROW_MAX
}

/// The shape of every row kernel over `[rows, n]` (reduce, softmax, norm, loss): block
/// `(32, 8, 1)` with one warp per row for short rows, block `(T, 1, 1)` with one block per row
/// otherwise. No dynamic shared memory (the kernels' scratch is static).
pub fn rows(rows: usize, n: usize) -> LaunchConfig {
    if warp_mode(n) {
        LaunchConfig {
            grid_dim: (grid_for(rows, WARPS_PER_BLOCK as usize), 1, 1),
            block_dim: (32, WARPS_PER_BLOCK, 1),
            shared_mem_bytes: 0,
        }
    } else {
        LaunchConfig {
            grid_dim: (grid_for(rows, 1), 1, 1),
            block_dim: (block_threads(n), 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// Most threads splitting the reduced axis of `reduce_middle_*` (`blockDim.y`).
pub const MIDDLE_MAX_SPLIT: u32 = 8;

/// The shape of `reduce_middle_*` over `[outer, r, inner]`: block `(32, Y, 1)` with
/// `Y = clamp(r, 1, 8)` threads splitting the reduced axis, one block per 32-column tile.
/// With `r = 1` (so `Y = 1`) the sum is added in exactly the CPU's order.
pub fn middle(outer: usize, r: usize, inner: usize) -> LaunchConfig {
    let split = r.clamp(1, MIDDLE_MAX_SPLIT as usize) as u32;
    LaunchConfig {
        grid_dim: (grid_for(outer.saturating_mul(inner.div_ceil(32)), 1), 1, 1),
        block_dim: (32, split, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_rows_get_a_warp_each() {
        let c = rows(1000, 768);
        assert_eq!(c.block_dim, (32, 8, 1));
        assert_eq!(c.grid_dim, (125, 1, 1));
        assert_eq!(rows(1001, 1024).grid_dim.0, 126);
        assert_eq!(c.shared_mem_bytes, 0);
    }

    #[test]
    fn long_rows_get_a_block_each() {
        let c = rows(64, 1025);
        assert_eq!(c.block_dim, (128, 1, 1));
        assert_eq!(c.grid_dim, (64, 1, 1));
        assert_eq!(block_threads(4096), 256);
        assert_eq!(block_threads(32768), 1024);
        assert_eq!(block_threads(1 << 24), 1024);
        for n in [1025, 3000, 50_000, 1 << 20] {
            let t = block_threads(n);
            assert!(t.is_power_of_two() && (128..=1024).contains(&t) && t.is_multiple_of(32));
        }
    }

    #[test]
    fn grids_are_capped_and_never_empty() {
        assert_eq!(rows(0, 10).grid_dim.0, 1);
        assert_eq!(rows(usize::MAX / 2, 4).grid_dim.0, MAX_GRID);
        assert_eq!(grid_for(0, 256), 1);
        assert_eq!(grid_for(257, 256), 2);
    }

    #[test]
    fn middle_shape() {
        let c = middle(2, 100, 70);
        assert_eq!(c.block_dim, (32, 8, 1));
        assert_eq!(c.grid_dim, (6, 1, 1));
        assert_eq!(middle(1, 1, 5).block_dim, (32, 1, 1));
        assert_eq!(middle(1, 3, 5).block_dim, (32, 3, 1));
        assert_eq!(middle(0, 0, 0).grid_dim, (1, 1, 1));
    }

    #[test]
    fn kernel_names_follow_the_convention() {
        for k in KERNELS {
            assert!(
                k.starts_with("reduce_") && (k.ends_with("_f32") || k.ends_with("_bf16")),
                "{k}"
            );
        }
        let src = include_str!("reduce.cu");
        for k in KERNELS {
            assert!(src.contains(&format!("void {k}(")), "{k} not in reduce.cu");
        }
        assert_eq!(src.matches("extern \"C\" __global__").count(), KERNELS.len());
    }
}
