//! The optimizers: hyperparameters, validation, and how each step's kernel configuration is
//! derived. The element updates themselves are `kernels::optim::cpu` (and `optim.cu`).

use super::cuda::{self, CudaStep, Item};
use super::dispatch::{self, Kernel};
use autograd::{Error, Result, Tensor};
use kernels::optim::cpu::{self, RngOffsets};
use kernels::optim::{Elem, Kappa};
use kernels::Float;
use std::fmt;

/// What one tensor's update needs to know about this step.
#[derive(Clone, Copy, Debug)]
pub struct StepContext {
    /// This tensor's 1-based step count (bias corrections, SGD's first momentum step).
    pub t: u64,
    /// The schedule multiplier `s_t` (1 without a schedule); the group's lr is multiplied by it.
    pub multiplier: f64,
    /// Multiplies every gradient element first: the global-norm clip factor, or 1.
    pub grad_scale: f64,
    pub seed: u64,
    pub rng: RngOffsets,
    /// Round bf16 parameters stochastically.
    pub stochastic_rounding: bool,
    /// UPGD: the largest utility over every tensor after pass 1 (−∞ when none).
    pub global_max: f64,
}

/// An update rule with its hyperparameters (one value per parameter group).
pub trait Algorithm: Clone + fmt::Debug + Send + Sync + 'static {
    /// The family, recorded in checkpoints and checked on load.
    const KIND: &'static str;
    /// The name errors use (e.g. "Signum" for the Lion family with β1 = β2).
    fn name(&self) -> &'static str {
        Self::KIND
    }
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
    fn validate(&self) -> Result<()>;
    /// The per-parameter state buffers, each shaped like the parameter.
    fn state_names(&self) -> &'static [&'static str];
    /// Whether a step draws Gaussian noise (so the optimizer reserves Philox blocks for it).
    fn draws_noise(&self) -> bool {
        false
    }
    /// Whether a pass over every tensor must run before any update ([`Algorithm::pre_pass`]).
    fn has_pre_pass(&self) -> bool {
        false
    }
    /// Pass 1 on one tensor; its result feeds `StepContext::global_max` by a max.
    fn pre_pass(&self, _ctx: &StepContext, _p: &Tensor, _g: &Tensor, _state: &[Tensor]) -> Result<f64> {
        Ok(f64::NEG_INFINITY)
    }
    /// The update of one tensor, in place.
    fn update(&self, ctx: &StepContext, p: &Tensor, g: &Tensor, state: &[Tensor]) -> Result<()>;
    /// The f32 `optim.cu` config of this step on CUDA (`ctx`'s Philox offsets aside, which are
    /// per tensor). `Some` lets the optimizer update every CUDA tensor of a group that shares
    /// a device, dtype and step count in one launch; `None` (the default) makes it call
    /// [`Algorithm::pre_pass`] / [`Algorithm::update`] per tensor instead.
    fn cuda_step(&self, _ctx: &StepContext) -> Option<CudaStep> {
        None
    }
}

fn item<'a>(ctx: &'a StepContext, p: &'a Tensor, g: &'a Tensor, state: &'a [Tensor]) -> Item<'a> {
    Item { p, g, state, ctx }
}

/// How decoupled weight decay is scaled, or whether it is the coupled L2 penalty. With base
/// learning rate α, schedule multiplier s_t (`lr_t = α·s_t`) and coefficient λ, one step removes
/// the fraction `decay` of the parameter (`p ← p·(1 − decay)`) before the gradient step:
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightDecay {
    /// `decay = lr_t·λ`: PyTorch's `AdamW` and optax's `adamw` (λ is coupled to the lr).
    Library,
    /// `decay = s_t·λ`: Loshchilov and Hutter's Algorithm 2, where the schedule multiplier
    /// η_t scales both the Adam step α and the decay λ.
    Paper,
    /// `decay = s_t·λ`, not scaled by the lr: Wortsman et al.'s "independent" decay ([28]).
    /// The arithmetic equals `Paper`; [28] itself notes it is the original decoupling. It is a
    /// separate name because the two papers tune λ on different scales (λ ≈ 1e-4 in [28]).
    Independent,
    /// No decoupled decay: `λ·p` is added to the gradient (the Adam-L2 baseline, and what
    /// `torch.optim.SGD`'s `weight_decay` does).
    CoupledL2,
}

impl WeightDecay {
    /// `(decay, l2)` for this step.
    pub(crate) fn resolve(self, lr: f64, multiplier: f64, lambda: f64) -> (f64, f64) {
        match self {
            WeightDecay::Library => (lr * multiplier * lambda, 0.0),
            WeightDecay::Paper | WeightDecay::Independent => (multiplier * lambda, 0.0),
            WeightDecay::CoupledL2 => (0.0, lambda),
        }
    }
}

fn invalid(op: &'static str, reason: String) -> Error {
    Error::InvalidArgument { op, reason }
}

fn check_lr(op: &'static str, lr: f64) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(invalid(op, format!("learning rate {lr} must be finite and >= 0")));
    }
    Ok(())
}

fn check_beta(op: &'static str, name: &str, b: f64) -> Result<()> {
    if !(0.0..1.0).contains(&b) {
        return Err(invalid(op, format!("{name} = {b} must lie in [0, 1)")));
    }
    Ok(())
}

fn check_decay(op: &'static str, wd: f64) -> Result<()> {
    if !(wd.is_finite() && wd >= 0.0) {
        return Err(invalid(op, format!("weight decay {wd} must be finite and >= 0")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) on Adam
/// (Kingma and Ba, "Adam: A Method for Stochastic Optimization", 2015):
///
/// ```text
/// m_t = β1·m + (1−β1)·g;   v_t = β2·v + (1−β2)·g²;   m̂ = m_t/(1−β1ᵗ);   v̂ = v_t/(1−β2ᵗ)
/// θ_t = θ_{t−1}·(1 − decay_t) − lr_t·m̂/(√v̂ + ε)
/// ```
///
/// with `decay_t` from [`WeightDecay`] (`CoupledL2` instead adds λθ to g: Adam with L2).
/// Defaults are PyTorch's `torch.optim.AdamW`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub decay_mode: WeightDecay,
    pub bias_correction: bool,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            decay_mode: WeightDecay::Library,
            bias_correction: true,
        }
    }
}

struct AdamWKernel<'a>(&'a AdamW, &'a StepContext);

impl Kernel for AdamWKernel<'_> {
    fn run<P: Elem, G: Elem<Math = P::Math>>(
        &self,
        p: &mut [P],
        g: &[G],
        state: &mut [&mut [P::Math]],
    ) -> f64 {
        let (h, c) = (self.0, self.1);
        let cfg = cuda::adamw_config::<P::Math>(h, c);
        let [m, v] = state else {
            unreachable!("AdamW keeps m and v")
        };
        cpu::adamw(&cfg, p, g, m, v, c.rng);
        0.0
    }
}

impl Algorithm for AdamW {
    const KIND: &'static str = "AdamW";
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn validate(&self) -> Result<()> {
        check_lr("AdamW", self.lr)?;
        check_beta("AdamW", "beta1", self.betas.0)?;
        check_beta("AdamW", "beta2", self.betas.1)?;
        check_decay("AdamW", self.weight_decay)?;
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid(
                "AdamW",
                format!("eps {} must be finite and > 0", self.eps),
            ));
        }
        Ok(())
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }
    fn update(&self, ctx: &StepContext, p: &Tensor, g: &Tensor, state: &[Tensor]) -> Result<()> {
        if cuda::is_cuda(p) {
            let step = CudaStep::AdamW(cuda::adamw_config(self, ctx));
            return cuda::update_one(self.name(), step, item(ctx, p, g, state));
        }
        dispatch::run(&AdamWKernel(self, ctx), p, g, state).map(drop)
    }
    fn cuda_step(&self, ctx: &StepContext) -> Option<CudaStep> {
        Some(CudaStep::AdamW(cuda::adamw_config(self, ctx)))
    }
}

// ---------------------------------------------------------------------------------------------

/// Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023) and
/// Lion-κ (Chen, Liu, Liang and Liu, "Lion Secretly Solves Constrained Optimization, As
/// Lyapunov Predicts", ICLR 2024):
///
/// ```text
/// c_t = β1·m + (1−β1)·g;   θ_t = θ_{t−1}·(1 − decay_t) − lr_t·∇κ(c_t);   m_t = β2·m + (1−β2)·g
/// ```
///
/// `κ = ℓ1` (∇κ = sign) is Lion; [`Kappa`] also offers the per-tensor ℓ2 norm and a Huber κ.
/// With library decay (`decay = lr_t·λ`) and `lr_t·λ <= 1`, ‖θ‖∞ <= 1/λ is forward-invariant.
/// `β1 = β2` is Signum (Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex
/// Problems", ICML 2018) with decoupled decay; `momentum = false` is signSGD, `θ −= lr·∇κ(g)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Lion {
    pub lr: f64,
    pub betas: (f64, f64),
    pub weight_decay: f64,
    pub decay_mode: WeightDecay,
    pub kappa: Kappa,
    /// `false`: no momentum buffer (signSGD and its κ variants).
    pub momentum: bool,
}

impl Default for Lion {
    fn default() -> Self {
        Lion {
            lr: 1e-4,
            betas: (0.9, 0.99),
            weight_decay: 0.0,
            decay_mode: WeightDecay::Library,
            kappa: Kappa::L1,
            momentum: true,
        }
    }
}

impl Lion {
    /// Signum: sign of the EMA momentum `m_t = β·m + (1−β)·g`.
    pub fn signum(lr: f64, beta: f64) -> Lion {
        Lion {
            lr,
            betas: (beta, beta),
            ..Lion::default()
        }
    }

    /// signSGD: `θ −= lr·sign(g)`.
    pub fn sign_sgd(lr: f64) -> Lion {
        Lion {
            lr,
            betas: (0.0, 0.0),
            momentum: false,
            ..Lion::default()
        }
    }
}

struct LionKernel<'a>(&'a Lion, &'a StepContext);

impl Kernel for LionKernel<'_> {
    fn run<P: Elem, G: Elem<Math = P::Math>>(
        &self,
        p: &mut [P],
        g: &[G],
        state: &mut [&mut [P::Math]],
    ) -> f64 {
        let (h, c) = (self.0, self.1);
        let cfg = cuda::lion_config::<P::Math>(h, c);
        let m: &mut [P::Math] = match state {
            [m] => m,
            _ => &mut [],
        };
        let inv_norm = if h.kappa == Kappa::L2 {
            let s = cpu::lion_sumsq(&cfg, g, m);
            P::Math::from_f64(if s > 0.0 { 1.0 / s.sqrt() } else { 0.0 })
        } else {
            P::Math::ZERO
        };
        cpu::lion(&cfg, p, g, m, inv_norm, c.rng);
        0.0
    }
}

impl Algorithm for Lion {
    const KIND: &'static str = "Lion";
    fn name(&self) -> &'static str {
        match (self.momentum, self.betas.0 == self.betas.1) {
            (false, _) => "signSGD",
            (true, true) => "Signum",
            (true, false) => "Lion",
        }
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn validate(&self) -> Result<()> {
        let op = self.name();
        check_lr(op, self.lr)?;
        check_beta(op, "beta1", self.betas.0)?;
        check_beta(op, "beta2", self.betas.1)?;
        check_decay(op, self.weight_decay)?;
        if self.decay_mode == WeightDecay::CoupledL2 && self.weight_decay != 0.0 {
            return Err(invalid(
                op,
                "Lion's weight decay is decoupled; CoupledL2 is not defined for it".into(),
            ));
        }
        if let Kappa::Huber { delta } = self.kappa {
            if !(delta.is_finite() && delta > 0.0) {
                return Err(invalid(op, format!("Huber delta {delta} must be finite and > 0")));
            }
        }
        Ok(())
    }
    fn state_names(&self) -> &'static [&'static str] {
        if self.momentum {
            &["exp_avg"]
        } else {
            &[]
        }
    }
    fn update(&self, ctx: &StepContext, p: &Tensor, g: &Tensor, state: &[Tensor]) -> Result<()> {
        if cuda::is_cuda(p) {
            let step = CudaStep::Lion(cuda::lion_config(self, ctx));
            return cuda::update_one(self.name(), step, item(ctx, p, g, state));
        }
        dispatch::run(&LionKernel(self, ctx), p, g, state).map(drop)
    }
    fn cuda_step(&self, ctx: &StepContext) -> Option<CudaStep> {
        Some(CudaStep::Lion(cuda::lion_config(self, ctx)))
    }
}

// ---------------------------------------------------------------------------------------------

/// SGD with momentum, dampening and Nesterov momentum (Sutskever et al., "On the importance of
/// initialization and momentum in deep learning", ICML 2013), with `torch.optim.SGD`'s
/// semantics, and SGDW (Loshchilov and Hutter 2019) with a decoupled [`WeightDecay`]:
///
/// ```text
/// g ← g + λθ (CoupledL2);   b_1 = g,  b_t = μ·b + (1−τ)·g;   d = g + μ·b_t (Nesterov) or b_t
/// θ_t = θ_{t−1}·(1 − decay_t) − lr_t·d
/// ```
///
/// The paper's SGDW accumulates `η_t·α·g` in the buffer; with a constant lr the two agree,
/// with a schedule ours applies `lr_t` at the step, as PyTorch and optax do.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub decay_mode: WeightDecay,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            lr: 1e-2,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            decay_mode: WeightDecay::CoupledL2,
        }
    }
}

impl Sgd {
    /// SGDW: momentum SGD with decoupled (library-scaled) weight decay.
    pub fn sgdw(lr: f64, momentum: f64, weight_decay: f64) -> Sgd {
        Sgd {
            lr,
            momentum,
            weight_decay,
            decay_mode: WeightDecay::Library,
            ..Sgd::default()
        }
    }
}

struct SgdKernel<'a>(&'a Sgd, &'a StepContext);

impl Kernel for SgdKernel<'_> {
    fn run<P: Elem, G: Elem<Math = P::Math>>(
        &self,
        p: &mut [P],
        g: &[G],
        state: &mut [&mut [P::Math]],
    ) -> f64 {
        let (h, c) = (self.0, self.1);
        let cfg = cuda::sgd_config::<P::Math>(h, c);
        let b: &mut [P::Math] = match state {
            [b] => b,
            _ => &mut [],
        };
        cpu::sgd(&cfg, p, g, b, c.rng);
        0.0
    }
}

impl Algorithm for Sgd {
    const KIND: &'static str = "SGD";
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn validate(&self) -> Result<()> {
        check_lr("SGD", self.lr)?;
        check_beta("SGD", "momentum", self.momentum)?;
        check_decay("SGD", self.weight_decay)?;
        if !(0.0..=1.0).contains(&self.dampening) {
            return Err(invalid(
                "SGD",
                format!("dampening {} must lie in [0, 1]", self.dampening),
            ));
        }
        if self.nesterov && (self.momentum == 0.0 || self.dampening != 0.0) {
            return Err(invalid(
                "SGD",
                "Nesterov momentum needs momentum > 0 and zero dampening".into(),
            ));
        }
        Ok(())
    }
    fn state_names(&self) -> &'static [&'static str] {
        if self.momentum > 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        }
    }
    fn update(&self, ctx: &StepContext, p: &Tensor, g: &Tensor, state: &[Tensor]) -> Result<()> {
        if cuda::is_cuda(p) {
            let step = CudaStep::Sgd(cuda::sgd_config(self, ctx));
            return cuda::update_one(self.name(), step, item(ctx, p, g, state));
        }
        dispatch::run(&SgdKernel(self, ctx), p, g, state).map(drop)
    }
    fn cuda_step(&self, ctx: &StepContext) -> Option<CudaStep> {
        Some(CudaStep::Sgd(cuda::sgd_config(self, ctx)))
    }
}

// ---------------------------------------------------------------------------------------------

/// UPGD, utility-based perturbed gradient descent (Elsayed and Mahmood, "Addressing Loss of
/// Plasticity and Catastrophic Forgetting in Continual Learning", ICLR 2024; first circulated as
/// "Utility-based Perturbed Gradient Descent: An Optimizer for Continual Learning", 2023),
/// first-order global form as in the authors' released `UPGD` class:
///
/// ```text
/// U ← β_U·U + (1−β_U)·(−g⊙θ);   ū = sigmoid((U/(1−β_Uᵗ)) / max_global U);   ξ ~ N(0, σ²)
/// θ ← θ·(1 − decay_t) − 2·lr_t·(g + ξ)⊙(1 − ū)
/// ```
///
/// The max runs over every parameter of every group (a pass before any update). The factor 2
/// is the released code's (`alpha=-2.0*lr`): neutral utilities (ū = ½) then take a plain lr
/// step, and with σ = 0 and zero utilities UPGD is SGDW bit for bit. `protect_gradient = false`
/// is the "non-protecting" variant, `θ ← θ·(1 − decay) − lr·(g + ξ⊙(1 − ū))`; `gating = false`
/// fixes ū = ½ (the noise-only ablation). Defaults are the authors' README values.
#[derive(Clone, Debug, PartialEq)]
pub struct Upgd {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta_utility: f64,
    pub sigma: f64,
    pub decay_mode: WeightDecay,
    pub protect_gradient: bool,
    pub gating: bool,
}

impl Default for Upgd {
    fn default() -> Self {
        Upgd {
            lr: 1e-5,
            weight_decay: 1e-3,
            beta_utility: 0.999,
            sigma: 1e-3,
            decay_mode: WeightDecay::Library,
            protect_gradient: true,
            gating: true,
        }
    }
}

struct UpgdKernel<'a> {
    h: &'a Upgd,
    c: &'a StepContext,
    pass1: bool,
}

impl Kernel for UpgdKernel<'_> {
    fn run<P: Elem, G: Elem<Math = P::Math>>(
        &self,
        p: &mut [P],
        g: &[G],
        state: &mut [&mut [P::Math]],
    ) -> f64 {
        let cfg = cuda::upgd_config::<P::Math>(self.h, self.c);
        let [u] = state else {
            unreachable!("UPGD keeps one utility buffer")
        };
        if self.pass1 {
            return cpu::upgd_utility(&cfg, p, g, u).to_f64();
        }
        let scale = cfg.util_scale(P::Math::from_f64(self.c.global_max));
        cpu::upgd_update(&cfg, scale, p, g, u, self.c.rng);
        0.0
    }
}

impl Algorithm for Upgd {
    const KIND: &'static str = "UPGD";
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn validate(&self) -> Result<()> {
        check_lr("UPGD", self.lr)?;
        check_beta("UPGD", "beta_utility", self.beta_utility)?;
        check_decay("UPGD", self.weight_decay)?;
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return Err(invalid(
                "UPGD",
                format!("sigma {} must be finite and >= 0", self.sigma),
            ));
        }
        if self.decay_mode == WeightDecay::CoupledL2 && self.weight_decay != 0.0 {
            return Err(invalid(
                "UPGD",
                "UPGD's weight decay is decoupled; CoupledL2 is not defined for it".into(),
            ));
        }
        Ok(())
    }
    fn state_names(&self) -> &'static [&'static str] {
        &["utility"]
    }
    fn draws_noise(&self) -> bool {
        self.sigma > 0.0
    }
    fn has_pre_pass(&self) -> bool {
        true
    }
    fn pre_pass(&self, ctx: &StepContext, p: &Tensor, g: &Tensor, state: &[Tensor]) -> Result<f64> {
        if cuda::is_cuda(p) {
            let step = CudaStep::Upgd(cuda::upgd_config(self, ctx));
            return cuda::utility_max_one(step, item(ctx, p, g, state));
        }
        dispatch::run(
            &UpgdKernel {
                h: self,
                c: ctx,
                pass1: true,
            },
            p,
            g,
            state,
        )
    }
    fn update(&self, ctx: &StepContext, p: &Tensor, g: &Tensor, state: &[Tensor]) -> Result<()> {
        if cuda::is_cuda(p) {
            let step = CudaStep::Upgd(cuda::upgd_config(self, ctx));
            return cuda::update_one("UPGD", step, item(ctx, p, g, state));
        }
        dispatch::run(
            &UpgdKernel {
                h: self,
                c: ctx,
                pass1: false,
            },
            p,
            g,
            state,
        )
        .map(drop)
    }
    fn cuda_step(&self, ctx: &StepContext) -> Option<CudaStep> {
        Some(CudaStep::Upgd(cuda::upgd_config(self, ctx)))
    }
}
