//! The CUDA path of `layer_norm` and `rms_norm`: one launch of `norm.cu` for the forward (the
//! per-row statistics saved as f32 device tensors), and in the backward one launch for dx plus
//! the two-launch deterministic column sums for dγ (and dβ), all on the device.

use super::norm::grads_in_order;
use crate::graph::{no_grad, record};
use crate::tensor::cuda::{cuda_err, float_type};
use crate::{DType, Result, Shape, Tensor};
use kernels::norm::cuda::{self as kn, NormBuffers};

/// A device tensor's contiguous form (a device copy when it is a view), untracked.
fn dense(t: &Tensor) -> Result<Tensor> {
    no_grad(|| t.detach().contiguous())
}

fn ptr_or_null(t: Option<&Tensor>) -> Result<u64> {
    t.map_or(Ok(0), Tensor::cuda_ptr)
}

/// Layer norm (`rms = false`, with optional bias) or RMS norm over `[rows, n]` on the device.
/// The arguments have been checked by the caller (shapes, dtypes, devices, eps, n > 0).
pub(super) fn norm_cuda(
    rms: bool,
    x: &Tensor,
    n: usize,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let name = if rms { "rms_norm" } else { "layer_norm" };
    let dt = float_type(name, x)?;
    let dev = x.cuda_dev()?;
    let xc = dense(x)?;
    let (w, b) = (weight.map(dense).transpose()?, bias.map(dense).transpose()?);
    let rows = x.numel() / n;
    let stat = |want: bool| -> Result<Option<Tensor>> {
        want.then(|| Tensor::cuda_empty(&[rows], DType::F32, x.device()))
            .transpose()
    };
    let (mean, rstd) = (stat(!rms)?, stat(true)?.expect("asked for"));
    let bufs = NormBuffers {
        x: xc.cuda_ptr()?,
        weight: ptr_or_null(w.as_ref())?,
        bias: ptr_or_null(b.as_ref())?,
        mean: ptr_or_null(mean.as_ref())?,
        rstd: rstd.cuda_ptr()?,
    };
    let out = Tensor::cuda_empty(x.shape(), x.dtype(), x.device())?;
    // SAFETY: x and out hold rows·n elements, weight and bias n, mean and rstd rows f32; all
    // contiguous buffers of this device.
    unsafe { kn::forward(&dev, rms, dt, bufs, out.cuda_ptr()?, rows, n, eps as f32) }
        .map_err(cuda_err(name))?;
    let has_weight = w.is_some();
    let has_bias = b.is_some();
    let shape = Shape::from_slice(normalized_shape);
    let backward = move |g: &Tensor, needs: &[bool]| -> Result<Vec<Option<Tensor>>> {
        // The saved tensors keep these addresses alive for as long as the closure lives.
        let bufs = NormBuffers {
            x: xc.cuda_ptr()?,
            weight: ptr_or_null(w.as_ref())?,
            bias: 0,
            mean: ptr_or_null(mean.as_ref())?,
            rstd: rstd.cuda_ptr()?,
        };
        let gc = dense(g)?;
        let dx = Tensor::cuda_empty(xc.shape(), xc.dtype(), xc.device())?;
        // SAFETY: as in the forward; g and dx hold rows·n elements.
        unsafe { kn::backward_dx(&dev, rms, dt, bufs, gc.cuda_ptr()?, dx.cuda_ptr()?, rows, n) }
            .map_err(cuda_err(name))?;
        let want_params = needs.iter().skip(1).any(|&b| b);
        let (dw, db) = if want_params {
            let dw = Tensor::cuda_empty(&[n], xc.dtype(), xc.device())?;
            // Layer norm's finish kernel always writes dβ too, so it gets a buffer even when
            // there is no bias.
            let db = Tensor::cuda_empty(&[if rms { 0 } else { n }], xc.dtype(), xc.device())?;
            let db_ptr = if rms { 0 } else { db.cuda_ptr()? };
            // SAFETY: dw and db hold n elements (db unused by RMS norm).
            unsafe {
                kn::backward_params(
                    &dev,
                    rms,
                    dt,
                    bufs,
                    gc.cuda_ptr()?,
                    dw.cuda_ptr()?,
                    db_ptr,
                    rows,
                    n,
                )
            }
            .map_err(cuda_err(name))?;
            (dw, db)
        } else {
            // Not asked for: placeholders that grads_in_order drops.
            let none = Tensor::cuda_empty(&[0], xc.dtype(), xc.device())?;
            (none.clone(), none)
        };
        let params = if rms {
            vec![(has_weight, dw)]
        } else {
            vec![(has_weight, dw), (has_bias, db)]
        };
        grads_in_order(needs, dx, &params, &shape)
    };
    let tracked: Vec<&Tensor> = std::iter::once(x).chain(weight).chain(bias).collect();
    Ok(if rms {
        record("rms_norm", &tracked, out, backward)
    } else {
        record("layer_norm", &tracked, out, backward)
    })
}
