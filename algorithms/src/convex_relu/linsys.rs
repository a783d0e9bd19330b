//! ADMM's linear system, factored once per ρ.
//!
//! The u-step of [`super::admm`] solves, for the stacked u = (u_1..u_P, z_1..z_P),
//!
//! ```text
//!   (c FᵀF + ρ (I + GᵀG)) u = b,     F = [A, −A],  A = [D_1X, …, D_PX],
//!   G = blockdiag((2D_1 − I)X, …, (2D_P − I)X, the same again for the z_i).
//! ```
//!
//! Two structures make that cheap. (1) Every block of GᵀG is Xᵀ(2D_i − I)²X = XᵀX, so
//! ρ(I + GᵀG) is block diagonal with one repeated d × d block H = I + XᵀX: one Cholesky of H
//! serves all 2P blocks. (2) F only sees u − z: with q = u + z and p = u − z the system splits
//! into `ρ H q = b_u + b_z` (block solves) and `(2c AᵀA + ρ H_blk) p = b_u − b_z`. The latter is
//! solved either by Woodbury, `(B + 2c AᵀA)⁻¹ = B⁻¹ − B⁻¹Aᵀ S⁻¹ A B⁻¹` with the n × n core
//! `S = I/(2c) + (1/ρ)·(X H⁻¹ Xᵀ) ∘ (Σ_i m_i m_iᵀ)` (a Hadamard product: entry (k, l) counts the
//! patterns active on both samples), or, when dP < n, by a dense Cholesky of the dP × dP matrix.
//! Each iteration then costs two masked products and triangular solves: no refactorization.

use kernels::cvx::{cholesky, cholesky_solve, masked_backward, masked_forward, CvxShape};

use super::{Dataset, Patterns};

enum Core {
    /// Cholesky factor of the n × n Woodbury core S.
    Woodbury(Vec<f64>),
    /// Cholesky factor of the dP × dP matrix 2c AᵀA + ρ H_blk.
    Dense(Vec<f64>),
}

pub(crate) struct SplitSystem {
    shape: CvxShape,
    rho: f64,
    h_chol: Vec<f64>,
    core: Core,
}

impl SplitSystem {
    pub fn new(ds: &Dataset, pats: &Patterns, c: f64, rho: f64) -> Result<SplitSystem, String> {
        let (n, d, p) = (ds.n, ds.d, pats.p);
        let shape = CvxShape { n, d, p };
        let mut h = vec![0.0; d * d];
        for k in 0..n {
            let xk = ds.row(k);
            for a in 0..d {
                for b in 0..d {
                    h[a * d + b] += xk[a] * xk[b];
                }
            }
        }
        for a in 0..d {
            h[a * d + a] += 1.0;
        }
        cholesky(&mut h, d).map_err(|e| e.to_string())?;
        let active: Vec<Vec<usize>> = (0..n)
            .map(|k| (0..p).filter(|&i| pats.mask[i * n + k] != 0).collect())
            .collect();
        let (nf, df, pf) = (n as f64, d as f64, p as f64);
        let woodbury_cost = nf * nf * (pf + df) + nf * nf * nf / 3.0;
        let dense_cost = active.iter().map(|a| (a.len() * a.len()) as f64).sum::<f64>() * df * df
            + (df * pf).powi(3) / 3.0;
        let core = if woodbury_cost <= dense_cost {
            // K = X H⁻¹ Xᵀ, column by column through the d × d factor.
            let mut hinv_xt = vec![0.0; d * n]; // column k = H⁻¹ x_k, stored row k
            for k in 0..n {
                let col = &mut hinv_xt[k * d..(k + 1) * d];
                col.copy_from_slice(ds.row(k));
                cholesky_solve(&h, d, col);
            }
            let mut s = vec![0.0; n * n];
            for k in 0..n {
                for l in 0..=k {
                    let shared = pats.mask.chunks(n).filter(|m| m[k] != 0 && m[l] != 0).count();
                    if shared > 0 {
                        let kv: f64 = ds
                            .row(k)
                            .iter()
                            .zip(&hinv_xt[l * d..(l + 1) * d])
                            .map(|(a, b)| a * b)
                            .sum();
                        s[k * n + l] = kv * shared as f64 / rho;
                        s[l * n + k] = s[k * n + l];
                    }
                }
                s[k * n + k] += 1.0 / (2.0 * c);
            }
            cholesky(&mut s, n).map_err(|e| format!("ADMM Woodbury core: {e}"))?;
            Core::Woodbury(s)
        } else {
            let m = d * p;
            let mut a = vec![0.0; m * m];
            for (k, act) in active.iter().enumerate() {
                let xk = ds.row(k);
                for &i in act {
                    for &j in act {
                        for r in 0..d {
                            for q in 0..d {
                                a[(i * d + r) * m + j * d + q] += 2.0 * c * xk[r] * xk[q];
                            }
                        }
                    }
                }
            }
            // ρH on the diagonal blocks: H = L Lᵀ rebuilt from its factor.
            for i in 0..p {
                for r in 0..d {
                    for q in 0..d {
                        let hv: f64 = (0..d).map(|t| h[r * d + t] * h[q * d + t]).sum();
                        a[(i * d + r) * m + i * d + q] += rho * hv;
                    }
                }
            }
            cholesky(&mut a, m).map_err(|e| format!("ADMM system: {e}"))?;
            Core::Dense(a)
        };
        Ok(SplitSystem {
            shape,
            rho,
            h_chol: h,
            core,
        })
    }

    /// In place: (bu, bz) becomes (u, z), each `p × d`.
    pub fn solve(&self, ds: &Dataset, pats: &Patterns, bu: &mut [f64], bz: &mut [f64]) {
        let CvxShape { n, d, p } = self.shape;
        // q = (ρH)⁻¹(b_u + b_z) per block; bz holds b_u − b_z from here on.
        let mut q: Vec<f64> = bu
            .iter()
            .zip(bz.iter())
            .map(|(a, b)| (a + b) / self.rho)
            .collect();
        for g in q.chunks_mut(d) {
            cholesky_solve(&self.h_chol, d, g);
        }
        for (b, a) in bz.iter_mut().zip(bu.iter()) {
            *b = a - *b;
        }
        let rhs = bz;
        match &self.core {
            Core::Woodbury(s) => {
                let binv = |v: &mut [f64]| {
                    for g in v.chunks_mut(d) {
                        cholesky_solve(&self.h_chol, d, g);
                        g.iter_mut().for_each(|e| *e /= self.rho);
                    }
                };
                binv(rhs);
                let mut w = vec![0.0; n];
                masked_forward(&ds.x, &pats.mask, rhs, self.shape, &mut w).expect("shapes");
                cholesky_solve(s, n, &mut w);
                let mut t2 = vec![0.0; p * d];
                masked_backward(&ds.x, &pats.mask, &w, self.shape, &mut t2).expect("shapes");
                binv(&mut t2);
                rhs.iter_mut().zip(&t2).for_each(|(a, b)| *a -= b);
            }
            Core::Dense(l) => cholesky_solve(l, d * p, rhs),
        }
        for ((u, z), qv) in bu.iter_mut().zip(rhs.iter_mut()).zip(&q) {
            let pv = *z;
            *u = 0.5 * (qv + pv);
            *z = 0.5 * (qv - pv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{data::teacher_data, patterns::sample_patterns};
    use super::*;
    use kernels::cvx::{sign_backward, sign_forward};

    /// Applies (c FᵀF + ρ(I + GᵀG)) to (u, z) with the product kernels, to check the solve.
    fn apply(ds: &Dataset, pats: &Patterns, c: f64, rho: f64, u: &[f64], z: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let shape = CvxShape {
            n: ds.n,
            d: ds.d,
            p: pats.p,
        };
        let diff: Vec<f64> = u.iter().zip(z).map(|(a, b)| a - b).collect();
        let mut f = vec![0.0; ds.n];
        masked_forward(&ds.x, &pats.mask, &diff, shape, &mut f).unwrap();
        let mut ftf = vec![0.0; u.len()];
        masked_backward(&ds.x, &pats.mask, &f, shape, &mut ftf).unwrap();
        let mut out = Vec::new();
        for (sgn, w) in [(1.0, u), (-1.0, z)] {
            let mut g = vec![0.0; pats.p * ds.n];
            sign_forward(&ds.x, &pats.mask, w, shape, &mut g).unwrap();
            let mut gtg = vec![0.0; u.len()];
            sign_backward(&ds.x, &pats.mask, &g, shape, &mut gtg).unwrap();
            out.push(
                (0..u.len())
                    .map(|e| sgn * c * ftf[e] + rho * (w[e] + gtg[e]))
                    .collect::<Vec<_>>(),
            );
        }
        (out.remove(0), out.remove(0))
    }

    #[test]
    fn woodbury_and_dense_solve_the_same_system() {
        // n = 30 samples: 6 patterns → dense (dP = 18 < n); 60 → Woodbury.
        for count in [6, 60] {
            let ds = teacher_data(30, 2, 3, 0.1, 1).with_bias();
            let pats = sample_patterns(&ds, count, 2);
            for (c, rho) in [(1.0, 0.5), (1.0, 1.0)] {
                let sys = SplitSystem::new(&ds, &pats, c, rho).unwrap();
                let len = pats.p * ds.d;
                let u: Vec<f64> = (0..len).map(|e| (e as f64 * 0.7).sin()).collect();
                let z: Vec<f64> = (0..len).map(|e| (e as f64 * 0.3).cos()).collect();
                let (mut bu, mut bz) = apply(&ds, &pats, c, rho, &u, &z);
                sys.solve(&ds, &pats, &mut bu, &mut bz);
                let err = bu
                    .iter()
                    .zip(&u)
                    .chain(bz.iter().zip(&z))
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-9, "P={} err {err}", pats.p);
            }
        }
    }
}
