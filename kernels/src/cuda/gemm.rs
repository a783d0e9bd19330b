//! Matrix multiply on the GPU: cuBLAS when it loads, the tiled reference kernel (matmul.cu)
//! otherwise or on request. Operands are row-major strided views with a batch stride; the
//! output is contiguous.

use super::blas::{GemmOperand, GemmPrecision};
use super::launch::{launch, Arg, ArgKind, KernelRef};
use super::{CudaDevice, CudaError, FloatType};
use cudarc::driver::LaunchConfig;

use ArgKind::{Ptr as P, I64 as I};

const TILED: &[ArgKind] = &[P, P, P, I, I, I, I, I, I, I, I, I];

/// The tiled kernels, f32 then bf16.
pub const TILED_KERNELS: [KernelRef; 2] = [
    KernelRef {
        source: "matmul.cu",
        name: "matmul_tiled_f32",
        params: TILED,
    },
    KernelRef {
        source: "matmul.cu",
        name: "matmul_tiled_bf16",
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
    if batch > 65_535 {
        return Err(CudaError::Driver(format!(
            "matmul_tiled: batch {batch} exceeds the grid's z limit (65535)"
        )));
    }
    let kernel = match dt {
        FloatType::F32 => TILED_KERNELS[0],
        FloatType::BF16 => TILED_KERNELS[1],
    };
    let cfg = LaunchConfig {
        grid_dim: (n.div_ceil(16) as u32, m.div_ceil(16) as u32, batch as u32),
        block_dim: (16, 16, 1),
        shared_mem_bytes: 0,
    };
    let i = |v: usize| Arg::I64(v as i64);
    let args = [
        Arg::Ptr(a.ptr),
        Arg::Ptr(b.ptr),
        Arg::Ptr(c),
        i(m),
        i(n),
        i(k),
        i(a.row_stride),
        i(a.col_stride),
        i(a.batch_stride),
        i(b.row_stride),
        i(b.col_stride),
        i(b.batch_stride),
    ];
    launch(dev, &kernel, cfg, &args)
}
