//! CPU cross-entropy over `[rows, classes]` logits with `i64` targets, and squared error.
//!
//! Formulas, per row `x` of C logits with target class t:
//!   cross_entropy  lse = ln Σ_j exp(x_j),  loss = lse − x_t;  saves lse per row
//!     backward     dx_j = g_row · (exp(x_j − lse) − [j = t])      (softmax − onehot)
//!   squared error  e_i = (p_i − t_i)²
//!     backward     dp_i = 2·(p_i − t_i)·g_i   (and dt_i = −dp_i)
//! `g_row`/`g_i` come from the reduction: one value per row or element for no reduction, one
//! value for all (already divided by the count for a mean) otherwise.
//!
//! Cost per row, with s = `size_of::<T>()`:
//!   cross_entropy forward   reads C·s + 8 bytes, writes 2s;  about 4C FLOPs and C `exp`
//!   cross_entropy backward  reads C·s + 8 + 2s, writes C·s;  about 2C FLOPs and C `exp`
//!   squared error           reads 2s, writes s per element; 2 FLOPs (backward 3)
//!
//! Numerics:
//! * Cross-entropy is the unmasked case of `masked_xent::cpu` (one implementation for both):
//!   the log-sum-exp is computed in one pass over the row, in chunks of 1024 logits, each
//!   chunk's max and Σ exp(x − max) folded into a running pair and rescaled by
//!   exp(m_old − m_new) when the max grows (the "online softmax" of Milakov & Gimelshein, 2018).
//!   Every exponent is ≤ 0, so nothing overflows, while the logits are read once.
//! * The backward recomputes the softmax from the saved lse instead of saving the [rows, C]
//!   probabilities: one `exp` per element is cheaper than storing and re-reading C values.
//! * A row whose logits are all -inf gives the target probability 0, so loss +inf (not the NaN of
//!   −inf − (−inf)), and gradient exactly 0 for that row, as `log_softmax`'s backward. A -inf
//!   target logit in an otherwise finite row gives loss +inf with a finite gradient. NaN
//!   propagates to the row's loss.
//! * Sums accumulate in T, the compute type.
//!
//! Targets must lie in `0..C`; the autograd op checks this and reports the offending value, so
//! here an out-of-range target is a caller bug and panics.

use crate::masked_xent::cpu as xent;
use crate::masked_xent::{ClassMask, XentOptions};
use crate::Float;

/// Per-row outputs of [`cross_entropy`].
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyOutput<T> {
    /// `lse − x_t` for each row.
    pub loss: Vec<T>,
    /// `ln Σ exp(x)` for each row, saved for the backward.
    pub lse: Vec<T>,
}

/// Cross-entropy of each row of `classes` logits (`classes > 0`) against its target class.
/// This is the unmasked, option-free case of `masked_xent::cpu::cross_entropy_forward`, which
/// computes it.
pub fn cross_entropy<T: Float>(logits: &[T], targets: &[i64], classes: usize) -> CrossEntropyOutput<T> {
    let rows =
        xent::cross_entropy_forward(logits, targets, classes, &ClassMask::All, &XentOptions::default());
    CrossEntropyOutput {
        loss: rows.loss,
        lse: rows.lse,
    }
}

/// Gradient of cross-entropy with respect to the logits: `g_row · (softmax − onehot)`, from the
/// saved `lse`. `g` has one value per row, or a single value used for every row.
pub fn cross_entropy_backward<T: Float>(
    logits: &[T],
    targets: &[i64],
    lse: &[T],
    g: &[T],
    classes: usize,
) -> Vec<T> {
    xent::plain_cross_entropy_backward(logits, targets, classes, lse, g)
}

/// `(p − t)²` elementwise.
pub fn squared_error<T: Float>(p: &[T], t: &[T]) -> Vec<T> {
    crate::elementwise::cpu::zip_map(p, t, |p, t| (p - t) * (p - t))
}

/// `2·(p − t)·g` elementwise, the gradient of `(p − t)²` with respect to `p` (the gradient with
/// respect to `t` is its negation). `g` has one value per element, or a single value for all.
pub fn squared_error_backward<T: Float>(p: &[T], t: &[T], g: &[T]) -> Vec<T> {
    let two = T::from_f64(2.0);
    if g.len() == 1 {
        let g = g[0];
        crate::elementwise::cpu::zip_map(p, t, |p, t| two * (p - t) * g)
    } else {
        assert_eq!(
            g.len(),
            p.len(),
            "squared_error_backward: g per element or one for all"
        );
        let d = crate::elementwise::cpu::zip_map(p, t, |p, t| two * (p - t));
        crate::elementwise::cpu::zip_map(&d, g, |d, g| d * g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG_INF: f64 = f64::NEG_INFINITY;

    fn two_pass_lse(x: &[f64]) -> f64 {
        let m = x.iter().cloned().fold(NEG_INF, f64::max);
        m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
    }

    #[test]
    fn forward_matches_two_pass_and_is_stable() {
        let x = [0.3, -1.1, 2.0, 0.4, 900.0, -0.2, 1000.0, 1000.0];
        let out = cross_entropy(&x, &[2, 0], 4);
        for r in 0..2 {
            let row = &x[r * 4..(r + 1) * 4];
            assert!((out.lse[r] - two_pass_lse(row)).abs() < 1e-13);
        }
        assert!((out.loss[0] - (two_pass_lse(&x[..4]) - 2.0)).abs() < 1e-13);
        // exp(1000) overflows; the online form gives 1000 + ln 2 for the lse.
        assert!((out.lse[1] - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert!((out.loss[1] - (100.0 + 2f64.ln())).abs() < 1e-12);
        let f32_out = cross_entropy(&[1000.0f32, 0.0], &[0], 2);
        assert!(f32_out.loss[0].abs() < 1e-6);
    }

    #[test]
    fn masked_logits() {
        // Fully masked row: loss +inf, gradient 0. Masked non-target class: probability 0.
        // Masked target: loss +inf, finite gradient (softmax − onehot).
        let x = [NEG_INF, NEG_INF, NEG_INF, 0.5, NEG_INF, 1.5, NEG_INF, 0.0, 0.0];
        let targets = [1, 0, 0];
        let out = cross_entropy(&x, &targets, 3);
        assert_eq!(out.loss[0], f64::INFINITY);
        assert!((out.loss[1] - (two_pass_lse(&[0.5, 1.5]) - 0.5)).abs() < 1e-14);
        assert_eq!(out.loss[2], f64::INFINITY);
        let dx = cross_entropy_backward(&x, &targets, &out.lse, &[1.0], 3);
        assert_eq!(&dx[..3], &[0.0; 3]);
        assert_eq!(dx[4], 0.0);
        assert_eq!(&dx[6..], &[-1.0, 0.5, 0.5]);
        let nan = cross_entropy(&[0.0, f64::NAN], &[0], 2);
        assert!(nan.loss[0].is_nan() && nan.lse[0].is_nan());
    }

    /// The fused backward against central differences of Σ_r g_r·loss_r, with a per-row g and
    /// with one g for all rows.
    #[test]
    fn backward_matches_finite_differences() {
        let x = [0.3, -1.1, 2.0, 0.4, 0.9, -0.2, 0.0, 1.7, -0.6];
        let targets = [2, 0, 1];
        let h = 1e-6;
        for g in [vec![0.5, -1.0, 2.0], vec![0.7]] {
            let project = |x: &[f64]| -> f64 {
                let loss = cross_entropy(x, &targets, 3).loss;
                loss.iter()
                    .enumerate()
                    .map(|(r, l)| l * g[r.min(g.len() - 1)])
                    .sum()
            };
            let out = cross_entropy(&x, &targets, 3);
            let dx = cross_entropy_backward(&x, &targets, &out.lse, &g, 3);
            for i in 0..x.len() {
                let (mut p, mut m) = (x, x);
                p[i] += h;
                m[i] -= h;
                let numeric = (project(&p) - project(&m)) / (2.0 * h);
                assert!(
                    (numeric - dx[i]).abs() < 1e-8,
                    "element {i}: {numeric} vs {}",
                    dx[i]
                );
            }
        }
    }

    #[test]
    fn squared_error_and_gradient() {
        let (p, t) = ([1.0, -2.0, 0.5f32], [0.5, 1.0, 0.5f32]);
        assert_eq!(squared_error(&p, &t), vec![0.25, 9.0, 0.0]);
        assert_eq!(squared_error_backward(&p, &t, &[2.0]), vec![2.0, -12.0, 0.0]);
        assert_eq!(
            squared_error_backward(&p, &t, &[1.0, 0.5, 3.0]),
            vec![1.0, -3.0, 0.0]
        );
    }

    #[test]
    #[should_panic(expected = "outside 0..3")]
    fn out_of_range_target_is_a_caller_bug() {
        cross_entropy(&[0.0f64; 3], &[3], 3);
    }
}
