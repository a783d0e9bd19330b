//! The CUDA side of the reductions other than `sum` (which has its own row kernel in
//! `elementwise`): `max`, `min`, `logsumexp` and `var` through `reduce.cu`, and the device
//! half of logsumexp's backward.
//!
//! Layout as on the CPU: when the reduced axes are one consecutive block that is not innermost
//! (and the op has a middle-axis kernel) the contiguous input is read in place as
//! `[outer, r, inner]`; otherwise the reduced axes are moved innermost by a device copy and
//! each row is reduced by one team of threads.

use crate::graph::no_grad;
use crate::tensor::cuda::{cuda_err, float_type};
use crate::{Error, Result, Tensor};
use kernels::reduce::cpu::Combine;
use kernels::reduce::cuda::{self as kr, RowReduce};

fn row_op(op: &'static str) -> Result<RowReduce> {
    Ok(match op {
        "max" => RowReduce::Max,
        "min" => RowReduce::Min,
        "logsumexp" => RowReduce::LogSumExp,
        "sum" => RowReduce::Sum,
        _ => {
            return Err(Error::InvalidArgument {
                op,
                reason: "no CUDA reduction of this name (a bug in the caller)".into(),
            })
        }
    })
}

/// `op` over `axes` of the CUDA tensor `x`, as an untracked tensor of `out_shape`.
pub(super) fn reduce(
    op: &'static str,
    x: &Tensor,
    axes: &[usize],
    out_shape: &[usize],
    row_len: usize,
    middle: Option<Combine>,
) -> Result<Tensor> {
    rows_or_middle(op, row_op(op)?, x, axes, out_shape, row_len, middle.is_some())
}

/// The variance over `axes` with `correction` (the caller has checked `row_len > correction`).
pub(super) fn var(
    x: &Tensor,
    axes: &[usize],
    out_shape: &[usize],
    row_len: usize,
    correction: usize,
) -> Result<Tensor> {
    rows_or_middle(
        "var",
        RowReduce::Var { correction },
        x,
        axes,
        out_shape,
        row_len,
        false,
    )
}

fn rows_or_middle(
    op: &'static str,
    kind: RowReduce,
    x: &Tensor,
    axes: &[usize],
    out_shape: &[usize],
    row_len: usize,
    try_middle: bool,
) -> Result<Tensor> {
    let dt = float_type(op, x)?;
    let dev = x.cuda_dev()?;
    let out = Tensor::cuda_empty(out_shape, x.dtype(), x.device())?;
    let consecutive = axes.windows(2).all(|w| w[1] == w[0] + 1);
    let last = axes.last().copied().unwrap_or(0);
    if try_middle && kr::has_middle(kind) && consecutive && !axes.is_empty() && last + 1 < x.rank() {
        let xc = no_grad(|| x.detach().contiguous())?;
        let outer: usize = x.shape()[..axes[0]].iter().product();
        let inner: usize = x.shape()[last + 1..].iter().product();
        // SAFETY: xc is contiguous [outer, row_len, inner]; out holds outer * inner elements.
        unsafe {
            kr::middle(
                &dev,
                kind,
                dt,
                xc.cuda_ptr()?,
                out.cuda_ptr()?,
                outer,
                row_len,
                inner,
            )
        }
        .map_err(cuda_err(op))?;
        return Ok(out);
    }
    // Kept axes first, reduced axes last, copied contiguous on the device.
    let mut order: Vec<usize> = (0..x.rank()).filter(|a| !axes.contains(a)).collect();
    order.extend(axes);
    let moved = no_grad(|| x.detach().permute(&order)?.contiguous())?;
    // SAFETY: moved is contiguous [rows, row_len]; out holds rows elements.
    unsafe {
        kr::rows(
            &dev,
            kind,
            dt,
            moved.cuda_ptr()?,
            out.cuda_ptr()?,
            out.numel(),
            row_len,
        )
    }
    .map_err(cuda_err(op))?;
    Ok(out)
}

/// `exp(x − lse)` with `lse` broadcast (its reduced axes kept as size 1), and 0 where lse is
/// -inf (a row of all -inf, whose gradient is 0 rather than the NaN of -inf − -inf): the
/// softmax weights of logsumexp's backward, by device ops.
pub(super) fn logsumexp_weights(x: &Tensor, lse: &Tensor) -> Result<Tensor> {
    let w = x.sub(lse)?.exp()?;
    let ninf = Tensor::full(&[], f64::NEG_INFINITY, x.dtype(), x.device())?;
    let zero = Tensor::zeros(&[], x.dtype(), x.device())?;
    Tensor::where_cond(&lse.eq(&ninf)?, &zero, &w)
}
