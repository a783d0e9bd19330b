//! Scaled dot-product attention, forward and backward, with masks, GQA and side outputs.
//!
//! # What is computed
//!
//! For batch row `b`, query head `h` (using key/value head `h / (H / Hkv)`: consecutive query
//! heads share a KV head, as PyTorch's `enable_gqa` and JAX do), query `i` and key `j`:
//!
//! ```text
//! s[i, j] = scale · ⟨q_i, k_j⟩ + bias[b, h, i, j]     if the mask allows (i, j), else -inf
//! lse[i]  = log Σ_j exp(s[i, j])                        (-inf for a fully masked row)
//! out[i]  = Σ_j exp(s[i, j] - lse[i]) · v_j            (exactly 0 for a fully masked row)
//! max_logit[b, h] = max over allowed (i, j) of s[i, j]  (-inf when the head sees nothing)
//! ```
//!
//! Layouts (contiguous, row-major): `q`, `out` `[B, H, nq, D]`; `k`, `v` `[B, Hkv, nk, D]`;
//! `lse` `[B, H, nq]`; `max_logit` `[B, H]`. Default scale `1/sqrt(D)`.
//!
//! Backward (`dout` given; `P = exp(S - lse)`, `δ_i = ⟨dout_i, out_i⟩ = Σ_j P_ij dP_ij`):
//!
//! ```text
//! dV = Pᵀ dout    dP = dout Vᵀ    dS = P ∘ (dP − δ)    dQ = scale · dS K    dK = scale · dSᵀ Q
//! dbias = dS (summed over the bias's broadcast dimensions)
//! ```
//!
//! A fully masked row has `P = 0` and `out = 0`, so every gradient term from it is exactly 0.
//! `lse` and `max_logit` are statistics, not differentiated through.
//!
//! # Implementations
//!
//! * [`reference`]: materializes the `nq × nk` logits of one head at a time; plain loops, the
//!   definition to read first and what everything else is tested against.
//! * [`tiled`]: FlashAttention's algorithm on the CPU. Online softmax over key tiles in the
//!   forward; the backward recomputes `P` tile by tile from the saved `lse`. Extra memory is
//!   O(tile) per thread, never O(nq·nk).
//! * `attention_fwd.cu`, `attention_bwd.cu`: the same two algorithms on the GPU (see their
//!   headers); [`launch`] holds their launch configurations and entry names.

pub mod cost;
pub mod cuda;
pub mod launch;
pub mod mask;
pub mod reference;
#[cfg(test)]
mod tests;
pub mod tiled;

pub use mask::{Bias, BoolMask, Mask, TileKind};

use crate::Float;
use std::fmt;

/// The sizes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub head_dim: usize,
}

impl AttnShape {
    /// Query heads per KV head.
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
    pub fn q_elems(&self) -> usize {
        self.batch * self.heads * self.q_len * self.head_dim
    }
    pub fn kv_elems(&self) -> usize {
        self.batch * self.kv_heads * self.kv_len * self.head_dim
    }
    pub fn rows(&self) -> usize {
        self.batch * self.heads * self.q_len
    }
    /// Multiply-add FLOPs of the forward's two matmuls, `4·B·H·nq·nk·D` (no mask savings).
    pub fn forward_flops(&self) -> f64 {
        4.0 * (self.batch * self.heads * self.q_len * self.kv_len * self.head_dim) as f64
    }
}

/// What is wrong with the arguments of an attention call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttentionError {
    /// `heads` is not a positive multiple of `kv_heads`.
    Heads { heads: usize, kv_heads: usize },
    /// A buffer's length disagrees with the shape.
    Length {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    /// A key-padding length above `kv_len`, or a length list of the wrong size.
    KeyLengths { reason: String },
    /// A mask or bias stride pattern that reaches past its buffer.
    Strided {
        what: &'static str,
        needed: usize,
        len: usize,
    },
}

impl fmt::Display for AttentionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttentionError::Heads { heads, kv_heads } => write!(
                f,
                "query heads ({heads}) must be a positive multiple of key/value heads ({kv_heads})"
            ),
            AttentionError::Length { what, len, expected } => {
                write!(f, "{what} has {len} elements, the shape needs {expected}")
            }
            AttentionError::KeyLengths { reason } => write!(f, "key lengths: {reason}"),
            AttentionError::Strided { what, needed, len } => write!(
                f,
                "{what}: its strides reach element {needed} of a buffer of {len}"
            ),
        }
    }
}

impl std::error::Error for AttentionError {}

/// The inputs of one call: shape, q, k, v, mask, optional bias, scale.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a, T> {
    pub shape: AttnShape,
    pub q: &'a [T],
    pub k: &'a [T],
    pub v: &'a [T],
    pub mask: Mask<'a>,
    pub bias: Option<Bias<'a, T>>,
    pub scale: T,
}

/// The forward's outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward<T> {
    pub out: Vec<T>,
    pub lse: Vec<T>,
    pub max_logit: Vec<T>,
}

/// The backward's outputs; `dbias` has the bias buffer's length when requested.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads<T> {
    pub dq: Vec<T>,
    pub dk: Vec<T>,
    pub dv: Vec<T>,
    pub dbias: Option<Vec<T>>,
}

/// `1/sqrt(D)`, the default scale (1 for D = 0, which has no logits to scale).
pub fn default_scale<T: Float>(head_dim: usize) -> T {
    if head_dim == 0 {
        T::ONE
    } else {
        T::ONE / T::from_f64(head_dim as f64).sqrt()
    }
}

/// Largest element index a strided [B, H, nq, nk] view reads, plus one (0 when it reads none).
fn strided_extent(shape: &AttnShape, strides: [usize; 4], offset: usize) -> usize {
    let dims = [shape.batch, shape.heads, shape.q_len, shape.kv_len];
    if dims.contains(&0) {
        return 0;
    }
    offset + dims.iter().zip(strides).map(|(&d, s)| (d - 1) * s).sum::<usize>() + 1
}

impl<T: Float> Problem<'_, T> {
    /// Checks every length and index the kernels rely on, so that they can index freely.
    pub fn validate(&self) -> Result<(), AttentionError> {
        let s = &self.shape;
        if s.kv_heads == 0 || !s.heads.is_multiple_of(s.kv_heads) {
            return Err(AttentionError::Heads {
                heads: s.heads,
                kv_heads: s.kv_heads,
            });
        }
        for (what, len, expected) in [
            ("q", self.q.len(), s.q_elems()),
            ("k", self.k.len(), s.kv_elems()),
            ("v", self.v.len(), s.kv_elems()),
        ] {
            if len != expected {
                return Err(AttentionError::Length { what, len, expected });
            }
        }
        if let Some(lens) = self.mask.key_lengths {
            if lens.len() != s.batch {
                return Err(AttentionError::KeyLengths {
                    reason: format!("{} lengths for a batch of {}", lens.len(), s.batch),
                });
            }
            if let Some(&l) = lens.iter().find(|&&l| l > s.kv_len) {
                return Err(AttentionError::KeyLengths {
                    reason: format!("length {l} exceeds the {} keys", s.kv_len),
                });
            }
        }
        if let Some(m) = &self.mask.bool_mask {
            let needed = strided_extent(s, m.strides, m.offset);
            if needed > m.data.len() {
                return Err(AttentionError::Strided {
                    what: "boolean mask",
                    needed,
                    len: m.data.len(),
                });
            }
        }
        if let Some(bias) = &self.bias {
            let needed = strided_extent(s, bias.strides, bias.offset);
            if needed > bias.data.len() {
                return Err(AttentionError::Strided {
                    what: "bias",
                    needed,
                    len: bias.data.len(),
                });
            }
        }
        Ok(())
    }

    /// The logit of `(b, h, i, j)` from the rows `qi` and `kj`, or -inf where masked.
    #[inline]
    pub(crate) fn logit(
        &self,
        (b, h, i, j): (usize, usize, usize, usize),
        qi: &[T],
        kj: &[T],
        check: bool,
    ) -> T {
        let s = &self.shape;
        if check && !self.mask.allowed(b, h, i, j, s.q_len, s.kv_len) {
            return T::NEG_INFINITY;
        }
        self.finish_logit((b, h, i, j), dot(qi, kj), false)
    }

    /// The logit of `(b, h, i, j)` from its dot product `⟨q_i, k_j⟩`: scaled, biased, or -inf where
    /// masked (tested only when `check`).
    #[inline]
    pub(crate) fn finish_logit(&self, (b, h, i, j): (usize, usize, usize, usize), dot: T, check: bool) -> T {
        let s = &self.shape;
        if check && !self.mask.allowed(b, h, i, j, s.q_len, s.kv_len) {
            return T::NEG_INFINITY;
        }
        let mut x = self.scale * dot;
        if let Some(bias) = &self.bias {
            x += bias.at(b, h, i, j);
        }
        x
    }
}

pub(crate) use crate::float::dot;

/// `y += a · x`.
#[inline]
pub(crate) fn axpy<T: Float>(y: &mut [T], a: T, x: &[T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}
