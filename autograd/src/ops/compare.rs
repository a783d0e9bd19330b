//! Comparisons (to bool masks), `where` and `masked_fill`.
//!
//! Comparisons output bool tensors, which carry no gradient: their derivative is zero almost
//! everywhere and undefined on the boundary, so, as in PyTorch, a comparison of tracked tensors
//! simply returns an untracked mask. `where` routes the gradient to the branch each element took.

use super::{broadcast_strides, check_dtype, check_float, check_same, sum_to_shape, with_float};
use crate::graph::record;
use crate::shape::broadcast_shapes;
use crate::storage::StorageElement;
use crate::tensor::cuda::{cuda_err, float_type};
use crate::{DType, Result, Tensor};
use kernels::cuda::Layout;
use kernels::elementwise::cpu::{broadcast_map2, broadcast_map3, Operand};
use kernels::elementwise::cuda::{self as ew, CompareKind};

#[derive(Clone, Copy)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn compare(op: &'static str, cmp: Cmp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_same(op, &[a, b])?;
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    let (sa, sb) = (broadcast_strides(a, &shape), broadcast_strides(b, &shape));
    if a.cuda_data().is_some() {
        let dt = float_type(op, a)?;
        let out = Tensor::cuda_empty(&shape, DType::Bool, a.device())?;
        let layout = Layout::new(&shape, &[(&sa, 0), (&sb, 0)]).map_err(cuda_err(op))?;
        let kind = match cmp {
            Cmp::Eq => CompareKind::Eq,
            Cmp::Ne => CompareKind::Ne,
            Cmp::Lt => CompareKind::Lt,
            Cmp::Le => CompareKind::Le,
            Cmp::Gt => CompareKind::Gt,
            Cmp::Ge => CompareKind::Ge,
        };
        // SAFETY: the layout keeps reads inside a's and b's views; out holds numel bytes.
        unsafe {
            ew::compare(
                &*a.cuda_dev()?,
                kind,
                dt,
                &layout,
                a.cuda_ptr()?,
                b.cuda_ptr()?,
                out.cuda_ptr()?,
                out.numel(),
            )
        }
        .map_err(cuda_err(op))?;
        return Ok(out);
    }
    macro_rules! run {
        ($T:ty) => {
            a.with_strided(|x: Operand<$T>| {
                b.with_strided(|y: Operand<$T>| {
                    let (x, y) = (Operand { strides: &sa, ..x }, Operand { strides: &sb, ..y });
                    broadcast_map2(&shape, x, y, |x, y| {
                        (match cmp {
                            Cmp::Eq => x == y,
                            Cmp::Ne => x != y,
                            Cmp::Lt => x < y,
                            Cmp::Le => x <= y,
                            Cmp::Gt => x > y,
                            Cmp::Ge => x >= y,
                        }) as u8
                    })
                })
            })??
        };
    }
    let mask: Vec<u8> = match a.dtype() {
        DType::F32 => run!(f32),
        DType::F64 => run!(f64),
        DType::I64 => run!(i64),
        DType::Bool => run!(u8),
        DType::BF16 => run!(half::bf16),
        DType::F16 => run!(half::f16),
    };
    Ok(Tensor::from_cpu_data(u8::wrap(mask), &shape))
}

macro_rules! comparisons {
    ($($(#[$doc:meta])* $name:ident, $scalar:ident => $cmp:ident;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self, other: &Tensor) -> Result<Tensor> {
                    compare(stringify!($name), Cmp::$cmp, self, other)
                }
                /// Compare with a scalar (converted to this tensor's dtype).
                pub fn $scalar(&self, s: f64) -> Result<Tensor> {
                    let other = Tensor::full(&[], s, self.dtype(), self.device())?;
                    compare(stringify!($scalar), Cmp::$cmp, self, &other)
                }
            )*
        }
    };
}

comparisons! {
    /// Elementwise `==`, broadcast, as a bool mask.
    eq, eq_scalar => Eq;
    /// Elementwise `!=`.
    ne, ne_scalar => Ne;
    /// Elementwise `<`.
    lt, lt_scalar => Lt;
    /// Elementwise `<=`.
    le, le_scalar => Le;
    /// Elementwise `>`.
    gt, gt_scalar => Gt;
    /// Elementwise `>=`.
    ge, ge_scalar => Ge;
}

impl Tensor {
    /// `cond ? a : b` elementwise with broadcasting of all three (`torch.where`). `cond` is a
    /// bool tensor. Gradients go to `a` where `cond` holds and to `b` elsewhere.
    pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        check_dtype("where", cond, DType::Bool)?;
        check_same("where", &[a, b])?;
        if cond.device() != a.device() {
            return Err(crate::Error::DeviceMismatch {
                op: "where",
                devices: vec![cond.device(), a.device(), b.device()],
            });
        }
        check_float("where", a)?;
        let shape = broadcast_shapes(
            "where",
            &broadcast_shapes("where", cond.shape(), a.shape())?,
            b.shape(),
        )?;
        let (sc, sa, sb) = (
            broadcast_strides(cond, &shape),
            broadcast_strides(a, &shape),
            broadcast_strides(b, &shape),
        );
        let out = if a.cuda_data().is_some() {
            let dt = float_type("where", a)?;
            let out = Tensor::cuda_empty(&shape, a.dtype(), a.device())?;
            let layout = Layout::new(&shape, &[(&sc, 0), (&sa, 0), (&sb, 0)]).map_err(cuda_err("where"))?;
            // SAFETY: the layout keeps reads inside each operand's view; out is contiguous.
            unsafe {
                ew::select(
                    &*a.cuda_dev()?,
                    dt,
                    &layout,
                    cond.cuda_ptr()?,
                    a.cuda_ptr()?,
                    b.cuda_ptr()?,
                    out.cuda_ptr()?,
                    out.numel(),
                )
            }
            .map_err(cuda_err("where"))?;
            out
        } else {
            with_float!("where", a.dtype(), T => {
            let data = cond.with_strided(|c: Operand<u8>| {
                a.with_strided(|x: Operand<T>| {
                    b.with_strided(|y: Operand<T>| {
                        let (c, x, y) =
                            (Operand { strides: &sc, ..c }, Operand { strides: &sa, ..x }, Operand { strides: &sb, ..y });
                        broadcast_map3(&shape, c, x, y, |c, x, y| if c != 0 { x } else { y })
                    })
                })
            })???;
            Tensor::from_cpu_data(T::wrap(data), &shape)
            })
        };
        let cond = cond.detach();
        let (shape_a, shape_b) = (a.0.shape.clone(), b.0.shape.clone());
        Ok(record("where", &[a, b], out, move |g, needs| {
            let zero = Tensor::zeros(&[], g.dtype(), g.device())?;
            Ok(vec![
                if needs[0] {
                    Some(sum_to_shape(&Tensor::where_cond(&cond, g, &zero)?, &shape_a)?)
                } else {
                    None
                },
                if needs[1] {
                    Some(sum_to_shape(&Tensor::where_cond(&cond, &zero, g)?, &shape_b)?)
                } else {
                    None
                },
            ])
        }))
    }

    /// `self` with the elements where `mask` holds replaced by `value` (`torch.masked_fill`).
    /// `mask` broadcasts to `self`'s shape; filled elements get zero gradient.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        let fill = Tensor::full(&[], value, self.dtype(), self.device())?;
        let shape = broadcast_shapes("masked_fill", mask.shape(), self.shape())?;
        if shape.as_slice() != self.shape() {
            return Err(crate::Error::ShapeMismatch {
                op: "masked_fill",
                shapes: super::shape_vec(&[self.shape(), mask.shape()]),
                reason: "the mask must broadcast to the input's shape".into(),
            });
        }
        Tensor::where_cond(mask, &fill, self)
    }
}
