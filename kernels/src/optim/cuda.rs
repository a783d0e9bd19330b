//! Launchers for `optim.cu`: the group tables on the device and the update launches. Every
//! kernel of the file has a [`KernelRef`] here (checked against the PTX by
//! `kernels/tests/cuda_launch_refs.rs`, including the config structs' sizes); AdamW, Lion (sign
//! and Huber κ) and SGD have launch functions. The ℓ2 κ's norm pass, UPGD's two passes and the
//! on-device clip (`sumsq_*`, `norm_finish`, `clip_finish`, `upgd_*`) are declared but have no
//! launcher yet.

use super::config::{AdamWConfig, LionConfig, SgdConfig, UpgdConfig};
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

/// Every entry of `optim.cu` (14).
pub fn all_kernels() -> Vec<KernelRef> {
    let mut all: Vec<KernelRef> = [ADAMW_K, LION_K, SGD_K].concat();
    all.extend([
        kref("upgd_utility_f32", UPGD_UTIL),
        kref("upgd_utility_bf16", UPGD_UTIL),
        kref("upgd_update_f32", UPGD_UPDATE),
        kref("upgd_update_bf16", UPGD_UPDATE),
        kref("sumsq_f32", SUMSQ),
        kref("sumsq_bf16", SUMSQ),
        kref("norm_finish", NORM_FINISH),
        kref("clip_finish", CLIP_FINISH),
    ]);
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
        })
    }

    fn config(&self, dev: &CudaDevice) -> cudarc::driver::LaunchConfig {
        let blocks = self.num_chunks.clamp(1, dev.sm_count() as usize * 8);
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

/// Lion / Signum / signSGD (state0 = m, or 0 for no momentum), sign or Huber κ. The ℓ2 κ
/// needs per-tensor norms (`tensor_inv_norm`), which this launcher does not compute: it passes
/// null, and callers must not use it for `Kappa::L2`.
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
    step(
        dev,
        pick(LION_K, dt),
        Arg::from_struct(cfg),
        t,
        &[Arg::Ptr(grad_scale), Arg::Ptr(0)],
    )
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
