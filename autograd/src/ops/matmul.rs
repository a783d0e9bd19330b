//! Batched matrix multiply with broadcast batch dimensions (`torch.matmul`).
//!
//! Operands are passed to the GEMM as strided views with per-batch offsets, so transposed
//! operands (as in the backward, `G·Bᵀ` and `Aᵀ·G`) and broadcast batch dims cost no copies.

use super::{check_float, check_same, shape_vec, sum_to_shape, with_float};
use crate::graph::record;
use crate::shape::broadcast_shapes;
use crate::storage::StorageElement;
use crate::{Error, Result, Shape, Tensor};
use kernels::matmul::{gemm_batched, MatRef};

/// Offsets of each batch's matrix in `t`'s storage, for `t` broadcast over `batch`.
fn batch_offsets(t: &Tensor, batch: &[usize]) -> Vec<usize> {
    let rank = t.rank();
    let lead = batch.len() - (rank - 2);
    // Strides of t's batch dims aligned to `batch`, 0 where t broadcasts.
    let mut strides = vec![0usize; batch.len()];
    for d in 0..rank - 2 {
        if t.shape()[d] != 1 {
            strides[lead + d] = t.strides()[d];
        }
    }
    let count: usize = batch.iter().product();
    let mut offsets = Vec::with_capacity(count);
    let mut index = vec![0usize; batch.len()];
    let mut off = t.0.offset;
    for _ in 0..count {
        offsets.push(off);
        for d in (0..batch.len()).rev() {
            index[d] += 1;
            off += strides[d];
            if index[d] < batch[d] {
                break;
            }
            off -= strides[d] * batch[d];
            index[d] = 0;
        }
    }
    offsets
}

/// `a @ b` for ranks >= 2 (the 1-D cases are reshaped by the caller).
fn matmul_forward(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 {
        return Err(Error::ShapeMismatch {
            op: "matmul",
            shapes: shape_vec(&[a.shape(), b.shape()]),
            reason: format!("inner dimensions differ ({k} vs {k2})"),
        });
    }
    let batch = broadcast_shapes("matmul", &a.shape()[..ra - 2], &b.shape()[..rb - 2])?;
    let mut out_shape: Shape = batch.clone();
    out_shape.extend_from_slice(&[m, n]);
    let (ao, bo) = (batch_offsets(a, &batch), batch_offsets(b, &batch));
    let (sa, sb) = (a.strides(), b.strides());
    let out = with_float!("matmul", a.dtype(), T => {
        let mut c = vec![T::default(); out_shape.iter().product()];
        a.with_strided(|x| {
            b.with_strided(|y| {
                let am = MatRef { data: x.data, offset: 0, rows: m, cols: k, row_stride: sa[ra - 2], col_stride: sa[ra - 1] };
                let bm = MatRef { data: y.data, offset: 0, rows: k, cols: n, row_stride: sb[rb - 2], col_stride: sb[rb - 1] };
                gemm_batched::<T>(am, &ao, bm, &bo, &mut c, false)
            })
        })??
        .map_err(|e| Error::InvalidArgument { op: "matmul", reason: e.to_string() })?;
        Tensor::from_cpu_data(T::wrap(c), &out_shape)
    });
    Ok(out)
}

impl Tensor {
    /// Matrix product with numpy/PyTorch semantics: `[..., m, k] @ [..., k, n] -> [..., m, n]`
    /// with broadcast batch dims; a 1-D left operand is a row vector and a 1-D right operand a
    /// column vector, their added axis removed from the result.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        check_same("matmul", &[self, other])?;
        check_float("matmul", self)?;
        if self.rank() == 0 || other.rank() == 0 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                shapes: shape_vec(&[self.shape(), other.shape()]),
                reason: "both operands need rank >= 1".into(),
            });
        }
        if self.rank() == 1 {
            return self.unsqueeze(0)?.matmul(other)?.squeeze(-2);
        }
        if other.rank() == 1 {
            return self.matmul(&other.unsqueeze(-1)?)?.squeeze(-1);
        }
        let out = matmul_forward(self, other)?;
        let (a, b) = (self.detach(), other.detach());
        Ok(record("matmul", &[self, other], out, move |g, needs| {
            Ok(vec![
                if needs[0] {
                    Some(sum_to_shape(&g.matmul(&b.t()?)?, a.shape())?)
                } else {
                    None
                },
                if needs[1] {
                    Some(sum_to_shape(&a.t()?.matmul(g)?, b.shape())?)
                } else {
                    None
                },
            ])
        }))
    }
}
