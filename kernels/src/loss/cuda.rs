//! Launchers for `loss.cu`: softmax cross-entropy with i64 targets (forward with the saved
//! log-sum-exp, backward `g·(softmax − onehot)`) and elementwise squared error. Every kernel
//! used here is in [`all_kernels`], checked against the PTX by `kernels/tests/nvrtc.rs`.
//!
//! All functions are `unsafe`: the addresses must be live device memory of `dev` holding what
//! the sizes describe. Cross-entropy's loss, lse and g are f32 whatever the logits' dtype;
//! squared error's g is of the data's dtype. `error` is an [`ErrorFlag`] address or 0.
//!
//! [`ErrorFlag`]: crate::cuda::flag::ErrorFlag

use super::launch::{cross_entropy as ce_shape, elementwise as ew_shape};
use crate::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError, FloatType};
use crate::reduce::cuda::pick;

use ArgKind::{Ptr as P, I64 as I};

/// `(logits, targets, loss, lse, rows, classes, error)`.
const CE_FWD: &[ArgKind] = &[P, P, P, P, I, I, P];
/// `(logits, targets, lse, g, g_stride, dx, rows, classes, error)`.
const CE_BWD: &[ArgKind] = &[P, P, P, P, I, P, I, I, P];
/// `(p, t, out, n)`.
const SQ_FWD: &[ArgKind] = &[P, P, P, I];
/// `(p, t, g, g_stride, dp, n)`.
const SQ_BWD: &[ArgKind] = &[P, P, P, I, P, I];

macro_rules! pair {
    ($base:literal, $params:expr) => {
        [
            KernelRef {
                source: "loss.cu",
                name: concat!($base, "_f32"),
                params: $params,
            },
            KernelRef {
                source: "loss.cu",
                name: concat!($base, "_bf16"),
                params: $params,
            },
        ]
    };
}

const CROSS_ENTROPY_FWD: [KernelRef; 2] = pair!("cross_entropy_fwd", CE_FWD);
const CROSS_ENTROPY_BWD: [KernelRef; 2] = pair!("cross_entropy_bwd", CE_BWD);
const SQUARED_ERROR_FWD: [KernelRef; 2] = pair!("squared_error_fwd", SQ_FWD);
const SQUARED_ERROR_BWD: [KernelRef; 2] = pair!("squared_error_bwd", SQ_BWD);

/// Every kernel these launchers can launch.
pub fn all_kernels() -> Vec<KernelRef> {
    [
        CROSS_ENTROPY_FWD,
        CROSS_ENTROPY_BWD,
        SQUARED_ERROR_FWD,
        SQUARED_ERROR_BWD,
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn size(v: usize) -> Arg {
    Arg::I64(v as i64)
}

/// Per row: `lse = ln Σ exp(logits)`, `loss = lse − logits[target]` (both f32). A target
/// outside `[0, classes)` is flagged in `error` and gives that row NaN.
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn cross_entropy_forward(
    dev: &CudaDevice,
    dt: FloatType,
    logits: u64,
    targets: u64,
    loss: u64,
    lse: u64,
    rows: usize,
    classes: usize,
    error: u64,
) -> Result<(), CudaError> {
    if rows == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(logits),
        Arg::Ptr(targets),
        Arg::Ptr(loss),
        Arg::Ptr(lse),
        size(rows),
        size(classes),
        Arg::Ptr(error),
    ];
    launch(dev, &pick(CROSS_ENTROPY_FWD, dt), ce_shape(rows, classes), &args)
}

/// `dx = g_r·(softmax − onehot)` from the saved lse; `g_r = g[r·g_stride]` (f32; stride 0 for
/// one value shared by all rows).
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn cross_entropy_backward(
    dev: &CudaDevice,
    dt: FloatType,
    logits: u64,
    targets: u64,
    lse: u64,
    g: u64,
    g_stride: usize,
    dx: u64,
    rows: usize,
    classes: usize,
    error: u64,
) -> Result<(), CudaError> {
    if rows == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(logits),
        Arg::Ptr(targets),
        Arg::Ptr(lse),
        Arg::Ptr(g),
        size(g_stride),
        Arg::Ptr(dx),
        size(rows),
        size(classes),
        Arg::Ptr(error),
    ];
    launch(dev, &pick(CROSS_ENTROPY_BWD, dt), ce_shape(rows, classes), &args)
}

/// `out = (p − t)²` over `n` elements.
///
/// # Safety
/// See the module documentation.
pub unsafe fn squared_error_forward(
    dev: &CudaDevice,
    dt: FloatType,
    p: u64,
    t: u64,
    out: u64,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [Arg::Ptr(p), Arg::Ptr(t), Arg::Ptr(out), size(n)];
    launch(dev, &pick(SQUARED_ERROR_FWD, dt), ew_shape(n), &args)
}

/// `dp = 2·(p − t)·g_i`, `g_i = g[i·g_stride]` (stride 0: one value for all).
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn squared_error_backward(
    dev: &CudaDevice,
    dt: FloatType,
    p: u64,
    t: u64,
    g: u64,
    g_stride: usize,
    dp: u64,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(p),
        Arg::Ptr(t),
        Arg::Ptr(g),
        size(g_stride),
        Arg::Ptr(dp),
        size(n),
    ];
    launch(dev, &pick(SQUARED_ERROR_BWD, dt), ew_shape(n), &args)
}
