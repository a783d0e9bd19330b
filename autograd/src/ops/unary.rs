//! Unary elementwise ops. The math of each (value and derivative) is in
//! `kernels::elementwise::UnaryOp`; this file runs it over tensors and records the backward
//! `dx = g · f'(x)`, saving only the input or only the output, whichever the derivative reads.

use super::{check_float, check_same, with_float};
use crate::graph::record;
use crate::storage::StorageElement;
use crate::tensor::cuda::{cuda_err, float_type};
use crate::{Result, Tensor};
use kernels::elementwise::cpu::map;
use kernels::elementwise::cuda as ew;
use kernels::elementwise::UnaryOp;
use rayon::prelude::*;

/// Whether `op`'s derivative is computed from its output (true) or its input (false).
fn derivative_reads_output(op: UnaryOp) -> bool {
    matches!(
        op,
        UnaryOp::Exp | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Tanh | UnaryOp::Sigmoid
    )
}

fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    let name = op.name();
    check_float(name, x)?;
    let out = if x.cuda_data().is_some() {
        unary_cuda(op, x)?
    } else {
        with_float!(name, x.dtype(), T => {
        let y = if op == UnaryOp::Exp {
            // The slice form vectorizes (kernels::fast_exp for f32).
            x.with_slice(|v: &[T]| kernels::elementwise::cpu::exp(v))?
        } else {
            x.with_slice(|v: &[T]| map(v, |v| op.forward(v)))?
        };
        Tensor::from_cpu_data(T::wrap(y), x.shape())
        })
    };
    let saved = if derivative_reads_output(op) {
        out.clone()
    } else {
        x.detach()
    };
    Ok(record(name, &[x], out, move |g, _| {
        Ok(vec![Some(unary_backward(op, &saved, g)?)])
    }))
}

/// `f(x)` on the GPU.
fn unary_cuda(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    let dt = float_type(op.name(), x)?;
    let x = x.contiguous()?;
    let out = Tensor::cuda_empty(x.shape(), x.dtype(), x.device())?;
    let dev = x.cuda_dev()?;
    // SAFETY: x and out are contiguous with numel elements of dt on dev.
    unsafe { ew::unary(&dev, op, dt, x.cuda_ptr()?, out.cuda_ptr()?, x.numel()) }
        .map_err(cuda_err(op.name()))?;
    Ok(out)
}

/// `g · f'(·)` in one pass over the saved tensor and the incoming gradient.
fn unary_backward(op: UnaryOp, saved: &Tensor, g: &Tensor) -> Result<Tensor> {
    if saved.cuda_data().is_some() {
        check_same(op.name(), &[saved, g])?;
        let dt = float_type(op.name(), saved)?;
        let (s, g) = (saved.contiguous()?, g.contiguous()?);
        let dx = Tensor::cuda_empty(s.shape(), s.dtype(), s.device())?;
        let dev = s.cuda_dev()?;
        // SAFETY: s, g and dx are contiguous with numel elements of dt on dev.
        unsafe {
            ew::unary_backward(
                &dev,
                op,
                dt,
                s.cuda_ptr()?,
                g.cuda_ptr()?,
                dx.cuda_ptr()?,
                s.numel(),
            )
        }
        .map_err(cuda_err(op.name()))?;
        return Ok(dx);
    }
    with_float!(op.name(), saved.dtype(), T => {
        let dx = saved.with_slice(|s: &[T]| {
            g.with_slice(|g: &[T]| {
                let mut dx = vec![T::default(); s.len()];
                let f = |(d, (&s, &g)): (&mut T, (&T, &T))| {
                    // `derivative(x, y)` reads only x or only y (see `derivative_reads_output`), and
                    // `saved` is that one, so it can stand in for both.
                    *d = g * op.derivative(s, s);
                };
                if s.len() >= kernels::elementwise::cpu::PARALLEL_MIN_ELEMENTS {
                    dx.par_iter_mut().zip(s.par_iter().zip(g.par_iter())).for_each(f);
                } else {
                    dx.iter_mut().zip(s.iter().zip(g.iter())).for_each(f);
                }
                dx
            })
        })??;
        Ok(Tensor::from_cpu_data(T::wrap(dx), saved.shape()))
    })
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident,)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Result<Tensor> {
                    unary(UnaryOp::$op, self)
                }
            )*
        }
    };
}

unary_methods! {
    /// `-x`.
    neg => Neg,
    /// `eˣ`.
    exp => Exp,
    /// Natural logarithm; `-inf` at 0 and NaN below, as IEEE.
    log => Log,
    sqrt => Sqrt,
    /// `1/√x`.
    rsqrt => Rsqrt,
    /// `|x|`; gradient `sign(x)` (0 at 0, as PyTorch).
    abs => Abs,
    /// -1, 0 or 1; gradient 0.
    sign => Sign,
    tanh => Tanh,
    /// `1/(1 + e⁻ˣ)`.
    sigmoid => Sigmoid,
    /// `max(x, 0)`; gradient 0 at 0.
    relu => Relu,
    /// GELU with the exact normal CDF, `x·Φ(x)` (`torch.nn.functional.gelu`).
    gelu => GeluErf,
    /// GELU's tanh approximation (`gelu(approximate="tanh")`).
    gelu_tanh => GeluTanh,
    /// `x·sigmoid(x)` (also called swish).
    silu => Silu,
    /// `ln(1 + eˣ)`, overflow-free.
    softplus => Softplus,
    /// The error function.
    erf => Erf,
}
