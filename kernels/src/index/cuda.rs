//! Launchers for `index.cu`: index_select and its adjoint index_add over `[outer, size, inner]`
//! views, PyTorch gather / scatter_add up to rank 8, and the index validation pass. Every
//! kernel used here is in [`all_kernels`], checked against the PTX by `kernels/tests/nvrtc.rs`.
//!
//! All functions are `unsafe`: the addresses must be live contiguous device memory of `dev`
//! holding what the sizes describe (data of the named dtype, indices i64). `error` is an
//! [`ErrorFlag`] address or 0; a flagged index is never dereferenced (see index.cu).
//!
//! [`ErrorFlag`]: crate::cuda::flag::ErrorFlag

use super::launch::{columns, flat, rows as row_shape, IndexDims};
use crate::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError, FloatType};
use crate::reduce::cuda::pick;

use ArgKind::{IndexDims as D, Ptr as P, I64 as I};

/// `(src|dst, idx, out|src, outer, size, inner, nidx, error)`.
const ROWS: &[ArgKind] = &[P, P, P, I, I, I, I, P];
/// `(src|dst, index, out|src, dims, error)`.
const DIMS: &[ArgKind] = &[P, P, P, D, P];

macro_rules! pair {
    ($base:literal, $params:expr) => {
        [
            KernelRef {
                source: "index.cu",
                name: concat!($base, "_f32"),
                params: $params,
            },
            KernelRef {
                source: "index.cu",
                name: concat!($base, "_bf16"),
                params: $params,
            },
        ]
    };
}

const INDEX_SELECT: [KernelRef; 2] = pair!("index_select", ROWS);
const INDEX_ADD: [KernelRef; 2] = pair!("index_add", ROWS);
const INDEX_ADD_DET: [KernelRef; 2] = pair!("index_add_det", ROWS);
const GATHER: [KernelRef; 2] = pair!("gather", DIMS);
const SCATTER_ADD: [KernelRef; 2] = pair!("scatter_add", DIMS);
const INDEX_CHECK: KernelRef = KernelRef {
    source: "index.cu",
    name: "index_check",
    params: &[P, I, I, P],
};

/// Every kernel these launchers can launch.
pub fn all_kernels() -> Vec<KernelRef> {
    let mut all: Vec<KernelRef> = [INDEX_SELECT, INDEX_ADD, INDEX_ADD_DET, GATHER, SCATTER_ADD]
        .into_iter()
        .flatten()
        .collect();
    all.push(INDEX_CHECK);
    all
}

fn size(v: usize) -> Arg {
    Arg::I64(v as i64)
}

/// `[outer, size, inner]` with `nidx` indices along the middle axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectDims {
    pub outer: usize,
    pub size: usize,
    pub inner: usize,
    pub nidx: usize,
}

impl SelectDims {
    fn args(&self) -> [Arg; 4] {
        [
            size(self.outer),
            size(self.size),
            size(self.inner),
            size(self.nidx),
        ]
    }

    fn empty(&self) -> bool {
        self.outer == 0 || self.inner == 0 || self.nidx == 0
    }
}

/// `out[o, j, k] = src[o, idx[j], k]`; out is `[outer, nidx, inner]`. Bad indices are flagged
/// and give 0.
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn index_select(
    dev: &CudaDevice,
    dt: FloatType,
    src: u64,
    idx: u64,
    out: u64,
    d: SelectDims,
    error: u64,
) -> Result<(), CudaError> {
    if d.empty() {
        return Ok(());
    }
    let [o, s, i, n] = d.args();
    let args = [
        Arg::Ptr(src),
        Arg::Ptr(idx),
        Arg::Ptr(out),
        o,
        s,
        i,
        n,
        Arg::Ptr(error),
    ];
    let cfg = row_shape(d.outer, d.nidx, d.inner, dt.size_in_bytes());
    launch(dev, &pick(INDEX_SELECT, dt), cfg, &args)
}

/// `dst[o, idx[j], k] += src[o, j, k]`. `deterministic` adds in the CPU's exact order (one
/// thread per column, bitwise equal for f32); otherwise atomics (faster for narrow rows, but
/// the order of repeated indices' adds varies run to run).
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn index_add(
    dev: &CudaDevice,
    dt: FloatType,
    deterministic: bool,
    dst: u64,
    idx: u64,
    src: u64,
    d: SelectDims,
    error: u64,
) -> Result<(), CudaError> {
    if d.empty() {
        return Ok(());
    }
    let [o, s, i, n] = d.args();
    let args = [
        Arg::Ptr(dst),
        Arg::Ptr(idx),
        Arg::Ptr(src),
        o,
        s,
        i,
        n,
        Arg::Ptr(error),
    ];
    if deterministic {
        launch(dev, &pick(INDEX_ADD_DET, dt), columns(d.outer, d.inner), &args)
    } else {
        let cfg = row_shape(d.outer, d.nidx, d.inner, dt.size_in_bytes());
        launch(dev, &pick(INDEX_ADD, dt), cfg, &args)
    }
}

/// PyTorch `gather`: out (contiguous, the index's shape) from src along `dims.axis`.
///
/// # Safety
/// See the module documentation.
pub unsafe fn gather(
    dev: &CudaDevice,
    dt: FloatType,
    src: u64,
    index: u64,
    out: u64,
    dims: &IndexDims,
    error: u64,
) -> Result<(), CudaError> {
    if dims.numel == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(src),
        Arg::Ptr(index),
        Arg::Ptr(out),
        Arg::IndexDims(*dims),
        Arg::Ptr(error),
    ];
    launch(dev, &pick(GATHER, dt), flat(dims.numel as usize), &args)
}

/// PyTorch `scatter_add_` into dst (in place, atomics). Run [`index_check`] first to leave dst
/// untouched on a bad index.
///
/// # Safety
/// See the module documentation.
pub unsafe fn scatter_add(
    dev: &CudaDevice,
    dt: FloatType,
    dst: u64,
    index: u64,
    src: u64,
    dims: &IndexDims,
    error: u64,
) -> Result<(), CudaError> {
    if dims.numel == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(dst),
        Arg::Ptr(index),
        Arg::Ptr(src),
        Arg::IndexDims(*dims),
        Arg::Ptr(error),
    ];
    launch(dev, &pick(SCATTER_ADD, dt), flat(dims.numel as usize), &args)
}

/// Flags (in `error`, which must be a real flag) the first of `n` indices outside `[0, size)`.
///
/// # Safety
/// See the module documentation.
pub unsafe fn index_check(
    dev: &CudaDevice,
    idx: u64,
    n: usize,
    size_: usize,
    error: u64,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [Arg::Ptr(idx), size(n), size(size_), Arg::Ptr(error)];
    launch(dev, &INDEX_CHECK, flat(n), &args)
}
