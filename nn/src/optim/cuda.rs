//! The optimizer step on CUDA parameters: the per-step configs (built here for both the CPU and
//! the CUDA paths) and the grouped launches of `optim.cu` through `kernels::optim::cuda`.
//!
//! What runs on CUDA: AdamW (every decay mode), Lion / Signum / signSGD with every κ (the ℓ2 κ
//! adds a per-tensor norm pass on the device), SGD / SGDW, and UPGD (utility pass, a device-side
//! global max over every UPGD tensor of the optimizer, perturbed update); f32 parameters with
//! f32 gradients and bf16 parameters with bf16 gradients (the kernels read the gradient in the
//! parameter's dtype), f32 state, optional stochastic rounding of bf16 parameters and UPGD's
//! noise from the same Philox offsets the CPU uses. What does not, each a
//! `NotImplementedOnDevice` naming the optimizer: f64 parameters (no f64 kernels), bf16
//! parameters with f32 gradients.
//!
//! # Batches
//!
//! A step's CUDA tensors are cut into batches of one group, one device, one dtype and one step
//! count (the config, bias corrections included, is per launch; the Philox offsets are per
//! tensor in the table). Each batch is one launch of the multi-tensor kernel over a device-side
//! table, whatever its number of tensors (the ℓ2 κ: three launches; UPGD: two). In a usual run
//! every parameter of a group has the same step count, so a group is one batch per dtype.
//!
//! # UPGD's global max
//!
//! Pass 1 of every UPGD batch of a device writes its per-block maxima into one buffer of that
//! device, at its own offset; pass 2 of every batch reduces the whole buffer, so the max is over
//! every UPGD tensor and never leaves the device. Only when the step also has UPGD tensors on
//! the CPU or on another device are the maxima read back, combined on the host with the CPU's,
//! and the one global value is uploaded for pass 2 (a sync, only in that mixed case).

use super::algorithms::{AdamW, Lion, Sgd, StepContext, Upgd};
use autograd::{DType, Device, Error, Result, Tensor};
use kernels::cuda::{CudaDevice, CudaError, DeviceBuffer, FloatType};
use kernels::optim::config::ROUND_STOCHASTIC;
use kernels::optim::cuda::{self as launch, GroupTables};
use kernels::optim::launch::OptimTensor;
use kernels::optim::{AdamWConfig, LionConfig, SgdConfig, UpgdConfig};
use kernels::Float;
use std::sync::Arc;

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

/// UPGD's per-step config (the noise is keyed by the seed whether or not rounding is on).
pub(crate) fn upgd_config<M: Float>(h: &Upgd, c: &StepContext) -> UpgdConfig<M> {
    let (decay, _) = h.decay_mode.resolve(h.lr, c.multiplier, h.weight_decay);
    let lr = h.lr * c.multiplier;
    let mut cfg = UpgdConfig::<M>::new(
        lr,
        h.beta_utility,
        c.t,
        h.sigma,
        decay,
        h.protect_gradient,
        h.gating,
        c.seed,
    );
    cfg.grad_scale = M::from_f64(c.grad_scale);
    if c.stochastic_rounding {
        cfg.stochastic_rounding = ROUND_STOCHASTIC;
    }
    cfg
}

/// The f32 kernel config of one step of an algorithm on CUDA (what an `optim.cu` launch takes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CudaStep {
    AdamW(AdamWConfig),
    Lion(LionConfig),
    Sgd(SgdConfig),
    Upgd(UpgdConfig),
}

pub(crate) fn is_cuda(p: &Tensor) -> bool {
    p.device() != Device::Cpu
}

/// One tensor of a step: its parameter, gradient, state buffers and context.
#[derive(Clone, Copy)]
pub(crate) struct Item<'a> {
    pub p: &'a Tensor,
    pub g: &'a Tensor,
    pub state: &'a [Tensor],
    pub ctx: &'a StepContext,
}

fn cuda_err(op: &'static str) -> impl Fn(CudaError) -> Error {
    move |e| Error::InvalidArgument {
        op,
        reason: format!("CUDA: {e}"),
    }
}

/// One launch's worth of tensors, with its tables on the device.
struct Batch {
    op: &'static str,
    dev: Arc<CudaDevice>,
    device: Device,
    dt: FloatType,
    step: CudaStep,
    tables: GroupTables,
    /// Contiguous gradients (copies of strided ones), alive until the launches are issued.
    _grads: Vec<Tensor>,
    /// UPGD: f32 index of this batch's first block maximum in its device's maxima buffer.
    max_offset: usize,
}

impl Batch {
    /// Checks dtypes and uploads the table of `items` (one device, one dtype, one config).
    fn new(op: &'static str, step: CudaStep, items: &[Item]) -> Result<Batch> {
        let first = items[0].p;
        let dt = match (first.dtype(), items[0].g.dtype()) {
            (DType::F32, DType::F32) => FloatType::F32,
            (DType::BF16, DType::BF16) => FloatType::BF16,
            _ => {
                return Err(Error::NotImplementedOnDevice {
                    op,
                    device: first.device(),
                })
            }
        };
        let (dev, _) = first.cuda_raw_parts()?;
        let mut table = Vec::with_capacity(items.len());
        let mut grads = Vec::with_capacity(items.len());
        for it in items {
            if it.p.dtype() != first.dtype()
                || it.g.dtype() != it.p.dtype()
                || it.p.device() != first.device()
            {
                return Err(Error::InvalidArgument {
                    op,
                    reason: "a CUDA batch mixes dtypes or devices (an optimizer bug)".into(),
                });
            }
            // The kernels read gradients contiguously; a strided gradient is copied first.
            let g = if it.g.is_contiguous() {
                it.g.clone()
            } else {
                it.g.contiguous()?
            };
            let state = |i: usize| -> Result<u64> {
                it.state.get(i).map_or(Ok(0), |s| s.cuda_raw_parts().map(|x| x.1))
            };
            table.push(OptimTensor {
                param: it.p.cuda_raw_parts()?.1,
                grad: g.cuda_raw_parts()?.1,
                state0: state(0)?,
                state1: state(1)?,
                numel: it.p.numel() as i64,
                noise_offset: it.ctx.rng.noise,
                round_offset: it.ctx.rng.round,
                first_chunk: 0,
                num_chunks: 0,
            });
            grads.push(g);
        }
        let tables = GroupTables::upload(&dev, &table).map_err(cuda_err(op))?;
        Ok(Batch {
            op,
            dev,
            device: first.device(),
            dt,
            step,
            tables,
            _grads: grads,
            max_offset: 0,
        })
    }

    fn is_upgd(&self) -> bool {
        matches!(self.step, CudaStep::Upgd(_))
    }

    /// UPGD pass 1 into `block_max` (this batch's slot of its device's maxima buffer).
    fn pass1(&self, maxima: &DeviceBuffer) -> Result<()> {
        let CudaStep::Upgd(cfg) = &self.step else {
            return Ok(());
        };
        let at = maxima.ptr() + (self.max_offset * size_of::<f32>()) as u64;
        // SAFETY: the table holds each tensor's parameter, contiguous gradient (kept alive in
        // `_grads`) and utility buffer, all live, of the parameter's length and of the checked
        // dtypes; `maxima` has room for this batch's blocks from `max_offset` (`Plan::new`).
        unsafe { launch::upgd_utility(&self.dev, self.dt, cfg, &self.tables, 0, at) }
            .map_err(cuda_err(self.op))
    }

    /// The update launch(es). `maxima`: UPGD's block maxima (address, count) on this device.
    fn update(&self, maxima: Option<(u64, usize)>) -> Result<()> {
        let (dev, dt, t) = (&self.dev, self.dt, &self.tables);
        // SAFETY: as in `pass1`: every table entry is live memory of `dev` with the buffers
        // each kernel expects (AdamW: m and v; Lion: m or null; SGD: buffer or null; UPGD: U),
        // checked dtypes, f32 state; UPGD's maxima were written earlier on the same stream.
        let r = unsafe {
            match &self.step {
                CudaStep::AdamW(cfg) => launch::adamw(dev, dt, cfg, t, 0),
                CudaStep::Lion(cfg) => launch::lion(dev, dt, cfg, t, 0),
                CudaStep::Sgd(cfg) => launch::sgd(dev, dt, cfg, t, 0),
                CudaStep::Upgd(cfg) => {
                    let (ptr, count) = maxima.expect("UPGD batches get maxima from the plan");
                    launch::upgd_update(dev, dt, cfg, t, 0, ptr, count)
                }
            }
        };
        r.map_err(cuda_err(self.op))
    }
}

/// The CUDA part of one step: its batches and UPGD's per-device maxima buffers.
pub(crate) struct Plan {
    batches: Vec<Batch>,
    /// Per device with UPGD batches: the buffer of every pass-1 block maximum and its length.
    maxima: Vec<(Device, DeviceBuffer, usize)>,
}

impl Plan {
    /// Uploads every batch's table and lays out UPGD's maxima; launches nothing, so an error
    /// here leaves every parameter untouched.
    pub(crate) fn new(batches: Vec<(&'static str, CudaStep, Vec<Item>)>) -> Result<Plan> {
        let mut built = Vec::with_capacity(batches.len());
        for (op, step, items) in batches {
            if !items.is_empty() {
                built.push(Batch::new(op, step, &items)?);
            }
        }
        let mut maxima: Vec<(Device, DeviceBuffer, usize)> = Vec::new();
        let mut devices: Vec<(Device, usize)> = Vec::new();
        for b in built.iter_mut().filter(|b| b.is_upgd()) {
            let blocks = b.tables.grid_blocks(&b.dev);
            match devices.iter_mut().find(|(d, _)| *d == b.device) {
                Some((_, n)) => {
                    b.max_offset = *n;
                    *n += blocks;
                }
                None => devices.push((b.device, blocks)),
            }
        }
        for (device, n) in devices {
            let dev = &built
                .iter()
                .find(|b| b.device == device)
                .expect("a batch of it")
                .dev;
            // At least one entry, so pass 2 has a valid address even for all-empty tensors.
            let buf = dev.alloc(n.max(1) * size_of::<f32>()).map_err(cuda_err("UPGD"))?;
            if n == 0 {
                dev.copy_to_device(&[f32::NEG_INFINITY], &buf, 0)
                    .map_err(cuda_err("UPGD"))?;
            }
            maxima.push((device, buf, n.max(1)));
        }
        Ok(Plan {
            batches: built,
            maxima,
        })
    }

    /// Whether the step has UPGD tensors on CUDA.
    pub(crate) fn has_upgd(&self) -> bool {
        !self.maxima.is_empty()
    }

    /// Whether UPGD's maxima span more than one device (so they must meet on the host).
    pub(crate) fn upgd_devices(&self) -> usize {
        self.maxima.len()
    }

    /// UPGD pass 1 of every batch.
    pub(crate) fn pass1(&self) -> Result<()> {
        for b in self.batches.iter().filter(|b| b.is_upgd()) {
            let (_, buf, _) = self
                .maxima
                .iter()
                .find(|m| m.0 == b.device)
                .expect("laid out in new");
            b.pass1(buf)?;
        }
        Ok(())
    }

    /// The max over every device's pass-1 maxima, read back (a sync; the mixed case only).
    pub(crate) fn download_max(&self) -> Result<f64> {
        let mut max = f64::NEG_INFINITY;
        for (device, buf, n) in &self.maxima {
            let dev = &self
                .batches
                .iter()
                .find(|b| b.device == *device)
                .expect("a batch of it")
                .dev;
            let mut host = vec![0.0f32; *n];
            dev.copy_to_host(buf, 0, &mut host).map_err(cuda_err("UPGD"))?;
            // f32::max skips NaN, as fmaxf does on the device and the CPU pass does.
            max = host.iter().fold(max, |m, &x| m.max(x as f64));
        }
        Ok(max)
    }

    /// Every batch's update. `global_max`: the host-combined UPGD max to use instead of the
    /// device maxima (see [`Plan::download_max`]).
    pub(crate) fn update(&self, global_max: Option<f64>) -> Result<()> {
        let mut uploaded = Vec::new();
        if let Some(m) = global_max {
            for (device, _, _) in &self.maxima {
                let dev = &self
                    .batches
                    .iter()
                    .find(|b| b.device == *device)
                    .expect("a batch of it")
                    .dev;
                // Rounded to f32 as the CPU's `UpgdConfig<f32>::util_scale` rounds it.
                let buf = dev.upload(&[m as f32]).map_err(cuda_err("UPGD"))?;
                uploaded.push((*device, buf));
            }
        }
        for b in &self.batches {
            let maxima = if !b.is_upgd() {
                None
            } else if let Some((_, buf)) = uploaded.iter().find(|(d, _)| *d == b.device) {
                Some((buf.ptr(), 1))
            } else {
                let (_, buf, n) = self
                    .maxima
                    .iter()
                    .find(|m| m.0 == b.device)
                    .expect("laid out in new");
                Some((buf.ptr(), *n))
            };
            b.update(maxima)?;
        }
        Ok(())
    }
}

/// One tensor's update through a one-tensor plan: what `Algorithm::update` does when called
/// directly on a CUDA tensor (the optimizer itself batches). UPGD uses `ctx.global_max`.
pub(crate) fn update_one(op: &'static str, step: CudaStep, it: Item) -> Result<()> {
    let plan = Plan::new(vec![(op, step, vec![it])])?;
    plan.update(plan.has_upgd().then_some(it.ctx.global_max))
}

/// UPGD pass 1 of one CUDA tensor, its max read back (`Algorithm::pre_pass` called directly).
pub(crate) fn utility_max_one(step: CudaStep, it: Item) -> Result<f64> {
    let plan = Plan::new(vec![("UPGD", step, vec![it])])?;
    plan.pass1()?;
    plan.download_max()
}
