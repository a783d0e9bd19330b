//! CPU layer norm and RMS norm over the rows of a contiguous `[rows, n]` buffer.
//!
//! Formulas, per row `x` of length n, with optional per-feature weight γ (default 1) and bias β
//! (default 0):
//!   layer_norm   μ = Σx/n,  σ² = Σ(x − μ)²/n (biased, as PyTorch),  r = 1/√(σ² + ε),
//!                x̂ = (x − μ)·r,  y = x̂·γ + β;  saves μ and r per row
//!     backward   ĝ = g·γ;  dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂));
//!                dγ = Σ_rows g⊙x̂;  dβ = Σ_rows g
//!   rms_norm     r = 1/√(Σx²/n + ε),  x̂ = x·r,  y = x̂·γ;  saves r per row
//!     backward   ĝ = g·γ;  dx = r·(ĝ − x̂·mean(ĝ⊙x̂));  dγ = Σ_rows g⊙x̂
//!
//! Cost per row, with s = `size_of::<T>()` (γ and β are read once per row but stay in cache):
//!   layer_norm forward   reads n·s, writes n·s + 2s;  about 8n FLOPs (1 sqrt)
//!   layer_norm backward  reads 2n·s (x, g) + 2s,  writes n·s (dx);  about 18n FLOPs as
//!                        written: 13n for dx, 5n for the dγ/dβ column sums (x̂ is recomputed
//!                        rather than stored, trading 2 FLOPs for n·s bytes of traffic)
//!   rms_norm forward     reads n·s, writes n·s + s;  about 4n FLOPs
//!   rms_norm backward    reads 2n·s + s, writes n·s;  about 13n FLOPs (9n dx, 4n dγ)
//!
//! Numerics:
//! * The variance is two-pass (mean first, then squared deviations): `E[x²] − E[x]²` loses every
//!   digit when |μ| ≫ σ (a row 1e8 + [1, 2, 3, 4] in f64 has σ² = 1.25 but `E[x²] − E[x]²` gives
//!   2.0). The second pass reads the row from cache; a GPU port would use Welford.
//! * ε inside the square root keeps r finite for a constant row (σ² = 0 gives x̂ = 0, y = β).
//! * Everything accumulates in T, the compute type. dγ and dβ sum over rows in fixed blocks
//!   whose partial sums are added in block order, so the result is the same whatever the
//!   number of threads (a run-to-run bitwise reproducible gradient).
//! * NaN or ±inf in a row makes that row's output NaN; other rows are unaffected.

use crate::reduce::cpu::sum;
use crate::softmax::cpu::{map_rows, row_count};
use crate::Float;
use rayon::prelude::*;

/// Forward output of [`layer_norm`]: the normalized rows and, per row, the statistics the
/// backward needs.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNormOutput<T> {
    pub y: Vec<T>,
    pub mean: Vec<T>,
    pub rstd: Vec<T>,
}

/// Forward output of [`rms_norm`].
#[derive(Clone, Debug, PartialEq)]
pub struct RmsNormOutput<T> {
    pub y: Vec<T>,
    pub rstd: Vec<T>,
}

/// Gradients from the norm backward passes. `dweight` and `dbias` have length n; RMS norm has
/// no bias, so its `dbias` is empty.
#[derive(Clone, Debug, PartialEq)]
pub struct NormGrads<T> {
    pub dx: Vec<T>,
    pub dweight: Vec<T>,
    pub dbias: Vec<T>,
}

/// Layer norm of each row of length `n` (`n > 0`). `weight` and `bias`, when given, have length
/// `n`.
pub fn layer_norm<T: Float>(
    x: &[T],
    n: usize,
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: T,
) -> LayerNormOutput<T> {
    check_params(n, &[weight, bias]);
    let rows = row_count(x.len(), n);
    let inv_n = T::ONE / T::from_f64(n as f64);
    let mut y = vec![T::ZERO; x.len()];
    let stats = map_rows(&mut y, rows, n, |r, out| {
        let x = &x[r * n..(r + 1) * n];
        let mean = sum(x) * inv_n;
        let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() * inv_n;
        let rstd = T::ONE / (var + eps).sqrt();
        for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            let mut z = (v - mean) * rstd;
            if let Some(w) = weight {
                z *= w[i];
            }
            if let Some(b) = bias {
                z += b[i];
            }
            *o = z;
        }
        (mean, rstd)
    });
    let (mean, rstd) = stats.into_iter().unzip();
    LayerNormOutput { y, mean, rstd }
}

/// Gradients of layer norm from the input, the output gradient `g` and the saved statistics.
/// `dweight`/`dbias` are computed whether or not the caller has parameters (they cost 4 FLOPs
/// an element and let one pass serve every case).
pub fn layer_norm_backward<T: Float>(
    x: &[T],
    g: &[T],
    mean: &[T],
    rstd: &[T],
    weight: Option<&[T]>,
    n: usize,
) -> NormGrads<T> {
    check_params(n, &[weight]);
    assert_eq!(x.len(), g.len(), "layer_norm_backward: x and g differ in length");
    let rows = row_count(x.len(), n);
    assert!(
        mean.len() == rows && rstd.len() == rows,
        "layer_norm_backward: one statistic per row"
    );
    let inv_n = T::ONE / T::from_f64(n as f64);
    let mut dx = vec![T::ZERO; x.len()];
    map_rows(&mut dx, rows, n, |r, out| {
        let (x, g) = (&x[r * n..(r + 1) * n], &g[r * n..(r + 1) * n]);
        let (mu, rs) = (mean[r], rstd[r]);
        // Row means of ĝ and ĝ⊙x̂, then one pass writing dx.
        let (mut sum_g, mut sum_gx) = (T::ZERO, T::ZERO);
        for (i, (&xv, &gv)) in x.iter().zip(g).enumerate() {
            let gh = scaled(gv, weight, i);
            sum_g += gh;
            sum_gx += gh * (xv - mu) * rs;
        }
        let (mean_g, mean_gx) = (sum_g * inv_n, sum_gx * inv_n);
        for (i, (o, (&xv, &gv))) in out.iter_mut().zip(x.iter().zip(g)).enumerate() {
            let xhat = (xv - mu) * rs;
            *o = rs * (scaled(gv, weight, i) - mean_g - xhat * mean_gx);
        }
    });
    let sums = column_sums(rows, n, 2, |r, acc| {
        let (x, g) = (&x[r * n..(r + 1) * n], &g[r * n..(r + 1) * n]);
        let (dw, db) = acc.split_at_mut(n);
        for i in 0..n {
            dw[i] += g[i] * (x[i] - mean[r]) * rstd[r];
            db[i] += g[i];
        }
    });
    let (dweight, dbias) = sums.split_at(n);
    NormGrads {
        dx,
        dweight: dweight.to_vec(),
        dbias: dbias.to_vec(),
    }
}

/// RMS norm of each row of length `n` (`n > 0`); `weight`, when given, has length `n`.
pub fn rms_norm<T: Float>(x: &[T], n: usize, weight: Option<&[T]>, eps: T) -> RmsNormOutput<T> {
    check_params(n, &[weight]);
    let rows = row_count(x.len(), n);
    let inv_n = T::ONE / T::from_f64(n as f64);
    let mut y = vec![T::ZERO; x.len()];
    let rstd = map_rows(&mut y, rows, n, |r, out| {
        let x = &x[r * n..(r + 1) * n];
        let mean_sq = x.iter().map(|&v| v * v).sum::<T>() * inv_n;
        let rstd = T::ONE / (mean_sq + eps).sqrt();
        for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            *o = scaled(v * rstd, weight, i);
        }
        rstd
    });
    RmsNormOutput { y, rstd }
}

/// Gradients of RMS norm from the input, the output gradient and the saved `rstd`; `dbias` is
/// empty.
pub fn rms_norm_backward<T: Float>(
    x: &[T],
    g: &[T],
    rstd: &[T],
    weight: Option<&[T]>,
    n: usize,
) -> NormGrads<T> {
    check_params(n, &[weight]);
    assert_eq!(x.len(), g.len(), "rms_norm_backward: x and g differ in length");
    let rows = row_count(x.len(), n);
    assert_eq!(rstd.len(), rows, "rms_norm_backward: one statistic per row");
    let inv_n = T::ONE / T::from_f64(n as f64);
    let mut dx = vec![T::ZERO; x.len()];
    map_rows(&mut dx, rows, n, |r, out| {
        let (x, g, rs) = (&x[r * n..(r + 1) * n], &g[r * n..(r + 1) * n], rstd[r]);
        let mut sum_gx = T::ZERO;
        for (i, (&xv, &gv)) in x.iter().zip(g).enumerate() {
            sum_gx += scaled(gv, weight, i) * xv * rs;
        }
        let mean_gx = sum_gx * inv_n;
        for (i, (o, (&xv, &gv))) in out.iter_mut().zip(x.iter().zip(g)).enumerate() {
            *o = rs * (scaled(gv, weight, i) - xv * rs * mean_gx);
        }
    });
    let dweight = column_sums(rows, n, 1, |r, acc| {
        let (x, g) = (&x[r * n..(r + 1) * n], &g[r * n..(r + 1) * n]);
        for i in 0..n {
            acc[i] += g[i] * x[i] * rstd[r];
        }
    });
    NormGrads {
        dx,
        dweight,
        dbias: Vec::new(),
    }
}

/// `v·w[i]`, or `v` without a weight.
#[inline(always)]
fn scaled<T: Float>(v: T, weight: Option<&[T]>, i: usize) -> T {
    match weight {
        Some(w) => v * w[i],
        None => v,
    }
}

fn check_params<T>(n: usize, params: &[Option<&[T]>]) {
    assert!(n > 0, "norms need at least one element per row");
    for p in params.iter().flatten() {
        assert_eq!(
            p.len(),
            n,
            "a norm parameter must have one value per normalized element"
        );
    }
}

/// Fewest rows per block of [`column_sums`]; below this a rayon task costs more than it adds.
const MIN_BLOCK_ROWS: usize = 64;
/// Most blocks: bounds the partial sums kept at once to `MAX_BLOCKS · k · n` values.
const MAX_BLOCKS: usize = 256;

/// `k` column-sum vectors of length `n` over all rows: `add_row(r, acc)` adds row `r`'s terms
/// into `acc` (length `k·n`). Rows are cut into blocks whose size depends only on `rows`, each
/// block summed on its own (in parallel when large), and the block sums added in order, so the
/// result is independent of the thread count.
fn column_sums<T: Float>(
    rows: usize,
    n: usize,
    k: usize,
    add_row: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let block = rows.div_ceil(MAX_BLOCKS).max(MIN_BLOCK_ROWS);
    let starts: Vec<usize> = (0..rows).step_by(block).collect();
    let partial = |&start: &usize| {
        let mut acc = vec![T::ZERO; k * n];
        for r in start..(start + block).min(rows) {
            add_row(r, &mut acc);
        }
        acc
    };
    let partials: Vec<Vec<T>> = if rows * n >= crate::softmax::cpu::PARALLEL_MIN_ELEMENTS {
        starts.par_iter().map(partial).collect()
    } else {
        starts.iter().map(partial).collect()
    };
    let mut total = vec![T::ZERO; k * n];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: [f64; 8] = [0.3, -1.1, 2.0, 0.4, 0.9, -0.2, 0.0, 1.7];
    const G: [f64; 8] = [0.5, -1.0, 0.25, 2.0, -0.7, 1.3, 0.1, -0.4];
    const W: [f64; 4] = [1.2, -0.5, 0.8, 2.0];
    const B: [f64; 4] = [0.1, 0.0, -0.3, 0.6];

    #[test]
    fn layer_norm_statistics() {
        let out = layer_norm(&X, 4, None, None, 0.0);
        for r in 0..2 {
            let row = &out.y[r * 4..(r + 1) * 4];
            assert!(row.iter().sum::<f64>().abs() < 1e-14);
            assert!((row.iter().map(|v| v * v).sum::<f64>() / 4.0 - 1.0).abs() < 1e-14);
        }
        assert!((out.mean[0] - 0.4).abs() < 1e-15);
        // A constant row: σ² = 0, so x̂ = 0 and the output is the bias.
        let c = layer_norm(&[3.0; 4], 4, Some(&W), Some(&B), 1e-5);
        assert_eq!(c.y, B.to_vec());
        assert!((c.rstd[0] - 1e-5f64.powf(-0.5)).abs() < 1e-9);
    }

    #[test]
    fn two_pass_variance_survives_a_large_offset() {
        let x = [1e8 + 1.0, 1e8 + 2.0, 1e8 + 3.0, 1e8 + 4.0];
        let out = layer_norm(&x, 4, None, None, 0.0);
        assert!((out.rstd[0] - 1.25f64.powf(-0.5)).abs() < 1e-12);
        let rms = rms_norm(&[3.0, 4.0], 2, Some(&[2.0, 1.0]), 0.0);
        let r = 12.5f64.powf(-0.5);
        assert!((rms.y[0] - 6.0 * r).abs() < 1e-15 && (rms.y[1] - 4.0 * r).abs() < 1e-15);
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn numeric_grad(at: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let h = 1e-6;
        (0..at.len())
            .map(|i| {
                let (mut p, mut m) = (at.to_vec(), at.to_vec());
                p[i] += h;
                m[i] -= h;
                (f(&p) - f(&m)) / (2.0 * h)
            })
            .collect()
    }

    fn assert_close(what: &str, a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() < 1e-7 * (1.0 + y.abs()),
                "{what} element {i}: {x} vs {y}"
            );
        }
    }

    /// The backward kernels against central differences of ⟨forward(x, γ, β), g⟩, for every
    /// input element and parameter, with parameters present and absent. The output is linear in
    /// γ, so dγ is the same whether or not a weight was given.
    #[test]
    fn backward_matches_finite_differences() {
        let eps = 1e-3;
        for (w, b) in [(None, None), (Some(&W[..]), Some(&B[..])), (Some(&W[..]), None)] {
            let ln =
                |x: &[f64], w: Option<&[f64]>, b: Option<&[f64]>| dot(&layer_norm(x, 4, w, b, eps).y, &G);
            let f = layer_norm(&X, 4, w, b, eps);
            let grads = layer_norm_backward(&X, &G, &f.mean, &f.rstd, w, 4);
            assert_close("ln dx", &grads.dx, &numeric_grad(&X, |x| ln(x, w, b)));
            assert_close(
                "ln dw",
                &grads.dweight,
                &numeric_grad(&W, |wv| ln(&X, Some(wv), b)),
            );
            assert_close("ln db", &grads.dbias, &numeric_grad(&B, |bv| ln(&X, w, Some(bv))));

            let rms = |x: &[f64], w: Option<&[f64]>| dot(&rms_norm(x, 4, w, eps).y, &G);
            let grads = rms_norm_backward(&X, &G, &rms_norm(&X, 4, w, eps).rstd, w, 4);
            assert_close("rms dx", &grads.dx, &numeric_grad(&X, |x| rms(x, w)));
            assert_close(
                "rms dw",
                &grads.dweight,
                &numeric_grad(&W, |wv| rms(&X, Some(wv))),
            );
            assert!(grads.dbias.is_empty());
        }
    }

    #[test]
    fn blocked_column_sums_are_deterministic_and_right() {
        let (rows, n) = (3000, 40);
        let x: Vec<f32> = (0..rows * n)
            .map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8)
            .collect();
        let g: Vec<f32> = (0..rows * n)
            .map(|i| ((i * 13) % 11) as f32 * 0.2 - 1.0)
            .collect();
        let f = layer_norm(&x, n, None, None, 1e-5);
        let a = layer_norm_backward(&x, &g, &f.mean, &f.rstd, None, n);
        let b = layer_norm_backward(&x, &g, &f.mean, &f.rstd, None, n);
        assert_eq!(a, b);
        for j in [0, n - 1] {
            let exact: f64 = (0..rows).map(|r| g[r * n + j] as f64).sum();
            assert!((a.dbias[j] as f64 - exact).abs() < 1e-3 * (1.0 + exact.abs()));
        }
    }
}
