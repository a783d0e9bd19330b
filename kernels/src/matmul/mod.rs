//! Matrix multiply. PLACEHOLDER naive version with the final API; the blocked, SIMD,
//! multi-threaded kernel replaces this file's body.

pub mod launch;

use std::fmt;

/// A read-only strided matrix view: element (i, j) is `data[offset + i*row_stride + j*col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GemmError(pub String);
impl fmt::Display for GemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for GemmError {}

pub trait GemmScalar: crate::Float {}
impl GemmScalar for f32 {}
impl GemmScalar for f64 {}

pub fn gemm<T: GemmScalar>(
    a: MatRef<T>,
    b: MatRef<T>,
    c: &mut [T],
    accumulate: bool,
) -> Result<(), GemmError> {
    gemm_batched(a, &[a.offset], b, &[b.offset], c, accumulate)
}

pub fn gemm_batched<T: GemmScalar>(
    a: MatRef<T>,
    a_offsets: &[usize],
    b: MatRef<T>,
    b_offsets: &[usize],
    c: &mut [T],
    accumulate: bool,
) -> Result<(), GemmError> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || a_offsets.len() != b_offsets.len() || c.len() < a_offsets.len() * m * n {
        return Err(GemmError(format!(
            "gemm: [{m}, {k}] @ [{}, {n}] mismatch",
            b.rows
        )));
    }
    for (bi, (&ao, &bo)) in a_offsets.iter().zip(b_offsets).enumerate() {
        let c = &mut c[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = T::ZERO;
                for p in 0..k {
                    s += a.data[ao + i * a.row_stride + p * a.col_stride]
                        * b.data[bo + p * b.row_stride + j * b.col_stride];
                }
                if accumulate {
                    c[i * n + j] += s
                } else {
                    c[i * n + j] = s
                }
            }
        }
    }
    Ok(())
}
