//! Launch shape for `matmul.cu`'s reference GEMM (a pure function of the sizes) and its entry
//! points.

use cudarc::driver::LaunchConfig;

/// Every `extern "C"` entry point of `matmul.cu`.
pub const KERNELS: &[&str] = &["matmul_gemm_f32", "matmul_gemm_bf16"];

/// Rows and columns of C per block (`BM`, `BN` in `matmul.cu`).
pub const TILE: usize = 128;
/// Threads per block; the kernel assumes exactly this many.
pub const THREADS: u32 = 256;
/// CUDA's limit on `gridDim.y` and `gridDim.z`.
const MAX_GRID_YZ: usize = 65_535;

/// The shape of `matmul_gemm_*` for `batch` products of `[m, k] @ [k, n]`: one block per
/// 128 x 128 tile of C, batches on grid z (grid-strided beyond 65535). `None` when m needs more
/// than 65535 row tiles (over 8.3 million rows; split the call).
pub fn gemm(m: usize, n: usize, batch: usize) -> Option<LaunchConfig> {
    let row_tiles = m.div_ceil(TILE).max(1);
    if row_tiles > MAX_GRID_YZ {
        return None;
    }
    let col_tiles = u32::try_from(n.div_ceil(TILE).max(1)).ok()?;
    Some(LaunchConfig {
        grid_dim: (col_tiles, row_tiles as u32, batch.clamp(1, MAX_GRID_YZ) as u32),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// FLOPs of one call, for the roofline report: `2·m·n·k·batch`.
pub fn flops(m: usize, n: usize, k: usize, batch: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64 * batch as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_c() {
        let c = gemm(1000, 130, 3).unwrap();
        assert_eq!(c.grid_dim, (2, 8, 3));
        assert_eq!(c.block_dim, (256, 1, 1));
        assert_eq!(c.shared_mem_bytes, 0);
        assert_eq!(gemm(0, 0, 0).unwrap().grid_dim, (1, 1, 1));
        assert_eq!(gemm(128, 128, 100_000).unwrap().grid_dim, (1, 1, 65_535));
        assert!(gemm(128 * 65_536, 1, 1).is_none());
        assert_eq!(flops(2, 3, 4, 5), 240.0);
    }

    #[test]
    fn kernel_names_are_in_the_source() {
        let src = include_str!("matmul.cu");
        for k in KERNELS {
            assert!(src.contains(&format!("\n{k}(")), "{k} not in matmul.cu");
        }
        assert_eq!(src.matches("extern \"C\" __global__").count(), KERNELS.len());
    }
}
