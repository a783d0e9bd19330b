//! Launch shapes for `loss.cu` (pure functions of the sizes) and its entry points.
//!
//! Cross-entropy uses the row scheme of [`crate::reduce::launch::rows`] over `[rows, classes]`;
//! squared error is elementwise (a 1-D grid-stride loop, [`elementwise`]).

use cudarc::driver::LaunchConfig;

use crate::reduce::launch::grid_for;

/// Every `extern "C"` entry point of `loss.cu`.
pub const KERNELS: &[&str] = &[
    "cross_entropy_fwd_f32",
    "cross_entropy_bwd_f32",
    "squared_error_fwd_f32",
    "squared_error_bwd_f32",
    "cross_entropy_fwd_bf16",
    "cross_entropy_bwd_bf16",
    "squared_error_fwd_bf16",
    "squared_error_bwd_bf16",
];

/// The value the host writes into the `error` word before a cross-entropy launch: "no bad
/// target". Afterwards any other value is the smallest row whose target is outside
/// `0..classes`.
pub const NO_ERROR: u64 = u64::MAX;

/// The shape of `cross_entropy_fwd_*` / `cross_entropy_bwd_*` over `[rows, classes]`.
pub fn cross_entropy(rows: usize, classes: usize) -> LaunchConfig {
    crate::reduce::launch::rows(rows, classes)
}

/// Threads per block of the elementwise kernels.
pub const ELEMENTWISE_THREADS: u32 = 256;

/// The shape of `squared_error_*` over `n` elements: about one 16-byte vector of f32 (4
/// elements) per thread, capped (the kernels grid-stride).
pub fn elementwise(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid_for(n, ELEMENTWISE_THREADS as usize * 4), 1, 1),
        block_dim: (ELEMENTWISE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        // GPT-2 vocabulary: one block of 1024 threads per row.
        let c = cross_entropy(8192, 50_257);
        assert_eq!((c.grid_dim, c.block_dim), ((8192, 1, 1), (1024, 1, 1)));
        // MNIST: a warp per row.
        let c = cross_entropy(100, 10);
        assert_eq!((c.grid_dim, c.block_dim), ((13, 1, 1), (32, 8, 1)));
        let e = elementwise(1 << 20);
        assert_eq!((e.grid_dim, e.block_dim), ((1024, 1, 1), (256, 1, 1)));
        assert_eq!(elementwise(0).grid_dim, (1, 1, 1));
        assert_eq!(NO_ERROR, !0u64);
    }

    #[test]
    fn kernel_names_are_in_the_source() {
        let src = include_str!("loss.cu");
        for k in KERNELS {
            assert!(src.contains(&format!("void {k}(")), "{k} not in loss.cu");
        }
        assert_eq!(src.matches("extern \"C\" __global__").count(), KERNELS.len());
    }
}
