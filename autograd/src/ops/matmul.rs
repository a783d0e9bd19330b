//! Batched matrix multiply with broadcast batch dimensions (`torch.matmul`).
//!
//! Operands are passed to the GEMM as strided views with per-batch offsets, so transposed
//! operands (as in the backward, `G·Bᵀ` and `Aᵀ·G`) and broadcast batch dims cost no copies.

use super::{check_float, check_same, shape_vec, sum_to_shape, with_float};
use crate::graph::record;
use crate::shape::broadcast_shapes;
use crate::storage::StorageElement;
use crate::tensor::cuda::{cuda_err, float_type};
use crate::{Error, Result, Shape, Tensor};
use kernels::cuda::{GemmOperand, GemmPrecision};
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
    if a.cuda_data().is_some() {
        return matmul_cuda(a, b, &out_shape, (m, n, k), &ao, &bo);
    }
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

/// `Some(stride)` when the offsets are evenly spaced (one strided-batched GEMM covers them).
fn even_stride(offsets: &[usize]) -> Option<usize> {
    if offsets.len() < 2 {
        return Some(0);
    }
    let step = offsets[1].checked_sub(offsets[0])?;
    offsets
        .windows(2)
        .all(|w| w[1].checked_sub(w[0]) == Some(step))
        .then_some(step)
}

/// `a @ b` on the GPU: cuBLAS (or the tiled kernel) with the operands' strides as they are.
/// Batches whose offsets are evenly spaced go in one strided-batched call; others (a batch
/// broadcast over some axes only) one call per batch entry.
fn matmul_cuda(
    a: &Tensor,
    b: &Tensor,
    out_shape: &[usize],
    (m, n, k): (usize, usize, usize),
    ao: &[usize],
    bo: &[usize],
) -> Result<Tensor> {
    let dt = float_type("matmul", a)?;
    let out = Tensor::cuda_empty(out_shape, a.dtype(), a.device())?;
    let (ca, cb) = match (a.cuda_data(), b.cuda_data()) {
        (Some(ca), Some(cb)) => (ca, cb),
        _ => {
            return Err(Error::DeviceMismatch {
                op: "matmul",
                devices: vec![a.device(), b.device()],
            })
        }
    };
    let (ra, rb) = (a.rank(), b.rank());
    let (sa, sb) = (a.strides(), b.strides());
    let operand = |ptr, rs, cs, bs| GemmOperand {
        ptr,
        row_stride: rs,
        col_stride: cs,
        batch_stride: bs,
    };
    let c0 = out.cuda_ptr()?;
    let dev = a.cuda_dev()?;
    let per_batch = (m * n * a.dtype().size_in_bytes()) as u64;
    // (first batch entry, entries in this call, A's and B's batch strides)
    let calls: Vec<(usize, usize, usize, usize)> = match (even_stride(ao), even_stride(bo)) {
        (Some(stride_a), Some(stride_b)) if !ao.is_empty() => vec![(0, ao.len(), stride_a, stride_b)],
        _ => (0..ao.len()).map(|z| (z, 1, 0, 0)).collect(),
    };
    for (z, count, stride_a, stride_b) in calls {
        let a_op = operand(ca.ptr_at(ao[z]), sa[ra - 2], sa[ra - 1], stride_a);
        let b_op = operand(cb.ptr_at(bo[z]), sb[rb - 2], sb[rb - 1], stride_b);
        // SAFETY: the operands are views inside their storages (offsets from batch_offsets);
        // out is contiguous with batch * m * n elements.
        unsafe {
            kernels::cuda::gemm::matmul(
                &dev,
                dt,
                GemmPrecision::F32,
                m,
                n,
                k,
                count,
                a_op,
                b_op,
                c0 + z as u64 * per_batch,
            )
        }
        .map_err(cuda_err("matmul"))?;
    }
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
