//! Fused scaled dot-product attention with masks, GQA and side outputs
//! (`torch.nn.functional.scaled_dot_product_attention`, `jax.nn.dot_product_attention`).
//!
//! Forward on `kernels::attention::tiled` (FlashAttention's online softmax on the CPU: no
//! `nq × nk` buffer); the backward recomputes the probabilities from the saved row log-sum-exp,
//! as FlashAttention does, so the graph keeps O(B·H·N) per call, not O(N²). The math, layouts and
//! numerics are documented in `kernels::attention`.
//!
//! Differences from PyTorch's SDPA: a query row with no allowed key gives 0 (PyTorch: NaN) with
//! zero gradient; causal masks align bottom-right when `nq != nk` (PyTorch's `is_causal`: top
//! left); masks combine (causal + padding + boolean), and the row log-sum-exp and the per-head
//! maximum logit come back as side outputs (not differentiated through).

use super::{check_dtype, check_float, check_same, shape_vec, with_float};
use crate::graph::record;
use crate::storage::StorageElement;
use crate::{Error, Result, Shape, Tensor};
use kernels::attention::{tiled, AttnShape, Bias, BoolMask, Mask, Problem};

mod cuda;

const OP: &str = "attention";

/// Which (query, key) pairs may attend, and an optional additive bias; the constraints that are
/// set are ANDed. Build with the constructors and chain: `AttentionMask::causal().key_padding(l)`.
#[derive(Clone, Debug, Default)]
pub struct AttentionMask {
    causal: bool,
    diagonal: bool,
    key_lengths: Option<Vec<usize>>,
    bool_mask: Option<Tensor>,
    bias: Option<Tensor>,
}

impl AttentionMask {
    /// Every pair may attend.
    pub fn none() -> Self {
        Self::default()
    }

    /// Query `i` sees keys `j <= i + (nk - nq)` (bottom-right aligned, as FlashAttention).
    pub fn causal() -> Self {
        Self::none().and_causal()
    }

    /// Query `i` does not see key `i + (nk - nq)`, its own position (SAITS).
    pub fn diagonal() -> Self {
        Self::none().and_diagonal()
    }

    /// Batch row `b` has `lengths[b]` valid keys; the rest are masked.
    pub fn key_padding(lengths: &[usize]) -> Self {
        Self::none().and_key_padding(lengths)
    }

    /// A bool tensor broadcastable to `[B, H, nq, nk]` (aligned on the right); `true` = attend.
    pub fn boolean(mask: &Tensor) -> Self {
        Self::none().and_boolean(mask)
    }

    pub fn and_causal(mut self) -> Self {
        self.causal = true;
        self
    }

    pub fn and_diagonal(mut self) -> Self {
        self.diagonal = true;
        self
    }

    pub fn and_key_padding(mut self, lengths: &[usize]) -> Self {
        self.key_lengths = Some(lengths.to_vec());
        self
    }

    pub fn and_boolean(mut self, mask: &Tensor) -> Self {
        self.bool_mask = Some(mask.clone());
        self
    }

    /// An additive bias on the logits (after scaling), broadcastable to `[B, H, nq, nk]`, of the
    /// inputs' dtype. Differentiable: a bias that requires gradient gets one (summed over its
    /// broadcast dimensions).
    pub fn with_bias(mut self, bias: &Tensor) -> Self {
        self.bias = Some(bias.clone());
        self
    }
}

/// What [`attention`] returns.
#[derive(Clone, Debug)]
pub struct AttentionOutput {
    /// `[B, H, nq, D]`, differentiable.
    pub out: Tensor,
    /// Row log-sum-exp of the masked logits, `[B, H, nq]`; -inf for a fully masked row. Saved for
    /// the backward; not differentiable.
    pub lse: Tensor,
    /// Largest allowed logit per (batch, head), `[B, H]` (-inf if the head sees nothing); for
    /// watching logit growth. Not differentiable.
    pub max_logit: Tensor,
}

/// Strides reading a contiguous tensor of `shape` (rank <= 4) as `[B, H, nq, nk]`, or `None`
/// when it does not broadcast there.
fn broadcast_strides4(shape: &[usize], target: [usize; 4]) -> Option<[usize; 4]> {
    if shape.len() > 4 {
        return None;
    }
    let mut padded = [1usize; 4];
    padded[4 - shape.len()..].copy_from_slice(shape);
    let mut strides = [0usize; 4];
    let mut step = 1;
    for d in (0..4).rev() {
        match padded[d] {
            n if n == target[d] || n == 1 => {
                strides[d] = if n == 1 { 0 } else { step };
                step *= n;
            }
            _ => return None,
        }
    }
    Some(strides)
}

/// Everything the kernels need, checked, with owned copies of mask data.
struct Checked {
    shape: AttnShape,
    scale: f64,
    mask_strides: Option<[usize; 4]>,
    bias_strides: Option<[usize; 4]>,
}

fn check(q: &Tensor, k: &Tensor, v: &Tensor, mask: &AttentionMask, scale: Option<f64>) -> Result<Checked> {
    check_same(OP, &[q, k, v])?;
    check_float(OP, q)?;
    let mismatch = |reason: String, shapes: &[&[usize]]| Error::ShapeMismatch {
        op: OP,
        shapes: shape_vec(shapes),
        reason,
    };
    if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 {
        return Err(mismatch(
            "q, k and v must be [batch, heads, seq, head_dim]".into(),
            &[q.shape(), k.shape(), v.shape()],
        ));
    }
    if k.shape() != v.shape() {
        return Err(mismatch(
            "k and v differ in shape".into(),
            &[k.shape(), v.shape()],
        ));
    }
    let (qs, ks) = (q.shape(), k.shape());
    if qs[3] != ks[3] {
        return Err(mismatch(
            format!("head dims differ (q {}, k/v {})", qs[3], ks[3]),
            &[qs, ks],
        ));
    }
    if qs[0] != ks[0] {
        return Err(mismatch(
            format!("batch sizes differ (q {}, k/v {})", qs[0], ks[0]),
            &[qs, ks],
        ));
    }
    if ks[1] == 0 || qs[1] % ks[1] != 0 {
        return Err(mismatch(
            format!(
                "query heads ({}) must be a multiple of key/value heads ({})",
                qs[1], ks[1]
            ),
            &[qs, ks],
        ));
    }
    if qs[3] == 0 {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: "head_dim is 0: there is nothing to attend with".into(),
        });
    }
    let shape = AttnShape {
        batch: qs[0],
        heads: qs[1],
        kv_heads: ks[1],
        q_len: qs[2],
        kv_len: ks[2],
        head_dim: qs[3],
    };
    let scale = scale.unwrap_or(1.0 / (qs[3] as f64).sqrt());
    if !scale.is_finite() {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("scale must be finite, got {scale}"),
        });
    }
    let target = [shape.batch, shape.heads, shape.q_len, shape.kv_len];
    if let Some(lens) = &mask.key_lengths {
        if lens.len() != shape.batch || lens.iter().any(|&l| l > shape.kv_len) {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!(
                    "key_padding needs one length <= {} per batch row ({} rows), got {lens:?}",
                    shape.kv_len, shape.batch
                ),
            });
        }
    }
    let mask_strides = match &mask.bool_mask {
        None => None,
        Some(m) => {
            check_dtype(OP, m, crate::DType::Bool)?;
            if m.device() != q.device() {
                return Err(Error::DeviceMismatch {
                    op: OP,
                    devices: vec![q.device(), m.device()],
                });
            }
            Some(broadcast_strides4(m.shape(), target).ok_or_else(|| {
                mismatch(
                    format!("the boolean mask does not broadcast to {target:?}"),
                    &[m.shape(), &target],
                )
            })?)
        }
    };
    let bias_strides = match &mask.bias {
        None => None,
        Some(b) => {
            check_same(OP, &[q, b])?;
            Some(broadcast_strides4(b.shape(), target).ok_or_else(|| {
                mismatch(
                    format!("the bias does not broadcast to {target:?}"),
                    &[b.shape(), &target],
                )
            })?)
        }
    };
    Ok(Checked {
        shape,
        scale,
        mask_strides,
        bias_strides,
    })
}

/// What the forward keeps for the backward: detached inputs, the output and its statistics.
struct Saved {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    causal: bool,
    diagonal: bool,
    key_lengths: Option<Vec<usize>>,
    bool_mask: Option<Tensor>,
    bias: Option<Tensor>,
    checked: Checked,
}

impl Saved {
    /// Run `f` on the kernel problem these tensors describe (reading every buffer contiguously).
    fn with_problem<T: StorageElement + kernels::Float, R>(
        &self,
        f: impl FnOnce(&Problem<T>) -> R,
    ) -> Result<R> {
        let c = &self.checked;
        let mask_bytes = match &self.bool_mask {
            Some(m) => m.to_vec::<u8>()?,
            None => Vec::new(),
        };
        let bias = match &self.bias {
            Some(b) => b.to_vec::<T>()?,
            None => Vec::new(),
        };
        self.q.with_slice(|q: &[T]| {
            self.k.with_slice(|k: &[T]| {
                self.v.with_slice(|v: &[T]| {
                    let mask = Mask {
                        causal: self.causal,
                        diagonal: self.diagonal,
                        key_lengths: self.key_lengths.as_deref(),
                        bool_mask: c.mask_strides.map(|strides| BoolMask {
                            data: &mask_bytes,
                            strides,
                            offset: 0,
                        }),
                    };
                    let bias = c.bias_strides.map(|strides| Bias {
                        data: &bias[..],
                        strides,
                        offset: 0,
                    });
                    f(&Problem {
                        shape: c.shape,
                        q,
                        k,
                        v,
                        mask,
                        bias,
                        scale: <T as kernels::Float>::from_f64(c.scale),
                    })
                })
            })
        })??
    }
}

fn kernel_error(e: kernels::attention::AttentionError) -> Error {
    Error::InvalidArgument {
        op: OP,
        reason: e.to_string(),
    }
}

/// Scaled dot-product attention: `softmax(scale · q kᵀ + bias, masked) v`, fused, with its
/// backward (`torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask, scale=scale,
/// enable_gqa=True)`, up to the differences in the module docs).
///
/// `q` is `[B, H, nq, D]`, `k` and `v` `[B, Hkv, nk, D]` with `H` a multiple of `Hkv` (grouped
/// query attention: query head `h` uses KV head `h / (H / Hkv)`). `scale` defaults to
/// `1/sqrt(D)`. Gradients flow to `q`, `k`, `v` and a bias that requires gradient.
///
/// Zero-length sequences: `nq = 0` gives an empty output; `nk = 0` makes every row fully masked
/// (output 0, lse -inf). `D = 0`, shape and dtype mismatches, a bad mask shape and `H` not a
/// multiple of `Hkv` are errors.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    scale: Option<f64>,
) -> Result<AttentionOutput> {
    let checked = check(q, k, v, mask, scale)?;
    if q.cuda_data().is_some() {
        return cuda::attention(q, k, v, mask, checked);
    }
    let sh = checked.shape;
    let saved = Saved {
        q: q.detach(),
        k: k.detach(),
        v: v.detach(),
        out: Tensor::zeros(&[0], q.dtype(), q.device())?, // placeholder until the forward ran
        lse: Tensor::zeros(&[0], q.dtype(), q.device())?,
        causal: mask.causal,
        diagonal: mask.diagonal,
        key_lengths: mask.key_lengths.clone(),
        bool_mask: mask.bool_mask.as_ref().map(Tensor::detach),
        bias: mask.bias.as_ref().map(Tensor::detach),
        checked,
    };
    let (out, lse, max_logit) = with_float!(OP, q.dtype(), T => {
        let f = saved.with_problem(|p: &Problem<T>| tiled::forward(p))?.map_err(kernel_error)?;
        (
            Tensor::from_cpu_data(T::wrap(f.out), &[sh.batch, sh.heads, sh.q_len, sh.head_dim]),
            Tensor::from_cpu_data(T::wrap(f.lse), &[sh.batch, sh.heads, sh.q_len]),
            Tensor::from_cpu_data(T::wrap(f.max_logit), &[sh.batch, sh.heads]),
        )
    });
    let saved = Saved {
        out: out.clone(),
        lse: lse.clone(),
        ..saved
    };
    let bias_shape: Option<Shape> = mask.bias.as_ref().map(|b| Shape::from_slice(b.shape()));
    let backward = move |g: &Tensor, needs: &[bool]| -> Result<Vec<Option<Tensor>>> {
        let want_dbias = needs.get(3).copied().unwrap_or(false);
        let c = &saved.checked.shape;
        with_float!(OP, g.dtype(), T => {
            let grads = g.with_slice(|dout: &[T]| {
                saved.out.with_slice(|out: &[T]| {
                    saved.lse.with_slice(|lse: &[T]| {
                        saved.with_problem(|p: &Problem<T>| tiled::backward(p, out, lse, dout, want_dbias))
                    })
                })
            })????
            .map_err(kernel_error)?;
            let q_shape = [c.batch, c.heads, c.q_len, c.head_dim];
            let kv_shape = [c.batch, c.kv_heads, c.kv_len, c.head_dim];
            let mut result = vec![
                needs[0].then(|| Tensor::from_cpu_data(T::wrap(grads.dq), &q_shape)),
                needs[1].then(|| Tensor::from_cpu_data(T::wrap(grads.dk), &kv_shape)),
                needs[2].then(|| Tensor::from_cpu_data(T::wrap(grads.dv), &kv_shape)),
            ];
            if let Some(shape) = &bias_shape {
                result.push(grads.dbias.map(|db| Tensor::from_cpu_data(T::wrap(db), shape)));
            }
            Ok(result)
        })
    };
    let out = match &mask.bias {
        Some(bias) => record("attention", &[q, k, v, bias], out, backward),
        None => record("attention", &[q, k, v], out, backward),
    };
    Ok(AttentionOutput { out, lse, max_logit })
}
