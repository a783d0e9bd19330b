//! Every op: forward on the CPU kernels in `kernels`, and its backward recorded on the graph.
//! One file per op family; the backward of each op sits right under its forward.

pub(crate) mod attention;
pub(crate) mod binary;
pub(crate) mod compare;
pub(crate) mod dropout;
pub(crate) mod index;
pub(crate) mod index_cuda;
pub(crate) mod layout;
pub(crate) mod loss;
pub(crate) mod loss_cuda;
pub(crate) mod masked_xent;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod norm_cuda;
pub(crate) mod reduce;
pub(crate) mod reduce_cuda;
pub(crate) mod softmax;
pub(crate) mod unary;

use crate::shape::shape_of;
use crate::{DType, Error, Result, Shape, Tensor};

/// Run `$body` with `$T` bound to the Rust type of a compute dtype (f32 or f64); any other dtype
/// is an `UnsupportedDType` error naming `$op`.
macro_rules! with_float {
    ($op:expr, $dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            other => {
                return Err($crate::Error::UnsupportedDType {
                    op: $op,
                    dtype: other,
                    expected: "f32 or f64",
                })
            }
        }
    };
}
pub(crate) use with_float;

/// Inputs of a multi-input op must share device and dtype.
pub(crate) fn check_same(op: &'static str, tensors: &[&Tensor]) -> Result<()> {
    let first = tensors[0];
    if tensors.iter().any(|t| t.device() != first.device()) {
        return Err(Error::DeviceMismatch {
            op,
            devices: tensors.iter().map(|t| t.device()).collect(),
        });
    }
    if tensors.iter().any(|t| t.dtype() != first.dtype()) {
        return Err(Error::DTypeMismatch {
            op,
            dtypes: tensors.iter().map(|t| t.dtype()).collect(),
        });
    }
    Ok(())
}

/// The tensor must be of a compute dtype (f32/f64).
pub(crate) fn check_float(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype().is_compute_float() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType {
            op,
            dtype: t.dtype(),
            expected: "f32 or f64",
        })
    }
}

pub(crate) fn check_dtype(op: &'static str, t: &Tensor, dtype: DType) -> Result<()> {
    if t.dtype() == dtype {
        Ok(())
    } else {
        Err(Error::UnsupportedDType {
            op,
            dtype: t.dtype(),
            expected: match dtype {
                DType::I64 => "i64",
                DType::Bool => "bool",
                DType::F32 => "f32",
                DType::F64 => "f64",
                DType::BF16 => "bf16",
                DType::F16 => "f16",
            },
        })
    }
}

/// Strides that read `t` as if it had been broadcast to `out_shape` (0 on broadcast dims).
/// The caller has checked that the shapes broadcast.
pub(crate) fn broadcast_strides(t: &Tensor, out_shape: &[usize]) -> Shape {
    let lead = out_shape.len() - t.rank();
    let mut strides = Shape::from_elem(0, out_shape.len());
    for (i, (&d, &s)) in t.shape().iter().zip(t.strides()).enumerate() {
        strides[lead + i] = if d == 1 { 0 } else { s };
    }
    strides
}

/// Sum `g` (of a broadcast output's shape) down to `shape`: the backward of broadcasting.
pub(crate) fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let lead = g.rank() - shape.len();
    let mut axes: Vec<isize> = (0..lead as isize).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[lead + i] != 1 {
            axes.push((lead + i) as isize);
        }
    }
    g.sum(&axes, false)?.reshape(shape)
}

pub(crate) fn shape_vec(shapes: &[&[usize]]) -> Vec<Shape> {
    shapes.iter().map(|s| shape_of(s)).collect()
}
