//! Dense matrix multiply on the CPU: `C = A @ B` (optionally `C += A @ B`) for `f32` and `f64`.
//!
//! # What is computed
//!
//! `A` is `m x k`, `B` is `k x n`, `C` is `m x n`, and
//! `C[i, j] = sum_p A[i, p] * B[p, j]` for `p` in `0..k`. That is `m * n * k` multiplies and as
//! many adds, so the operation count used in every GFLOP/s figure of this crate is **`2 m n k`**.
//!
//! `A` and `B` are read through [`MatRef`], a strided view: element `(i, j)` lives at
//! `data[offset + i * row_stride + j * col_stride]`. A transpose is a view with the two strides
//! swapped, so the backward pass of `Y = X @ W` computes `dX = dY @ W^T` and `dW = X^T @ dY`
//! without copying anything. `C` is always a plain row-major `m x n` slice (leading dimension
//! `n`), which is what the tensors above this crate own.
//!
//! # How it is computed (the BLIS / GotoBLAS algorithm)
//!
//! A triple loop reads each element of `A` and `B` from memory `n` or `m` times and runs at memory
//! speed, a few GFLOP/s. A fast GEMM instead arranges for nearly all loads to hit the L1 cache and
//! for the innermost work to be a register-resident outer-product update. The loop nest (see
//! `cpu.rs`, and Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication", 2008;
//! Van Zee & van de Geijn, "BLIS", 2015) is:
//!
//! ```text
//! for jc in 0..n step NC                       // 5th loop: a KC x NC block of B lives in L3
//!   for pc in 0..k step KC                     // 4th loop: rank-KC updates of C
//!     pack B[pc.., jc..] into NR-column panels  //   (contiguous, zero-padded, 64-byte aligned)
//!     for ic in 0..m step MC      (parallel)   // 3rd loop: an MC x KC block of A lives in L2
//!       pack A[ic.., pc..] into MR-row panels
//!       for jr in 0..NC step NR                // 2nd loop: one KC x NR panel of B stays in L1
//!         for ir in 0..MC step MR              // 1st loop
//!           micro-kernel: C[ir..ir+MR, jr..jr+NR] += Apanel (MR x KC) @ Bpanel (KC x NR)
//! ```
//!
//! The micro-kernel keeps the whole `MR x NR` tile of `C` in vector registers for all `KC` steps;
//! each step loads `NR` values of `B` (a few vectors), broadcasts `MR` values of `A`, and issues
//! `MR * NR / lanes` fused multiply-adds. Packing makes both operands unit-stride regardless of the
//! caller's strides, which is also what makes transposed views free. The micro-kernels live in
//! `microkernel.rs`: AVX-512F and AVX2+FMA ones chosen at run time with `is_x86_feature_detected!`
//! (the crate is compiled for baseline x86-64, so it cannot assume either), and a portable one in
//! plain Rust for every other CPU.
//!
//! Tiny products (below [`SMALL_WORK`] multiply-adds, or with `m` or `n` far below the tile size)
//! skip packing and threading entirely and use a simple loop: there the fixed costs (packing,
//! padding the tiles, waking rayon workers) would dominate. Mid-size products are packed but run
//! on the calling thread only.

mod cpu;
mod microkernel;
#[cfg(test)]
mod tests;

pub use microkernel::kernel_name;

pub mod cost;
pub mod launch;

use std::fmt;

/// A read-only strided matrix view: element `(i, j)` is
/// `data[offset + i * row_stride + j * col_stride]`.
///
/// A row-major `rows x cols` matrix has `row_stride = cols, col_stride = 1`; its transpose is the
/// same data with `rows`/`cols` and the two strides swapped (see [`MatRef::t`]).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A contiguous row-major `rows x cols` matrix starting at `data[0]`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            offset: 0,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transposed view (no copy): rows and columns, and their strides, swapped.
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Index into `data` of element `(i, j)`; the caller keeps `i < rows`, `j < cols`.
    #[inline(always)]
    fn idx(&self, i: usize, j: usize) -> usize {
        self.offset + i * self.row_stride + j * self.col_stride
    }

    /// Checks that every element of the view (with its offset replaced by `offset`) is inside
    /// `data`. Empty views are always valid.
    fn check_bounds(&self, which: &'static str, offset: usize) -> Result<(), GemmError> {
        if self.rows == 0 || self.cols == 0 {
            return Ok(());
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|r| (self.cols - 1).checked_mul(self.col_stride)?.checked_add(r))
            .and_then(|x| x.checked_add(offset));
        match last {
            Some(last) if last < self.data.len() => Ok(()),
            _ => Err(GemmError::ViewOutOfBounds {
                operand: which,
                rows: self.rows,
                cols: self.cols,
                offset,
                row_stride: self.row_stride,
                col_stride: self.col_stride,
                len: self.data.len(),
            }),
        }
    }
}

/// Why a GEMM call was rejected. Nothing is written to `C` when an error is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GemmError {
    /// `A` is `m x k` but `B` is not `k x n`.
    InnerDimMismatch {
        a_rows: usize,
        a_cols: usize,
        b_rows: usize,
        b_cols: usize,
    },
    /// A view reaches past the end of its `data` slice.
    ViewOutOfBounds {
        operand: &'static str,
        rows: usize,
        cols: usize,
        offset: usize,
        row_stride: usize,
        col_stride: usize,
        len: usize,
    },
    /// The output slice is shorter than `batch * m * n`.
    OutputTooSmall {
        batch: usize,
        m: usize,
        n: usize,
        len: usize,
    },
    /// `a_offsets` and `b_offsets` of a batched call have different lengths.
    BatchMismatch { a_batch: usize, b_batch: usize },
    /// `m * n` (times the batch count) or a view extent does not fit in `usize`.
    SizeOverflow,
}

impl fmt::Display for GemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GemmError::InnerDimMismatch {
                a_rows,
                a_cols,
                b_rows,
                b_cols,
            } => write!(
                f,
                "gemm: inner dimensions differ: A is {a_rows}x{a_cols} but B is {b_rows}x{b_cols}"
            ),
            GemmError::ViewOutOfBounds {
                operand,
                rows,
                cols,
                offset,
                row_stride,
                col_stride,
                len,
            } => write!(
                f,
                "gemm: view of {operand} ({rows}x{cols}, offset {offset}, strides \
                 ({row_stride}, {col_stride})) reaches past its data of length {len}"
            ),
            GemmError::OutputTooSmall { batch, m, n, len } => write!(
                f,
                "gemm: output has length {len} but {batch} batch(es) of {m}x{n} need {}",
                batch.saturating_mul(m).saturating_mul(n)
            ),
            GemmError::BatchMismatch { a_batch, b_batch } => write!(
                f,
                "gemm_batched: {a_batch} offsets for A but {b_batch} offsets for B"
            ),
            GemmError::SizeOverflow => write!(f, "gemm: problem size overflows usize"),
        }
    }
}

impl std::error::Error for GemmError {}

mod sealed {
    /// Arithmetic and kernel selection the GEMM needs; private so the set of scalars stays closed.
    pub trait Sealed: Copy + PartialEq + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> {
        /// The micro-kernel (and its blocking sizes) for this CPU, chosen once.
        fn kernel() -> &'static super::microkernel::Kernel<Self>;
        /// Every kernel this CPU can run, best first (lets the tests cover the fallbacks too).
        #[cfg(test)]
        fn all_kernels() -> Vec<&'static super::microkernel::Kernel<Self>>;
        /// Per-thread scratch vectors for the packed panels (`slot` 0: `A`, 1: `B`), kept between
        /// calls so that repeated products neither allocate nor zero-fill their packing buffers.
        fn scratch(slot: usize) -> &'static std::thread::LocalKey<std::cell::Cell<Vec<Self>>>;
    }
}

/// A scalar type the GEMM supports: `f32` and `f64`.
pub trait GemmScalar: Copy + Send + Sync + 'static + sealed::Sealed {
    /// Additive identity.
    const ZERO: Self;
    /// Conversion used by tests and tools (exact for `f32` and `f64`).
    fn to_f64(self) -> f64;
}

impl GemmScalar for f32 {
    const ZERO: Self = 0.0;
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl GemmScalar for f64 {
    const ZERO: Self = 0.0;
    fn to_f64(self) -> f64 {
        self
    }
}

/// Products with fewer multiply-adds than this (`m * n * k`) take the simple unpacked,
/// single-threaded loop. Packing pays for itself remarkably early: on the AVX-512 machine of
/// `docs/cpu-matmul.md` the packed path was already faster at 12^3 (8 vs 5 GFLOP/s) and 3x
/// faster at 32^3 (40 vs 13), and with the portable micro-kernel it was ahead from 16^3 on. (The
/// simple path is also taken when `m` or `n` is so far below the tile size that most of each
/// micro-kernel tile would be padding; see `cpu::gemm_dispatch`.)
pub const SMALL_WORK: usize = 16 * 16 * 16;

/// Products with at least this many multiply-adds are split across rayon's threads. Handing work
/// to another thread costs tens of microseconds on a busy virtual machine (waking the worker, the
/// barrier after each packed block of `B`). Measured on the 2-core machine of
/// `docs/cpu-matmul.md` (f32): at 128^3 and 160^3 two threads were no faster than one, at 192^3
/// it was a toss-up, at 256^3 two threads were 1.5x faster.
const PARALLEL_WORK: usize = 200 * 200 * 200;

/// `C[m x n]` (row-major, contiguous, leading dimension `n`) `= A[m x k] @ B[k x n]`, or
/// `C += A @ B` when `accumulate` is true.
///
/// `c` must hold at least `m * n` elements; only the first `m * n` are touched. When
/// `accumulate` is false the previous contents of `C` are never read (NaNs there do not leak).
/// Empty dimensions are valid: with `k == 0`, `C` is zeroed (or left alone when accumulating).
pub fn gemm<T: GemmScalar>(
    a: MatRef<T>,
    b: MatRef<T>,
    c: &mut [T],
    accumulate: bool,
) -> Result<(), GemmError> {
    let (m, n) = check_shapes(&a, &b)?;
    a.check_bounds("A", a.offset)?;
    b.check_bounds("B", b.offset)?;
    let mn = m.checked_mul(n).ok_or(GemmError::SizeOverflow)?;
    if c.len() < mn {
        return Err(GemmError::OutputTooSmall {
            batch: 1,
            m,
            n,
            len: c.len(),
        });
    }
    let work = mn.saturating_mul(a.cols);
    cpu::gemm_dispatch(T::kernel(), a, b, &mut c[..mn], accumulate, work >= PARALLEL_WORK);
    Ok(())
}

/// Batched GEMM: for each batch index `i`, `c[i*m*n .. (i+1)*m*n] = A_i @ B_i` (or `+=` when
/// `accumulate`), where `A_i` is the view `a` with its `offset` replaced by `a_offsets[i]`, and
/// `B_i` likewise with `b_offsets[i]`.
///
/// The batch count is `a_offsets.len()`, which must equal `b_offsets.len()`. `a.offset` and
/// `b.offset` are not used. Repeating an offset broadcasts that operand over the batch without a
/// copy (e.g. `b_offsets = [0; batch]` for one weight matrix shared by every batch element).
/// Independent batch elements run in parallel when each is too small to be worth splitting.
pub fn gemm_batched<T: GemmScalar>(
    a: MatRef<T>,
    a_offsets: &[usize],
    b: MatRef<T>,
    b_offsets: &[usize],
    c: &mut [T],
    accumulate: bool,
) -> Result<(), GemmError> {
    if a_offsets.len() != b_offsets.len() {
        return Err(GemmError::BatchMismatch {
            a_batch: a_offsets.len(),
            b_batch: b_offsets.len(),
        });
    }
    let batch = a_offsets.len();
    let (m, n) = check_shapes(&a, &b)?;
    for &off in a_offsets {
        a.check_bounds("A", off)?;
    }
    for &off in b_offsets {
        b.check_bounds("B", off)?;
    }
    let mn = m.checked_mul(n).ok_or(GemmError::SizeOverflow)?;
    let total = mn.checked_mul(batch).ok_or(GemmError::SizeOverflow)?;
    if c.len() < total {
        return Err(GemmError::OutputTooSmall {
            batch,
            m,
            n,
            len: c.len(),
        });
    }
    if batch == 0 || mn == 0 {
        return Ok(());
    }
    let kern = T::kernel();
    let work = mn.saturating_mul(a.cols);
    let one = |(i, ci): (usize, &mut [T]), parallel: bool| {
        let ai = MatRef {
            offset: a_offsets[i],
            ..a
        };
        let bi = MatRef {
            offset: b_offsets[i],
            ..b
        };
        cpu::gemm_dispatch(kern, ai, bi, ci, accumulate, parallel);
    };
    let c = &mut c[..total];
    if work >= PARALLEL_WORK * 4 || batch == 1 {
        // Each product is big enough to keep every core busy by itself: run them one after the
        // other, each split across the threads (this keeps one B block hot in the shared cache).
        c.chunks_mut(mn)
            .enumerate()
            .for_each(|x| one(x, work >= PARALLEL_WORK));
    } else if work.saturating_mul(batch) >= PARALLEL_WORK {
        use rayon::prelude::*;
        c.par_chunks_mut(mn).enumerate().for_each(|x| one(x, false));
    } else {
        c.chunks_mut(mn).enumerate().for_each(|x| one(x, false));
    }
    Ok(())
}

/// Returns `(m, n)` after checking that `A` is `m x k` and `B` is `k x n`.
fn check_shapes<T>(a: &MatRef<T>, b: &MatRef<T>) -> Result<(usize, usize), GemmError> {
    if a.cols != b.rows {
        return Err(GemmError::InnerDimMismatch {
            a_rows: a.rows,
            a_cols: a.cols,
            b_rows: b.rows,
            b_cols: b.cols,
        });
    }
    Ok((a.rows, b.cols))
}
