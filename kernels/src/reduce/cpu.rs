//! CPU row reductions. Rows are independent, so large inputs split rows across threads.

use crate::Float;
use rayon::prelude::*;

/// Rows at or above this many total elements are reduced in parallel.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// Apply `f` to each row of length `len`, writing one value per row.
pub fn reduce_rows<T: Float, U: Copy + Send + Default>(
    x: &[T],
    len: usize,
    f: impl Fn(&[T]) -> U + Sync,
) -> Vec<U> {
    let rows = x.len().checked_div(len).unwrap_or(0);
    let mut out = vec![U::default(); rows];
    if x.len() >= PARALLEL_MIN_ELEMENTS {
        out.par_iter_mut()
            .zip(x.par_chunks(len))
            .for_each(|(o, r)| *o = f(r));
    } else {
        for (o, r) in out.iter_mut().zip(x.chunks(len)) {
            *o = f(r);
        }
    }
    out
}

/// Sum with eight independent accumulators: vectorizes, and its error grows like n/8 rather
/// than n for a single running sum.
#[inline]
pub fn sum<T: Float>(row: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for &v in rest {
        s += v;
    }
    s
}

/// Largest element; NaN if any element is NaN (a NaN must not vanish into a max).
#[inline]
pub fn max<T: Float>(row: &[T]) -> T {
    let mut m = T::NEG_INFINITY;
    for &v in row {
        if v.is_nan() {
            return v;
        }
        if v > m {
            m = v;
        }
    }
    m
}

/// Smallest element; NaN if any element is NaN.
#[inline]
pub fn min<T: Float>(row: &[T]) -> T {
    let mut m = T::INFINITY;
    for &v in row {
        if v.is_nan() {
            return v;
        }
        if v < m {
            m = v;
        }
    }
    m
}

/// log Σ exp(row), shifted by the row max so no term overflows. An all -inf row gives -inf.
#[inline]
pub fn logsumexp<T: Float>(row: &[T]) -> T {
    let m = max(row);
    if !m.is_finite() {
        // -inf (empty or all -inf), +inf or NaN: the shifted form would give NaN, the true value is m.
        return m;
    }
    let s: T = row.iter().map(|&v| (v - m).exp()).sum();
    m + s.ln()
}

/// Variance with `correction` subtracted from the count (0: population, 1: Bessel), two-pass
/// for accuracy.
#[inline]
pub fn var<T: Float>(row: &[T], correction: usize) -> T {
    let n = row.len();
    let mean = sum(row) / T::from_f64(n as f64);
    let ss: T = row.iter().map(|&v| (v - mean) * (v - mean)).sum();
    ss / T::from_f64(n.saturating_sub(correction) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_reductions() {
        let x: Vec<f64> = (0..12).map(|i| i as f64).collect();
        assert_eq!(reduce_rows(&x, 4, sum), vec![6.0, 22.0, 38.0]);
        assert_eq!(reduce_rows(&x, 4, max), vec![3.0, 7.0, 11.0]);
        assert_eq!(reduce_rows(&x, 4, min), vec![0.0, 4.0, 8.0]);
        let v = reduce_rows(&x, 4, |r| var(r, 1));
        assert!((v[0] - 5.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn logsumexp_extremes() {
        assert_eq!(
            logsumexp(&[f32::NEG_INFINITY, f32::NEG_INFINITY]),
            f32::NEG_INFINITY
        );
        assert!((logsumexp(&[1000.0f32, 1000.0]) - (1000.0 + 2f32.ln())).abs() < 1e-3);
        assert!(max(&[1.0f32, f32::NAN, 2.0]).is_nan());
    }
}
