//! Masked softmax, masked log-softmax and a fused, masked cross-entropy with label smoothing,
//! ignore_index, z-loss and focal weighting: CPU reference (`cpu`), CUDA source
//! (`masked_xent.cu`) and its launch shapes (`launch`).
//!
//! # Masking (METHODS.md [369], [52])
//! A [`ClassMask`] says which classes of each row take part. A masked logit is replaced by a
//! stop-gradient constant m (the *mask value*): z̃_c = x_c if c is allowed, else m.
//! * m = -inf (a hard mask): masked classes get probability exactly 0 and gradient exactly 0.
//! * finite m: each masked class adds the constant e^m to the partition function
//!   Z = Σ_c e^{z̃_c}, so it has probability e^{m − lse}, and still gradient exactly 0.
//!   (m = +inf or NaN is rejected by the autograd ops.)
//!
//! "Exactly 0" is by construction, not by arithmetic: the backward writes +0.0 over every
//! masked entry, so it holds even where the masked logits are huge, infinite or NaN.
//!
//! # Masked softmax
//!   y = softmax(z̃), log-softmax: y = z̃ − lse(z̃). A row with every class masked gives, for
//!   m = -inf, softmax 0 and log-softmax -inf (as `softmax::cpu` does for an all -inf row);
//!   for finite m the uniform distribution. Its gradient is 0.
//!
//! # Cross-entropy: one row r with logits x (C classes), target t, A allowed classes
//!   lse   = ln(Σ_{c allowed} e^{x_c} + (C − A)·e^m)           (the (C − A)·e^m term only for finite m)
//!   p_c   = e^{z̃_c − lse}
//!   q_c   = (1 − ε)·[c = t] + ε/A  for allowed c, 0 for masked c        (label smoothing ε)
//!   ce    = −Σ_c q_c·ln p_c = lse − (1 − ε)·z̃_t − ε·mean_{c allowed} x_c
//!   w     = (1 − p_t)^γ                                                 (focal weight, γ ≥ 0)
//!   loss  = w·ce + λ·lse²                                               (z-loss coefficient λ)
//! so label smoothing spreads ε over the *allowed* classes only (over all C, as PyTorch, when
//! nothing is masked; a hard-masked class cannot receive probability mass), the focal factor
//! multiplies the smoothed cross-entropy but not the z-loss, and the z-loss uses the same lse
//! as the loss, masked constants included. With ε = γ = λ = 0 and no mask this is exactly
//! `F.cross_entropy`, and `loss::cpu::cross_entropy` is computed by this code.
//!
//! Gradient (allowed c; masked c get exactly 0), with a = γ·(1 − p_t)^{γ−1}·p_t·ce:
//!   ∂loss/∂x_c = β·p_c − off − T·[c = t],   β = w + a + 2λ·lse,  off = w·ε/A,  T = w·(1 − ε) + a
//! The forward stores these three per-row numbers ([`RowCoef`]) beside lse, so the backward is
//! one streaming pass, `dx_c = g_r·(β·e^{x_c − lse} − off) − g_r·T·[c = t]`, that recomputes
//! the probabilities from lse instead of keeping a [rows, C] buffer.
//! At p_t = 1 with 0 < γ < 1, ∂w is infinite; a is taken as 0 there.
//!
//! # ignore_index and reductions (applied by the caller on the per-row losses)
//! A row whose target equals `ignore_index` has loss 0 and gradient 0, and does not count in
//! a mean: `Mean` = Σ loss / (rows not ignored), as PyTorch (also with label smoothing). Its
//! lse is still computed and returned. Per-row (unreduced) losses are the `loss` vector itself.
//!
//! # Bad input (kernel level; the autograd op turns these into errors, see its docs)
//! * a row with no finite allowed logit (every class hard-masked, or all -inf): lse = -inf,
//!   loss +inf, gradient 0 (as `loss::cpu` for an all -inf row);
//! * a masked target: its z̃_t is m, so loss +inf for m = -inf; the op rejects it;
//! * NaN at an allowed class: lse and loss NaN; +inf: lse +inf. The op rejects both. NaN or inf
//!   at a masked class is never read into the result;
//! * a target outside 0..C that is not ignore_index: a caller bug here (panic); the op returns
//!   `IndexOutOfRange`, the CUDA kernel sets an error flag instead of reading out of bounds.

pub mod cost;
pub mod cpu;
pub mod cuda;
pub mod launch;
pub mod mask;

pub use cpu::{Bf16, Logit};
pub use mask::{ClassMask, ClassRange, RowMask};

/// What the fused cross-entropy computes besides the plain loss (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct XentOptions {
    /// m: the constant that replaces masked logits; -inf for a hard mask.
    pub mask_value: f64,
    /// ε in [0, 1): mass spread uniformly over the allowed classes.
    pub label_smoothing: f64,
    /// Rows with this target contribute nothing.
    pub ignore_index: Option<i64>,
    /// λ ≥ 0: adds λ·lse² per row ([28]: 1e-4).
    pub z_loss: f64,
    /// γ ≥ 0: multiplies the cross-entropy by (1 − p_t)^γ ([52]).
    pub focal_gamma: f64,
}

impl Default for XentOptions {
    fn default() -> Self {
        XentOptions {
            mask_value: f64::NEG_INFINITY,
            label_smoothing: 0.0,
            ignore_index: None,
            z_loss: 0.0,
            focal_gamma: 0.0,
        }
    }
}

/// The three per-row numbers the backward needs: `dx_c = g·(β·p_c − off) − g·target·[c = t]`.
/// `#[repr(C)]` so that a buffer of them is the CUDA kernel's `float3`-like array.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct RowCoef<T> {
    pub beta: T,
    pub off: T,
    pub target: T,
}

impl<T: crate::Float> RowCoef<T> {
    /// The coefficients of a row that contributes nothing (ignored, or no finite logit).
    pub fn zero() -> Self {
        RowCoef {
            beta: T::ZERO,
            off: T::ZERO,
            target: T::ZERO,
        }
    }
}

/// Per-row results of the fused cross-entropy forward.
#[derive(Clone, Debug, PartialEq)]
pub struct XentRows<T> {
    /// The per-row (per-token) loss; 0 for ignored rows.
    pub loss: Vec<T>,
    /// ln Z of the masked logits, per row.
    pub lse: Vec<T>,
    /// Saved for the backward.
    pub coef: Vec<RowCoef<T>>,
}

#[cfg(test)]
mod tests;
