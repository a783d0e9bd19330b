//! cuBLAS, loaded at run time like the driver: one handle per device, bound to the device's
//! stream, and one entry point, a strided-batched GEMM on row-major strided views.
//!
//! cuBLAS is column-major. A row-major `C = A·B` is the column-major `Cᵀ = Bᵀ·Aᵀ`, and a
//! row-major view is the column-major view of its transpose, so no copy is needed: B goes
//! first, A second, and each one's transpose flag says whether its rows or its columns are the
//! unit-stride axis ([`operand_layout`]).

use std::ffi::{c_int, c_longlong, c_void};
use std::sync::{Arc, Mutex};

use cudarc::cublas::{result as br, sys as bsys};
use cudarc::driver::{CudaContext, CudaStream};

use super::error::CudaError;
use super::launch::FloatType;

/// How f32 products are computed. `Tf32` uses tensor cores with 10-bit mantissas (about 1e-3
/// relative error), so it is opt-in; the parity tests use `F32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GemmPrecision {
    #[default]
    F32,
    Tf32,
}

/// One row-major strided matrix operand: device address, row and column strides and the
/// stride between consecutive batch entries, all in elements (0 = broadcast over the batch).
#[derive(Clone, Copy, Debug)]
pub struct GemmOperand {
    pub ptr: u64,
    pub row_stride: usize,
    pub col_stride: usize,
    pub batch_stride: usize,
}

/// `(transpose, leading dimension)` of a row-major `rows × cols` view for the column-major
/// formula, or `None` when neither axis has unit stride (the caller copies it contiguous first).
/// A size-1 axis has no meaningful stride, so it never disqualifies a layout.
pub fn operand_layout(
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) -> Option<(bool, usize)> {
    if cols <= 1 || col_stride == 1 {
        // Row-major: its transpose is column-major with ld = row stride.
        let ld = if rows <= 1 { cols.max(1) } else { row_stride };
        if ld >= cols.max(1) {
            return Some((false, ld));
        }
    }
    if rows <= 1 || row_stride == 1 {
        // Column-major already: cuBLAS must transpose it.
        let ld = if cols <= 1 { rows.max(1) } else { col_stride };
        if ld >= rows.max(1) {
            return Some((true, ld));
        }
    }
    None
}

/// A cuBLAS handle bound to one device's stream.
pub struct Blas {
    handle: bsys::cublasHandle_t,
    ctx: Arc<CudaContext>,
    /// cuBLAS handles must not be used by two threads at once.
    lock: Mutex<()>,
}

// SAFETY: the handle is only used under `lock`, with the owning context bound.
unsafe impl Send for Blas {}
unsafe impl Sync for Blas {}

fn blas_err(what: &'static str) -> impl Fn(br::CublasError) -> CudaError {
    move |e| CudaError::Driver(format!("{what}: {e:?}"))
}

impl Blas {
    pub(crate) fn new(ctx: &Arc<CudaContext>, stream: &Arc<CudaStream>) -> Result<Blas, CudaError> {
        super::probe::cublas_library_present()?;
        ctx.bind_to_thread()
            .map_err(|e| CudaError::Driver(format!("binding the context: {e:?}")))?;
        let handle = br::create_handle().map_err(blas_err("cublasCreate"))?;
        let blas = Blas {
            handle,
            ctx: ctx.clone(),
            lock: Mutex::new(()),
        };
        // SAFETY: a live handle and the device's live stream (kept alive by the device).
        unsafe { br::set_stream(handle, stream.cu_stream() as bsys::cudaStream_t) }
            .map_err(blas_err("cublasSetStream"))?;
        Ok(blas)
    }

    /// Row-major `C[b] = A[b]·B[b]` for `b < batch`, with `C` contiguous (`m × n` per batch
    /// entry, entries `m·n` apart). Returns `Ok(false)` without doing anything when an operand
    /// has no unit-stride axis (the caller copies it contiguous and calls again).
    ///
    /// # Safety
    /// The addresses must be live device memory of this context holding every element the
    /// shapes and strides reach, of `dtype`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm(
        &self,
        dtype: FloatType,
        precision: GemmPrecision,
        m: usize,
        n: usize,
        k: usize,
        batch: usize,
        a: GemmOperand,
        b: GemmOperand,
        c_ptr: u64,
    ) -> Result<bool, CudaError> {
        if m == 0 || n == 0 || batch == 0 {
            return Ok(true);
        }
        let (Some((ta, lda)), Some((tb, ldb))) = (
            operand_layout(m, k, a.row_stride, a.col_stride),
            operand_layout(k, n, b.row_stride, b.col_stride),
        ) else {
            return Ok(false);
        };
        let too_big = |what: &str| CudaError::Driver(format!("GEMM {what} exceeds cuBLAS's 32-bit sizes"));
        let int = |v: usize, what: &str| c_int::try_from(v).map_err(|_| too_big(what));
        let long = |v: usize, what: &str| c_longlong::try_from(v).map_err(|_| too_big(what));
        let (mi, ni, ki) = (int(m, "m")?, int(n, "n")?, int(k.max(1), "k")?);
        let op = |t: bool| {
            if t {
                bsys::cublasOperation_t::CUBLAS_OP_T
            } else {
                bsys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let (data_type, compute) = match (dtype, precision) {
            (FloatType::F32, GemmPrecision::F32) => (
                bsys::cudaDataType::CUDA_R_32F,
                bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
            (FloatType::F32, GemmPrecision::Tf32) => (
                bsys::cudaDataType::CUDA_R_32F,
                bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
            ),
            // bf16 storage, f32 accumulation.
            (FloatType::BF16, _) => (
                bsys::cudaDataType::CUDA_R_16BF,
                bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
        };
        // k = 0 is a product of empty sums: C = 0, which beta = 0 with alpha·(nothing) gives;
        // cuBLAS still wants valid leading dimensions, which operand_layout provides.
        let alpha: f32 = if k == 0 { 0.0 } else { 1.0 };
        let beta: f32 = 0.0;
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.ctx
            .bind_to_thread()
            .map_err(|e| CudaError::Driver(format!("binding the context: {e:?}")))?;
        // Column-major Cᵀ (n × m, ld n) = op(B)ᵀ-side first, then A: see the module comment.
        br::gemm_strided_batched_ex(
            self.handle,
            op(tb),
            op(ta),
            ni,
            mi,
            ki,
            (&alpha as *const f32).cast::<c_void>(),
            b.ptr as *const c_void,
            data_type,
            int(ldb, "ldb")?,
            long(b.batch_stride, "B's batch stride")?,
            a.ptr as *const c_void,
            data_type,
            int(lda, "lda")?,
            long(a.batch_stride, "A's batch stride")?,
            (&beta as *const f32).cast::<c_void>(),
            c_ptr as *mut c_void,
            data_type,
            ni,
            long(m * n, "C's batch stride")?,
            int(batch, "batch")?,
            compute,
            bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
        .map_err(blas_err("cublasGemmStridedBatchedEx"))?;
        Ok(true)
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: created by create_handle and destroyed once. A failure here has no one to
        // report to (cudarc's own wrapper would panic instead).
        unsafe {
            let _ = self.ctx.bind_to_thread();
            let _ = br::destroy_handle(self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_for_the_column_major_formula() {
        // Row-major 3x4: not transposed, ld 4 (or wider, for a narrowed view).
        assert_eq!(operand_layout(3, 4, 4, 1), Some((false, 4)));
        assert_eq!(operand_layout(3, 4, 10, 1), Some((false, 10)));
        // The transpose of a row-major 4x3 (strides 1, 3): transposed, ld 3.
        assert_eq!(operand_layout(3, 4, 1, 3), Some((true, 3)));
        // Vectors: any stride on the size-1 axis is fine.
        assert_eq!(operand_layout(1, 5, 0, 1), Some((false, 5)));
        assert_eq!(operand_layout(5, 1, 1, 0), Some((false, 1)));
        assert_eq!(operand_layout(1, 1, 7, 9), Some((false, 1)));
        // Neither axis unit-stride, or a broadcast row: copy first.
        assert_eq!(operand_layout(3, 4, 8, 2), None);
        assert_eq!(operand_layout(3, 4, 0, 1), None);
    }
}
