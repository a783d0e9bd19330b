//! Optimizers over autograd tensors: parameter groups, `step`, an optional global-norm clip, a
//! schedule, and checkpoints that resume bit for bit.
//!
//! ```no_run
//! # use autograd::{DType, Device, Tensor};
//! # use nn::optim::{AdamW, Optimizer};
//! # use nn::schedule::Schedule;
//! # fn main() -> autograd::Result<()> {
//! let w = Tensor::zeros(&[4, 3], DType::F32, Device::Cpu)?.set_requires_grad(true);
//! let b = Tensor::zeros(&[4], DType::F32, Device::Cpu)?.set_requires_grad(true);
//! let mut opt = Optimizer::new(vec![w.clone()], AdamW { lr: 1e-3, ..AdamW::default() })?;
//! opt.add_group(vec![b.clone()], AdamW { weight_decay: 0.0, ..AdamW::default() })?;
//! opt.set_schedule(Some(Schedule::Cosine { warmup: 100, total: 10_000, final_value: 0.1 }))?;
//! opt.set_clip_grad_norm(Some(1.0))?;
//! # let x = Tensor::ones(&[2, 3], DType::F32, Device::Cpu)?;
//! let loss = x.matmul(&w.t()?)?.add(&b)?.pow_scalar(2.0)?.mean_all()?;
//! let grads = loss.backward()?;
//! opt.step(&grads)?;
//! # Ok(()) }
//! ```
//!
//! # What `zero_grad` means here
//!
//! `backward()` returns the gradients as a value ([`Gradients`]) instead of adding them into
//! buffers on the parameters, so there is nothing to zero between steps: [`Optimizer::step`]
//! reads the gradients it is given, and dropping them is PyTorch's `zero_grad(set_to_none=True)`.
//! For gradient accumulation over micro-batches the optimizer keeps its own buffers:
//! [`Optimizer::accumulate`] adds gradients into them, [`Optimizer::step_accumulated`] steps
//! with their sum, and [`Optimizer::zero_grad`] clears them.
//!
//! # State, resume and randomness
//!
//! Each parameter has its own step count (bias corrections) and buffers, created as zeros when
//! it joins a group; [`Optimizer::save_state`] writes them with the optimizer's step count,
//! Philox seed and offset to a safetensors buffer, and [`Optimizer::load_state`] restores them
//! exactly. Hyperparameters and the schedule are configuration: the loading code constructs
//! them again (the checkpoint records them as text for reference). bf16 stochastic rounding and
//! UPGD's noise draw from one Philox stream whose offset advances by what each step used.
//!
//! A parameter with no gradient in a step is skipped (its step count does not advance), as
//! PyTorch skips `p.grad is None`. Every gradient is checked before anything is updated, so a
//! bad one leaves parameters and state untouched.

mod algorithms;
mod checkpoint;
mod cuda;
mod dispatch;

pub use algorithms::{AdamW, Algorithm, Lion, Sgd, StepContext, Upgd, WeightDecay};
pub use cuda::CudaStep;
pub use kernels::optim::Kappa;

/// A CUDA batch's key: group, device, dtype and the tensors' step count (one config each).
type BatchKey = (usize, autograd::Device, autograd::DType, u64);

use crate::schedule::Schedule;
use autograd::{Error, Gradients, Result, Tensor};
use cuda::Item;
use kernels::optim::cpu::RngOffsets;
use kernels::optim::launch::rng_blocks;

/// Parameters that share hyperparameters.
#[derive(Clone, Debug)]
pub struct Group<A> {
    pub params: Vec<Tensor>,
    pub hyper: A,
}

#[derive(Clone, Debug)]
pub(crate) struct ParamState {
    /// Steps this parameter has taken.
    pub(crate) t: u64,
    pub(crate) buffers: Vec<Tensor>,
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Steps taken, this one included.
    pub step: u64,
    /// The schedule multiplier used (1 without a schedule).
    pub multiplier: f64,
    /// The global gradient norm, when clipping computed it.
    pub grad_norm: Option<f64>,
    /// The factor gradients were scaled by (1 unless clipped).
    pub grad_scale: f64,
    /// Parameters that had a gradient and were updated.
    pub updated: usize,
}

/// An optimizer running algorithm `A` over parameter groups.
#[derive(Clone, Debug)]
pub struct Optimizer<A: Algorithm> {
    groups: Vec<Group<A>>,
    state: Vec<Vec<ParamState>>,
    step: u64,
    schedule: Option<Schedule>,
    clip: Option<f64>,
    seed: u64,
    rng_offset: u64,
    stochastic_rounding: bool,
    accumulated: Vec<Vec<Option<Tensor>>>,
}

impl<A: Algorithm> Optimizer<A> {
    /// An optimizer with one group.
    pub fn new(params: Vec<Tensor>, hyper: A) -> Result<Self> {
        let mut opt = Optimizer {
            groups: Vec::new(),
            state: Vec::new(),
            step: 0,
            schedule: None,
            clip: None,
            seed: 0,
            rng_offset: 0,
            stochastic_rounding: false,
            accumulated: Vec::new(),
        };
        opt.add_group(params, hyper)?;
        Ok(opt)
    }

    /// Adds a group with its own hyperparameters. Parameters must be contiguous f32, f64 or
    /// bf16 CPU tensors, and no parameter may share storage with another of this optimizer.
    pub fn add_group(&mut self, params: Vec<Tensor>, hyper: A) -> Result<()> {
        let op = hyper.name();
        hyper.validate()?;
        for (k, p) in params.iter().enumerate() {
            dispatch::check_param(op, p)?;
            let earlier = self.groups.iter().flat_map(|g| &g.params).chain(&params[..k]);
            if earlier.clone().any(|q| q.shares_storage_with(p)) {
                return Err(Error::InvalidArgument {
                    op,
                    reason: format!("parameter {k} of the new group shares storage with another parameter"),
                });
            }
        }
        let mut states = Vec::with_capacity(params.len());
        for p in &params {
            let dtype = dispatch::state_dtype(p.dtype());
            let buffers = hyper
                .state_names()
                .iter()
                .map(|_| Tensor::zeros(p.shape(), dtype, p.device()))
                .collect::<Result<Vec<_>>>()?;
            states.push(ParamState { t: 0, buffers });
        }
        self.accumulated.push(vec![None; params.len()]);
        self.state.push(states);
        self.groups.push(Group { params, hyper });
        Ok(())
    }

    pub fn groups(&self) -> &[Group<A>] {
        &self.groups
    }

    /// The hyperparameters of group `i`, to change them between steps (checked at the next).
    pub fn hyper_mut(&mut self, i: usize) -> Option<&mut A> {
        self.groups.get_mut(i).map(|g| &mut g.hyper)
    }

    /// Steps taken so far: the `t` the schedule is evaluated at next.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The state buffers of `param` (in the order of `Algorithm::state_names`) and its step count.
    pub fn state_of(&self, param: &Tensor) -> Option<(u64, &[Tensor])> {
        self.position(param).map(|(g, i)| {
            let s = &self.state[g][i];
            (s.t, &s.buffers[..])
        })
    }

    fn position(&self, param: &Tensor) -> Option<(usize, usize)> {
        self.groups.iter().enumerate().find_map(|(g, grp)| {
            grp.params
                .iter()
                .position(|p| p.shares_storage_with(param))
                .map(|i| (g, i))
        })
    }

    pub fn set_schedule(&mut self, schedule: Option<Schedule>) -> Result<()> {
        if let Some(s) = &schedule {
            s.validate()?;
        }
        self.schedule = schedule;
        Ok(())
    }

    /// Scale all gradients by `min(1, max_norm / (‖g‖₂ + 1e-6))` over every parameter with a
    /// gradient (`torch.nn.utils.clip_grad_norm_`); fused into the update as its gradient scale.
    pub fn set_clip_grad_norm(&mut self, max_norm: Option<f64>) -> Result<()> {
        if let Some(m) = max_norm {
            if !(m.is_finite() && m > 0.0) {
                return Err(Error::InvalidArgument {
                    op: "clip_grad_norm",
                    reason: format!("max_norm {m} must be finite and > 0"),
                });
            }
        }
        self.clip = max_norm;
        Ok(())
    }

    /// The Philox seed of stochastic rounding and noise.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Round bf16 parameters stochastically instead of to nearest.
    pub fn set_stochastic_rounding(&mut self, on: bool) {
        self.stochastic_rounding = on;
    }

    /// One step with the gradients of a `backward()`.
    pub fn step(&mut self, grads: &Gradients) -> Result<StepReport> {
        self.step_with(|p| grads.get(p).cloned())
    }

    /// One step with gradients from any source (`grad_of(param)`, `None` to skip a parameter).
    pub fn step_with(&mut self, grad_of: impl Fn(&Tensor) -> Option<Tensor>) -> Result<StepReport> {
        let mut work = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            group.hyper.validate()?;
            for (i, p) in group.params.iter().enumerate() {
                if let Some(grad) = grad_of(p) {
                    check_grad(group.hyper.name(), p, &grad)?;
                    work.push((g, i, grad));
                }
            }
        }
        autograd::no_grad(|| self.apply(&work))
    }

    fn apply(&mut self, work: &[(usize, usize, Tensor)]) -> Result<StepReport> {
        let (grad_norm, grad_scale) = match self.clip {
            None => (None, 1.0),
            Some(max_norm) => {
                let mut total = 0.0;
                for (_, _, g) in work {
                    total += dispatch::grad_sumsq(g)?;
                }
                let norm = total.sqrt();
                if !norm.is_finite() {
                    return Err(Error::InvalidArgument {
                        op: "clip_grad_norm",
                        reason: format!("the global gradient norm is {norm}; nothing was updated"),
                    });
                }
                (Some(norm), (max_norm / (norm + 1e-6)).min(1.0))
            }
        };
        let multiplier = self.schedule.as_ref().map_or(1.0, |s| s.at(self.step));
        // Philox blocks for each tensor's draws, in a fixed order, so a resumed run draws the same.
        let mut offset = self.rng_offset;
        let mut contexts = Vec::with_capacity(work.len());
        for (g, i, _) in work {
            let p = &self.groups[*g].params[*i];
            let rounding = self.stochastic_rounding && p.dtype() == autograd::DType::BF16;
            let (noise, round) = rng_blocks(p.numel(), self.groups[*g].hyper.draws_noise(), rounding);
            contexts.push(StepContext {
                t: self.state[*g][*i].t + 1,
                multiplier,
                grad_scale,
                seed: self.seed,
                rng: RngOffsets {
                    noise: offset,
                    round: offset + noise,
                },
                stochastic_rounding: rounding,
                global_max: f64::NEG_INFINITY,
            });
            offset += noise + round;
        }
        // CUDA tensors of algorithms with a CUDA config go in batches (one launch each, see
        // `cuda`); everything else is updated tensor by tensor. Every table is uploaded before
        // anything is launched, so an unsupported dtype leaves every parameter untouched.
        let mut batches: Vec<(BatchKey, &'static str, CudaStep, Vec<Item>)> = Vec::new();
        let mut single = Vec::new();
        for (k, ((g, i, grad), ctx)) in work.iter().zip(&contexts).enumerate() {
            let group = &self.groups[*g];
            let p = &group.params[*i];
            let step = if cuda::is_cuda(p) {
                group.hyper.cuda_step(ctx)
            } else {
                None
            };
            let Some(step) = step else {
                single.push(k);
                continue;
            };
            let it = Item {
                p,
                g: grad,
                state: &self.state[*g][*i].buffers,
                ctx,
            };
            let key = (*g, p.device(), p.dtype(), ctx.t);
            match batches.iter_mut().find(|b| b.0 == key) {
                Some(b) => b.3.push(it),
                None => batches.push((key, group.hyper.name(), step, vec![it])),
            }
        }
        let plan = cuda::Plan::new(
            batches
                .into_iter()
                .map(|(_, op, s, items)| (op, s, items))
                .collect(),
        )?;
        plan.pass1()?;
        let mut global_max = f64::NEG_INFINITY;
        let mut host_pre_pass = false;
        for &k in &single {
            let ((g, i, grad), ctx) = (&work[k], &contexts[k]);
            let group = &self.groups[*g];
            if group.hyper.has_pre_pass() {
                let m = group
                    .hyper
                    .pre_pass(ctx, &group.params[*i], grad, &self.state[*g][*i].buffers)?;
                global_max = global_max.max(m);
                host_pre_pass = true;
            }
        }
        // UPGD's max stays on the device unless it must meet maxima from elsewhere.
        let mixed = plan.has_upgd() && (host_pre_pass || plan.upgd_devices() > 1);
        if mixed {
            global_max = global_max.max(plan.download_max()?);
        }
        plan.update(mixed.then_some(global_max))?;
        drop(plan);
        for &k in &single {
            let ((g, i, grad), ctx) = (&work[k], &mut contexts[k]);
            ctx.global_max = global_max;
            let group = &self.groups[*g];
            group
                .hyper
                .update(ctx, &group.params[*i], grad, &self.state[*g][*i].buffers)?;
        }
        for (g, i, _) in work {
            self.state[*g][*i].t += 1;
        }
        self.step += 1;
        self.rng_offset = offset;
        Ok(StepReport {
            step: self.step,
            multiplier,
            grad_norm,
            grad_scale,
            updated: work.len(),
        })
    }

    /// Adds `grads` into the optimizer's accumulation buffers (f32 and f64 gradients).
    pub fn accumulate(&mut self, grads: &Gradients) -> Result<()> {
        for (g, group) in self.groups.iter().enumerate() {
            for (i, p) in group.params.iter().enumerate() {
                let Some(grad) = grads.get(p) else { continue };
                check_grad(group.hyper.name(), p, grad)?;
                let slot = &mut self.accumulated[g][i];
                match slot {
                    Some(acc) => autograd::no_grad(|| acc.add_scaled_(grad, 1.0))?,
                    None => {
                        let acc = grad.zeros_like()?;
                        autograd::no_grad(|| acc.add_scaled_(grad, 1.0))?;
                        *slot = Some(acc);
                    }
                }
            }
        }
        Ok(())
    }

    /// One step with the accumulated gradients (their sum; scale the loss for a mean). The
    /// buffers are kept: call [`Optimizer::zero_grad`] before accumulating the next batch.
    pub fn step_accumulated(&mut self) -> Result<StepReport> {
        let acc = self.accumulated.clone();
        let groups = self.groups.clone();
        self.step_with(|p| {
            groups.iter().zip(&acc).find_map(|(grp, a)| {
                let i = grp.params.iter().position(|q| q.shares_storage_with(p))?;
                a[i].clone()
            })
        })
    }

    /// Drops the accumulated gradients (`zero_grad(set_to_none=True)`).
    pub fn zero_grad(&mut self) {
        for group in &mut self.accumulated {
            group.iter_mut().for_each(|slot| *slot = None);
        }
    }
}

fn check_grad(op: &'static str, p: &Tensor, grad: &Tensor) -> Result<()> {
    if grad.shape() != p.shape() {
        return Err(Error::ShapeMismatch {
            op,
            shapes: vec![p.shape().into(), grad.shape().into()],
            reason: "a gradient must have its parameter's shape".into(),
        });
    }
    if !dispatch::grad_dtype_ok(p.dtype(), grad.dtype()) {
        return Err(Error::DTypeMismatch {
            op,
            dtypes: vec![p.dtype(), grad.dtype()],
        });
    }
    if grad.device() != p.device() {
        return Err(Error::DeviceMismatch {
            op,
            devices: vec![p.device(), grad.device()],
        });
    }
    Ok(())
}
