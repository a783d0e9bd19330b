//! The optimizer step on CUDA parameters: the same per-step configs as the CPU kernels (built
//! here, for both), launched through `kernels::optim::cuda` on `optim.cu`.
//!
//! What runs on CUDA: AdamW (every decay mode), Lion / Signum / signSGD with the sign or Huber
//! κ, SGD / SGDW; f32 parameters with f32 gradients and bf16 parameters with bf16 gradients
//! (the kernels read the gradient in the parameter's dtype), f32 state, optional stochastic
//! rounding of bf16 parameters from the same Philox offsets the CPU uses. What does not, each
//! a `NotImplementedOnDevice` naming it: UPGD (its two-pass global-max launch has no launcher
//! yet), Lion's ℓ2 κ (its per-tensor norm pass likewise), f64 parameters (no f64 kernels),
//! bf16 parameters with f32 gradients.
//!
//! Each tensor is one launch of the multi-tensor kernel with a one-entry table: the optimizer
//! visits tensors one at a time (their step counts and therefore their configs may differ).
//! Folding a group into one launch is the obvious next step for many small tensors.

use super::algorithms::{AdamW, Lion, Sgd, StepContext};
use autograd::{DType, Error, Result, Tensor};
use kernels::cuda::FloatType;
use kernels::optim::cuda::{self as launch, GroupTables};
use kernels::optim::launch::OptimTensor;
use kernels::optim::{AdamWConfig, Kappa, LionConfig, SgdConfig};
use kernels::Float;

/// AdamW's per-step config for parameter math type `M` (shared by the CPU and CUDA paths).
pub(crate) fn adamw_config<M: Float>(h: &AdamW, c: &StepContext) -> AdamWConfig<M> {
    let lr = h.lr * c.multiplier;
    let (decay, l2) = h.decay_mode.resolve(h.lr, c.multiplier, h.weight_decay);
    let (b1, b2) = h.betas;
    let mut cfg = AdamWConfig::<M>::new(lr, b1, b2, h.eps, c.t, h.bias_correction, decay, l2);
    cfg.grad_scale = M::from_f64(c.grad_scale);
    match c.stochastic_rounding.then_some(c.seed) {
        Some(seed) => cfg.with_stochastic_rounding(seed),
        None => cfg,
    }
}

/// Lion's per-step config.
pub(crate) fn lion_config<M: Float>(h: &Lion, c: &StepContext) -> LionConfig<M> {
    let (decay, _) = h.decay_mode.resolve(h.lr, c.multiplier, h.weight_decay);
    let mut cfg = LionConfig::<M>::new(h.lr * c.multiplier, h.betas.0, h.betas.1, decay, h.kappa);
    cfg.grad_scale = M::from_f64(c.grad_scale);
    match c.stochastic_rounding.then_some(c.seed) {
        Some(seed) => cfg.with_stochastic_rounding(seed),
        None => cfg,
    }
}

/// SGD's per-step config.
pub(crate) fn sgd_config<M: Float>(h: &Sgd, c: &StepContext) -> SgdConfig<M> {
    let (decay, l2) = h.decay_mode.resolve(h.lr, c.multiplier, h.weight_decay);
    let lr = h.lr * c.multiplier;
    let mut cfg = SgdConfig::<M>::new(lr, h.momentum, h.dampening, h.nesterov, c.t == 1, decay, l2);
    cfg.grad_scale = M::from_f64(c.grad_scale);
    match c.stochastic_rounding.then_some(c.seed) {
        Some(seed) => cfg.with_stochastic_rounding(seed),
        None => cfg,
    }
}

pub(crate) fn is_cuda(p: &Tensor) -> bool {
    p.device() != autograd::Device::Cpu
}

/// The one-tensor table of `p` with its gradient and state, on `p`'s device.
fn table(
    op: &'static str,
    c: &StepContext,
    p: &Tensor,
    g: &Tensor,
    state: &[Tensor],
) -> Result<(FloatType, GroupTables, Tensor)> {
    let dt = match (p.dtype(), g.dtype()) {
        (DType::F32, DType::F32) => FloatType::F32,
        (DType::BF16, DType::BF16) => FloatType::BF16,
        _ => {
            return Err(Error::NotImplementedOnDevice {
                op,
                device: p.device(),
            })
        }
    };
    // The kernels read gradients contiguously; a strided gradient is copied first.
    let g = if g.is_contiguous() {
        g.clone()
    } else {
        g.contiguous()?
    };
    let (dev, param) = p.cuda_raw_parts()?;
    let (_, grad) = g.cuda_raw_parts()?;
    let ptr = |i: usize| -> Result<u64> { state.get(i).map_or(Ok(0), |s| s.cuda_raw_parts().map(|x| x.1)) };
    let t = OptimTensor {
        param,
        grad,
        state0: ptr(0)?,
        state1: ptr(1)?,
        numel: p.numel() as i64,
        noise_offset: c.rng.noise,
        round_offset: c.rng.round,
        first_chunk: 0,
        num_chunks: 0,
    };
    let tables = GroupTables::upload(&dev, &[t]).map_err(|e| Error::InvalidArgument {
        op,
        reason: format!("CUDA: {e}"),
    })?;
    // The gradient (possibly a copy) goes back to the caller, which keeps it until the launch
    // is issued.
    Ok((dt, tables, g))
}

fn launch_err(op: &'static str) -> impl Fn(kernels::cuda::CudaError) -> Error {
    move |e| Error::InvalidArgument {
        op,
        reason: format!("CUDA: {e}"),
    }
}

pub(crate) fn adamw(h: &AdamW, c: &StepContext, p: &Tensor, g: &Tensor, state: &[Tensor]) -> Result<()> {
    let (dt, t, _g) = table("AdamW", c, p, g, state)?;
    let dev = p.cuda_raw_parts()?.0;
    // SAFETY: the table holds p, g and the optimizer's m and v for p, all contiguous, live
    // and of p's length; f32 state, gradient in p's dtype (checked by `table`).
    unsafe { launch::adamw(&dev, dt, &adamw_config::<f32>(h, c), &t, 0) }.map_err(launch_err("AdamW"))
}

pub(crate) fn lion(h: &Lion, c: &StepContext, p: &Tensor, g: &Tensor, state: &[Tensor]) -> Result<()> {
    if h.kappa == Kappa::L2 {
        return Err(Error::NotImplementedOnDevice {
            op: "Lion with the l2 kappa",
            device: p.device(),
        });
    }
    let (dt, t, _g) = table("Lion", c, p, g, state)?;
    let dev = p.cuda_raw_parts()?.0;
    // SAFETY: as in `adamw`, with state0 = m or null (signSGD).
    unsafe { launch::lion(&dev, dt, &lion_config::<f32>(h, c), &t, 0) }.map_err(launch_err("Lion"))
}

pub(crate) fn sgd(h: &Sgd, c: &StepContext, p: &Tensor, g: &Tensor, state: &[Tensor]) -> Result<()> {
    let (dt, t, _g) = table("SGD", c, p, g, state)?;
    let dev = p.cuda_raw_parts()?.0;
    // SAFETY: as in `adamw`, with state0 = the momentum buffer or null.
    unsafe { launch::sgd(&dev, dt, &sgd_config::<f32>(h, c), &t, 0) }.map_err(launch_err("SGD"))
}
