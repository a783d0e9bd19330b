//! Launch shapes and host-side arguments for `dropout.cu` (pure functions, no GPU needed), and
//! its entry points.

use cudarc::driver::LaunchConfig;

use super::dropout::{keep_scale, keep_threshold};
use crate::reduce::launch::grid_for;

/// Every `extern "C"` entry point of `dropout.cu`.
pub const KERNELS: &[&str] = &[
    "dropout_fwd_f32",
    "dropout_fwd_bf16",
    "dropout_mask",
    "random_uniform_f32",
];

/// Threads per block of every kernel of `dropout.cu`.
pub const THREADS: u32 = 256;

/// The shape of every kernel of `dropout.cu` over `n` elements: one thread per 4-element
/// Philox block, capped (the kernels grid-stride).
pub fn elementwise(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid_for(n.div_ceil(4), THREADS as usize), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The scalar arguments of `dropout_fwd_*` / `dropout_mask` for drop probability `p` (in
/// `[0, 1]`; callers validate it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutArgs {
    /// `threshold`: `ceil(p · 2^24)`.
    pub threshold: u32,
    /// `scale` for `dropout_fwd_f32`: `1 / (1 − p)` rounded once to f32 (0 for p = 1).
    pub scale_f32: f32,
    /// `scale` for `dropout_fwd_bf16`: `1 / (1 − p)` rounded once (from f64) to bf16, widened to
    /// f32 (exactly representable, so the kernel's own rounding to bf16 keeps it).
    pub scale_bf16: f32,
}

impl DropoutArgs {
    pub fn new(p: f64) -> DropoutArgs {
        DropoutArgs {
            threshold: keep_threshold(p),
            scale_f32: keep_scale::<f32>(p),
            scale_bf16: round_to_bf16(keep_scale::<f64>(p)),
        }
    }
}

/// `v` rounded once to the nearest bf16 (ties to even), as an f32. For the positive finite
/// scales dropout uses; an out-of-range value becomes inf.
pub fn round_to_bf16(v: f64) -> f32 {
    if !v.is_finite() || v == 0.0 {
        return v as f32;
    }
    // bf16 keeps 7 of f64's 52 fraction bits: round the 45 dropped bits to nearest even.
    let bits = v.to_bits();
    let dropped = 45;
    let lsb = (bits >> dropped) & 1;
    let rounded = (bits + ((1u64 << (dropped - 1)) - 1) + lsb) & !((1u64 << dropped) - 1);
    // An 8-bit significand converts to f32 exactly (or overflows to inf).
    f64::from_bits(rounded) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_per_philox_block() {
        let c = elementwise(1 << 20);
        assert_eq!((c.grid_dim, c.block_dim), ((1024, 1, 1), (256, 1, 1)));
        assert_eq!(elementwise(5).grid_dim, (1, 1, 1));
        assert_eq!(elementwise(0).grid_dim, (1, 1, 1));
    }

    #[test]
    fn scalar_arguments() {
        let a = DropoutArgs::new(0.5);
        assert_eq!((a.threshold, a.scale_f32, a.scale_bf16), (1 << 23, 2.0, 2.0));
        let a = DropoutArgs::new(0.1);
        assert_eq!(a.scale_f32, (1.0f64 / 0.9) as f32);
        // 1/0.9 = 1.111...: bf16 keeps 7 fraction bits, 1 + 14/128.
        assert_eq!(a.scale_bf16, 1.109375);
        let a = DropoutArgs::new(1.0);
        assert_eq!((a.threshold, a.scale_f32, a.scale_bf16), (1 << 24, 0.0, 0.0));
        assert_eq!(DropoutArgs::new(0.0).scale_bf16, 1.0);
    }

    #[test]
    fn bf16_rounding_is_to_nearest_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(round_to_bf16(1.0 + 2f64.powi(-8)), 1.0);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to the even 1 + 2^-6.
        assert_eq!(round_to_bf16(1.0 + 3.0 * 2f64.powi(-8)), 1.0 + 2f32.powi(-6));
        assert_eq!(round_to_bf16(1.0 + 2f64.powi(-8) + 1e-12), 1.0 + 2f32.powi(-7));
        assert_eq!(round_to_bf16(3.0), 3.0);
        for v in [1.0f64, 1.25, 1.75, 4.0 / 3.0, 10.0, 1e6] {
            let r = round_to_bf16(v);
            assert_eq!(r.to_bits() & 0xffff, 0, "{v} -> {r} is not a bf16 value");
            assert!(((r as f64) - v).abs() <= v * 2f64.powi(-8));
        }
    }

    #[test]
    fn kernel_names_are_in_the_source() {
        let src = include_str!("dropout.cu");
        for k in KERNELS {
            assert!(src.contains(&format!("void {k}(")), "{k} not in dropout.cu");
        }
        assert_eq!(src.matches("extern \"C\" __global__").count(), KERNELS.len());
    }
}
