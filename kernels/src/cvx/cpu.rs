//! CPU references of the `cvx.relu` kernels (layouts in the module docs). Plain loops, written
//! to be read first; the solvers call them directly on the CPU path, and the CUDA kernels in
//! `cvx.cu` compute the same functions on the same layouts.

use std::fmt;

use crate::Float;

/// Errors are values: a wrong buffer length names the function and the sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct CvxError(pub String);

impl fmt::Display for CvxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CvxError {}

/// The sizes every product takes: `n` samples, `d` features (bias included), `p` patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CvxShape {
    pub n: usize,
    pub d: usize,
    pub p: usize,
}

impl CvxShape {
    pub(super) fn check(&self, op: &str, bufs: &[(&str, usize, usize)]) -> Result<(), CvxError> {
        for &(name, len, want) in bufs {
            if len != want {
                return Err(CvxError(format!(
                    "{op}: `{name}` has {len} elements, expected {want} for n={}, d={}, p={}",
                    self.n, self.d, self.p
                )));
            }
        }
        Ok(())
    }
}

#[inline]
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut s = T::ZERO;
    for (&x, &y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

/// `out[k] = Σ_i mask[i,k] · x_kᵀ v_i`: the prediction `Σ_i D_i X v_i` of a convex ReLU model.
/// Masked-out products are skipped, not multiplied by zero, so an inactive (sample, pattern)
/// pair costs nothing.
pub fn masked_forward<T: Float>(
    x: &[T],
    mask: &[u8],
    v: &[T],
    s: CvxShape,
    out: &mut [T],
) -> Result<(), CvxError> {
    let CvxShape { n, d, p } = s;
    s.check(
        "masked_forward",
        &[
            ("x", x.len(), n * d),
            ("mask", mask.len(), p * n),
            ("v", v.len(), p * d),
            ("out", out.len(), n),
        ],
    )?;
    out.fill(T::ZERO);
    for i in 0..p {
        let vi = &v[i * d..(i + 1) * d];
        let mi = &mask[i * n..(i + 1) * n];
        for k in 0..n {
            if mi[k] != 0 {
                out[k] += dot(&x[k * d..(k + 1) * d], vi);
            }
        }
    }
    Ok(())
}

/// `out_i = Σ_k mask[i,k] · r_k · x_k` for every pattern i (`p × d`): the adjoint of
/// [`masked_forward`], i.e. the gradient of a loss of the prediction with respect to each v_i.
pub fn masked_backward<T: Float>(
    x: &[T],
    mask: &[u8],
    r: &[T],
    s: CvxShape,
    out: &mut [T],
) -> Result<(), CvxError> {
    let CvxShape { n, d, p } = s;
    s.check(
        "masked_backward",
        &[
            ("x", x.len(), n * d),
            ("mask", mask.len(), p * n),
            ("r", r.len(), n),
            ("out", out.len(), p * d),
        ],
    )?;
    out.fill(T::ZERO);
    for i in 0..p {
        let oi = &mut out[i * d..(i + 1) * d];
        let mi = &mask[i * n..(i + 1) * n];
        for k in 0..n {
            if mi[k] != 0 {
                let rk = r[k];
                for (o, &xv) in oi.iter_mut().zip(&x[k * d..(k + 1) * d]) {
                    *o += rk * xv;
                }
            }
        }
    }
    Ok(())
}

/// `out[i,k] = (2·mask[i,k] − 1) · x_kᵀ v_i` (`p × n`): the cone-constraint values
/// `(2D_i − I) X v_i`, non-negative exactly when v_i induces pattern i on the data.
pub fn sign_forward<T: Float>(
    x: &[T],
    mask: &[u8],
    v: &[T],
    s: CvxShape,
    out: &mut [T],
) -> Result<(), CvxError> {
    let CvxShape { n, d, p } = s;
    s.check(
        "sign_forward",
        &[
            ("x", x.len(), n * d),
            ("mask", mask.len(), p * n),
            ("v", v.len(), p * d),
            ("out", out.len(), p * n),
        ],
    )?;
    for i in 0..p {
        let vi = &v[i * d..(i + 1) * d];
        for k in 0..n {
            let g = dot(&x[k * d..(k + 1) * d], vi);
            out[i * n + k] = if mask[i * n + k] != 0 { g } else { -g };
        }
    }
    Ok(())
}

/// `out_i = Σ_k (2·mask[i,k] − 1) · z[i,k] · x_k` (`p × d`): the adjoint of [`sign_forward`].
pub fn sign_backward<T: Float>(
    x: &[T],
    mask: &[u8],
    z: &[T],
    s: CvxShape,
    out: &mut [T],
) -> Result<(), CvxError> {
    let CvxShape { n, d, p } = s;
    s.check(
        "sign_backward",
        &[
            ("x", x.len(), n * d),
            ("mask", mask.len(), p * n),
            ("z", z.len(), p * n),
            ("out", out.len(), p * d),
        ],
    )?;
    out.fill(T::ZERO);
    for i in 0..p {
        let oi = &mut out[i * d..(i + 1) * d];
        for k in 0..n {
            let z = z[i * n + k];
            let c = if mask[i * n + k] != 0 { z } else { -z };
            for (o, &xv) in oi.iter_mut().zip(&x[k * d..(k + 1) * d]) {
                *o += c * xv;
            }
        }
    }
    Ok(())
}

/// Scale for one group: `max(0, 1 − t/‖w‖)`, written so that a zero group (norm 0) gives 0,
/// not 0/0 = NaN.
#[inline]
fn shrink<T: Float>(norm: T, t: T) -> T {
    if norm <= t {
        T::ZERO
    } else {
        T::ONE - t / norm
    }
}

/// In place, per group of `d` consecutive entries: `v_i ← max(0, 1 − t/‖v_i‖₂)·v_i`, the
/// proximal operator of `t·Σ_i‖v_i‖₂` (group soft-thresholding). Returns how many groups stay
/// non-zero (the width of the network the solution recovers).
pub fn group_soft_threshold<T: Float>(v: &mut [T], d: usize, t: T) -> Result<usize, CvxError> {
    if d == 0 || !v.len().is_multiple_of(d) {
        return Err(CvxError(format!(
            "group_soft_threshold: {} elements do not split into groups of {d}",
            v.len()
        )));
    }
    let mut alive = 0;
    for g in v.chunks_mut(d) {
        let c = shrink(dot(g, g).sqrt(), t);
        for e in g.iter_mut() {
            *e *= c;
        }
        alive += usize::from(c > T::ZERO);
    }
    Ok(alive)
}

/// In place: `s ← max(0, s)`, written `s < 0 ? 0 : s` so that a NaN stays visible.
pub fn project_nonneg<T: Float>(s: &mut [T]) {
    for e in s.iter_mut() {
        if *e < T::ZERO {
            *e = T::ZERO;
        }
    }
}

/// ADMM's group step fused with its dual update, per group i (all buffers `groups × d`):
/// `w = u_i + λ_i`, `v_i ← prox_{t‖·‖}(w)`, `λ_i ← w − v_i` (= λ_i + u_i − v_i), and, for the
/// residuals, `dv = v_new − v_old` and `r = u − v_new` (the primal residual of `u = v`).
pub fn admm_group_step<T: Float>(
    u: &[T],
    lambda: &mut [T],
    v: &mut [T],
    dv: &mut [T],
    r: &mut [T],
    d: usize,
    t: T,
) -> Result<(), CvxError> {
    let len = u.len();
    if d == 0
        || !len.is_multiple_of(d)
        || [lambda.len(), v.len(), dv.len(), r.len()]
            .iter()
            .any(|&l| l != len)
    {
        return Err(CvxError(format!(
            "admm_group_step: buffers of {len}, {}, {}, {}, {} elements for groups of {d}",
            lambda.len(),
            v.len(),
            dv.len(),
            r.len()
        )));
    }
    for g in 0..len / d {
        let range = g * d..(g + 1) * d;
        let mut sq = T::ZERO;
        for j in range.clone() {
            let w = u[j] + lambda[j];
            sq += w * w;
        }
        let c = shrink(sq.sqrt(), t);
        for j in range {
            let w = u[j] + lambda[j];
            let vn = c * w;
            dv[j] = vn - v[j];
            v[j] = vn;
            lambda[j] = w - vn;
            r[j] = u[j] - vn;
        }
    }
    Ok(())
}

/// ADMM's slack step fused with the cone product and its dual update (all of `s`, `nu`, `ds`,
/// `r` are `p × n`): `g = (2D_i − I)Xu_i`, `s ← max(0, g + ν)`, `ν ← ν + g − s`, and, for the
/// residuals, `ds = s_new − s_old` and `r = g − s_new` (the primal residual of `Gu = s`).
#[allow(clippy::too_many_arguments)]
pub fn admm_slack_step<T: Float>(
    x: &[T],
    mask: &[u8],
    u: &[T],
    shape: CvxShape,
    s: &mut [T],
    nu: &mut [T],
    ds: &mut [T],
    r: &mut [T],
) -> Result<(), CvxError> {
    let CvxShape { n, p, .. } = shape;
    shape.check(
        "admm_slack_step",
        &[
            ("s", s.len(), p * n),
            ("nu", nu.len(), p * n),
            ("ds", ds.len(), p * n),
            ("r", r.len(), p * n),
        ],
    )?;
    // g goes through r: it is overwritten element by element below, after its last read.
    sign_forward(x, mask, u, shape, r)?;
    for e in 0..p * n {
        let g = r[e];
        let w = g + nu[e];
        let sn = if w < T::ZERO { T::ZERO } else { w };
        ds[e] = sn - s[e];
        s[e] = sn;
        nu[e] = w - sn;
        r[e] = g - sn;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense reference: build each D_i X explicitly and multiply.
    fn dense_forward(x: &[f64], mask: &[u8], v: &[f64], s: CvxShape) -> Vec<f64> {
        let mut out = vec![0.0; s.n];
        for i in 0..s.p {
            for k in 0..s.n {
                let xv: f64 = (0..s.d).map(|j| x[k * s.d + j] * v[i * s.d + j]).sum();
                out[k] += f64::from(mask[i * s.n + k]) * xv;
            }
        }
        out
    }

    fn fill(len: usize, seed: u64) -> Vec<f64> {
        (0..len)
            .map(|i| ((i as f64 + 1.0) * 0.731 + seed as f64 * 1.37).sin())
            .collect()
    }

    #[test]
    fn forward_and_backward_are_adjoint() {
        let s = CvxShape { n: 7, d: 3, p: 5 };
        let x = fill(s.n * s.d, 1);
        let mask: Vec<u8> = (0..s.p * s.n).map(|e| u8::from((e * 7 + 3) % 5 < 3)).collect();
        let v = fill(s.p * s.d, 2);
        let r = fill(s.n, 3);
        let mut fwd = vec![0.0; s.n];
        masked_forward(&x, &mask, &v, s, &mut fwd).unwrap();
        let want = dense_forward(&x, &mask, &v, s);
        for (a, b) in fwd.iter().zip(&want) {
            assert!((a - b).abs() < 1e-14);
        }
        let mut bwd = vec![0.0; s.p * s.d];
        masked_backward(&x, &mask, &r, s, &mut bwd).unwrap();
        let lhs: f64 = fwd.iter().zip(&r).map(|(a, b)| a * b).sum();
        let rhs: f64 = bwd.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");

        let z = fill(s.p * s.n, 4);
        let mut g = vec![0.0; s.p * s.n];
        sign_forward(&x, &mask, &v, s, &mut g).unwrap();
        let mut gt = vec![0.0; s.p * s.d];
        sign_backward(&x, &mask, &z, s, &mut gt).unwrap();
        let lhs: f64 = g.iter().zip(&z).map(|(a, b)| a * b).sum();
        let rhs: f64 = gt.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
    }

    #[test]
    fn prox_shrinks_groups_and_zeroes_small_ones() {
        let mut v = vec![3.0, 4.0, 0.3, 0.4, 0.0, 0.0];
        let alive = group_soft_threshold(&mut v, 2, 1.0).unwrap();
        assert_eq!(alive, 1);
        assert!((v[0] - 2.4).abs() < 1e-15 && (v[1] - 3.2).abs() < 1e-15);
        assert_eq!(&v[2..], &[0.0; 4]);
        assert!(group_soft_threshold(&mut v, 4, 1.0).is_err());
        let mut s = vec![-1.0, 2.0, f64::NAN];
        project_nonneg(&mut s);
        assert_eq!(&s[..2], &[0.0, 2.0]);
        assert!(s[2].is_nan());
    }

    #[test]
    fn fused_steps_match_their_parts() {
        let s = CvxShape { n: 6, d: 2, p: 3 };
        let x = fill(s.n * s.d, 5);
        let mask: Vec<u8> = (0..s.p * s.n).map(|e| u8::from(e % 3 != 0)).collect();
        let u = fill(s.p * s.d, 6);
        let mut nu = fill(s.p * s.n, 7);
        let nu0 = nu.clone();
        let mut sl = vec![0.5; s.p * s.n];
        let (mut ds, mut r) = (vec![0.0; s.p * s.n], vec![0.0; s.p * s.n]);
        admm_slack_step(&x, &mask, &u, s, &mut sl, &mut nu, &mut ds, &mut r).unwrap();
        let mut g = vec![0.0; s.p * s.n];
        sign_forward(&x, &mask, &u, s, &mut g).unwrap();
        for e in 0..s.p * s.n {
            let want = (g[e] + nu0[e]).max(0.0);
            assert!((sl[e] - want).abs() < 1e-15);
            assert!((nu[e] - (nu0[e] + g[e] - want)).abs() < 1e-15);
            assert!((ds[e] - (want - 0.5)).abs() < 1e-15 && (r[e] - (g[e] - want)).abs() < 1e-15);
        }
        let mut lambda = fill(s.p * s.d, 8);
        let l0 = lambda.clone();
        let mut v = vec![0.0; s.p * s.d];
        let (mut dv, mut rv) = (vec![0.0; s.p * s.d], vec![0.0; s.p * s.d]);
        admm_group_step(&u, &mut lambda, &mut v, &mut dv, &mut rv, s.d, 0.3).unwrap();
        let mut want: Vec<f64> = u.iter().zip(&l0).map(|(a, b)| a + b).collect();
        group_soft_threshold(&mut want, s.d, 0.3).unwrap();
        for j in 0..v.len() {
            assert!((v[j] - want[j]).abs() < 1e-15 && (dv[j] - want[j]).abs() < 1e-15);
            assert!((lambda[j] - (l0[j] + u[j] - want[j])).abs() < 1e-15);
            assert!((rv[j] - (u[j] - want[j])).abs() < 1e-15);
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let s = CvxShape { n: 2, d: 2, p: 2 };
        let err = masked_forward(&[0.0f64; 4], &[0u8; 3], &[0.0; 4], s, &mut [0.0; 2]).unwrap_err();
        assert!(
            err.0.contains("mask") && err.0.contains("masked_forward"),
            "{err}"
        );
    }
}
