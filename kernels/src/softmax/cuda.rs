//! Launchers for `softmax.cu`: softmax and log-softmax over the rows of a contiguous
//! `[rows, n]` buffer, forward and backward. Shapes from [`super::launch::rows`]; every kernel
//! used here is in [`all_kernels`], checked against the PTX by `kernels/tests/nvrtc.rs`.
//!
//! All functions are `unsafe`: the addresses must be live device memory of `dev` holding
//! `rows · n` elements of the named dtype; outputs must not alias inputs.

use crate::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError, FloatType};
use crate::reduce::cuda::pick;

use ArgKind::{Ptr as P, I64 as I};

/// `(x, y, rows, n)`.
const FWD: &[ArgKind] = &[P, P, I, I];
/// `(y, g, dx, rows, n)`.
const BWD: &[ArgKind] = &[P, P, P, I, I];

macro_rules! pair {
    ($base:literal, $params:expr) => {
        [
            KernelRef {
                source: "softmax.cu",
                name: concat!($base, "_f32"),
                params: $params,
            },
            KernelRef {
                source: "softmax.cu",
                name: concat!($base, "_bf16"),
                params: $params,
            },
        ]
    };
}

const SOFTMAX_FWD: [KernelRef; 2] = pair!("softmax_fwd", FWD);
const LOG_SOFTMAX_FWD: [KernelRef; 2] = pair!("log_softmax_fwd", FWD);
const SOFTMAX_BWD: [KernelRef; 2] = pair!("softmax_bwd", BWD);
const LOG_SOFTMAX_BWD: [KernelRef; 2] = pair!("log_softmax_bwd", BWD);

/// Every kernel these launchers can launch.
pub fn all_kernels() -> Vec<KernelRef> {
    [SOFTMAX_FWD, LOG_SOFTMAX_FWD, SOFTMAX_BWD, LOG_SOFTMAX_BWD]
        .into_iter()
        .flatten()
        .collect()
}

fn rows_args(rows: usize, n: usize) -> [Arg; 2] {
    [Arg::I64(rows as i64), Arg::I64(n as i64)]
}

/// `y = softmax(x)` (or `log_softmax` with `log`) of each row.
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn forward(
    dev: &CudaDevice,
    log: bool,
    dt: FloatType,
    x: u64,
    y: u64,
    rows: usize,
    n: usize,
) -> Result<(), CudaError> {
    if rows == 0 || n == 0 {
        return Ok(());
    }
    let kernel = pick(if log { LOG_SOFTMAX_FWD } else { SOFTMAX_FWD }, dt);
    let [r, c] = rows_args(rows, n);
    launch(
        dev,
        &kernel,
        super::launch::rows(rows, n),
        &[Arg::Ptr(x), Arg::Ptr(y), r, c],
    )
}

/// `dx` of each row from the forward output `y` and the incoming gradient `g`.
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn backward(
    dev: &CudaDevice,
    log: bool,
    dt: FloatType,
    y: u64,
    g: u64,
    dx: u64,
    rows: usize,
    n: usize,
) -> Result<(), CudaError> {
    if rows == 0 || n == 0 {
        return Ok(());
    }
    let kernel = pick(if log { LOG_SOFTMAX_BWD } else { SOFTMAX_BWD }, dt);
    let [r, c] = rows_args(rows, n);
    let args = [Arg::Ptr(y), Arg::Ptr(g), Arg::Ptr(dx), r, c];
    launch(dev, &kernel, super::launch::rows(rows, n), &args)
}
