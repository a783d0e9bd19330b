//! Launchers for `dropout.cu`: dropout (forward, and its backward, which is the same map on
//! the gradient), the keep mask, and uniform f32 draws, all bit-identical to the CPU reference
//! for the same `(seed, offset)` (the contract in [`super`]). The threshold and scale are
//! computed on the host by [`DropoutArgs`], as the CPU computes them. Every kernel used here is
//! in [`all_kernels`], checked against the PTX by `kernels/tests/nvrtc.rs`.
//!
//! All functions are `unsafe`: the addresses must be live contiguous device memory of `dev`
//! holding `n` elements of the named type.

use super::launch::{elementwise, DropoutArgs};
use crate::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError, FloatType};
use crate::reduce::cuda::pick;

use ArgKind::{Ptr as P, F32 as F, I64 as I, U32, U64};

const DROPOUT_FWD: [KernelRef; 2] = [
    KernelRef {
        source: "dropout.cu",
        name: "dropout_fwd_f32",
        params: &[P, P, I, U64, U64, U32, F],
    },
    KernelRef {
        source: "dropout.cu",
        name: "dropout_fwd_bf16",
        params: &[P, P, I, U64, U64, U32, F],
    },
];
const DROPOUT_MASK: KernelRef = KernelRef {
    source: "dropout.cu",
    name: "dropout_mask",
    params: &[P, I, U64, U64, U32],
};
const RANDOM_UNIFORM: KernelRef = KernelRef {
    source: "dropout.cu",
    name: "random_uniform_f32",
    params: &[P, I, U64, U64],
};

/// Every kernel these launchers can launch.
pub fn all_kernels() -> Vec<KernelRef> {
    let mut all = DROPOUT_FWD.to_vec();
    all.extend([DROPOUT_MASK, RANDOM_UNIFORM]);
    all
}

/// `out[i] = kept(i) ? x[i]·scale : 0` with drop probability `p` (`out` may be `x`).
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dropout(
    dev: &CudaDevice,
    dt: FloatType,
    x: u64,
    out: u64,
    n: usize,
    seed: u64,
    offset: u64,
    p: f64,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let a = DropoutArgs::new(p);
    let scale = match dt {
        FloatType::F32 => a.scale_f32,
        FloatType::BF16 => a.scale_bf16,
    };
    let args = [
        Arg::Ptr(x),
        Arg::Ptr(out),
        Arg::I64(n as i64),
        Arg::U64(seed),
        Arg::U64(offset),
        Arg::U32(a.threshold),
        Arg::F32(scale),
    ];
    launch(dev, &pick(DROPOUT_FWD, dt), elementwise(n), &args)
}

/// `mask[i] = 1` where element `i` is kept, else 0 (`n` bytes).
///
/// # Safety
/// See the module documentation.
pub unsafe fn dropout_mask(
    dev: &CudaDevice,
    mask: u64,
    n: usize,
    seed: u64,
    offset: u64,
    p: f64,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(mask),
        Arg::I64(n as i64),
        Arg::U64(seed),
        Arg::U64(offset),
        Arg::U32(DropoutArgs::new(p).threshold),
    ];
    launch(dev, &DROPOUT_MASK, elementwise(n), &args)
}

/// `out[i] = philox::uniform_f32(seed, offset, i)`, in `[0, 1)`.
///
/// # Safety
/// See the module documentation.
pub unsafe fn uniform_f32(
    dev: &CudaDevice,
    out: u64,
    n: usize,
    seed: u64,
    offset: u64,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(out),
        Arg::I64(n as i64),
        Arg::U64(seed),
        Arg::U64(offset),
    ];
    launch(dev, &RANDOM_UNIFORM, elementwise(n), &args)
}
