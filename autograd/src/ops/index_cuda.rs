//! The CUDA path of the indexing ops (`index_select` / `embedding`, `gather`, `scatter_add`)
//! through `index.cu`, and of `dropout` through `dropout.cu`.
//!
//! Index values are validated on the device: the forward kernels flag the first bad position
//! in a one-word flag, which the host reads (a wait for the kernel: the price of reporting a bad
//! index as `IndexOutOfRange`, with the value itself fetched from the index tensor). Backward
//! kernels pass no flag: their indices were validated by the forward.
//!
//! Gradients: `index_select`'s adjoint is the deterministic `index_add` (the CPU's exact order,
//! so f32 gradients match bit for bit, repeated indices included); `gather`'s is the atomic
//! `scatter_add` (repeated indices add in a varying order: equal to the CPU to rounding).

use crate::graph::{no_grad, record};
use crate::tensor::cuda::{cuda_err, float_type};
use crate::{Error, Result, Tensor};
use kernels::cuda::flag::ErrorFlag;
use kernels::cuda::CudaDevice;
use kernels::index::cuda::{self as ki, SelectDims};
use kernels::index::launch::IndexDims;

fn dense(t: &Tensor) -> Result<Tensor> {
    no_grad(|| t.detach().contiguous())
}

/// `Ok` when the flag is clear; else `IndexOutOfRange` with the value at the flagged position
/// of the (contiguous) index tensor.
fn check_flag(
    op: &'static str,
    dev: &CudaDevice,
    flag: &ErrorFlag,
    index: &Tensor,
    size: usize,
) -> Result<()> {
    let Some(pos) = flag.read(dev).map_err(cuda_err(op))? else {
        return Ok(());
    };
    let value = index
        .reshape(&[index.numel()])?
        .narrow(0, pos as usize, 1)?
        .to_vec::<i64>()?[0];
    Err(Error::IndexOutOfRange {
        op,
        index: value,
        size,
    })
}

/// A new zero-filled device tensor, cleared by a device memset (no host buffer, no upload).
fn device_zeros(like: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let t = Tensor::cuda_empty(shape, like.dtype(), like.device())?;
    if let Some(c) = t.cuda_data() {
        c.dev.memset(&c.buf, 0).map_err(cuda_err("zeros"))?;
    }
    Ok(t)
}

fn dims_err(op: &'static str) -> impl Fn(String) -> Error {
    move |reason| Error::InvalidArgument { op, reason }
}

/// `index_select` of `x` along the middle axis of `[outer, size, inner]` at 1-D `indices`,
/// recorded under `op`'s backward name `index_select`; `out_shape` is `x`'s with the axis
/// resized. Shapes are checked by the caller.
pub(super) fn index_select_cuda(
    op: &'static str,
    x: &Tensor,
    indices: &Tensor,
    (outer, size, inner): (usize, usize, usize),
    out_shape: &[usize],
) -> Result<Tensor> {
    let dt = float_type(op, x)?;
    let dev = x.cuda_dev()?;
    let (xc, ix) = (dense(x)?, dense(indices)?);
    let d = SelectDims {
        outer,
        size,
        inner,
        nidx: ix.numel(),
    };
    let out = Tensor::cuda_empty(out_shape, x.dtype(), x.device())?;
    let flag = ErrorFlag::new(&dev).map_err(cuda_err(op))?;
    // SAFETY: xc is [outer, size, inner], ix holds nidx i64, out [outer, nidx, inner], all
    // contiguous on this device.
    unsafe {
        ki::index_select(
            &dev,
            dt,
            xc.cuda_ptr()?,
            ix.cuda_ptr()?,
            out.cuda_ptr()?,
            d,
            flag.ptr(),
        )
    }
    .map_err(cuda_err(op))?;
    check_flag(op, &dev, &flag, &ix, size)?;
    let in_shape = x.0.shape.clone();
    Ok(record("index_select", &[x], out, move |g, _| {
        let gc = dense(g)?;
        let dx = device_zeros(&gc, &in_shape)?;
        // SAFETY: dx is [outer, size, inner], gc [outer, nidx, inner], ix nidx i64.
        unsafe {
            ki::index_add(
                &dev,
                dt,
                true,
                dx.cuda_ptr()?,
                ix.cuda_ptr()?,
                gc.cuda_ptr()?,
                d,
                0,
            )
        }
        .map_err(cuda_err("index_select"))?;
        Ok(vec![Some(dx)])
    }))
}

/// `torch.gather(x, axis, index)` on the device (shapes checked by the caller).
pub(super) fn gather_cuda(x: &Tensor, axis: usize, index: &Tensor) -> Result<Tensor> {
    const OP: &str = "gather";
    let dt = float_type(OP, x)?;
    let dev = x.cuda_dev()?;
    let (xc, ix) = (dense(x)?, dense(index)?);
    let dims = IndexDims::gather(x.shape(), axis, index.shape()).map_err(dims_err(OP))?;
    let out = Tensor::cuda_empty(index.shape(), x.dtype(), x.device())?;
    let flag = ErrorFlag::new(&dev).map_err(cuda_err(OP))?;
    // SAFETY: xc has x's shape, ix and out the index's, all contiguous on this device; dims
    // describes exactly these shapes.
    unsafe {
        ki::gather(
            &dev,
            dt,
            xc.cuda_ptr()?,
            ix.cuda_ptr()?,
            out.cuda_ptr()?,
            &dims,
            flag.ptr(),
        )
    }
    .map_err(cuda_err(OP))?;
    check_flag(OP, &dev, &flag, &ix, x.shape()[axis])?;
    let in_shape = x.0.shape.clone();
    Ok(record("gather", &[x], out, move |g, _| {
        let gc = dense(g)?;
        let dx = device_zeros(&gc, &in_shape)?;
        let dims = IndexDims::scatter_add(&in_shape, axis, ix.shape(), gc.shape()).map_err(dims_err(OP))?;
        // SAFETY: dx has the input's shape, ix and gc the index's; dims describes them.
        unsafe { ki::scatter_add(&dev, dt, dx.cuda_ptr()?, ix.cuda_ptr()?, gc.cuda_ptr()?, &dims, 0) }
            .map_err(cuda_err(OP))?;
        Ok(vec![Some(dx)])
    }))
}

/// The forward of out-of-place `scatter_add` on the device: a copy of `x` with `src` added at
/// `index` along `axis`, untracked (the caller records it). Every index is checked before the
/// accumulation, so a bad index leaves nothing half-added.
pub(super) fn scatter_add_forward_cuda(
    x: &Tensor,
    axis: usize,
    index: &Tensor,
    src: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "scatter_add";
    let dt = float_type(OP, x)?;
    let dev = x.cuda_dev()?;
    let (ix, sc) = (dense(index)?, dense(src)?);
    let dims = IndexDims::scatter_add(x.shape(), axis, index.shape(), src.shape()).map_err(dims_err(OP))?;
    let flag = ErrorFlag::new(&dev).map_err(cuda_err(OP))?;
    let size = x.shape()[axis];
    // SAFETY: ix holds numel i64 on this device.
    unsafe { ki::index_check(&dev, ix.cuda_ptr()?, ix.numel(), size, flag.ptr()) }.map_err(cuda_err(OP))?;
    check_flag(OP, &dev, &flag, &ix, size)?;
    // A fresh buffer: the output must not alias the input the caller still holds.
    let out = no_grad(|| x.detach().cuda_contiguous_copy())?;
    // SAFETY: out has x's shape, ix the index's, sc src's, contiguous; dims describes them.
    unsafe {
        ki::scatter_add(
            &dev,
            dt,
            out.cuda_ptr()?,
            ix.cuda_ptr()?,
            sc.cuda_ptr()?,
            &dims,
            0,
        )
    }
    .map_err(cuda_err(OP))?;
    Ok(out)
}

/// The masked and scaled copy of a CUDA tensor: the mask is Philox's for `(seed, offset, i)`,
/// bit-identical to the CPU's (dropout.cu implements the same contract).
pub(super) fn dropout_apply_cuda(x: &Tensor, p: f64, seed: u64, offset: u64) -> Result<Tensor> {
    const OP: &str = "dropout";
    let dt = float_type(OP, x)?;
    let dev = x.cuda_dev()?;
    let xc = dense(x)?;
    let out = Tensor::cuda_empty(x.shape(), x.dtype(), x.device())?;
    // SAFETY: xc and out hold numel contiguous elements of this device.
    unsafe {
        kernels::random::cuda::dropout(
            &dev,
            dt,
            xc.cuda_ptr()?,
            out.cuda_ptr()?,
            xc.numel(),
            seed,
            offset,
            p,
        )
    }
    .map_err(cuda_err(OP))?;
    Ok(out)
}
