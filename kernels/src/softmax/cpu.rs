//! CPU softmax and log-softmax over the rows of a contiguous `[rows, n]` buffer.
//!
//! Formulas, per row `x` of length n with `m = max_j x_j`:
//!   softmax               y_i  = exp(x_i − m) / Σ_j exp(x_j − m)
//!   log_softmax           y_i  = (x_i − m) − ln Σ_j exp(x_j − m)
//!   softmax backward      dx_i = y_i · (g_i − Σ_j g_j·y_j)
//!   log_softmax backward  dx_i = g_i − exp(y_i) · Σ_j g_j
//! (the backward passes read only the forward output `y`, never `x`).
//!
//! Cost per row, with s = `size_of::<T>()`:
//!   forward   reads n·s and writes n·s bytes (the minimum for a fused kernel; this CPU version
//!             reads the row three times, from cache); about 4n FLOPs and n `exp`
//!             (log_softmax: one `ln` more).
//!   backward  reads 2n·s (y and g) and writes n·s bytes; about 4n FLOPs
//!             (log_softmax: plus n `exp`).
//!
//! Numerics:
//! * Subtracting the row max makes every exponent ≤ 0, so no term overflows, and the largest term
//!   is exactly 1, so the sum lies in [1, n] and its log is finite.
//! * A row that is entirely -inf (a fully masked attention row) has no finite max: `x − m` would be
//!   `-inf − (-inf) = NaN`. Such a row gives softmax 0 everywhere and log_softmax -inf
//!   everywhere, and both backward passes give exactly 0 for it: the output does not move when the
//!   input does, so the gradient is zero. (PyTorch returns NaN for such rows.)
//! * A NaN anywhere in a row makes the whole row NaN, so it cannot be hidden; a +inf entry gives
//!   NaN (`inf − inf`), as in PyTorch.
//! * Sums accumulate in `T`, the compute type, using `reduce::cpu::sum`'s eight lanes where the
//!   terms sit in a slice.

use crate::reduce::cpu::{max, sum};
use crate::Float;
use rayon::prelude::*;

/// Buffers of at least this many elements are processed one row per rayon task; below it,
/// spawning costs more than it saves (the same threshold as the elementwise and reduce kernels).
pub const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// Call `f(row_index, out_row)` for each of the `rows` rows of length `n` of `out`, on several
/// threads for large buffers, and return `f`'s per-row results in row order (used for saved
/// per-row statistics). Rows are independent, so the result does not depend on the thread count.
/// `rows` is explicit so that rows of length 0 still get their call.
pub fn map_rows<T: Send, S: Send>(
    out: &mut [T],
    rows: usize,
    n: usize,
    f: impl Fn(usize, &mut [T]) -> S + Sync,
) -> Vec<S> {
    assert_eq!(out.len(), rows * n, "map_rows: callers size the output");
    if n == 0 {
        return (0..rows).map(|r| f(r, &mut [])).collect();
    }
    if out.len() >= PARALLEL_MIN_ELEMENTS {
        out.par_chunks_mut(n)
            .enumerate()
            .map(|(r, row)| f(r, row))
            .collect()
    } else {
        out.chunks_mut(n).enumerate().map(|(r, row)| f(r, row)).collect()
    }
}

/// Number of rows of length `n` in a buffer of `len` elements (0 rows when `n == 0`).
pub(crate) fn row_count(len: usize, n: usize) -> usize {
    let rows = len.checked_div(n).unwrap_or(0);
    assert_eq!(
        rows * n,
        len,
        "buffer of {len} elements is not a whole number of rows of {n}"
    );
    rows
}

/// Softmax of each row of length `n` of `x`.
pub fn softmax<T: Float>(x: &[T], n: usize) -> Vec<T> {
    let rows = row_count(x.len(), n);
    let mut y = vec![T::ZERO; x.len()];
    map_rows(&mut y, rows, n, |r, out| softmax_row(&x[r * n..(r + 1) * n], out));
    y
}

/// Log-softmax of each row of length `n` of `x`.
pub fn log_softmax<T: Float>(x: &[T], n: usize) -> Vec<T> {
    let rows = row_count(x.len(), n);
    let mut y = vec![T::ZERO; x.len()];
    map_rows(&mut y, rows, n, |r, out| {
        log_softmax_row(&x[r * n..(r + 1) * n], out)
    });
    y
}

/// Gradient of softmax: `dx = y ⊙ (g − Σ g⊙y)` per row, from the forward output `y`.
pub fn softmax_backward<T: Float>(y: &[T], g: &[T], n: usize) -> Vec<T> {
    assert_eq!(y.len(), g.len(), "softmax_backward: y and g differ in length");
    let rows = row_count(y.len(), n);
    let mut dx = vec![T::ZERO; y.len()];
    map_rows(&mut dx, rows, n, |r, out| {
        softmax_backward_row(&y[r * n..(r + 1) * n], &g[r * n..(r + 1) * n], out)
    });
    dx
}

/// Gradient of log_softmax: `dx = g − softmax · Σ g` per row, from the forward output `y`
/// (`softmax = exp(y)`).
pub fn log_softmax_backward<T: Float>(y: &[T], g: &[T], n: usize) -> Vec<T> {
    assert_eq!(y.len(), g.len(), "log_softmax_backward: y and g differ in length");
    let rows = row_count(y.len(), n);
    let mut dx = vec![T::ZERO; y.len()];
    map_rows(&mut dx, rows, n, |r, out| {
        log_softmax_backward_row(&y[r * n..(r + 1) * n], &g[r * n..(r + 1) * n], out)
    });
    dx
}

// The row functions below are shared with `masked_xent::cpu`: the masked softmax writes the
// masked logits (the mask value in masked places) into the output row and runs the in-place
// forms, and its backward runs these backward rows and then zeroes the masked entries.

/// `dx = y ⊙ (g − Σ g⊙y)` for one row.
pub(crate) fn softmax_backward_row<T: Float>(y: &[T], g: &[T], out: &mut [T]) {
    let dot: T = y.iter().zip(g).map(|(&y, &g)| y * g).sum();
    // A fully masked row has y = 0, so its gradient is exactly 0 with no special case.
    for ((d, &y), &g) in out.iter_mut().zip(y).zip(g) {
        *d = y * (g - dot);
    }
}

/// `dx = g − exp(y) · Σ g` for one row.
pub(crate) fn log_softmax_backward_row<T: Float>(y: &[T], g: &[T], out: &mut [T]) {
    // All -inf output means an all -inf input row (any other row has a finite max entry,
    // y = −ln Σ ≥ −ln n): constant output, zero gradient. Without this check dx would be g.
    if max(y) == T::NEG_INFINITY {
        out.fill(T::ZERO);
        return;
    }
    let total = sum(g);
    for ((d, &y), &g) in out.iter_mut().zip(y).zip(g) {
        *d = g - y.exp() * total;
    }
}

fn softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    y.copy_from_slice(x);
    softmax_in_place(y);
}

fn log_softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    y.copy_from_slice(x);
    log_softmax_in_place(y);
}

/// Softmax of the row `y`, overwriting it.
pub(crate) fn softmax_in_place<T: Float>(y: &mut [T]) {
    let m = max(y);
    if m == T::NEG_INFINITY {
        y.fill(T::ZERO);
        return;
    }
    for o in y.iter_mut() {
        *o -= m;
    }
    T::exp_in_place(y);
    let s = sum(y);
    // Divide rather than multiply by 1/s: one rounding instead of two, and this is the
    // reference the GPU kernels are checked against.
    for o in y.iter_mut() {
        *o /= s;
    }
}

/// Log-softmax of the row `y`, overwriting it.
pub(crate) fn log_softmax_in_place<T: Float>(y: &mut [T]) {
    let m = max(y);
    if m == T::NEG_INFINITY {
        y.fill(T::NEG_INFINITY);
        return;
    }
    for o in y.iter_mut() {
        *o -= m;
    }
    // Σ e^d through a small buffer, so the exponentials vectorize (`Float::exp_in_place`).
    let mut buf = [T::ZERO; 256];
    let mut total = T::ZERO;
    for chunk in y.chunks(buf.len()) {
        let b = &mut buf[..chunk.len()];
        b.copy_from_slice(chunk);
        T::exp_in_place(b);
        total += b.iter().copied().sum::<T>();
    }
    let log_sum = total.ln();
    for o in y.iter_mut() {
        *o -= log_sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG_INF: f64 = f64::NEG_INFINITY;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn forward_values_and_stability() {
        let x = [1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0];
        let y = softmax(&x, 3);
        let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let s: f64 = e.iter().sum();
        assert!(close(&y[..3], &[e[0] / s, e[1] / s, e[2] / s], 1e-15));
        // Naive exp(1000) overflows; the shifted form gives exactly 1/3.
        assert!(close(&y[3..], &[1.0 / 3.0; 3], 1e-15));
        let ly = log_softmax(&x, 3);
        assert!(close(
            &ly[..3],
            &[1.0 - s.ln(), 2.0 - s.ln(), 3.0 - s.ln()],
            1e-14
        ));
        assert!(close(&ly[3..], &[-(3f64.ln()); 3], 1e-14));
        let y32 = softmax(&[1000.0f32, 0.0], 2);
        assert_eq!(y32, vec![1.0, 0.0]);
    }

    #[test]
    fn fully_masked_row_is_zero_not_nan() {
        let x = [NEG_INF, NEG_INF, NEG_INF, 0.5, NEG_INF, 1.5];
        let y = softmax(&x, 3);
        assert_eq!(&y[..3], &[0.0, 0.0, 0.0]);
        assert_eq!(y[4], 0.0);
        assert!((y[3] + y[5] - 1.0).abs() < 1e-15);
        let ly = log_softmax(&x, 3);
        assert_eq!(&ly[..3], &[NEG_INF; 3]);
        assert_eq!(ly[4], NEG_INF);
        let g = [0.3, -1.2, 0.7, 0.3, -1.2, 0.7];
        let dx = softmax_backward(&y, &g, 3);
        assert_eq!(&dx[..3], &[0.0; 3]);
        let dlx = log_softmax_backward(&ly, &g, 3);
        assert_eq!(&dlx[..3], &[0.0; 3]);
        assert!(dx.iter().chain(&dlx).all(|v| v.is_finite()));
        // The masked entry of a partly masked row: d(x_i − lse)/dx_i = 1 − p_i = 1, so dx = g.
        assert_eq!(dlx[4], g[4]);
    }

    #[test]
    fn nan_propagates() {
        let y = softmax(&[1.0f32, f32::NAN, 2.0], 3);
        assert!(y.iter().all(|v| v.is_nan()));
        assert!(log_softmax(&[f64::NAN, 0.0], 2).iter().all(|v| v.is_nan()));
    }

    /// Both backward formulas against central differences of ⟨forward(x), g⟩ in f64.
    #[test]
    fn backward_matches_finite_differences() {
        let x = [0.3, -1.1, 2.0, 0.4, 0.9, -0.2, 0.0, 1.7];
        let g = [0.5, -1.0, 0.25, 2.0, -0.7, 1.3, 0.1, -0.4];
        let n = 4;
        type Forward = fn(&[f64], usize) -> Vec<f64>;
        let pairs: [(Forward, Vec<f64>); 2] = [
            (softmax, softmax_backward(&softmax(&x, n), &g, n)),
            (log_softmax, log_softmax_backward(&log_softmax(&x, n), &g, n)),
        ];
        let h = 1e-6;
        for (forward, analytic) in pairs {
            let project = |x: &[f64]| -> f64 { forward(x, n).iter().zip(&g).map(|(a, b)| a * b).sum() };
            for i in 0..x.len() {
                let (mut p, mut m) = (x, x);
                p[i] += h;
                m[i] -= h;
                let numeric = (project(&p) - project(&m)) / (2.0 * h);
                assert!(
                    (numeric - analytic[i]).abs() < 1e-8,
                    "element {i}: {numeric} vs {}",
                    analytic[i]
                );
            }
        }
    }

    #[test]
    fn parallel_rows_match_serial() {
        let n = 257;
        let rows = PARALLEL_MIN_ELEMENTS / n + 3;
        let x: Vec<f32> = (0..rows * n)
            .map(|i| ((i * 7919) % 101) as f32 * 0.05 - 2.5)
            .collect();
        let y = softmax(&x, n);
        for r in [0, rows / 2, rows - 1] {
            let mut serial = vec![0.0; n];
            softmax_row(&x[r * n..(r + 1) * n], &mut serial);
            assert_eq!(&y[r * n..(r + 1) * n], &serial[..]);
        }
        let stats = map_rows(&mut vec![0u8; rows * n], rows, n, |r, _| r);
        assert_eq!(stats, (0..rows).collect::<Vec<_>>());
    }

    #[test]
    fn empty_rows() {
        assert!(softmax::<f64>(&[], 0).is_empty());
        assert!(log_softmax::<f32>(&[], 5).is_empty());
        assert_eq!(map_rows::<f32, usize>(&mut [], 3, 0, |r, _| r), vec![0, 1, 2]);
    }
}
