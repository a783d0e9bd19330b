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
//! Each iteration then costs two masked products and triangular solves. A new ρ changes only the
//! core's diagonal shift (the Hadamard product and AᵀA are kept), so it costs one Cholesky.

use kernels::cvx::{cholesky, cholesky_solve};

use super::device::Products;

use super::{Dataset, Patterns};

/// The part of the p-system that depends on ρ only through a diagonal shift, kept so that a new
/// ρ costs one refactorization and nothing else.
enum Core {
    /// `C = (X H⁻¹ Xᵀ) ∘ (Σ_i m_i m_iᵀ)` (n × n); the core is `I/(2c) + C/ρ`.
    Woodbury { hadamard: Vec<f64>, chol: Vec<f64> },
    /// `2c AᵀA` (dP × dP); the system is that plus ρ H on the diagonal blocks.
    Dense { ata: Vec<f64>, chol: Vec<f64> },
}

pub(crate) struct SplitSystem {
    n: usize,
    d: usize,
    p: usize,
    c: f64,
    rho: f64,
    /// H = I + XᵀX, and its Cholesky factor.
    h: Vec<f64>,
    h_chol: Vec<f64>,
    core: Core,
    /// Scratch (no allocation per solve).
    q: Vec<f64>,
    w: Vec<f64>,
    t2: Vec<f64>,
}

impl SplitSystem {
    pub fn new(ds: &Dataset, pats: &Patterns, c: f64, rho: f64) -> Result<SplitSystem, String> {
        let (n, d, p) = (ds.n, ds.d, pats.p);
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
        let mut h_chol = h.clone();
        cholesky(&mut h_chol, d).map_err(|e| e.to_string())?;
        let active: Vec<Vec<usize>> = (0..p)
            .map(|i| (0..n).filter(|&k| pats.mask[i * n + k] != 0).collect())
            .collect();
        let (nf, df, pf) = (n as f64, d as f64, p as f64);
        let woodbury_cost = nf * nf * (pf + df) + nf * nf * nf / 3.0;
        let pairs: f64 = (0..n)
            .map(|k| (0..p).filter(|&i| pats.mask[i * n + k] != 0).count().pow(2) as f64)
            .sum();
        let dense_cost = pairs * df * df + (df * pf).powi(3) / 3.0;
        let core = if woodbury_cost <= dense_cost {
            // shared[k, l]: how many patterns are active on both samples.
            let mut shared = vec![0.0; n * n];
            for act in &active {
                for &k in act {
                    for &l in act {
                        shared[k * n + l] += 1.0;
                    }
                }
            }
            // K = X H⁻¹ Xᵀ through the d × d factor: row k of `hinv_xt` is H⁻¹ x_k.
            let mut hinv_xt = vec![0.0; n * d];
            for k in 0..n {
                let col = &mut hinv_xt[k * d..(k + 1) * d];
                col.copy_from_slice(ds.row(k));
                cholesky_solve(&h_chol, d, col);
            }
            let mut hadamard = vec![0.0; n * n];
            for k in 0..n {
                for l in 0..=k {
                    if shared[k * n + l] > 0.0 {
                        let kv: f64 = ds
                            .row(k)
                            .iter()
                            .zip(&hinv_xt[l * d..(l + 1) * d])
                            .map(|(a, b)| a * b)
                            .sum();
                        hadamard[k * n + l] = kv * shared[k * n + l];
                        hadamard[l * n + k] = hadamard[k * n + l];
                    }
                }
            }
            Core::Woodbury {
                hadamard,
                chol: Vec::new(),
            }
        } else {
            let m = d * p;
            let mut ata = vec![0.0; m * m];
            for k in 0..n {
                let xk = ds.row(k);
                let act: Vec<usize> = (0..p).filter(|&i| pats.mask[i * n + k] != 0).collect();
                for &i in &act {
                    for &j in &act {
                        for r in 0..d {
                            for q in 0..d {
                                ata[(i * d + r) * m + j * d + q] += 2.0 * c * xk[r] * xk[q];
                            }
                        }
                    }
                }
            }
            Core::Dense {
                ata,
                chol: Vec::new(),
            }
        };
        let mut sys = SplitSystem {
            n,
            d,
            p,
            c,
            rho: f64::NAN,
            h,
            h_chol,
            core,
            q: vec![0.0; p * d],
            w: vec![0.0; n],
            t2: vec![0.0; p * d],
        };
        sys.set_rho(rho)?;
        Ok(sys)
    }

    /// Refactors for a new ρ: one n × n (or dP × dP) Cholesky; the ρ-free parts are kept.
    pub fn set_rho(&mut self, rho: f64) -> Result<(), String> {
        if !(rho.is_finite() && rho > 0.0) {
            return Err(format!("ADMM: rho must be positive and finite, got {rho}"));
        }
        let (n, d, p) = (self.n, self.d, self.p);
        match &mut self.core {
            Core::Woodbury { hadamard, chol } => {
                *chol = hadamard.iter().map(|e| e / rho).collect();
                for k in 0..n {
                    chol[k * n + k] += 1.0 / (2.0 * self.c);
                }
                cholesky(chol, n).map_err(|e| format!("ADMM Woodbury core: {e}"))?;
            }
            Core::Dense { ata, chol } => {
                let m = d * p;
                chol.clone_from(ata);
                for i in 0..p {
                    for r in 0..d {
                        for q in 0..d {
                            chol[(i * d + r) * m + i * d + q] += rho * self.h[r * d + q];
                        }
                    }
                }
                cholesky(chol, m).map_err(|e| format!("ADMM system: {e}"))?;
            }
        }
        self.rho = rho;
        Ok(())
    }

    /// `out_i = H_blk u_i − u_i = XᵀX u_i` per group of d (GᵀG applied to one stacked half).
    pub fn gram_apply(&self, u: &[f64], out: &mut [f64]) {
        let d = self.d;
        for (ui, oi) in u.chunks(d).zip(out.chunks_mut(d)) {
            for (a, o) in oi.iter_mut().enumerate() {
                let row = &self.h[a * d..(a + 1) * d];
                *o = row.iter().zip(ui).map(|(h, x)| h * x).sum::<f64>() - ui[a];
            }
        }
    }

    /// In place: (bu, bz) becomes (u, z), each `p × d`. `ops` holds the same data and patterns
    /// the system was built from.
    pub fn solve(&mut self, ops: &Products, bu: &mut [f64], bz: &mut [f64]) -> Result<(), String> {
        let (n, d) = (self.n, self.d);
        let (rho, h_chol) = (self.rho, &self.h_chol);
        // q = (ρH)⁻¹(b_u + b_z) per block; bz holds b_u − b_z from here on.
        for ((q, a), b) in self.q.iter_mut().zip(bu.iter()).zip(bz.iter_mut()) {
            *q = (a + *b) / rho;
            *b = a - *b;
        }
        for g in self.q.chunks_mut(d) {
            cholesky_solve(h_chol, d, g);
        }
        let rhs = bz;
        match &self.core {
            Core::Woodbury { chol, .. } => {
                let binv = |v: &mut [f64]| {
                    for g in v.chunks_mut(d) {
                        cholesky_solve(h_chol, d, g);
                        g.iter_mut().for_each(|e| *e /= rho);
                    }
                };
                binv(rhs);
                ops.masked_forward(rhs, &mut self.w)?;
                cholesky_solve(chol, n, &mut self.w);
                ops.masked_backward(&self.w, &mut self.t2)?;
                binv(&mut self.t2);
                rhs.iter_mut().zip(&self.t2).for_each(|(a, b)| *a -= b);
            }
            Core::Dense { chol, .. } => cholesky_solve(chol, d * self.p, rhs),
        }
        for ((u, z), qv) in bu.iter_mut().zip(rhs.iter_mut()).zip(&self.q) {
            let pv = *z;
            *u = 0.5 * (qv + pv);
            *z = 0.5 * (qv - pv);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{data::teacher_data, patterns::sample_patterns};
    use super::*;
    use kernels::cvx::{masked_backward, masked_forward, sign_backward, sign_forward, CvxShape};

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
                let ops = Products::new(
                    &ds.x,
                    &pats.mask,
                    CvxShape {
                        n: ds.n,
                        d: ds.d,
                        p: pats.p,
                    },
                    super::super::Device::Cpu,
                )
                .unwrap();
                // Built at another ρ and moved: set_rho must leave the same system as a fresh build.
                let mut sys = SplitSystem::new(&ds, &pats, c, 3.0 * rho).unwrap();
                sys.set_rho(rho).unwrap();
                let len = pats.p * ds.d;
                let u: Vec<f64> = (0..len).map(|e| (e as f64 * 0.7).sin()).collect();
                let z: Vec<f64> = (0..len).map(|e| (e as f64 * 0.3).cos()).collect();
                let (mut bu, mut bz) = apply(&ds, &pats, c, rho, &u, &z);
                sys.solve(&ops, &mut bu, &mut bz).unwrap();
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
