//! Launchers for `reduce.cu`: row reductions over a contiguous `[rows, n]` buffer and
//! middle-axis reductions over a contiguous `[outer, r, inner]` buffer. Launch shapes come
//! from [`super::launch`]; every kernel used here is listed by [`all_kernels`], which
//! `kernels/tests/nvrtc.rs` checks against the compiled PTX.
//!
//! All functions are `unsafe`: the addresses must be live device memory of `dev` holding the
//! elements the sizes describe, of the named dtype; the tensor layer checks sizes.

use super::launch as shape;
use crate::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError, FloatType};

use ArgKind::{Ptr as P, I64 as I};

/// `(x, out, rows, n)`.
const ROWS: &[ArgKind] = &[P, P, I, I];
/// `(x, out, rows, n, correction)`.
const VAR: &[ArgKind] = &[P, P, I, I, I];
/// `(x, out, outer, r, inner)`.
const MIDDLE: &[ArgKind] = &[P, P, I, I, I];

/// `[f32 kernel, bf16 kernel]` of one entry of reduce.cu.
macro_rules! pair {
    ($base:literal, $params:expr) => {
        [
            KernelRef {
                source: "reduce.cu",
                name: concat!($base, "_f32"),
                params: $params,
            },
            KernelRef {
                source: "reduce.cu",
                name: concat!($base, "_bf16"),
                params: $params,
            },
        ]
    };
}

/// The kernel of `pair` (`[f32, bf16]`) for `dt`; shared with the other row families.
pub(crate) fn pick(pair: [KernelRef; 2], dt: FloatType) -> KernelRef {
    match dt {
        FloatType::F32 => pair[0],
        FloatType::BF16 => pair[1],
    }
}

/// A reduction of each row (or middle-axis column) to one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowReduce {
    Sum,
    Max,
    Min,
    LogSumExp,
    /// Variance with `correction` subtracted from the count (0: population, 1: Bessel).
    Var {
        correction: usize,
    },
}

fn row_pair(op: RowReduce) -> [KernelRef; 2] {
    match op {
        RowReduce::Sum => pair!("reduce_sum", ROWS),
        RowReduce::Max => pair!("reduce_max", ROWS),
        RowReduce::Min => pair!("reduce_min", ROWS),
        RowReduce::LogSumExp => pair!("reduce_logsumexp", ROWS),
        RowReduce::Var { .. } => pair!("reduce_var", VAR),
    }
}

/// The middle-axis kernels exist for sum, max and min only.
fn middle_pair(op: RowReduce) -> Option<[KernelRef; 2]> {
    Some(match op {
        RowReduce::Sum => pair!("reduce_middle_sum", MIDDLE),
        RowReduce::Max => pair!("reduce_middle_max", MIDDLE),
        RowReduce::Min => pair!("reduce_middle_min", MIDDLE),
        RowReduce::LogSumExp | RowReduce::Var { .. } => return None,
    })
}

/// Every kernel these launchers can launch.
pub fn all_kernels() -> Vec<KernelRef> {
    let ops = [
        RowReduce::Sum,
        RowReduce::Max,
        RowReduce::Min,
        RowReduce::LogSumExp,
        RowReduce::Var { correction: 0 },
    ];
    let mut all = Vec::new();
    for op in ops {
        all.extend(row_pair(op));
        all.extend(middle_pair(op).into_iter().flatten());
    }
    all
}

/// Whether [`middle`] handles `op`.
pub fn has_middle(op: RowReduce) -> bool {
    middle_pair(op).is_some()
}

fn size(v: usize) -> Arg {
    Arg::I64(v as i64)
}

/// `out[r] = op(x[r, ..])` for `rows` contiguous rows of `n` elements (`n > 0`: the kernels'
/// empty-row values are not the autograd ops' errors, so the caller rejects empty rows).
///
/// # Safety
/// See the module documentation.
pub unsafe fn rows(
    dev: &CudaDevice,
    op: RowReduce,
    dt: FloatType,
    x: u64,
    out: u64,
    rows: usize,
    n: usize,
) -> Result<(), CudaError> {
    if rows == 0 {
        return Ok(());
    }
    let mut args = vec![Arg::Ptr(x), Arg::Ptr(out), size(rows), size(n)];
    if let RowReduce::Var { correction } = op {
        args.push(size(correction));
    }
    launch(dev, &pick(row_pair(op), dt), shape::rows(rows, n), &args)
}

/// `out[o, i] = op_j x[o, j, i]` over a contiguous `[outer, r, inner]` buffer, for sum, max and
/// min (an error for the others: they have no middle-axis kernel).
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn middle(
    dev: &CudaDevice,
    op: RowReduce,
    dt: FloatType,
    x: u64,
    out: u64,
    outer: usize,
    r: usize,
    inner: usize,
) -> Result<(), CudaError> {
    let Some(pair) = middle_pair(op) else {
        return Err(CudaError::Driver(format!(
            "reduce.cu has no middle-axis kernel for {op:?}"
        )));
    };
    if outer == 0 || inner == 0 {
        return Ok(());
    }
    let args = [Arg::Ptr(x), Arg::Ptr(out), size(outer), size(r), size(inner)];
    launch(dev, &pick(pair, dt), shape::middle(outer, r, inner), &args)
}
