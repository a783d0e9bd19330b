//! Indexing with i64 index tensors: `index_select`, `gather`, `scatter_add`, and `embedding`
//! (an `index_select` of rows), with PyTorch's semantics.
//!
//! Each of these is linear in its float input, so every backward is the adjoint indexing op:
//! `index_select` ↔ `index_add`, `gather` ↔ `scatter_add`. Repeated indices therefore accumulate
//! gradient, as they must. Backward closures save the index tensor (detached), never the data.
//! Index values are validated by the kernels; a bad one is `Error::IndexOutOfRange` naming the
//! op, the index and the axis size. Negative indices are errors, not wrapped (as PyTorch).

use super::{check_dtype, check_float, check_same, shape_vec, with_float};
use crate::graph::record;
use crate::shape::normalize_axis;
use crate::storage::StorageElement;
use crate::{DType, Error, Result, Tensor};
use kernels::index::{cpu as k, IndexError};

/// Run `$body` with `$T` bound to the Rust element type of any dtype: selecting and gathering
/// only move elements, so (unlike arithmetic) they work on integers, masks and storage floats.
macro_rules! with_element {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
            DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            DType::F16 => {
                type $T = half::f16;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            DType::Bool => {
                type $T = u8;
                $body
            }
        }
    };
}

fn out_of_range(op: &'static str) -> impl FnOnce(IndexError) -> Error {
    move |e| Error::IndexOutOfRange {
        op,
        index: e.index,
        size: e.size,
    }
}

/// The index tensor must be i64 and on the data's device (check_same would also demand equal
/// dtypes, which index and data never have).
fn check_index(op: &'static str, data: &Tensor, index: &Tensor) -> Result<()> {
    check_dtype(op, index, DType::I64)?;
    if index.device() != data.device() {
        return Err(Error::DeviceMismatch {
            op,
            devices: vec![data.device(), index.device()],
        });
    }
    Ok(())
}

/// `shape` viewed as `[outer, shape[axis], inner]`.
fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// PyTorch's rule for gather/scatter: `index` has the data's rank and is no larger on any
/// dimension, except along `axis` when `free_axis`.
fn check_fits(
    op: &'static str,
    (data_name, data): (&str, &[usize]),
    index: &[usize],
    axis: usize,
    free_axis: bool,
) -> Result<()> {
    let reason = if data.len() != index.len() {
        format!("index must have the same rank as {data_name}")
    } else if let Some(d) = (0..data.len()).find(|&d| !(free_axis && d == axis) && index[d] > data[d]) {
        format!("index is larger than {data_name} on dimension {d}")
    } else {
        return Ok(());
    };
    Err(Error::ShapeMismatch {
        op,
        shapes: shape_vec(&[data, index]),
        reason,
    })
}

/// `index_select` under the name `op` (so `embedding` reports its own errors).
fn select_along(op: &'static str, x: &Tensor, axis: isize, indices: &Tensor) -> Result<Tensor> {
    check_index(op, x, indices)?;
    if indices.rank() > 1 {
        return Err(Error::ShapeMismatch {
            op,
            shapes: shape_vec(&[x.shape(), indices.shape()]),
            reason: "indices must be 1-D (or a scalar)".into(),
        });
    }
    let a = normalize_axis(op, axis, x.rank())?;
    let (outer, size, inner) = split_at_axis(x.shape(), a);
    let mut out_shape = x.0.shape.clone();
    out_shape[a] = indices.numel();
    if x.cuda_data().is_some() {
        return super::index_cuda::index_select_cuda(op, x, indices, (outer, size, inner), &out_shape);
    }
    let out = with_element!(x.dtype(), T => {
        let v = x
            .with_slice(|xs: &[T]| indices.with_slice(|iv: &[i64]| k::index_select(xs, outer, size, inner, iv)))??
            .map_err(out_of_range(op))?;
        Tensor::from_cpu_data(T::wrap(v), &out_shape)
    });
    let (ix, in_shape) = (indices.detach(), x.0.shape.clone());
    Ok(record("index_select", &[x], out, move |g, _| {
        with_float!("index_select", g.dtype(), T => {
            let mut dx = vec![T::default(); in_shape.iter().product()];
            g.with_slice(|gs: &[T]| ix.with_slice(|iv: &[i64]| k::index_add(&mut dx, outer, size, inner, iv, gs)))??
                .map_err(out_of_range("index_select"))?;
            Ok(vec![Some(Tensor::from_cpu_data(T::wrap(dx), &in_shape))])
        })
    }))
}

/// `g` (of `index`'s shape) scatter-added into zeros of `shape`: the backward of gather.
fn scatter_into_zeros(g: &Tensor, shape: &[usize], axis: usize, index: &Tensor) -> Result<Tensor> {
    with_float!("gather", g.dtype(), T => {
        let mut dx = vec![T::default(); shape.iter().product()];
        g.with_slice(|gs: &[T]| {
            index.with_slice(|iv: &[i64]| k::scatter_add(&mut dx, shape, axis, iv, index.shape(), gs, g.shape()))
        })??
        .map_err(out_of_range("gather"))?;
        Ok(Tensor::from_cpu_data(T::wrap(dx), shape))
    })
}

impl Tensor {
    /// The slices at `indices` along `axis` (`torch.index_select`): the output is this tensor
    /// with `axis` resized to `indices.numel()`. `indices` is i64, 1-D or a scalar; indices may
    /// repeat, and their gradients accumulate.
    pub fn index_select(&self, axis: isize, indices: &Tensor) -> Result<Tensor> {
        select_along("index_select", self, axis, indices)
    }

    /// `torch.gather(self, axis, index)`: `out[p] = self[p with coordinate axis replaced by
    /// index[p]]`. `index` is i64 with this tensor's rank, no larger than it on any dimension
    /// but `axis`; the output has `index`'s shape.
    pub fn gather(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        let op = "gather";
        check_index(op, self, index)?;
        let a = normalize_axis(op, axis, self.rank())?;
        check_fits(op, ("the input", self.shape()), index.shape(), a, true)?;
        if self.cuda_data().is_some() {
            return super::index_cuda::gather_cuda(self, a, index);
        }
        let out = with_element!(self.dtype(), T => {
            let v = self
                .with_slice(|s: &[T]| index.with_slice(|iv: &[i64]| k::gather(s, self.shape(), a, iv, index.shape())))??
                .map_err(out_of_range(op))?;
            Tensor::from_cpu_data(T::wrap(v), index.shape())
        });
        let (ix, in_shape) = (index.detach(), self.0.shape.clone());
        Ok(record("gather", &[self], out, move |g, _| {
            Ok(vec![Some(scatter_into_zeros(g, &in_shape, a, &ix)?)])
        }))
    }

    /// A copy of this tensor with `src` added at `index` along `axis` (out-of-place
    /// `torch.Tensor.scatter_add`): `out[p with coordinate axis replaced by index[p]] += src[p]`
    /// for every position `p` of `index`. `index` (i64) and `src` share this tensor's rank;
    /// `index` is no larger than `src` anywhere, nor than this tensor except along `axis`.
    /// Gradients: this tensor's is the incoming gradient; `src`'s is its gather at `index`
    /// (zero on positions of `src` that `index` does not reach).
    pub fn scatter_add(&self, axis: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        let op = "scatter_add";
        check_same(op, &[self, src])?;
        check_float(op, self)?;
        check_index(op, self, index)?;
        let a = normalize_axis(op, axis, self.rank())?;
        check_fits(op, ("the input", self.shape()), index.shape(), a, true)?;
        check_fits(op, ("src", src.shape()), index.shape(), a, false)?;
        let out = if self.cuda_data().is_some() {
            super::index_cuda::scatter_add_forward_cuda(self, a, index, src)?
        } else {
            with_float!(op, self.dtype(), T => {
            let mut dst: Vec<T> = self.to_vec()?;
            src.with_slice(|s: &[T]| {
                index.with_slice(|iv: &[i64]| {
                    k::scatter_add(&mut dst, self.shape(), a, iv, index.shape(), s, src.shape())
                })
            })??
            .map_err(out_of_range(op))?;
            Tensor::from_cpu_data(T::wrap(dst), self.shape())
            })
        };
        let (ix, src_shape) = (index.detach(), src.0.shape.clone());
        Ok(record("scatter_add", &[self, src], out, move |g, needs| {
            let dsrc = if needs[1] {
                Some(gather_padded(g, a, &ix, &src_shape)?)
            } else {
                None
            };
            Ok(vec![needs[0].then(|| g.clone()), dsrc])
        }))
    }

    /// Rows of `weight` (`[V, D]`) at `ids` (i64, any shape): the output has shape
    /// `[..ids.shape, D]` (`torch.nn.functional.embedding(ids, weight)`). Gradients go to the
    /// rows looked up, accumulated over repeated ids. Errors name `embedding`.
    pub fn embedding(ids: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let op = "embedding";
        check_index(op, weight, ids)?;
        if weight.rank() != 2 {
            return Err(Error::ShapeMismatch {
                op,
                shapes: shape_vec(&[weight.shape(), ids.shape()]),
                reason: "weight must be 2-D [num_embeddings, dim]".into(),
            });
        }
        let flat = ids.detach().reshape(&[ids.numel()])?;
        let rows = select_along(op, weight, 0, &flat)?;
        let mut shape = ids.shape().to_vec();
        shape.push(weight.shape()[1]);
        rows.reshape(&shape)
    }
}

/// `torch.nn.functional.embedding(ids, weight)`; see [`Tensor::embedding`].
pub fn embedding(ids: &Tensor, weight: &Tensor) -> Result<Tensor> {
    Tensor::embedding(ids, weight)
}

/// `g.gather(axis, index)` placed in the leading corner of zeros of `shape` (src may be larger
/// than index; its elements outside index's extent do not reach the output).
fn gather_padded(g: &Tensor, axis: usize, index: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let gathered = g.gather(axis as isize, index)?;
    if gathered.shape() == shape {
        return Ok(gathered);
    }
    let full = Tensor::zeros(shape, g.dtype(), g.device())?;
    let mut corner = full.clone();
    for (d, &n) in index.shape().iter().enumerate() {
        corner = corner.narrow(d as isize, 0, n)?;
    }
    corner.copy_(&gathered)?;
    Ok(full)
}
