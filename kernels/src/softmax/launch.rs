//! Launch shapes for `softmax.cu` (pure functions of the sizes) and its entry points. The row
//! kernels share the scheme of [`crate::reduce::launch::rows`]: a warp per row up to 1024
//! elements, a block per row above.

use cudarc::driver::LaunchConfig;

/// Every `extern "C"` entry point of `softmax.cu`.
pub const KERNELS: &[&str] = &[
    "softmax_fwd_f32",
    "softmax_fwd_bf16",
    "log_softmax_fwd_f32",
    "log_softmax_fwd_bf16",
    "softmax_bwd_f32",
    "softmax_bwd_bf16",
    "log_softmax_bwd_f32",
    "log_softmax_bwd_bf16",
];

/// The shape of every kernel of `softmax.cu` over `[rows, n]`, forward or backward.
pub fn rows(rows: usize, n: usize) -> LaunchConfig {
    crate::reduce::launch::rows(rows, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_shapes() {
        let c = rows(4096, 50_257);
        assert_eq!(c.block_dim, (1024, 1, 1));
        assert_eq!(c.grid_dim, (4096, 1, 1));
        let c = rows(10, 64);
        assert_eq!(c.block_dim, (32, 8, 1));
        assert_eq!(c.grid_dim, (2, 1, 1));
        assert_eq!(c.shared_mem_bytes, 0);
    }

    #[test]
    fn kernel_names_are_in_the_source() {
        let src = include_str!("softmax.cu");
        for k in KERNELS {
            assert!(src.contains(&format!("void {k}(")), "{k} not in softmax.cu");
        }
        assert_eq!(src.matches("extern \"C\" __global__").count(), KERNELS.len());
    }
}
