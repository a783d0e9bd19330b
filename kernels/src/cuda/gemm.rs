//! Matrix multiply on the GPU: cuBLAS when it loads, the tiled reference kernel (matmul.cu)
//! otherwise or on request. Operands are row-major strided views with a batch stride; the
//! output is contiguous.

use super::blas::{GemmOperand, GemmPrecision};
use super::launch::{launch, Arg, ArgKind, KernelRef};
use super::{CudaDevice, CudaError, FloatType};

use ArgKind::{Ptr as P, F32 as F, I64 as I};

/// `matmul_gemm_T(m, n, k, alpha, a, a_rs, a_cs, a_bs, b, b_rs, b_cs, b_bs, beta, c, c_rs,
/// c_cs, c_bs, batch)`: the ABI in matmul.cu's header.
const TILED: &[ArgKind] = &[I, I, I, F, P, I, I, I, P, I, I, I, F, P, I, I, I, I];

/// The tiled kernels, f32 then bf16.
pub const TILED_KERNELS: [KernelRef; 2] = [
    KernelRef {
        source: "matmul.cu",
        name: "matmul_gemm_f32",
        params: TILED,
    },
    KernelRef {
        source: "matmul.cu",
        name: "matmul_gemm_bf16",
        params: TILED,
    },
];

/// Which implementation ran, for tests and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmPath {
    Cublas,
    Tiled,
}

/// `C[z] = A[z]·B[z]` for `z < batch` (`m × k` times `k × n`), C contiguous. Uses cuBLAS when
/// it is present and both operands have a unit-stride axis, else the tiled kernel.
///
/// # Safety
/// Addresses must be live device memory of `dev` covering every element the shapes and
/// strides reach, of `dt`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul(
    dev: &CudaDevice,
    dt: FloatType,
    precision: GemmPrecision,
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    a: GemmOperand,
    b: GemmOperand,
    c: u64,
) -> Result<GemmPath, CudaError> {
    if let Ok(blas) = dev.blas() {
        if blas.gemm(dt, precision, m, n, k, batch, a, b, c)? {
            return Ok(GemmPath::Cublas);
        }
    }
    matmul_tiled(dev, dt, m, n, k, batch, a, b, c)?;
    Ok(GemmPath::Tiled)
}

/// The reference kernel alone (any strides).
///
/// # Safety
/// As [`matmul`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_tiled(
    dev: &CudaDevice,
    dt: FloatType,
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    a: GemmOperand,
    b: GemmOperand,
    c: u64,
) -> Result<(), CudaError> {
    if m == 0 || n == 0 || batch == 0 {
        return Ok(());
    }
    let kernel = match dt {
        FloatType::F32 => TILED_KERNELS[0],
        FloatType::BF16 => TILED_KERNELS[1],
    };
    // Batches beyond grid z's limit are grid-strided inside the kernel.
    let cfg = crate::matmul::launch::gemm(m, n, batch).ok_or_else(|| {
        CudaError::Driver(format!(
            "matmul_tiled: m = {m} needs more than 65535 row tiles; split the call"
        ))
    })?;
    let i = |v: usize| Arg::I64(v as i64);
    // C is contiguous [batch, m, n]; beta = 0 so C is written, never read.
    let args = [
        i(m),
        i(n),
        i(k),
        Arg::F32(1.0),
        Arg::Ptr(a.ptr),
        i(a.row_stride),
        i(a.col_stride),
        i(a.batch_stride),
        Arg::Ptr(b.ptr),
        i(b.row_stride),
        i(b.col_stride),
        i(b.batch_stride),
        Arg::F32(0.0),
        Arg::Ptr(c),
        i(n),
        i(1),
        i(m * n),
        i(batch),
    ];
    launch(dev, &kernel, cfg, &args)
}
