//! The per-step scalars of each optimizer, shared with `optim.cu` (which declares the same
//! structs for `M = f32`; the layout tests below pin sizes and offsets on the Rust side, and
//! `static_assert`s pin them on the CUDA side).
//!
//! Every derived number (`1 - beta`, the bias-corrected step size, the decay factor `keep`)
//! is computed here in f64 and rounded once to `M`, so the element updates on the CPU and the
//! GPU start from identical scalars. The fields that do not depend on the optimizer
//! (`grad_scale`, the Philox seed, the rounding mode) are public and set by the caller after
//! construction: they default to "no scaling, round to nearest".

use crate::Float;

/// Rounding modes of bf16 parameters (the `stochastic_rounding` field).
pub const ROUND_NEAREST: u32 = 0;
pub const ROUND_STOCHASTIC: u32 = 1;

fn split_seed(seed: u64) -> (u32, u32) {
    (seed as u32, (seed >> 32) as u32)
}

/// One AdamW / Adam-L2 step (`optim.cu`, `adamw_*`). With `g = grad * grad_scale`:
///
/// ```text
/// g = g + l2 * p                    (only when l2 != 0: the coupled Adam-L2 baseline)
/// p = p * keep                      (decoupled decay; keep = 1 - decay_t)
/// m = beta1 * m + one_minus_beta1 * g
/// v = beta2 * v + one_minus_beta2 * (g * g)
/// p = p - (step_size * m) / (sqrt(v) / bc2_sqrt + eps)
/// ```
///
/// `step_size = lr_t / (1 - beta1^t)` and `bc2_sqrt = sqrt(1 - beta2^t)`, the order of
/// PyTorch's fused AdamW (`FusedAdamKernel.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig<M = f32> {
    pub beta1: M,
    pub one_minus_beta1: M,
    pub beta2: M,
    pub one_minus_beta2: M,
    pub eps: M,
    pub step_size: M,
    pub bc2_sqrt: M,
    pub keep: M,
    pub l2: M,
    pub grad_scale: M,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub stochastic_rounding: u32,
    pub _pad: u32,
}

impl<M: Float> AdamWConfig<M> {
    /// `t` is the 1-based count of steps this tensor has taken, this one included; `decay` is
    /// the fraction of the parameter removed this step (`lr_t·λ`, `s_t·λ`, or 0); `l2` the
    /// coupled coefficient (0 unless Adam-L2). `bias_correction = false` uses `m` and `v` raw.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        t: u64,
        bias_correction: bool,
        decay: f64,
        l2: f64,
    ) -> Self {
        let (bc1, bc2) = if bias_correction {
            let t = t.min(i32::MAX as u64) as i32;
            (1.0 - beta1.powi(t), 1.0 - beta2.powi(t))
        } else {
            (1.0, 1.0)
        };
        AdamWConfig {
            beta1: M::from_f64(beta1),
            one_minus_beta1: M::from_f64(1.0 - beta1),
            beta2: M::from_f64(beta2),
            one_minus_beta2: M::from_f64(1.0 - beta2),
            eps: M::from_f64(eps),
            step_size: M::from_f64(lr / bc1),
            bc2_sqrt: M::from_f64(bc2.sqrt()),
            keep: M::from_f64(1.0 - decay),
            l2: M::from_f64(l2),
            grad_scale: M::ONE,
            seed_lo: 0,
            seed_hi: 0,
            stochastic_rounding: ROUND_NEAREST,
            _pad: 0,
        }
    }

    /// Round bf16 parameters stochastically with Philox bits from `seed`.
    pub fn with_stochastic_rounding(mut self, seed: u64) -> Self {
        (self.seed_lo, self.seed_hi) = split_seed(seed);
        self.stochastic_rounding = ROUND_STOCHASTIC;
        self
    }
}

/// Lion-κ's map from the interpolated momentum `c` to the update direction: a (sub)gradient
/// of a convex κ (Chen, Liu, Liang and Liu 2023). Every choice has `|∇κ(c)_i| <= 1`, so Lion's
/// box `‖x‖∞ <= 1/λ` stays forward-invariant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kappa {
    /// κ(x) = ‖x‖₁, ∇κ = sign (0 at 0): Lion itself.
    L1,
    /// κ(x) = ‖x‖₂ over each tensor, ∇κ = c / ‖c‖₂ (0 when c = 0). Needs a norm pass first.
    L2,
    /// κ(x) = Σ huber_δ(x_i) with huber_δ(x) = x²/(2δ) for |x| <= δ, |x| - δ/2 beyond:
    /// ∇κ = clamp(c/δ, -1, 1), a smooth sign.
    Huber { delta: f64 },
}

impl Kappa {
    /// The code `optim.cu` switches on (`kappa` field).
    pub fn code(self) -> u32 {
        match self {
            Kappa::L1 => 0,
            Kappa::L2 => 1,
            Kappa::Huber { .. } => 2,
        }
    }
}

/// One Lion-κ / Signum / signSGD step (`optim.cu`, `lion_*`). With `g = grad * grad_scale`:
///
/// ```text
/// c = beta1 * m + one_minus_beta1 * g     (c = g when there is no momentum buffer: signSGD)
/// u = ∇κ(c)                               (sign; c * inv_norm; clamp(c * huber_inv_delta, ±1))
/// p = p * keep
/// p = p - lr * u
/// m = beta2 * m + one_minus_beta2 * g
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LionConfig<M = f32> {
    pub beta1: M,
    pub one_minus_beta1: M,
    pub beta2: M,
    pub one_minus_beta2: M,
    pub lr: M,
    pub keep: M,
    pub huber_inv_delta: M,
    pub grad_scale: M,
    pub kappa: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub stochastic_rounding: u32,
}

impl<M: Float> LionConfig<M> {
    pub fn new(lr: f64, beta1: f64, beta2: f64, decay: f64, kappa: Kappa) -> Self {
        let inv_delta = match kappa {
            Kappa::Huber { delta } => 1.0 / delta,
            _ => 0.0,
        };
        LionConfig {
            beta1: M::from_f64(beta1),
            one_minus_beta1: M::from_f64(1.0 - beta1),
            beta2: M::from_f64(beta2),
            one_minus_beta2: M::from_f64(1.0 - beta2),
            lr: M::from_f64(lr),
            keep: M::from_f64(1.0 - decay),
            huber_inv_delta: M::from_f64(inv_delta),
            grad_scale: M::ONE,
            kappa: kappa.code(),
            seed_lo: 0,
            seed_hi: 0,
            stochastic_rounding: ROUND_NEAREST,
        }
    }

    pub fn with_stochastic_rounding(mut self, seed: u64) -> Self {
        (self.seed_lo, self.seed_hi) = split_seed(seed);
        self.stochastic_rounding = ROUND_STOCHASTIC;
        self
    }
}

/// One SGD / SGDW step with PyTorch's momentum semantics (`optim.cu`, `sgd_*`). With
/// `g = grad * grad_scale`:
///
/// ```text
/// g = g + l2 * p                                (only when l2 != 0: coupled decay)
/// p = p * keep                                  (decoupled decay: SGDW)
/// b = first_step ? g : momentum * b + one_minus_dampening * g     (when there is a buffer)
/// d = nesterov ? g + momentum * b : b           (d = g without a buffer)
/// p = p - lr * d
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig<M = f32> {
    pub lr: M,
    pub momentum: M,
    pub one_minus_dampening: M,
    pub keep: M,
    pub l2: M,
    pub grad_scale: M,
    pub nesterov: u32,
    pub first_step: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub stochastic_rounding: u32,
    pub _pad: u32,
}

impl<M: Float> SgdConfig<M> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lr: f64,
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        first_step: bool,
        decay: f64,
        l2: f64,
    ) -> Self {
        SgdConfig {
            lr: M::from_f64(lr),
            momentum: M::from_f64(momentum),
            one_minus_dampening: M::from_f64(1.0 - dampening),
            keep: M::from_f64(1.0 - decay),
            l2: M::from_f64(l2),
            grad_scale: M::ONE,
            nesterov: nesterov as u32,
            first_step: first_step as u32,
            seed_lo: 0,
            seed_hi: 0,
            stochastic_rounding: ROUND_NEAREST,
            _pad: 0,
        }
    }

    pub fn with_stochastic_rounding(mut self, seed: u64) -> Self {
        (self.seed_lo, self.seed_hi) = split_seed(seed);
        self.stochastic_rounding = ROUND_STOCHASTIC;
        self
    }
}

/// One UPGD step (Elsayed and Mahmood), in two passes (`optim.cu`, `upgd_utility_*` then
/// `upgd_update_*`). With `g = grad * grad_scale`:
///
/// ```text
/// pass 1, every tensor:  U = beta_u * U + one_minus_beta_u * (-(g * p));  gmax = max over all U
/// host or device:        util_scale = gate && bc*gmax finite and != 0 ? 1 / (bc * gmax) : 0
/// pass 2, every tensor:  s = sigmoid(U * util_scale) = 1 / (1 + exp(-(U * util_scale)))
///                        xi = sigma * N(0, 1)         (exactly 0, not drawn, when sigma = 0)
///                        p = p * keep
///   protecting (default): p = p - lr_gate * ((g + xi) * (1 - s))
///   non-protecting:       p = p - lr_gate * (g + xi * (1 - s))
/// ```
///
/// `bc = 1 - beta_u^t`. The authors' released UPGD multiplies the gated step by `2·lr`
/// (`alpha=-2.0*lr`), so that neutral utilities (s = 1/2) give a plain `lr` step; the host
/// passes `lr_gate = 2·lr` for the protecting form and `lr` for the non-protecting one, as in
/// their code. Dividing by `bc·gmax` once on the host side instead of twice per element is our
/// choice (it saves a division per element); `gmax <= 0` or non-finite is the authors' NaN/∞
/// case and is defined here as `util_scale = 0` (neutral utilities).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpgdConfig<M = f32> {
    pub beta_u: M,
    pub one_minus_beta_u: M,
    pub bias_correction: M,
    pub lr_gate: M,
    pub keep: M,
    pub sigma: M,
    pub grad_scale: M,
    pub protect_gradient: u32,
    pub gate: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub stochastic_rounding: u32,
}

impl<M: Float> UpgdConfig<M> {
    /// `t` is the 1-based step count; `seed` keys the noise (and, if enabled, the rounding).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lr: f64,
        beta_u: f64,
        t: u64,
        sigma: f64,
        decay: f64,
        protect_gradient: bool,
        gate: bool,
        seed: u64,
    ) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        let (seed_lo, seed_hi) = split_seed(seed);
        UpgdConfig {
            beta_u: M::from_f64(beta_u),
            one_minus_beta_u: M::from_f64(1.0 - beta_u),
            bias_correction: M::from_f64(1.0 - beta_u.powi(t)),
            lr_gate: M::from_f64(if protect_gradient { 2.0 * lr } else { lr }),
            keep: M::from_f64(1.0 - decay),
            sigma: M::from_f64(sigma),
            grad_scale: M::ONE,
            protect_gradient: protect_gradient as u32,
            gate: gate as u32,
            seed_lo,
            seed_hi,
            stochastic_rounding: ROUND_NEAREST,
        }
    }

    /// `1 / (bc · gmax)` in `M`, or 0 where that is undefined or gating is off. The CUDA update
    /// kernel computes the same expression on the device from the pass-1 block maxima.
    pub fn util_scale(&self, global_max: M) -> M {
        let d = self.bias_correction * global_max;
        if self.gate == 0 || !d.is_finite() || d == M::ZERO {
            M::ZERO
        } else {
            M::ONE / d
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed_lo as u64 | ((self.seed_hi as u64) << 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// `optim.cu` has matching `static_assert`s; a field added on one side only fails here or
    /// in the NVRTC compile check.
    #[test]
    fn layouts_match_optim_cu() {
        assert_eq!(size_of::<AdamWConfig>(), 56);
        assert_eq!(offset_of!(AdamWConfig, grad_scale), 36);
        assert_eq!(offset_of!(AdamWConfig, stochastic_rounding), 48);
        assert_eq!(size_of::<LionConfig>(), 48);
        assert_eq!(offset_of!(LionConfig, kappa), 32);
        assert_eq!(offset_of!(LionConfig, stochastic_rounding), 44);
        assert_eq!(size_of::<SgdConfig>(), 48);
        assert_eq!(offset_of!(SgdConfig, nesterov), 24);
        assert_eq!(offset_of!(SgdConfig, stochastic_rounding), 40);
        assert_eq!(size_of::<UpgdConfig>(), 48);
        assert_eq!(offset_of!(UpgdConfig, protect_gradient), 28);
        assert_eq!(offset_of!(UpgdConfig, stochastic_rounding), 44);
    }

    #[test]
    fn adamw_scalars() {
        let c = AdamWConfig::<f64>::new(0.1, 0.9, 0.999, 1e-8, 1, true, 0.01, 0.0);
        assert!((c.step_size - 0.1 / 0.1).abs() < 1e-12);
        assert!((c.bc2_sqrt - 0.001f64.sqrt()).abs() < 1e-15);
        assert_eq!(c.keep, 0.99);
        let raw = AdamWConfig::<f32>::new(0.1, 0.9, 0.999, 1e-8, 5, false, 0.0, 0.0);
        assert_eq!((raw.step_size, raw.bc2_sqrt, raw.keep), (0.1, 1.0, 1.0));
    }

    #[test]
    fn upgd_util_scale_edge_cases() {
        let c = UpgdConfig::<f32>::new(0.1, 0.9, 1, 0.0, 0.0, true, true, 7);
        assert_eq!(c.lr_gate, 0.2);
        assert_eq!(c.util_scale(0.0), 0.0);
        assert_eq!(c.util_scale(f32::NEG_INFINITY), 0.0);
        assert_eq!(c.util_scale(2.0), 1.0 / (c.bias_correction * 2.0));
        let off = UpgdConfig::<f32>::new(0.1, 0.9, 1, 0.0, 0.0, true, false, 7);
        assert_eq!(off.util_scale(2.0), 0.0);
        assert_eq!(off.seed(), 7);
    }
}
