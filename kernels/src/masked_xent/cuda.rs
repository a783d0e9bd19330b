//! Launchers for `masked_xent.cu`: the fused cross-entropy (forward, reduction, backward) and
//! the masked softmax kernels, f32 and bf16 logits. Raw device addresses in, launches out;
//! every kernel used here is listed by [`all_kernels`], which `kernels/tests/nvrtc.rs`
//! checks against the compiled PTX (names and parameter kinds, including `XentParams`' size).
//!
//! The mask travels as the encoding's own bytes ([`mask_bytes`]): dense `u8` per (row, class),
//! `ClassRange` pairs (the kernel's `uint2`), or bitset `u64` words; `ClassMask::All` passes a
//! null pointer.

use super::launch::{reduce_launch, row_launch, Launch, XentParams, SOURCE};
use super::ClassMask;
use crate::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError, FloatType};

use ArgKind::{Ptr as P, F32 as F, I32, I64 as I};

const XP: ArgKind = ArgKind::Struct(std::mem::size_of::<XentParams>());
const FWD: &[ArgKind] = &[P, P, P, P, P, P, P, XP];
const BWD: &[ArgKind] = &[P, P, P, P, P, P, I, F, P, XP];
const REDUCE: &[ArgKind] = &[P, P, P, XP, I32];
const SM_FWD: &[ArgKind] = &[P, P, P, XP];
const SM_BWD: &[ArgKind] = &[P, P, P, P, XP];

const fn kref(name: &'static str, params: &'static [ArgKind]) -> KernelRef {
    KernelRef {
        source: SOURCE,
        name,
        params,
    }
}

const FWD_F32: KernelRef = kref("masked_xent_fwd_f32", FWD);
const FWD_BF16: KernelRef = kref("masked_xent_fwd_bf16", FWD);
const BWD_F32: KernelRef = kref("masked_xent_bwd_f32", BWD);
const BWD_BF16: KernelRef = kref("masked_xent_bwd_bf16", BWD);
const REDUCE_K: KernelRef = kref("masked_xent_reduce", REDUCE);
const SM_FWD_F32: KernelRef = kref("masked_softmax_fwd_f32", SM_FWD);
const SM_FWD_BF16: KernelRef = kref("masked_softmax_fwd_bf16", SM_FWD);
const SM_BWD_F32: KernelRef = kref("masked_softmax_bwd_f32", SM_BWD);
const SM_BWD_BF16: KernelRef = kref("masked_softmax_bwd_bf16", SM_BWD);

/// Every kernel of `masked_xent.cu` (all 9 entries have launchers).
pub fn all_kernels() -> Vec<KernelRef> {
    vec![
        FWD_F32,
        FWD_BF16,
        BWD_F32,
        BWD_BF16,
        REDUCE_K,
        SM_FWD_F32,
        SM_FWD_BF16,
        SM_BWD_F32,
        SM_BWD_BF16,
    ]
}

fn pick(dt: FloatType, f32: KernelRef, bf16: KernelRef) -> KernelRef {
    match dt {
        FloatType::F32 => f32,
        FloatType::BF16 => bf16,
    }
}

fn config(l: Launch) -> cudarc::driver::LaunchConfig {
    cudarc::driver::LaunchConfig {
        grid_dim: (l.grid, 1, 1),
        block_dim: (l.block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The mask's device representation as bytes (empty for `All`): what `mask` must point to.
pub fn mask_bytes(mask: &ClassMask) -> Vec<u8> {
    match mask {
        ClassMask::All => Vec::new(),
        ClassMask::Dense { allowed, .. } => allowed.to_vec(),
        ClassMask::Ranges(r) => r
            .iter()
            .flat_map(|c| [c.lo.to_ne_bytes(), c.hi.to_ne_bytes()])
            .flatten()
            .collect(),
        ClassMask::Bitset { bits, .. } => bits.iter().flat_map(|w| w.to_ne_bytes()).collect(),
    }
}

/// The value `status` must hold before [`forward`]: no flags, no offending row (`INT_MAX`).
pub const STATUS_INIT: [i32; 2] = [0, i32::MAX];

/// Device buffers of one cross-entropy forward (addresses; 0 = absent only for `mask`).
#[derive(Clone, Copy, Debug)]
pub struct ForwardBuffers {
    /// `[rows, classes]` logits of the launch's dtype.
    pub x: u64,
    /// `[rows]` i64 targets.
    pub targets: u64,
    /// [`mask_bytes`] on the device, or 0 for `ClassMask::All`.
    pub mask: u64,
    /// `[rows]` f32 per-row losses (written).
    pub loss: u64,
    /// `[rows]` f32 per-row lse (written).
    pub lse: u64,
    /// `[rows, 3]` f32 backward coefficients (written).
    pub coef: u64,
    /// 2 i32, holding [`STATUS_INIT`] before the launch.
    pub status: u64,
}

/// The fused forward over `p.rows` rows.
///
/// # Safety
/// Every address is live device memory of `dev` with the sizes documented on
/// [`ForwardBuffers`] for `p`, and `p` was built for this mask and these sizes.
pub unsafe fn forward(
    dev: &CudaDevice,
    dt: FloatType,
    p: &XentParams,
    b: &ForwardBuffers,
) -> Result<(), CudaError> {
    let l = row_launch(p.rows as usize, p.classes as usize, dt.size_in_bytes());
    let args = [
        Arg::Ptr(b.x),
        Arg::Ptr(b.targets),
        Arg::Ptr(b.mask),
        Arg::Ptr(b.loss),
        Arg::Ptr(b.lse),
        Arg::Ptr(b.coef),
        Arg::Ptr(b.status),
        Arg::from_struct(p),
    ];
    launch(dev, &pick(dt, FWD_F32, FWD_BF16), config(l), &args)
}

/// Sum (or mean over the rows whose target is not `ignore_index`; 0 when there are none) of
/// the per-row losses into `out[0]`, in one block, so the result does not depend on timing.
///
/// # Safety
/// `loss` holds `p.rows` f32, `targets` `p.rows` i64, `out` one f32, all on `dev`.
pub unsafe fn reduce(
    dev: &CudaDevice,
    p: &XentParams,
    loss: u64,
    targets: u64,
    out: u64,
    mean: bool,
) -> Result<(), CudaError> {
    let args = [
        Arg::Ptr(loss),
        Arg::Ptr(targets),
        Arg::Ptr(out),
        Arg::from_struct(p),
        Arg::I32(mean as i32),
    ];
    launch(dev, &REDUCE_K, config(reduce_launch()), &args)
}

/// Device buffers of one cross-entropy backward.
#[derive(Clone, Copy, Debug)]
pub struct BackwardBuffers {
    pub x: u64,
    pub targets: u64,
    pub mask: u64,
    /// The forward's lse and coefficients.
    pub lse: u64,
    pub coef: u64,
    /// The incoming gradient: row r reads `g[r * g_stride] * g_scale` (stride 0 with one value
    /// for a reduced loss, `g_scale = 1/count` for a mean).
    pub g: u64,
    pub g_stride: i64,
    pub g_scale: f32,
    /// `[rows, classes]` of the logits' dtype (written; masked classes get exactly 0).
    pub dx: u64,
}

/// The fused backward.
///
/// # Safety
/// As [`forward`]; `lse` and `coef` are that forward's outputs.
pub unsafe fn backward(
    dev: &CudaDevice,
    dt: FloatType,
    p: &XentParams,
    b: &BackwardBuffers,
) -> Result<(), CudaError> {
    let l = row_launch(p.rows as usize, p.classes as usize, dt.size_in_bytes());
    let args = [
        Arg::Ptr(b.x),
        Arg::Ptr(b.targets),
        Arg::Ptr(b.mask),
        Arg::Ptr(b.lse),
        Arg::Ptr(b.coef),
        Arg::Ptr(b.g),
        Arg::I64(b.g_stride),
        Arg::F32(b.g_scale),
        Arg::Ptr(b.dx),
        Arg::from_struct(p),
    ];
    launch(dev, &pick(dt, BWD_F32, BWD_BF16), config(l), &args)
}

/// Masked softmax (or log-softmax, `p.log_softmax`) of `[rows, classes]` rows. No launch for
/// an empty input (the buffers may then be null).
///
/// # Safety
/// `x` and `y` hold `rows * classes` elements of `dt`, `mask` the mask's bytes (or 0).
pub unsafe fn softmax_forward(
    dev: &CudaDevice,
    dt: FloatType,
    p: &XentParams,
    x: u64,
    mask: u64,
    y: u64,
) -> Result<(), CudaError> {
    if p.rows == 0 || p.classes == 0 {
        return Ok(());
    }
    let l = row_launch(p.rows as usize, p.classes as usize, dt.size_in_bytes());
    let args = [Arg::Ptr(x), Arg::Ptr(mask), Arg::Ptr(y), Arg::from_struct(p)];
    launch(dev, &pick(dt, SM_FWD_F32, SM_FWD_BF16), config(l), &args)
}

/// The masked softmax backward from the forward's output `y` and the gradient `g`.
///
/// # Safety
/// As [`softmax_forward`], with `g` and `dx` of the same size.
pub unsafe fn softmax_backward(
    dev: &CudaDevice,
    dt: FloatType,
    p: &XentParams,
    y: u64,
    g: u64,
    mask: u64,
    dx: u64,
) -> Result<(), CudaError> {
    if p.rows == 0 || p.classes == 0 {
        return Ok(());
    }
    let l = row_launch(p.rows as usize, p.classes as usize, dt.size_in_bytes());
    let args = [
        Arg::Ptr(y),
        Arg::Ptr(g),
        Arg::Ptr(mask),
        Arg::Ptr(dx),
        Arg::from_struct(p),
    ];
    launch(dev, &pick(dt, SM_BWD_F32, SM_BWD_BF16), config(l), &args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masked_xent::launch::ENTRIES;
    use crate::masked_xent::ClassRange;

    #[test]
    fn every_entry_has_a_launcher() {
        let mut ours: Vec<&str> = all_kernels().iter().map(|k| k.name).collect();
        let mut all = ENTRIES.to_vec();
        ours.sort();
        all.sort();
        assert_eq!(ours, all);
    }

    #[test]
    fn mask_bytes_are_the_kernel_encodings() {
        assert!(mask_bytes(&ClassMask::All).is_empty());
        let dense = ClassMask::dense(&[true, false, true], 1, 3);
        assert_eq!(mask_bytes(&dense), vec![1, 0, 1]);
        let r = ClassMask::Ranges(vec![ClassRange { lo: 2, hi: 7 }].into());
        let b = mask_bytes(&r);
        assert_eq!(b.len(), 8);
        assert_eq!(u32::from_ne_bytes(b[..4].try_into().unwrap()), 2);
        assert_eq!(u32::from_ne_bytes(b[4..].try_into().unwrap()), 7);
        let bits = ClassMask::Bitset {
            bits: vec![0b101u64, 1 << 63].into(),
            words: 2,
        };
        let b = mask_bytes(&bits);
        assert_eq!(b.len(), 16);
        assert_eq!(u64::from_ne_bytes(b[8..].try_into().unwrap()), 1 << 63);
    }
}
