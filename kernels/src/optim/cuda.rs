//! Launchers for `optim.cu`: the group tables on the device and the update launches. Every
//! kernel of the file has a [`KernelRef`] here (checked against the PTX by
//! `kernels/tests/nvrtc.rs`, including the config structs' sizes). AdamW, Lion (every
//! κ: the ℓ2 κ adds the per-tensor norm pass `sumsq_*` + `norm_finish`), SGD and UPGD's two
//! passes have launch functions, each one launch per group table whatever its tensor count.
//! `clip_finish` (the on-device global-norm clip) is declared but has no launcher yet.

use super::config::{AdamWConfig, Kappa, LionConfig, SgdConfig, UpgdConfig};
use super::launch::{plan_chunks, OptimChunk, OptimTensor};
use crate::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError, DeviceBuffer, FloatType};
use std::mem::size_of;

use ArgKind::{Ptr as P, F32 as F, F64, I32, I64 as I};

const SOURCE: &str = "optim.cu";

const fn st<T>() -> ArgKind {
    ArgKind::Struct(size_of::<T>())
}

const ADAMW: &[ArgKind] = &[st::<AdamWConfig>(), P, P, I32, I, P];
const LION: &[ArgKind] = &[st::<LionConfig>(), P, P, I32, I, P, P];
const SGD: &[ArgKind] = &[st::<SgdConfig>(), P, P, I32, I, P];
const UPGD_UTIL: &[ArgKind] = &[st::<UpgdConfig>(), P, P, I32, I, P, P];
const UPGD_UPDATE: &[ArgKind] = &[st::<UpgdConfig>(), P, P, I32, I, P, P, I32];
const SUMSQ: &[ArgKind] = &[F, F, I32, P, P, I32, I, P, P];
const NORM_FINISH: &[ArgKind] = &[P, P, I32, P, P];
const CLIP_FINISH: &[ArgKind] = &[P, I32, F64, P, P];

const fn kref(name: &'static str, params: &'static [ArgKind]) -> KernelRef {
    KernelRef {
        source: SOURCE,
        name,
        params,
    }
}

const ADAMW_K: [KernelRef; 2] = [kref("adamw_f32", ADAMW), kref("adamw_bf16", ADAMW)];
const LION_K: [KernelRef; 2] = [kref("lion_f32", LION), kref("lion_bf16", LION)];
const SGD_K: [KernelRef; 2] = [kref("sgd_f32", SGD), kref("sgd_bf16", SGD)];
const UPGD_UTIL_K: [KernelRef; 2] = [
    kref("upgd_utility_f32", UPGD_UTIL),
    kref("upgd_utility_bf16", UPGD_UTIL),
];
const UPGD_UPDATE_K: [KernelRef; 2] = [
    kref("upgd_update_f32", UPGD_UPDATE),
    kref("upgd_update_bf16", UPGD_UPDATE),
];
const SUMSQ_K: [KernelRef; 2] = [kref("sumsq_f32", SUMSQ), kref("sumsq_bf16", SUMSQ)];
const NORM_FINISH_K: KernelRef = kref("norm_finish", NORM_FINISH);

/// Every entry of `optim.cu` (14).
pub fn all_kernels() -> Vec<KernelRef> {
    let mut all: Vec<KernelRef> = [ADAMW_K, LION_K, SGD_K, UPGD_UTIL_K, UPGD_UPDATE_K, SUMSQ_K].concat();
    all.extend([NORM_FINISH_K, kref("clip_finish", CLIP_FINISH)]);
    all
}

fn pick(k: [KernelRef; 2], dt: FloatType) -> KernelRef {
    match dt {
        FloatType::F32 => k[0],
        FloatType::BF16 => k[1],
    }
}

/// Elements per chunk: a multiple of 4 (a thread's vector, a Philox block) large enough that
/// a chunk is a few thousand 16-byte loads per block, small enough that a 1M-parameter tensor
/// still spreads over many blocks.
pub const CHUNK_SIZE: usize = 65_536;
/// Threads per block of the update kernels.
pub const BLOCK: u32 = 256;

/// A group's tables on the device: what one update launch reads.
pub struct GroupTables {
    tensors: DeviceBuffer,
    chunks: DeviceBuffer,
    num_chunks: usize,
    num_tensors: usize,
}

impl GroupTables {
    /// Plans the chunks of `tensors` (their `numel`s; `first_chunk`/`num_chunks` are filled in
    /// here) and uploads both tables.
    pub fn upload(dev: &CudaDevice, tensors: &[OptimTensor]) -> Result<GroupTables, CudaError> {
        let numels: Vec<usize> = tensors.iter().map(|t| t.numel.max(0) as usize).collect();
        let plan = plan_chunks(&numels, CHUNK_SIZE).ok_or_else(|| {
            CudaError::Driver(format!("optimizer step: {} chunks do not fit i32", numels.len()))
        })?;
        let mut table = tensors.to_vec();
        for (t, &(first, count)) in table.iter_mut().zip(&plan.ranges) {
            t.first_chunk = first;
            t.num_chunks = count;
        }
        // An empty chunk list still needs a valid address for the kernel argument.
        let chunks: Vec<OptimChunk> = if plan.chunks.is_empty() {
            vec![OptimChunk::default()]
        } else {
            plan.chunks.clone()
        };
        Ok(GroupTables {
            tensors: dev.upload(&table)?,
            chunks: dev.upload(&chunks)?,
            num_chunks: plan.chunks.len(),
            num_tensors: table.len(),
        })
    }

    /// Chunks in the group (0 for a group with no elements: nothing is launched).
    pub fn num_chunks(&self) -> usize {
        self.num_chunks
    }

    /// Blocks an update launch over this group uses: what [`upgd_utility`] writes maxima for
    /// (0 when there is nothing to launch).
    pub fn grid_blocks(&self, dev: &CudaDevice) -> usize {
        if self.num_chunks == 0 {
            0
        } else {
            self.num_chunks.min(dev.sm_count() as usize * 8)
        }
    }

    fn config(&self, dev: &CudaDevice) -> cudarc::driver::LaunchConfig {
        let blocks = self.grid_blocks(dev).max(1);
        cudarc::driver::LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    fn common(&self) -> [Arg; 4] {
        [
            Arg::Ptr(self.tensors.ptr()),
            Arg::Ptr(self.chunks.ptr()),
            Arg::I32(self.num_chunks as i32),
            Arg::I64(CHUNK_SIZE as i64),
        ]
    }
}

/// One launch of `kernel` over the group: `[config, tables..., extra...]`. Nothing to do for
/// a group with no elements.
unsafe fn step(
    dev: &CudaDevice,
    kernel: KernelRef,
    config: Arg,
    t: &GroupTables,
    extra: &[Arg],
) -> Result<(), CudaError> {
    if t.num_chunks == 0 {
        return Ok(());
    }
    let mut args = vec![config];
    args.extend(t.common());
    args.extend_from_slice(extra);
    launch(dev, &kernel, t.config(dev), &args)
}

/// AdamW over a group. `grad_scale`: device address of one f32 scaling the gradients (the
/// on-device clip factor), or 0 to use `cfg.grad_scale`.
///
/// # Safety
/// Every address in the uploaded tables is live memory of `dev`: param and grad of `dt`
/// (bf16 grads for bf16 params), state0 = m and state1 = v f32, each `numel` long.
pub unsafe fn adamw(
    dev: &CudaDevice,
    dt: FloatType,
    cfg: &AdamWConfig,
    t: &GroupTables,
    grad_scale: u64,
) -> Result<(), CudaError> {
    step(
        dev,
        pick(ADAMW_K, dt),
        Arg::from_struct(cfg),
        t,
        &[Arg::Ptr(grad_scale)],
    )
}

/// Lion / Signum / signSGD (state0 = m, or 0 for no momentum), every κ. For the ℓ2 κ it
/// first computes each tensor's `1/‖c‖₂` on the device (`sumsq` per chunk, `norm_finish` per
/// tensor: the CPU's `lion_sumsq` up to the f64 summation order) and then updates: three
/// launches for the whole group; the sign and Huber κ are one.
///
/// # Safety
/// As [`adamw`], with state0 = m (or 0) and state1 = 0.
pub unsafe fn lion(
    dev: &CudaDevice,
    dt: FloatType,
    cfg: &LionConfig,
    t: &GroupTables,
    grad_scale: u64,
) -> Result<(), CudaError> {
    if t.num_chunks == 0 {
        return Ok(());
    }
    let (_norm_scratch, inv_norm) = if cfg.kappa == Kappa::L2.code() {
        let s = tensor_inv_norms(dev, dt, cfg, t, grad_scale)?;
        let ptr = s.2.ptr();
        (Some(s), ptr)
    } else {
        (None, 0)
    };
    step(
        dev,
        pick(LION_K, dt),
        Arg::from_struct(cfg),
        t,
        &[Arg::Ptr(grad_scale), Arg::Ptr(inv_norm)],
    )
}

/// The ℓ2 κ's norm pass: `(chunk sums, tensor sums, 1/‖c‖₂ per tensor)`, the last of which the
/// update reads. The buffers are returned so they outlive the launches that use them (the pool
/// reuses memory in stream order, so dropping them after issuing the update is safe).
unsafe fn tensor_inv_norms(
    dev: &CudaDevice,
    dt: FloatType,
    cfg: &LionConfig,
    t: &GroupTables,
    grad_scale: u64,
) -> Result<(DeviceBuffer, DeviceBuffer, DeviceBuffer, Option<DeviceBuffer>), CudaError> {
    // `sumsq` falls back to a scale of 1 without a pointer, so a host-side scale other than 1
    // travels as a one-float buffer: the CPU squares c computed from g·grad_scale.
    let scale_buf = if grad_scale == 0 && cfg.grad_scale != 1.0 {
        Some(dev.upload(&[cfg.grad_scale])?)
    } else {
        None
    };
    let gs = scale_buf.as_ref().map_or(grad_scale, |b| b.ptr());
    let chunk_sums = dev.alloc(t.num_chunks * size_of::<f64>())?;
    let tensor_sums = dev.alloc(t.num_tensors * size_of::<f64>())?;
    let inv_norm = dev.alloc(t.num_tensors * size_of::<f32>())?;
    let mut args = vec![Arg::F32(cfg.beta1), Arg::F32(cfg.one_minus_beta1), Arg::I32(1)];
    args.extend(t.common());
    args.extend([Arg::Ptr(gs), Arg::Ptr(chunk_sums.ptr())]);
    launch(dev, &pick(SUMSQ_K, dt), t.config(dev), &args)?;
    let blocks = t.num_tensors.clamp(1, dev.sm_count() as usize * 8);
    let finish = cudarc::driver::LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let args = [
        Arg::Ptr(chunk_sums.ptr()),
        Arg::Ptr(t.tensors.ptr()),
        Arg::I32(t.num_tensors as i32),
        Arg::Ptr(tensor_sums.ptr()),
        Arg::Ptr(inv_norm.ptr()),
    ];
    launch(dev, &NORM_FINISH_K, finish, &args)?;
    Ok((chunk_sums, tensor_sums, inv_norm, scale_buf))
}

/// SGD (momentum buffer in state0, or 0 for none) and SGDW.
///
/// # Safety
/// As [`adamw`], with state0 = momentum buffer (or 0) and state1 = 0.
pub unsafe fn sgd(
    dev: &CudaDevice,
    dt: FloatType,
    cfg: &SgdConfig,
    t: &GroupTables,
    grad_scale: u64,
) -> Result<(), CudaError> {
    step(
        dev,
        pick(SGD_K, dt),
        Arg::from_struct(cfg),
        t,
        &[Arg::Ptr(grad_scale)],
    )
}

/// UPGD pass 1 over a group: the utility EMA in place, and one maximum per block written to
/// `block_max[0 .. t.grid_blocks(dev)]` (−∞ from blocks that had no chunk). Several groups
/// share one maxima buffer by passing addresses at different offsets into it.
///
/// # Safety
/// As [`adamw`], with state0 = the utility U; `block_max` has room for `t.grid_blocks(dev)`
/// f32s.
pub unsafe fn upgd_utility(
    dev: &CudaDevice,
    dt: FloatType,
    cfg: &UpgdConfig,
    t: &GroupTables,
    grad_scale: u64,
    block_max: u64,
) -> Result<(), CudaError> {
    step(
        dev,
        pick(UPGD_UTIL_K, dt),
        Arg::from_struct(cfg),
        t,
        &[Arg::Ptr(grad_scale), Arg::Ptr(block_max)],
    )
}

/// UPGD pass 2 over a group: every block reduces `block_max[0 .. num_block_max]` (the maxima
/// of every pass-1 launch of the step, so the max is global over the optimizer's tensors) and
/// updates the parameters with the noise of each tensor's `noise_offset`.
///
/// # Safety
/// As [`upgd_utility`]; `block_max` holds `num_block_max >= 1` f32s written before this
/// launch in stream order.
pub unsafe fn upgd_update(
    dev: &CudaDevice,
    dt: FloatType,
    cfg: &UpgdConfig,
    t: &GroupTables,
    grad_scale: u64,
    block_max: u64,
    num_block_max: usize,
) -> Result<(), CudaError> {
    let count = i32::try_from(num_block_max)
        .map_err(|_| CudaError::Driver(format!("UPGD: {num_block_max} block maxima do not fit i32")))?;
    step(
        dev,
        pick(UPGD_UPDATE_K, dt),
        Arg::from_struct(cfg),
        t,
        &[Arg::Ptr(grad_scale), Arg::Ptr(block_max), Arg::I32(count)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_declared_once() {
        let names: Vec<&str> = all_kernels().iter().map(|k| k.name).collect();
        assert_eq!(names.len(), 14);
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 14);
        // The structs' sizes are the .cu's static_asserts.
        assert_eq!(ADAMW[0], ArgKind::Struct(56));
        assert_eq!(LION[0], ArgKind::Struct(48));
        assert_eq!(SGD[0], ArgKind::Struct(48));
        assert_eq!(UPGD_UTIL[0], ArgKind::Struct(48));
        assert!(CHUNK_SIZE.is_multiple_of(4));
    }
}
