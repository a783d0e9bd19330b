//! The CUDA path of `cross_entropy` and `mse_loss` through `loss.cu`: per-row (per-element)
//! losses from one kernel, the reduction by the device sum, and backward kernels that read the
//! incoming gradient per row or as one shared value (`g_stride` 0), all on the device.
//!
//! Targets are validated by the forward kernel itself (a flag word holding the first bad row),
//! so a bad target costs no extra pass; reading the flag waits for the kernel, the price of
//! reporting it as an error value. The backward passes no flag: the forward has validated.

use super::loss::Reduction;
use crate::graph::{no_grad, record};
use crate::tensor::cuda::{cuda_err, float_type};
use crate::{DType, Error, Result, Tensor};
use kernels::cuda::flag::ErrorFlag;
use kernels::loss::cuda as kl;

fn dense(t: &Tensor) -> Result<Tensor> {
    no_grad(|| t.detach().contiguous())
}

/// Per-value losses `v` reduced as asked: reshaped to `shape`, summed, or averaged (divided by
/// the count, as the CPU divides).
fn reduce_values(v: Tensor, shape: &[usize], reduction: Reduction) -> Result<Tensor> {
    no_grad(|| match reduction {
        Reduction::None => v.reshape(shape),
        Reduction::Sum => v.sum(&[], false),
        Reduction::Mean => {
            let count = v.numel() as f64;
            v.sum(&[], false)?.div_scalar(count)
        }
    })
}

/// The incoming gradient as the kernels take it, and its stride: per value (stride 1) for
/// `None`, else one shared value (stride 0), divided by the count for a mean.
fn grad_values(g: &Tensor, reduction: Reduction, count: usize) -> Result<(Tensor, usize)> {
    no_grad(|| match reduction {
        Reduction::None => Ok((dense(g)?, 1)),
        Reduction::Sum => Ok((dense(g)?, 0)),
        Reduction::Mean => Ok((g.div_scalar(count as f64)?.contiguous()?, 0)),
    })
}

/// Cross-entropy of `[rows, classes]` logits (already shape-checked) against i64 targets.
pub(super) fn cross_entropy_cuda(
    logits: &Tensor,
    targets: &Tensor,
    rows: usize,
    classes: usize,
    reduction: Reduction,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    let dt = float_type(OP, logits)?;
    let dev = logits.cuda_dev()?;
    let (x, t) = (dense(logits)?, dense(targets)?);
    let loss = Tensor::cuda_empty(&[rows], DType::F32, logits.device())?;
    let lse = Tensor::cuda_empty(&[rows], DType::F32, logits.device())?;
    let flag = ErrorFlag::new(&dev).map_err(cuda_err(OP))?;
    // SAFETY: x is [rows, classes], t [rows] i64, loss and lse [rows] f32, all contiguous on
    // this device; the flag is a live word.
    unsafe {
        kl::cross_entropy_forward(
            &dev,
            dt,
            x.cuda_ptr()?,
            t.cuda_ptr()?,
            loss.cuda_ptr()?,
            lse.cuda_ptr()?,
            rows,
            classes,
            flag.ptr(),
        )
    }
    .map_err(cuda_err(OP))?;
    if let Some(row) = flag.read(&dev).map_err(cuda_err(OP))? {
        let index = t.reshape(&[rows])?.narrow(0, row as usize, 1)?.to_vec::<i64>()?[0];
        return Err(Error::IndexOutOfRange {
            op: OP,
            index,
            size: classes,
        });
    }
    let out = reduce_values(loss, targets.shape(), reduction)?;
    Ok(record("cross_entropy", &[logits], out, move |g, _| {
        let (gv, g_stride) = grad_values(g, reduction, rows)?;
        let dx = Tensor::cuda_empty(x.shape(), x.dtype(), x.device())?;
        // SAFETY: as in the forward; gv holds rows values (or one with stride 0), dx is
        // [rows, classes].
        unsafe {
            kl::cross_entropy_backward(
                &dev,
                dt,
                x.cuda_ptr()?,
                t.cuda_ptr()?,
                lse.cuda_ptr()?,
                gv.cuda_ptr()?,
                g_stride,
                dx.cuda_ptr()?,
                rows,
                classes,
                0,
            )
        }
        .map_err(cuda_err(OP))?;
        Ok(vec![Some(dx)])
    }))
}

/// Mean squared error of same-shaped `pred` and `target` (already checked).
pub(super) fn mse_loss_cuda(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    const OP: &str = "mse_loss";
    let dt = float_type(OP, pred)?;
    let dev = pred.cuda_dev()?;
    let (p, t) = (dense(pred)?, dense(target)?);
    let n = p.numel();
    let e = Tensor::cuda_empty(&[n], p.dtype(), p.device())?;
    // SAFETY: p, t and e hold n contiguous elements of this device.
    unsafe { kl::squared_error_forward(&dev, dt, p.cuda_ptr()?, t.cuda_ptr()?, e.cuda_ptr()?, n) }
        .map_err(cuda_err(OP))?;
    let out = reduce_values(e, pred.shape(), reduction)?;
    Ok(record("mse_loss", &[pred, target], out, move |g, needs| {
        let (gv, g_stride) = grad_values(g, reduction, n)?;
        let dp = Tensor::cuda_empty(p.shape(), p.dtype(), p.device())?;
        // SAFETY: p, t, dp hold n elements; gv n (stride 1) or one (stride 0).
        unsafe {
            kl::squared_error_backward(
                &dev,
                dt,
                p.cuda_ptr()?,
                t.cuda_ptr()?,
                gv.cuda_ptr()?,
                g_stride,
                dp.cuda_ptr()?,
                n,
            )
        }
        .map_err(cuda_err(OP))?;
        let dt_grad = if needs[1] { Some(dp.neg()?) } else { None };
        Ok(vec![needs[0].then_some(dp), dt_grad])
    }))
}
