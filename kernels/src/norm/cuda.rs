//! Launchers for `norm.cu`: layer norm and RMS norm over the rows of a contiguous `[rows, n]`
//! buffer, forward (saving f32 statistics per row) and backward (dx per row; dγ, dβ through
//! the two-launch plan of [`super::launch::param_grads`], with an f32 workspace from the pool).
//! Every kernel used here is in [`all_kernels`], checked against the PTX by `kernels/tests/nvrtc.rs`.
//!
//! All functions are `unsafe`: the addresses must be live device memory of `dev` holding what
//! the sizes describe (`rows · n` elements of the dtype for x, g, y, dx; `n` for the weight and
//! bias; `rows` f32 for the statistics); a null (0) weight or bias means none.

use super::launch::{param_grads, rows as row_shape};
use crate::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError, FloatType};
use crate::reduce::cuda::pick;

use ArgKind::{Ptr as P, F32 as F, I64 as I};

/// `(x, weight, bias, y, mean, rstd, rows, n, eps)`.
const LN_FWD: &[ArgKind] = &[P, P, P, P, P, P, I, I, F];
/// `(x, g, mean, rstd, weight, dx, rows, n)`.
const LN_DX: &[ArgKind] = &[P, P, P, P, P, P, I, I];
/// `(x, g, mean, rstd, partial, rows, n, rows_per_block)`.
const LN_PARTIAL: &[ArgKind] = &[P, P, P, P, P, I, I, I];
/// `(partial, dweight, dbias, row_blocks, n)`.
const LN_FINISH: &[ArgKind] = &[P, P, P, I, I];
/// `(x, weight, y, rstd, rows, n, eps)`.
const RMS_FWD: &[ArgKind] = &[P, P, P, P, I, I, F];
/// `(x, g, rstd, weight, dx, rows, n)`.
const RMS_DX: &[ArgKind] = &[P, P, P, P, P, I, I];
/// `(x, g, rstd, partial, rows, n, rows_per_block)`.
const RMS_PARTIAL: &[ArgKind] = &[P, P, P, P, I, I, I];
/// `(partial, dweight, row_blocks, n)`.
const RMS_FINISH: &[ArgKind] = &[P, P, I, I];

macro_rules! pair {
    ($base:literal, $params:expr) => {
        [
            KernelRef {
                source: "norm.cu",
                name: concat!($base, "_f32"),
                params: $params,
            },
            KernelRef {
                source: "norm.cu",
                name: concat!($base, "_bf16"),
                params: $params,
            },
        ]
    };
}

const LAYER_FWD: [KernelRef; 2] = pair!("layer_norm_fwd", LN_FWD);
const LAYER_DX: [KernelRef; 2] = pair!("layer_norm_bwd_dx", LN_DX);
const LAYER_PARTIAL: [KernelRef; 2] = pair!("layer_norm_bwd_dwdb_partial", LN_PARTIAL);
const LAYER_FINISH: [KernelRef; 2] = pair!("layer_norm_bwd_dwdb_finish", LN_FINISH);
const RMS_FWD_K: [KernelRef; 2] = pair!("rms_norm_fwd", RMS_FWD);
const RMS_DX_K: [KernelRef; 2] = pair!("rms_norm_bwd_dx", RMS_DX);
const RMS_PARTIAL_K: [KernelRef; 2] = pair!("rms_norm_bwd_dw_partial", RMS_PARTIAL);
const RMS_FINISH_K: [KernelRef; 2] = pair!("rms_norm_bwd_dw_finish", RMS_FINISH);

/// Every kernel these launchers can launch.
pub fn all_kernels() -> Vec<KernelRef> {
    [
        LAYER_FWD,
        LAYER_DX,
        LAYER_PARTIAL,
        LAYER_FINISH,
        RMS_FWD_K,
        RMS_DX_K,
        RMS_PARTIAL_K,
        RMS_FINISH_K,
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn size(v: usize) -> Arg {
    Arg::I64(v as i64)
}

/// The buffers of one norm call. `mean` is used by layer norm only, `bias` likewise.
#[derive(Clone, Copy, Debug)]
pub struct NormBuffers {
    pub x: u64,
    /// γ, or 0 for none.
    pub weight: u64,
    /// β, or 0 for none (layer norm only).
    pub bias: u64,
    /// `[rows]` f32 means (layer norm), or 0 to skip saving them.
    pub mean: u64,
    /// `[rows]` f32 reciprocal standard deviations (or RMS), or 0 to skip saving them.
    pub rstd: u64,
}

/// Layer norm (`rms = false`) or RMS norm (`rms = true`) forward: `y` and the saved statistics.
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn forward(
    dev: &CudaDevice,
    rms: bool,
    dt: FloatType,
    b: NormBuffers,
    y: u64,
    rows: usize,
    n: usize,
    eps: f32,
) -> Result<(), CudaError> {
    if rows == 0 || n == 0 {
        return Ok(());
    }
    let cfg = row_shape(rows, n);
    if rms {
        let args = [
            Arg::Ptr(b.x),
            Arg::Ptr(b.weight),
            Arg::Ptr(y),
            Arg::Ptr(b.rstd),
            size(rows),
            size(n),
            Arg::F32(eps),
        ];
        launch(dev, &pick(RMS_FWD_K, dt), cfg, &args)
    } else {
        let args = [
            Arg::Ptr(b.x),
            Arg::Ptr(b.weight),
            Arg::Ptr(b.bias),
            Arg::Ptr(y),
            Arg::Ptr(b.mean),
            Arg::Ptr(b.rstd),
            size(rows),
            size(n),
            Arg::F32(eps),
        ];
        launch(dev, &pick(LAYER_FWD, dt), cfg, &args)
    }
}

/// The input gradient `dx` from `x`, the incoming gradient `g` and the saved statistics.
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn backward_dx(
    dev: &CudaDevice,
    rms: bool,
    dt: FloatType,
    b: NormBuffers,
    g: u64,
    dx: u64,
    rows: usize,
    n: usize,
) -> Result<(), CudaError> {
    if rows == 0 || n == 0 {
        return Ok(());
    }
    let cfg = row_shape(rows, n);
    if rms {
        let args = [
            Arg::Ptr(b.x),
            Arg::Ptr(g),
            Arg::Ptr(b.rstd),
            Arg::Ptr(b.weight),
            Arg::Ptr(dx),
            size(rows),
            size(n),
        ];
        launch(dev, &pick(RMS_DX_K, dt), cfg, &args)
    } else {
        let args = [
            Arg::Ptr(b.x),
            Arg::Ptr(g),
            Arg::Ptr(b.mean),
            Arg::Ptr(b.rstd),
            Arg::Ptr(b.weight),
            Arg::Ptr(dx),
            size(rows),
            size(n),
        ];
        launch(dev, &pick(LAYER_DX, dt), cfg, &args)
    }
}

/// The parameter gradients: `dweight[i] = Σ_rows g·x̂` and, for layer norm, `dbias[i] = Σ_rows
/// g` (`dbias` is ignored for RMS norm). Two launches with a workspace between them, added in
/// a fixed order (bitwise reproducible for given `rows, n`).
///
/// # Safety
/// See the module documentation; `dweight` (and `dbias`) hold `n` elements of the dtype.
#[allow(clippy::too_many_arguments)]
pub unsafe fn backward_params(
    dev: &CudaDevice,
    rms: bool,
    dt: FloatType,
    b: NormBuffers,
    g: u64,
    dweight: u64,
    dbias: u64,
    rows: usize,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let plan = param_grads(rows, n);
    let words = if rms {
        plan.workspace_f32_rms_norm
    } else {
        plan.workspace_f32_layer_norm
    };
    // Freed back to the pool when this returns; the pool hands it out again only to work
    // queued after these launches on the same stream, so the reuse is ordered after them.
    let partial = dev.alloc(words * 4)?;
    let (rows_per_block, row_blocks) = (size(plan.rows_per_block), size(plan.row_blocks));
    if rms {
        let args = [
            Arg::Ptr(b.x),
            Arg::Ptr(g),
            Arg::Ptr(b.rstd),
            Arg::Ptr(partial.ptr()),
            size(rows),
            size(n),
            rows_per_block,
        ];
        launch(dev, &pick(RMS_PARTIAL_K, dt), plan.partial, &args)?;
        let args = [Arg::Ptr(partial.ptr()), Arg::Ptr(dweight), row_blocks, size(n)];
        launch(dev, &pick(RMS_FINISH_K, dt), plan.finish, &args)
    } else {
        let args = [
            Arg::Ptr(b.x),
            Arg::Ptr(g),
            Arg::Ptr(b.mean),
            Arg::Ptr(b.rstd),
            Arg::Ptr(partial.ptr()),
            size(rows),
            size(n),
            rows_per_block,
        ];
        launch(dev, &pick(LAYER_PARTIAL, dt), plan.partial, &args)?;
        let args = [
            Arg::Ptr(partial.ptr()),
            Arg::Ptr(dweight),
            Arg::Ptr(dbias),
            row_blocks,
            size(n),
        ];
        launch(dev, &pick(LAYER_FINISH, dt), plan.finish, &args)
    }
}
