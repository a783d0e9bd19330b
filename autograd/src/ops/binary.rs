//! Broadcast binary arithmetic (`add sub mul div pow`, numpy broadcasting) and the
//! tensor-scalar forms (`add_scalar mul_scalar pow_scalar clamp`).

use super::{broadcast_strides, check_float, check_same, sum_to_shape, with_float};
use crate::graph::record;
use crate::shape::broadcast_shapes;
use crate::storage::StorageElement;
use crate::tensor::cuda::{cuda_err, float_type};
use crate::{Error, Result, Tensor};
use kernels::cuda::Layout;
use kernels::elementwise::cpu::{broadcast_map2, map, zip_map, Operand};
use kernels::elementwise::cuda::{self as ew, BinaryKind, ScalarKind};
use kernels::Float;

#[derive(Clone, Copy, Debug)]
enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl BinaryOp {
    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
        }
    }

    fn kind(self) -> BinaryKind {
        match self {
            BinaryOp::Add => BinaryKind::Add,
            BinaryOp::Sub => BinaryKind::Sub,
            BinaryOp::Mul => BinaryKind::Mul,
            BinaryOp::Div => BinaryKind::Div,
            BinaryOp::Pow => BinaryKind::Pow,
        }
    }

    #[inline(always)]
    fn apply<T: Float>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
        }
    }
}

/// Forward of a broadcast binary op on the CPU.
fn binary_forward(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let name = op.name();
    check_same(name, &[a, b])?;
    check_float(name, a)?;
    let shape = broadcast_shapes(name, a.shape(), b.shape())?;
    if a.cuda_data().is_some() {
        return binary_cuda(op, a, b, &shape);
    }
    with_float!(name, a.dtype(), T => {
        let data: Vec<T> = if a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous() {
            a.with_slice(|x: &[T]| b.with_slice(|y: &[T]| zip_map(x, y, |x, y| op.apply(x, y))))??
        } else {
            let (sa, sb) = (broadcast_strides(a, &shape), broadcast_strides(b, &shape));
            a.with_strided(|x: Operand<T>| {
                b.with_strided(|y: Operand<T>| {
                    let x = Operand { strides: &sa, ..x };
                    let y = Operand { strides: &sb, ..y };
                    broadcast_map2(&shape, x, y, |x, y| op.apply(x, y))
                })
            })??
        };
        Ok(Tensor::from_cpu_data(T::wrap(data), &shape))
    })
}

/// Forward of a broadcast binary op on the GPU: the vectorized contiguous kernel when no
/// broadcasting or striding is involved, the layout-walking kernel otherwise.
fn binary_cuda(op: BinaryOp, a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let name = op.name();
    let dt = float_type(name, a)?;
    let out = Tensor::cuda_empty(shape, a.dtype(), a.device())?;
    let dev = a.cuda_dev()?;
    let n = out.numel();
    let plain = a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous();
    // SAFETY: the layout keeps every read inside a's and b's views (broadcast strides are 0 on
    // broadcast axes); out is contiguous with n elements.
    unsafe {
        if plain {
            ew::binary(
                &dev,
                op.kind(),
                dt,
                a.cuda_ptr()?,
                b.cuda_ptr()?,
                out.cuda_ptr()?,
                n,
            )
        } else {
            let (sa, sb) = (broadcast_strides(a, shape), broadcast_strides(b, shape));
            let layout = Layout::new(shape, &[(&sa, 0), (&sb, 0)]).map_err(cuda_err(name))?;
            ew::broadcast(
                &dev,
                op.kind(),
                dt,
                &layout,
                a.cuda_ptr()?,
                b.cuda_ptr()?,
                out.cuda_ptr()?,
                n,
            )
        }
    }
    .map_err(cuda_err(name))?;
    Ok(out)
}

impl Tensor {
    /// `self + other` with numpy broadcasting (`torch.add`).
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinaryOp::Add, self, other)?;
        let (sa, sb) = (self.0.shape.clone(), other.0.shape.clone());
        Ok(record("add", &[self, other], out, move |g, needs| {
            Ok(vec![
                if needs[0] {
                    Some(sum_to_shape(g, &sa)?)
                } else {
                    None
                },
                if needs[1] {
                    Some(sum_to_shape(g, &sb)?)
                } else {
                    None
                },
            ])
        }))
    }

    /// `self - other` with broadcasting (`torch.sub`).
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinaryOp::Sub, self, other)?;
        let (sa, sb) = (self.0.shape.clone(), other.0.shape.clone());
        Ok(record("sub", &[self, other], out, move |g, needs| {
            Ok(vec![
                if needs[0] {
                    Some(sum_to_shape(g, &sa)?)
                } else {
                    None
                },
                if needs[1] {
                    Some(sum_to_shape(&g.neg()?, &sb)?)
                } else {
                    None
                },
            ])
        }))
    }

    /// `self * other` elementwise with broadcasting (`torch.mul`).
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinaryOp::Mul, self, other)?;
        let (a, b) = (self.detach(), other.detach());
        Ok(record("mul", &[self, other], out, move |g, needs| {
            Ok(vec![
                if needs[0] {
                    Some(sum_to_shape(&g.mul(&b)?, a.shape())?)
                } else {
                    None
                },
                if needs[1] {
                    Some(sum_to_shape(&g.mul(&a)?, b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    /// `self / other` elementwise with broadcasting (`torch.div`). Division by zero follows IEEE
    /// (±inf or NaN), as in PyTorch.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinaryOp::Div, self, other)?;
        let (b, y) = (other.detach(), out.clone());
        let sa = self.0.shape.clone();
        Ok(record("div", &[self, other], out, move |g, needs| {
            let g_over_b = g.div(&b)?;
            Ok(vec![
                if needs[0] {
                    Some(sum_to_shape(&g_over_b, &sa)?)
                } else {
                    None
                },
                // d(a/b)/db = -a/b² = -y/b
                if needs[1] {
                    Some(sum_to_shape(&g_over_b.mul(&y)?.neg()?, b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    /// `self ** exponent` elementwise with broadcasting (`torch.pow`). The gradient with respect
    /// to the exponent is `y·ln(self)`, defined for `self > 0` (NaN otherwise, as PyTorch).
    pub fn pow(&self, exponent: &Tensor) -> Result<Tensor> {
        let out = binary_forward(BinaryOp::Pow, self, exponent)?;
        let (a, b, y) = (self.detach(), exponent.detach(), out.clone());
        Ok(record("pow", &[self, exponent], out, move |g, needs| {
            Ok(vec![
                if needs[0] {
                    // b·a^(b-1), written as b·y/a would fail at a = 0.
                    let d = b.mul(&a.pow(&b.add_scalar(-1.0)?)?)?;
                    Some(sum_to_shape(&g.mul(&d)?, a.shape())?)
                } else {
                    None
                },
                if needs[1] {
                    Some(sum_to_shape(&g.mul(&y.mul(&a.log()?)?)?, b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    /// `self + s`.
    pub fn add_scalar(&self, s: f64) -> Result<Tensor> {
        let out = scalar_map(
            "add_scalar",
            self,
            ScalarKind::Add(s as f32),
            |x: f64| x + s,
            |x: f32| x + s as f32,
        )?;
        Ok(record("add_scalar", &[self], out, |g, _| {
            Ok(vec![Some(g.clone())])
        }))
    }

    /// `self - s`.
    pub fn sub_scalar(&self, s: f64) -> Result<Tensor> {
        self.add_scalar(-s)
    }

    /// `self * s`.
    pub fn mul_scalar(&self, s: f64) -> Result<Tensor> {
        let out = scalar_map(
            "mul_scalar",
            self,
            ScalarKind::Mul(s as f32),
            |x: f64| x * s,
            |x: f32| x * s as f32,
        )?;
        Ok(record("mul_scalar", &[self], out, move |g, _| {
            Ok(vec![Some(g.mul_scalar(s)?)])
        }))
    }

    /// `self / s`.
    pub fn div_scalar(&self, s: f64) -> Result<Tensor> {
        self.mul_scalar(1.0 / s)
    }

    /// `self ** p` for a constant exponent.
    pub fn pow_scalar(&self, p: f64) -> Result<Tensor> {
        let out = scalar_map(
            "pow_scalar",
            self,
            ScalarKind::Pow(p as f32),
            |x: f64| x.powf(p),
            |x: f32| x.powf(p as f32),
        )?;
        let x = self.detach();
        Ok(record("pow_scalar", &[self], out, move |g, _| {
            Ok(vec![Some(g.mul(&x.pow_scalar(p - 1.0)?.mul_scalar(p)?)?)])
        }))
    }

    /// Clamp into `[min, max]` (`torch.clamp`); either bound may be `None`. The gradient passes
    /// where the input lies inside the bounds (inclusive), as PyTorch.
    pub fn clamp(&self, min: Option<f64>, max: Option<f64>) -> Result<Tensor> {
        let (lo, hi) = (min.unwrap_or(f64::NEG_INFINITY), max.unwrap_or(f64::INFINITY));
        if lo > hi || lo.is_nan() || hi.is_nan() {
            return Err(Error::InvalidArgument {
                op: "clamp",
                reason: format!("min {lo} > max {hi}"),
            });
        }
        let out = scalar_map(
            "clamp",
            self,
            ScalarKind::Clamp(lo as f32, hi as f32),
            |x: f64| x.max(lo).min(hi),
            |x: f32| x.max(lo as f32).min(hi as f32),
        )?;
        let x = self.detach();
        Ok(record("clamp", &[self], out, move |g, _| {
            if x.cuda_data().is_some() {
                let inside = scalar_cuda("clamp", &x, ScalarKind::ClampMask(lo as f32, hi as f32))?;
                return Ok(vec![Some(g.mul(&inside)?)]);
            }
            let inside = with_float!("clamp", x.dtype(), T => {
                let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
                let m = x.with_slice(|v: &[T]| map(v, |v| if v >= lo && v <= hi { T::ONE } else { T::ZERO }))?;
                Tensor::from_cpu_data(T::wrap(m), x.shape())
            });
            Ok(vec![Some(g.mul(&inside)?)])
        }))
    }
}

/// Apply a scalar function, with separate closures for f64 and f32 so each runs natively, and
/// the same map as a kernel (`kind`) for CUDA tensors.
pub(crate) fn scalar_map(
    op: &'static str,
    x: &Tensor,
    kind: ScalarKind,
    f64_fn: impl Fn(f64) -> f64 + Sync,
    f32_fn: impl Fn(f32) -> f32 + Sync,
) -> Result<Tensor> {
    if x.cuda_data().is_some() {
        return scalar_cuda(op, x, kind);
    }
    let data = match x.dtype() {
        crate::DType::F64 => StorageElement::wrap(x.with_slice(|v: &[f64]| map(v, &f64_fn))?),
        crate::DType::F32 => StorageElement::wrap(x.with_slice(|v: &[f32]| map(v, &f32_fn))?),
        other => {
            return Err(Error::UnsupportedDType {
                op,
                dtype: other,
                expected: "f32 or f64",
            })
        }
    };
    Ok(Tensor::from_cpu_data(data, x.shape()))
}

/// A tensor-scalar map on the GPU.
fn scalar_cuda(op: &'static str, x: &Tensor, kind: ScalarKind) -> Result<Tensor> {
    let dt = float_type(op, x)?;
    let x = x.contiguous()?;
    let out = Tensor::cuda_empty(x.shape(), x.dtype(), x.device())?;
    let dev = x.cuda_dev()?;
    // SAFETY: x and out are contiguous with numel elements of dt on dev.
    unsafe { ew::scalar(&dev, kind, dt, x.cuda_ptr()?, out.cuda_ptr()?, x.numel()) }.map_err(cuda_err(op))?;
    Ok(out)
}
