//! `MultiHeadAttention` on autograd's fused attention op, with optional qk-layernorm and
//! grouped-query attention.

use super::{check_features, visit_child, visit_child_mut, LayerNorm, Linear, Module};
use autograd::{attention, AttentionMask, DType, Device, Error, Result, Tensor};
use rand::Rng;

/// Shape and options of a [`MultiHeadAttention`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionConfig {
    pub d_model: usize,
    pub n_heads: usize,
    /// Key/value heads; `n_heads` is plain multi-head attention, fewer is grouped-query attention
    /// (each KV head serves `n_heads / n_kv_heads` query heads), 1 is multi-query.
    pub n_kv_heads: usize,
    /// qk-layernorm (Dehghani et al. 2023; [28]): LayerNorm over each head's query and key
    /// vectors (gain, no bias, shared across heads) before `q kᵀ / sqrt(d_head)`.
    pub qk_norm: bool,
    /// Biases on the four projections.
    pub bias: bool,
    /// Std of the q/k/v projection weights; the output projection uses `out_std`.
    pub init_std: f64,
    pub out_std: f64,
}

impl AttentionConfig {
    pub fn new(d_model: usize, n_heads: usize) -> Self {
        AttentionConfig {
            d_model,
            n_heads,
            n_kv_heads: n_heads,
            qk_norm: false,
            bias: false,
            init_std: 0.02,
            out_std: 0.02,
        }
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    fn validate(&self) -> Result<()> {
        let ok = self.n_heads > 0
            && self.n_kv_heads > 0
            && self.d_model.is_multiple_of(self.n_heads)
            && self.n_heads.is_multiple_of(self.n_kv_heads)
            && self.d_model > 0;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                op: "MultiHeadAttention",
                reason: format!(
                    "d_model {} must be a positive multiple of n_heads {}, and n_heads a multiple of \
                     n_kv_heads {}",
                    self.d_model, self.n_heads, self.n_kv_heads
                ),
            })
        }
    }
}

/// What [`MultiHeadAttention::forward`] returns.
#[derive(Clone, Debug)]
pub struct AttentionResult {
    /// `[B, T, d_model]`.
    pub out: Tensor,
    /// The largest allowed logit `q·k/sqrt(d_head)` per (batch, head), `[B, H]`, for watching
    /// attention-logit growth ([28]); not differentiable.
    pub max_logit: Tensor,
    /// Head-averaged attention probabilities `[B, T, T]`, only from
    /// [`MultiHeadAttention::forward_unfused`] (differentiable there).
    pub mean_probs: Option<Tensor>,
}

/// Multi-head self-attention (`torch.nn.MultiheadAttention` with `batch_first=True`), projections
/// `q_proj`, `k_proj`, `v_proj`, `o_proj`.
#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    pub config: AttentionConfig,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<LayerNorm>,
    pub k_norm: Option<LayerNorm>,
}

impl MultiHeadAttention {
    pub fn new<R: Rng + ?Sized>(config: AttentionConfig, dtype: DType, rng: &mut R) -> Result<Self> {
        config.validate()?;
        let (d, hd, kv) = (
            config.d_model,
            config.head_dim(),
            config.n_kv_heads * config.head_dim(),
        );
        let (b, s) = (config.bias, config.init_std);
        let norm = || -> Result<Option<LayerNorm>> {
            Ok(if config.qk_norm {
                Some(LayerNorm::new(hd, false, 1e-5, dtype)?)
            } else {
                None
            })
        };
        Ok(MultiHeadAttention {
            q_proj: Linear::normal(d, d, b, s, dtype, rng)?,
            k_proj: Linear::normal(d, kv, b, s, dtype, rng)?,
            v_proj: Linear::normal(d, kv, b, s, dtype, rng)?,
            o_proj: Linear::normal(d, d, b, config.out_std, dtype, rng)?,
            q_norm: norm()?,
            k_norm: norm()?,
            config,
        })
    }

    /// `[B, T, d_model]` to `q [B, H, T, hd]`, `k, v [B, Hkv, T, hd]`, qk-normalized if set.
    fn project(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        check_features("MultiHeadAttention", x, self.config.d_model, "d_model")?;
        if x.rank() != 3 {
            return Err(Error::ShapeMismatch {
                op: "MultiHeadAttention",
                shapes: vec![autograd::Shape::from_slice(x.shape())],
                reason: "input must be [batch, seq, d_model]".into(),
            });
        }
        let (b, t) = (x.shape()[0], x.shape()[1]);
        let c = &self.config;
        let hd = c.head_dim();
        let heads = |y: Tensor, h: usize, norm: &Option<LayerNorm>| -> Result<Tensor> {
            let y = y.reshape(&[b, t, h, hd])?;
            let y = match norm {
                Some(n) => n.forward(&y)?,
                None => y,
            };
            y.permute(&[0, 2, 1, 3])
        };
        Ok((
            heads(self.q_proj.forward(x)?, c.n_heads, &self.q_norm)?,
            heads(self.k_proj.forward(x)?, c.n_kv_heads, &self.k_norm)?,
            heads(self.v_proj.forward(x)?, c.n_kv_heads, &None)?,
        ))
    }

    /// `[B, H, T, hd]` back to `[B, T, d_model]`, then the output projection.
    fn merge(&self, y: &Tensor) -> Result<Tensor> {
        let (b, t) = (y.shape()[0], y.shape()[2]);
        let y = y.permute(&[0, 2, 1, 3])?.reshape(&[b, t, self.config.d_model])?;
        self.o_proj.forward(&y)
    }

    /// Self-attention of `x` (`[B, T, d_model]`) under `mask` (causal, diagonal, padding, ...)
    /// on the fused op (online softmax, no `T × T` buffer).
    pub fn forward(&self, x: &Tensor, mask: &AttentionMask) -> Result<AttentionResult> {
        let (q, k, v) = self.project(x)?;
        let a = attention(&q, &k, &v, mask, None)?;
        Ok(AttentionResult {
            out: self.merge(&a.out)?,
            max_logit: a.max_logit,
            mean_probs: None,
        })
    }

    /// The same function as [`MultiHeadAttention::forward`] through the materialized graph
    /// (`softmax(masked_fill(q kᵀ/sqrt(hd)))·v`), which also returns the head-averaged
    /// probabilities (SAITS feeds them to its combination weights). `blocked` is a bool
    /// `[T, T]` (or broadcastable to `[B, H, T, T]`) that is `true` where a query must not see a
    /// key; every row must keep at least one key.
    pub fn forward_unfused(&self, x: &Tensor, blocked: Option<&Tensor>) -> Result<AttentionResult> {
        let (q, k, v) = self.project(x)?;
        let c = &self.config;
        let (b, t, hd) = (q.shape()[0], q.shape()[2], c.head_dim());
        let group = c.n_heads / c.n_kv_heads;
        let repeat = |y: Tensor| -> Result<Tensor> {
            if group == 1 {
                return Ok(y);
            }
            y.unsqueeze(2)?
                .broadcast_to(&[b, c.n_kv_heads, group, t, hd])?
                .reshape(&[b, c.n_heads, t, hd])
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let logits = q.matmul(&k.t()?)?.mul_scalar(1.0 / (hd as f64).sqrt())?;
        let logits = match blocked {
            Some(m) => logits.masked_fill(m, f64::NEG_INFINITY)?,
            None => logits,
        };
        let max_logit = autograd::no_grad(|| -> Result<Tensor> {
            let finite = match blocked {
                Some(m) => logits.masked_fill(m, f64::MIN)?,
                None => logits.clone(),
            };
            finite.max(&[2, 3], false)
        })?;
        let probs = logits.softmax(-1)?;
        let out = probs.matmul(&v)?;
        Ok(AttentionResult {
            out: self.merge(&out)?,
            max_logit,
            mean_probs: Some(probs.mean(&[1], false)?),
        })
    }
}

/// A bool `[t, t]` mask, `true` where query `i` must not see key `j`: the future when `causal`,
/// itself when `diagonal` (for [`MultiHeadAttention::forward_unfused`]).
pub fn blocked_mask(t: usize, causal: bool, diagonal: bool, device: Device) -> Result<Tensor> {
    let v: Vec<u8> = (0..t * t)
        .map(|ij| {
            let (i, j) = (ij / t, ij % t);
            ((causal && j > i) || (diagonal && j == i)) as u8
        })
        .collect();
    Tensor::from_vec(v, &[t, t], Device::Cpu)?.to_device(device)
}

impl Module for MultiHeadAttention {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child(&self.q_proj, "q_proj", f);
        visit_child(&self.k_proj, "k_proj", f);
        visit_child(&self.v_proj, "v_proj", f);
        visit_child(&self.o_proj, "o_proj", f);
        if let Some(n) = &self.q_norm {
            visit_child(n, "q_norm", f);
        }
        if let Some(n) = &self.k_norm {
            visit_child(n, "k_norm", f);
        }
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        visit_child_mut(&mut self.q_proj, "q_proj", f)?;
        visit_child_mut(&mut self.k_proj, "k_proj", f)?;
        visit_child_mut(&mut self.v_proj, "v_proj", f)?;
        visit_child_mut(&mut self.o_proj, "o_proj", f)?;
        if let Some(n) = &mut self.q_norm {
            visit_child_mut(n, "q_norm", f)?;
        }
        if let Some(n) = &mut self.k_norm {
            visit_child_mut(n, "k_norm", f)?;
        }
        Ok(())
    }
}
