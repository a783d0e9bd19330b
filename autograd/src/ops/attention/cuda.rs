//! The attention op on CUDA tensors: the FlashAttention-2-style kernels of
//! `kernels::attention::cuda`, f32 (the dtype tensors compute in; the bf16 kernels are reached
//! through `kernels` directly, as the other bf16 kernels are).
//!
//! Same contract as the CPU path (masks, GQA, side outputs, fully masked rows = 0 with zero
//! gradient, a bias gradient summed over the bias's broadcast dimensions), with one limit the
//! kernels set, an error naming the op: head dims 32, 64 and 128 only (the kernels are
//! specialized on D).
//!
//! The bias gradient: when the tape asks for it, the dQ kernel that forms dS anyway also stores
//! it into a zero-filled f32 `[B, H, nq, nk]` buffer, which `sum_to_shape` (the reduce kernels)
//! sums down to the bias's shape. That buffer is O(B·H·nq·nk) memory for the backward's duration,
//! the same order as a full-shape bias itself; a backward that does not need the bias gradient
//! allocates nothing and runs the plain dQ kernel.

use super::{AttentionMask, AttentionOutput, Checked, OP};
use crate::graph::record;
use crate::ops::sum_to_shape;
use crate::tensor::cuda::cuda_err;
use crate::{DType, Error, Result, Tensor};
use kernels::attention::cuda as attn;
use kernels::attention::launch::{AttnDtype, AttnParams, HEAD_DIMS};
use kernels::attention::AttnShape;

/// A contiguous version of a CUDA tensor (the kernels take row-major `[B, H, n, D]` and the
/// mask/bias strides were computed for a contiguous tensor).
fn contiguous(t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() {
        Ok(t.detach())
    } else {
        t.cuda_contiguous_copy()
    }
}

/// Row-major strides of `[B, H, n, D]`, batch/head/row, in elements.
fn strides3(heads: usize, n: usize, d: usize) -> [i64; 3] {
    [(heads * n * d) as i64, (n * d) as i64, d as i64]
}

fn strides4(s: [usize; 4]) -> [i64; 4] {
    s.map(|x| x as i64)
}

/// What the forward and the backward share: the inputs (contiguous, detached), the masks
/// as device data, and the filled-in parts of the parameter block.
struct Inputs {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bool_mask: Option<Tensor>,
    bias: Option<Tensor>,
    key_lengths: Option<Vec<i32>>,
    shape: AttnShape,
    base: AttnParams,
}

impl Inputs {
    /// The parameter block with the inputs' addresses and `lengths` (a device buffer of the
    /// key lengths, kept alive by the caller until the launches are issued).
    fn params(&self, lengths: Option<&kernels::cuda::DeviceBuffer>) -> Result<AttnParams> {
        let mut p = self.base;
        p.q = self.q.cuda_ptr()?;
        p.k = self.k.cuda_ptr()?;
        p.v = self.v.cuda_ptr()?;
        p.mask = self.bool_mask.as_ref().map_or(Ok(0), Tensor::cuda_ptr)?;
        p.bias = self.bias.as_ref().map_or(Ok(0), Tensor::cuda_ptr)?;
        p.key_lengths = lengths.map_or(0, |b| b.ptr());
        Ok(p)
    }

    /// The key lengths on the device (the stream orders the launch before any reuse of the
    /// buffer, so it may be dropped right after the launch is issued).
    fn upload_lengths(&self) -> Result<Option<kernels::cuda::DeviceBuffer>> {
        match &self.key_lengths {
            None => Ok(None),
            Some(l) => {
                let dev = self.q.cuda_dev()?;
                Ok(Some(dev.upload(l).map_err(cuda_err(OP))?))
            }
        }
    }
}

pub(super) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    checked: Checked,
) -> Result<AttentionOutput> {
    if q.dtype() != DType::F32 {
        // f64 has no CUDA kernels in this crate; the other dtypes were refused by `check`.
        return Err(Error::NotImplementedOnDevice {
            op: OP,
            device: q.device(),
        });
    }
    let sh = checked.shape;
    if !HEAD_DIMS.contains(&sh.head_dim) {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!(
                "on CUDA the head dim must be one of {HEAD_DIMS:?} (the kernels are specialized on it), \
                 got {} for q {:?}; the CPU path takes any",
                sh.head_dim,
                q.shape()
            ),
        });
    }
    let base = AttnParams {
        q_stride: strides3(sh.heads, sh.q_len, sh.head_dim),
        k_stride: strides3(sh.kv_heads, sh.kv_len, sh.head_dim),
        v_stride: strides3(sh.kv_heads, sh.kv_len, sh.head_dim),
        o_stride: strides3(sh.heads, sh.q_len, sh.head_dim),
        mask_stride: strides4(checked.mask_strides.unwrap_or([0; 4])),
        bias_stride: strides4(checked.bias_strides.unwrap_or([0; 4])),
        batch: sh.batch as i32,
        heads: sh.heads as i32,
        kv_heads: sh.kv_heads as i32,
        q_len: sh.q_len as i32,
        kv_len: sh.kv_len as i32,
        head_dim: sh.head_dim as i32,
        causal: mask.causal as i32,
        diagonal: mask.diagonal as i32,
        scale: checked.scale as f32,
        ..AttnParams::default()
    };
    if [sh.q_len, sh.kv_len, sh.batch * sh.heads]
        .iter()
        .any(|&n| n > i32::MAX as usize)
    {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("sizes {sh:?} exceed the CUDA kernels' 32-bit row indices"),
        });
    }
    let inputs = Inputs {
        q: contiguous(q)?,
        k: contiguous(k)?,
        v: contiguous(v)?,
        bool_mask: mask.bool_mask.as_ref().map(contiguous).transpose()?,
        bias: mask.bias.as_ref().map(contiguous).transpose()?,
        // `check` bounded every length by kv_len, which fits an i32 (checked above).
        key_lengths: mask
            .key_lengths
            .as_ref()
            .map(|l| l.iter().map(|&x| x as i32).collect()),
        shape: sh,
        base,
    };
    let device = q.device();
    let out = Tensor::cuda_empty(&[sh.batch, sh.heads, sh.q_len, sh.head_dim], DType::F32, device)?;
    let lse = Tensor::cuda_empty(&[sh.batch, sh.heads, sh.q_len], DType::F32, device)?;
    let max_logit = Tensor::full(&[sh.batch, sh.heads], f64::NEG_INFINITY, DType::F32, device)?;
    let dev = q.cuda_dev()?;
    let lengths = inputs.upload_lengths()?;
    let mut p = inputs.params(lengths.as_ref())?;
    p.out = out.cuda_ptr()?;
    p.lse = lse.cuda_ptr()?;
    p.max_logit = max_logit.cuda_ptr()?;
    // SAFETY: every pointer is a live, contiguous CUDA tensor of the shape `sh` describes
    // (mask and bias read through broadcast strides that `check` derived from their shapes),
    // max_logit starts at -inf, and the key lengths were checked to be <= kv_len.
    unsafe { attn::forward(&dev, AttnDtype::F32, &sh, &p) }.map_err(cuda_err(OP))?;
    drop(lengths);

    let (saved_out, saved_lse) = (out.clone(), lse.clone());
    let backward = move |g: &Tensor, needs: &[bool]| -> Result<Vec<Option<Tensor>>> {
        let sh = inputs.shape;
        let g = contiguous(g)?;
        let device = g.device();
        let q_shape = [sh.batch, sh.heads, sh.q_len, sh.head_dim];
        let kv_shape = [sh.batch, sh.kv_heads, sh.kv_len, sh.head_dim];
        let dq = Tensor::cuda_empty(&q_shape, DType::F32, device)?;
        let dk = Tensor::cuda_empty(&kv_shape, DType::F32, device)?;
        let dv = Tensor::cuda_empty(&kv_shape, DType::F32, device)?;
        let delta = Tensor::cuda_empty(&[sh.batch, sh.heads, sh.q_len], DType::F32, device)?;
        // dS per (b, h, i, j), zero-filled: the kernel stores only the tiles it visits, and the
        // pairs of skipped (fully masked) tiles have dS = 0.
        let ds = match &inputs.bias {
            Some(_) if needs.get(3).copied().unwrap_or(false) => Some(Tensor::zeros(
                &[sh.batch, sh.heads, sh.q_len, sh.kv_len],
                DType::F32,
                device,
            )?),
            _ => None,
        };
        let lengths = inputs.upload_lengths()?;
        let mut p = inputs.params(lengths.as_ref())?;
        p.out = saved_out.cuda_ptr()?;
        p.lse = saved_lse.cuda_ptr()?;
        p.dout = g.cuda_ptr()?;
        p.dq = dq.cuda_ptr()?;
        p.dk = dk.cuda_ptr()?;
        p.dv = dv.cuda_ptr()?;
        p.delta = delta.cuda_ptr()?;
        p.dbias = ds.as_ref().map_or(Ok(0), Tensor::cuda_ptr)?;
        let dev = g.cuda_dev()?;
        // SAFETY: as in the forward; out and lse are the forward's outputs for these inputs,
        // dout, dq, dk, dv, delta are contiguous with the shapes the strides describe, and ds
        // (if any) is a zero-filled contiguous f32 [B, H, nq, nk].
        unsafe { attn::backward(&dev, AttnDtype::F32, &sh, &p) }.map_err(cuda_err(OP))?;
        let mut result = vec![
            needs[0].then_some(dq),
            needs[1].then_some(dk),
            needs[2].then_some(dv),
        ];
        if let Some(bias) = &inputs.bias {
            // Summed over the dimensions the bias was broadcast along (the reduce kernels).
            result.push(ds.map(|ds| sum_to_shape(&ds, bias.shape())).transpose()?);
        }
        Ok(result)
    };
    let out = match &mask.bias {
        Some(bias) => record("attention", &[q, k, v, bias], out, backward),
        None => record("attention", &[q, k, v], out, backward),
    };
    Ok(AttentionOutput { out, lse, max_logit })
}
