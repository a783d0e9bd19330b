//! Broadcast binary arithmetic (`add sub mul div pow`, numpy broadcasting) and the
//! tensor-scalar forms (`add_scalar mul_scalar pow_scalar clamp`).

use super::{broadcast_strides, check_float, check_same, sum_to_shape, with_float};
use crate::graph::record;
use crate::shape::broadcast_shapes;
use crate::storage::StorageElement;
use crate::{Error, Result, Tensor};
use kernels::elementwise::cpu::{broadcast_map2, map, zip_map, Operand};
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
        let out = scalar_map("add_scalar", self, |x: f64| x + s, |x: f32| x + s as f32)?;
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
        let out = scalar_map("mul_scalar", self, |x: f64| x * s, |x: f32| x * s as f32)?;
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
        let out = scalar_map("pow_scalar", self, |x: f64| x.powf(p), |x: f32| x.powf(p as f32))?;
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
            |x: f64| x.max(lo).min(hi),
            |x: f32| x.max(lo as f32).min(hi as f32),
        )?;
        let x = self.detach();
        Ok(record("clamp", &[self], out, move |g, _| {
            let inside = with_float!("clamp", x.dtype(), T => {
                let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
                let m = x.with_slice(|v: &[T]| map(v, |v| if v >= lo && v <= hi { T::ONE } else { T::ZERO }))?;
                Tensor::from_cpu_data(T::wrap(m), x.shape())
            });
            Ok(vec![Some(g.mul(&inside)?)])
        }))
    }
}

/// Apply a scalar function, with separate closures for f64 and f32 so each runs natively.
pub(crate) fn scalar_map(
    op: &'static str,
    x: &Tensor,
    f64_fn: impl Fn(f64) -> f64 + Sync,
    f32_fn: impl Fn(f32) -> f32 + Sync,
) -> Result<Tensor> {
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
