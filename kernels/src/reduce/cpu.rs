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

/// How `reduce_middle` combines values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    Sum,
    Max,
    Min,
}

/// Reduce the middle axis of a contiguous `[outer, r, inner]` buffer:
/// `out[o, i] = ⊕_j x[o, j, i]`. Used when the reduced axes are not innermost (a bias gradient
/// sums over the batch axis): combining whole rows of `inner` elements keeps the loop
/// contiguous and vectorized, where moving the axis innermost would first need a transposing
/// copy. NaN propagates through `Max`/`Min`. `r` must be at least 1 for `Max`/`Min`.
pub fn reduce_middle<T: Float>(x: &[T], outer: usize, r: usize, inner: usize, op: Combine) -> Vec<T> {
    let mut out = vec![T::ZERO; outer * inner];
    if r == 0 || inner == 0 {
        return out;
    }
    // Columns are independent; split them across threads when there is enough work.
    let cols_per_task = if x.len() >= PARALLEL_MIN_ELEMENTS {
        2048
    } else {
        inner.max(1)
    };
    for o in 0..outer {
        let block = &x[o * r * inner..(o + 1) * r * inner];
        let row_out = &mut out[o * inner..(o + 1) * inner];
        let task = |(c, acc): (usize, &mut [T])| {
            let start = c * cols_per_task;
            acc.copy_from_slice(&block[start..start + acc.len()]);
            for j in 1..r {
                let src = &block[j * inner + start..j * inner + start + acc.len()];
                match op {
                    Combine::Sum => acc.iter_mut().zip(src).for_each(|(a, &v)| *a += v),
                    Combine::Max => acc.iter_mut().zip(src).for_each(|(a, &v)| {
                        if v > *a || v.is_nan() {
                            *a = v
                        }
                    }),
                    Combine::Min => acc.iter_mut().zip(src).for_each(|(a, &v)| {
                        if v < *a || v.is_nan() {
                            *a = v
                        }
                    }),
                }
            }
        };
        if cols_per_task < inner {
            row_out.par_chunks_mut(cols_per_task).enumerate().for_each(task);
        } else {
            task((0, row_out));
        }
    }
    out
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
    fn middle_axis_matches_rows() {
        // [2, 3, 4]: reduce the middle axis.
        let x: Vec<f64> = (0..24).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
        for op in [Combine::Sum, Combine::Max, Combine::Min] {
            let got = reduce_middle(&x, 2, 3, 4, op);
            for o in 0..2 {
                for i in 0..4 {
                    let col: Vec<f64> = (0..3).map(|j| x[o * 12 + j * 4 + i]).collect();
                    let want = match op {
                        Combine::Sum => sum(&col),
                        Combine::Max => max(&col),
                        Combine::Min => min(&col),
                    };
                    assert_eq!(got[o * 4 + i], want, "{op:?}");
                }
            }
        }
        // Large enough to take the parallel path.
        let big = vec![1.0f32; 3 * 40_000];
        assert!(reduce_middle(&big, 1, 3, 40_000, Combine::Sum)
            .iter()
            .all(|&v| v == 3.0));
        assert!(reduce_middle(&[1.0f32, f32::NAN, 0.5, 2.0], 1, 2, 2, Combine::Max)[1].is_nan());
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
