//! Launchers for `cvx.cu`, and [`CudaPatternOps`], the CUDA counterpart of
//! [`super::PatternOps`] that the solvers of `algorithms::convex_relu` use on `Device::Cuda`.
//!
//! Every entry of `cvx.cu` has a [`KernelRef`] in [`all_kernels`], which
//! `kernels/tests/nvrtc.rs` checks against the compiled PTX; every one of them has a
//! launcher here (raw device addresses, `unsafe`), and `kernels/tests/cvx_cuda.rs` checks each
//! against its CPU reference in `cpu.rs` (skipping without a GPU).
//!
//! Launch shapes are the ones `cvx.cu`'s header prescribes: 128-thread row blocks for the
//! forward products (static shared memory only), `(p, ⌈d/32⌉)` grids of 256 threads for the
//! adjoints, one warp per group for the group steps, a 1-D grid-stride loop for the projection.

use std::sync::Arc;

use cudarc::driver::LaunchConfig;

use super::{CvxError, CvxShape};
use crate::cuda::launch::{grid_1d, launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError, DeviceBuffer};

use ArgKind::{Ptr as P, F32, F64, I32, I64};

const SOURCE: &str = "cvx.cu";

/// The element type of a launch: the kernels exist in f32 and f64 (the solvers use f64, which
/// their 1e-8 residual tolerances need).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CvxType {
    F32,
    F64,
}

impl CvxType {
    pub fn size_in_bytes(self) -> usize {
        match self {
            CvxType::F32 => 4,
            CvxType::F64 => 8,
        }
    }

    fn suffix(self) -> usize {
        match self {
            CvxType::F32 => 0,
            CvxType::F64 => 1,
        }
    }

    /// A scalar argument of this type (the prox thresholds).
    fn scalar(self, t: f64) -> Arg {
        match self {
            CvxType::F32 => Arg::F32(t as f32),
            CvxType::F64 => Arg::F64(t),
        }
    }
}

const PROD: &[ArgKind] = &[P, P, P, P, I32, I32, I32];
const SLACK: &[ArgKind] = &[P, P, P, P, P, P, P, I32, I32, I32];
const PROX_F32: &[ArgKind] = &[P, I32, I32, F32];
const PROX_F64: &[ArgKind] = &[P, I32, I32, F64];
const GROUP_F32: &[ArgKind] = &[P, P, P, P, P, I32, I32, F32];
const GROUP_F64: &[ArgKind] = &[P, P, P, P, P, I32, I32, F64];
const PROJECT: &[ArgKind] = &[P, I64];

const fn kref(name: &'static str, params: &'static [ArgKind]) -> KernelRef {
    KernelRef {
        source: SOURCE,
        name,
        params,
    }
}

const MASKED_FWD: [KernelRef; 2] = [kref("cvx_masked_fwd_f32", PROD), kref("cvx_masked_fwd_f64", PROD)];
const MASKED_BWD: [KernelRef; 2] = [kref("cvx_masked_bwd_f32", PROD), kref("cvx_masked_bwd_f64", PROD)];
const SIGN_FWD: [KernelRef; 2] = [kref("cvx_sign_fwd_f32", PROD), kref("cvx_sign_fwd_f64", PROD)];
const SIGN_BWD: [KernelRef; 2] = [kref("cvx_sign_bwd_f32", PROD), kref("cvx_sign_bwd_f64", PROD)];
const ADMM_SLACK: [KernelRef; 2] = [
    kref("cvx_admm_slack_f32", SLACK),
    kref("cvx_admm_slack_f64", SLACK),
];
const GROUP_PROX: [KernelRef; 2] = [
    kref("cvx_group_prox_f32", PROX_F32),
    kref("cvx_group_prox_f64", PROX_F64),
];
const ADMM_GROUP: [KernelRef; 2] = [
    kref("cvx_admm_group_f32", GROUP_F32),
    kref("cvx_admm_group_f64", GROUP_F64),
];
const PROJECT_NONNEG: [KernelRef; 2] = [
    kref("cvx_project_nonneg_f32", PROJECT),
    kref("cvx_project_nonneg_f64", PROJECT),
];

/// Every entry of `cvx.cu` (16), each launched by a function below.
pub fn all_kernels() -> Vec<KernelRef> {
    [
        MASKED_FWD,
        MASKED_BWD,
        SIGN_FWD,
        SIGN_BWD,
        ADMM_SLACK,
        GROUP_PROX,
        ADMM_GROUP,
        PROJECT_NONNEG,
    ]
    .concat()
}

/// Threads per block of the row-per-thread products (`CVX_ROWS` in cvx.cu).
const ROWS: u32 = 128;
/// Threads per block of the adjoints (8 warps, `part[8][32]` in cvx.cu) and the group steps.
const BLOCK: u32 = 256;

fn to_i32(what: &str, v: usize) -> Result<i32, CudaError> {
    i32::try_from(v)
        .map_err(|_| CudaError::Driver(format!("cvx: {what} = {v} does not fit the kernels' int")))
}

fn dims(s: CvxShape) -> Result<[Arg; 3], CudaError> {
    Ok([
        Arg::I32(to_i32("n", s.n)?),
        Arg::I32(to_i32("d", s.d)?),
        Arg::I32(to_i32("p", s.p)?),
    ])
}

/// Row blocks over the n samples, capped at 8 waves (the row loop is grid-stride).
fn rows_config(dev: &CudaDevice, n: usize) -> LaunchConfig {
    let blocks = n
        .div_ceil(ROWS as usize)
        .clamp(1, (dev.sm_count() as usize * 8).max(1));
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (ROWS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block per (pattern, 32 features).
fn adjoint_config(s: CvxShape) -> Result<LaunchConfig, CudaError> {
    let cols = s.d.div_ceil(32);
    if s.p > i32::MAX as usize || cols > 65_535 {
        return Err(CudaError::Driver(format!(
            "cvx adjoint: grid ({}, {cols}) exceeds the launch limits",
            s.p
        )));
    }
    Ok(LaunchConfig {
        grid_dim: (s.p as u32, cols as u32, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// One warp per group, 8 groups per block, capped at 8 waves (grid-stride over groups).
fn group_config(dev: &CudaDevice, groups: usize) -> LaunchConfig {
    let blocks = groups.div_ceil(8).clamp(1, (dev.sm_count() as usize * 8).max(1));
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

unsafe fn product(
    dev: &CudaDevice,
    k: [KernelRef; 2],
    ty: CvxType,
    cfg: LaunchConfig,
    ptrs: [u64; 4],
    s: CvxShape,
) -> Result<(), CudaError> {
    let [a, b, c] = dims(s)?;
    let args = [
        Arg::Ptr(ptrs[0]),
        Arg::Ptr(ptrs[1]),
        Arg::Ptr(ptrs[2]),
        Arg::Ptr(ptrs[3]),
        a,
        b,
        c,
    ];
    launch(dev, &k[ty.suffix()], cfg, &args)
}

/// `out[k] = Σ_i mask[i,k]·x_kᵀv_i` (`out`: n).
///
/// # Safety
/// `x` (n·d), `v` (p·d), `out` (n) of `ty` and `mask` (p·n bytes) are live memory of `dev`.
pub unsafe fn masked_forward(
    dev: &CudaDevice,
    ty: CvxType,
    x: u64,
    mask: u64,
    v: u64,
    out: u64,
    s: CvxShape,
) -> Result<(), CudaError> {
    if s.n == 0 {
        return Ok(());
    }
    product(dev, MASKED_FWD, ty, rows_config(dev, s.n), [x, mask, v, out], s)
}

/// `out_i = Xᵀ D_i r` for every pattern (`r`: n, `out`: p·d).
///
/// # Safety
/// As [`masked_forward`], with `r` (n) and `out` (p·d).
pub unsafe fn masked_backward(
    dev: &CudaDevice,
    ty: CvxType,
    x: u64,
    mask: u64,
    r: u64,
    out: u64,
    s: CvxShape,
) -> Result<(), CudaError> {
    if s.p == 0 || s.d == 0 {
        return Ok(());
    }
    product(dev, MASKED_BWD, ty, adjoint_config(s)?, [x, mask, r, out], s)
}

/// `out_i = (2D_i − I)Xv_i` (`out`: p·n, pattern-major).
///
/// # Safety
/// As [`masked_forward`], with `out` (p·n).
pub unsafe fn sign_forward(
    dev: &CudaDevice,
    ty: CvxType,
    x: u64,
    mask: u64,
    v: u64,
    out: u64,
    s: CvxShape,
) -> Result<(), CudaError> {
    if s.n == 0 || s.p == 0 {
        return Ok(());
    }
    product(dev, SIGN_FWD, ty, rows_config(dev, s.n), [x, mask, v, out], s)
}

/// `out_i = Xᵀ(2D_i − I)z_i` (`z`: p·n, `out`: p·d).
///
/// # Safety
/// As [`masked_forward`], with `z` (p·n) and `out` (p·d).
pub unsafe fn sign_backward(
    dev: &CudaDevice,
    ty: CvxType,
    x: u64,
    mask: u64,
    z: u64,
    out: u64,
    s: CvxShape,
) -> Result<(), CudaError> {
    if s.p == 0 || s.d == 0 {
        return Ok(());
    }
    product(dev, SIGN_BWD, ty, adjoint_config(s)?, [x, mask, z, out], s)
}

/// The fused ADMM slack step (`cpu::admm_slack_step`): `g = (2D_i − I)Xu_i`,
/// `s ← max(0, g + ν)`, `ν ← ν + g − s`, `ds = s_new − s_old`, `r = g − s_new`.
///
/// # Safety
/// `x` (n·d), `u` (p·d), `s`, `nu`, `ds`, `r` (p·n each, distinct) of `ty`, `mask` (p·n bytes).
#[allow(clippy::too_many_arguments)]
pub unsafe fn admm_slack_step(
    dev: &CudaDevice,
    ty: CvxType,
    x: u64,
    mask: u64,
    u: u64,
    [s_, nu, ds, r]: [u64; 4],
    s: CvxShape,
) -> Result<(), CudaError> {
    if s.n == 0 || s.p == 0 {
        return Ok(());
    }
    let [a, b, c] = dims(s)?;
    let args = [
        Arg::Ptr(x),
        Arg::Ptr(mask),
        Arg::Ptr(u),
        Arg::Ptr(s_),
        Arg::Ptr(nu),
        Arg::Ptr(ds),
        Arg::Ptr(r),
        a,
        b,
        c,
    ];
    launch(dev, &ADMM_SLACK[ty.suffix()], rows_config(dev, s.n), &args)
}

/// In place, per group of `d`: `v_i ← max(0, 1 − t/‖v_i‖)·v_i` (`v`: groups·d).
///
/// # Safety
/// `v` is live memory of `dev` holding groups·d elements of `ty`.
pub unsafe fn group_soft_threshold(
    dev: &CudaDevice,
    ty: CvxType,
    v: u64,
    groups: usize,
    d: usize,
    t: f64,
) -> Result<(), CudaError> {
    if groups == 0 || d == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(v),
        Arg::I32(to_i32("groups", groups)?),
        Arg::I32(to_i32("d", d)?),
        ty.scalar(t),
    ];
    launch(dev, &GROUP_PROX[ty.suffix()], group_config(dev, groups), &args)
}

/// The fused ADMM group step (`cpu::admm_group_step`) over `groups` groups of `d`:
/// `[u, lambda, v, dv, r]`, each groups·d.
///
/// # Safety
/// Every address is live memory of `dev` holding groups·d elements of `ty`; `u` is read only.
pub unsafe fn admm_group_step(
    dev: &CudaDevice,
    ty: CvxType,
    [u, lambda, v, dv, r]: [u64; 5],
    groups: usize,
    d: usize,
    t: f64,
) -> Result<(), CudaError> {
    if groups == 0 || d == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(u),
        Arg::Ptr(lambda),
        Arg::Ptr(v),
        Arg::Ptr(dv),
        Arg::Ptr(r),
        Arg::I32(to_i32("groups", groups)?),
        Arg::I32(to_i32("d", d)?),
        ty.scalar(t),
    ];
    launch(dev, &ADMM_GROUP[ty.suffix()], group_config(dev, groups), &args)
}

/// In place: `s ← max(0, s)` over `len` elements.
///
/// # Safety
/// `s` is live memory of `dev` holding `len` elements of `ty`.
pub unsafe fn project_nonneg(dev: &CudaDevice, ty: CvxType, s: u64, len: usize) -> Result<(), CudaError> {
    if len == 0 {
        return Ok(());
    }
    launch(
        dev,
        &PROJECT_NONNEG[ty.suffix()],
        grid_1d(dev, len),
        &[Arg::Ptr(s), Arg::I64(len as i64)],
    )
}

fn cuda_err(op: &str) -> impl Fn(CudaError) -> CvxError + '_ {
    move |e| CvxError(format!("{op} (CUDA): {e}"))
}

/// The data and patterns on a GPU, in f64, with the four products of [`super::PatternOps`]
/// behind the same host-slice interface: each call copies its input vector to the device, runs
/// one kernel per stacked copy of the patterns, and copies the result back. X and the mask are
/// uploaded once; the two staging buffers are allocated once, at the largest size a solver
/// passes (two stacked copies of p × n), so a solver's loop allocates nothing.
pub struct CudaPatternOps {
    dev: Arc<CudaDevice>,
    shape: CvxShape,
    x: DeviceBuffer,
    mask: DeviceBuffer,
    input: DeviceBuffer,
    output: DeviceBuffer,
}

impl CudaPatternOps {
    /// `x` is `n × d` row-major, `mask` `p × n` bytes, as for [`super::PatternOps::new`].
    pub fn new(dev: Arc<CudaDevice>, x: &[f64], mask: &[u8], shape: CvxShape) -> Result<Self, CvxError> {
        let CvxShape { n, d, p } = shape;
        shape.check(
            "CudaPatternOps::new",
            &[("x", x.len(), n * d), ("mask", mask.len(), p * n)],
        )?;
        let err = cuda_err("CudaPatternOps::new");
        dims(shape).map_err(&err)?;
        // Largest vector any call moves: two stacked copies of p × n (or p × d), or n.
        let most = (2 * p * n.max(d)).max(n).max(1) * 8;
        Ok(CudaPatternOps {
            x: dev
                .upload(if x.is_empty() { &[0.0f64][..] } else { x })
                .map_err(&err)?,
            mask: dev
                .upload(if mask.is_empty() { &[0u8][..] } else { mask })
                .map_err(&err)?,
            input: dev.alloc(most).map_err(&err)?,
            output: dev.alloc(most).map_err(&err)?,
            dev,
            shape,
        })
    }

    pub fn shape(&self) -> CvxShape {
        self.shape
    }

    pub fn device(&self) -> &Arc<CudaDevice> {
        &self.dev
    }

    /// Uploads `input`, runs `kernel` once per stacked copy (offsets `in_len`/`out_len`
    /// elements per copy), downloads into `out`.
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        op: &str,
        input: &[f64],
        out: &mut [f64],
        groups: usize,
        lens: (usize, usize),
        kernel: unsafe fn(&CudaDevice, CvxType, u64, u64, u64, u64, CvxShape) -> Result<(), CudaError>,
    ) -> Result<(), CvxError> {
        let (in_len, out_len) = lens;
        if input.len() != groups * in_len || out.len() != groups * out_len || groups == 0 || groups > 2 {
            return Err(CvxError(format!(
                "{op}: input of {} and output of {} elements for {groups} stacked copies of n={}, d={}, p={} \
                 (expected {} and {}; 1 or 2 copies)",
                input.len(),
                out.len(),
                self.shape.n,
                self.shape.d,
                self.shape.p,
                groups * in_len,
                groups * out_len
            )));
        }
        let err = cuda_err(op);
        self.dev.copy_to_device(input, &self.input, 0).map_err(&err)?;
        for g in 0..groups {
            // SAFETY: x and mask hold n·d and p·n elements (checked in new); the staging
            // buffers hold at least 2·max(p·n, p·d, n) f64, so copy g's input and output lie
            // inside them.
            unsafe {
                kernel(
                    &self.dev,
                    CvxType::F64,
                    self.x.ptr(),
                    self.mask.ptr(),
                    self.input.ptr() + (g * in_len * 8) as u64,
                    self.output.ptr() + (g * out_len * 8) as u64,
                    self.shape,
                )
            }
            .map_err(&err)?;
        }
        self.dev.copy_to_host(&self.output, 0, out).map_err(&err)
    }

    /// As [`super::PatternOps::sign_forward`].
    pub fn sign_forward(&self, v: &[f64], out: &mut [f64], groups: usize) -> Result<(), CvxError> {
        let CvxShape { n, d, p } = self.shape;
        self.run("sign_forward", v, out, groups, (p * d, p * n), sign_forward)
    }

    /// As [`super::PatternOps::sign_backward`].
    pub fn sign_backward(&self, z: &[f64], out: &mut [f64], groups: usize) -> Result<(), CvxError> {
        let CvxShape { n, d, p } = self.shape;
        self.run("sign_backward", z, out, groups, (p * n, p * d), sign_backward)
    }

    /// As [`super::PatternOps::masked_forward`].
    pub fn masked_forward(&self, v: &[f64], out: &mut [f64]) -> Result<(), CvxError> {
        let CvxShape { n, d, p } = self.shape;
        self.run("masked_forward", v, out, 1, (p * d, n), masked_forward)
    }

    /// As [`super::PatternOps::masked_backward`].
    pub fn masked_backward(&self, r: &[f64], out: &mut [f64]) -> Result<(), CvxError> {
        let CvxShape { n, d, p } = self.shape;
        self.run("masked_backward", r, out, 1, (n, p * d), masked_backward)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_declared_once() {
        let src = crate::cuda::source(SOURCE).expect("cvx.cu is registered").src;
        let mut declared: Vec<&str> = src
            .lines()
            .filter_map(|l| l.strip_prefix("extern \"C\" __global__ void "))
            .map(|l| l.split('(').next().unwrap().trim())
            .collect();
        let mut ours: Vec<&str> = all_kernels().iter().map(|k| k.name).collect();
        declared.sort();
        ours.sort();
        assert_eq!(declared, ours);
    }
}
