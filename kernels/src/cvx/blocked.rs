//! The four pattern products of [`super::cpu`], rearranged for speed (f64, CPU): the solvers'
//! hot path. Same functions, same layouts for the inputs and outputs; tested against the
//! references below.
//!
//! Why it is faster than the references: the references walk (pattern, sample) pairs and take a
//! length-d dot product each, with a branch on the mask byte; for d = 3 the loop overhead is most
//! of the work. Here X is stored transposed (`d × n`, one feature per row) and the patterns as
//! f64 multipliers (0/1 and ±1), so every pattern becomes d length-n `axpy`s (forward) or d
//! length-n dot products (adjoint) over contiguous memory, which the compiler vectorizes. Large
//! problems split the patterns over rayon's threads (each pattern's row is independent; the one
//! reduction over patterns, [`PatternOps::masked_forward`], sums per-thread partials).

use rayon::prelude::*;

use super::{CvxError, CvxShape};
use crate::float::dot;

/// Below this many multiply-adds per product the work stays on the calling thread: thread
/// hand-off costs tens of microseconds, more than a small product.
const PAR_MIN_WORK: usize = 1 << 19;

/// Patterns per parallel task.
const PAR_CHUNK: usize = 16;

/// Data and patterns prepared once per solve for the blocked products.
#[derive(Clone, Debug)]
pub struct PatternOps {
    shape: CvxShape,
    /// `d × n`: X transposed.
    xt: Vec<f64>,
    /// `p × n`: the mask as 0.0 / 1.0.
    gate: Vec<f64>,
    /// `p × n`: 2·mask − 1, i.e. ±1.0.
    sign: Vec<f64>,
    parallel: bool,
}

impl PatternOps {
    /// `x` is `n × d` row-major, `mask` `p × n` bytes, as everywhere in [`super`].
    pub fn new(x: &[f64], mask: &[u8], shape: CvxShape) -> Result<PatternOps, CvxError> {
        let CvxShape { n, d, p } = shape;
        shape.check(
            "PatternOps::new",
            &[("x", x.len(), n * d), ("mask", mask.len(), p * n)],
        )?;
        let mut xt = vec![0.0; d * n];
        for k in 0..n {
            for j in 0..d {
                xt[j * n + k] = x[k * d + j];
            }
        }
        let gate: Vec<f64> = mask.iter().map(|&m| if m != 0 { 1.0 } else { 0.0 }).collect();
        let sign: Vec<f64> = gate.iter().map(|g| 2.0 * g - 1.0).collect();
        Ok(PatternOps {
            shape,
            xt,
            gate,
            sign,
            parallel: n * d * p >= PAR_MIN_WORK,
        })
    }

    pub fn shape(&self) -> CvxShape {
        self.shape
    }

    /// Forces single-threaded products (for timing, or inside an already-parallel caller).
    pub fn set_parallel(&mut self, on: bool) {
        self.parallel = on && self.shape.n * self.shape.d * self.shape.p >= PAR_MIN_WORK;
    }

    /// `row ← Σ_j v_j · xt_j` (length n), then `row ← row ∘ mult`.
    #[inline]
    fn xv_row(&self, vi: &[f64], mult: &[f64], row: &mut [f64]) {
        let n = self.shape.n;
        row.fill(0.0);
        for (j, &vj) in vi.iter().enumerate() {
            if vj != 0.0 {
                for (o, &x) in row.iter_mut().zip(&self.xt[j * n..(j + 1) * n]) {
                    *o += vj * x;
                }
            }
        }
        for (o, &m) in row.iter_mut().zip(mult) {
            *o *= m;
        }
    }

    /// `out_i[j] = Σ_k mult_i[k] z_i[k] xt_j[k]` for one pattern, `tmp` a length-n scratch.
    #[inline]
    fn xtz_row(&self, zi: &[f64], mult: &[f64], tmp: &mut [f64], oi: &mut [f64]) {
        let n = self.shape.n;
        for ((t, &z), &m) in tmp.iter_mut().zip(zi).zip(mult) {
            *t = z * m;
        }
        for (j, o) in oi.iter_mut().enumerate() {
            *o = dot(tmp, &self.xt[j * n..(j + 1) * n]);
        }
    }

    /// [`super::sign_forward`] over `groups` stacked copies of the patterns (`v` is
    /// `groups·p × d`, `out` `groups·p × n`): ADMM stacks v and w, both under the same patterns.
    pub fn sign_forward(&self, v: &[f64], out: &mut [f64], groups: usize) -> Result<(), CvxError> {
        let CvxShape { n, d, p } = self.shape;
        self.shape.check(
            "PatternOps::sign_forward",
            &[("v", v.len(), groups * p * d), ("out", out.len(), groups * p * n)],
        )?;
        let row = |(r, orow): (usize, &mut [f64])| {
            let i = r % p;
            self.xv_row(&v[r * d..(r + 1) * d], &self.sign[i * n..(i + 1) * n], orow);
        };
        if self.parallel {
            out.par_chunks_mut(n)
                .enumerate()
                .with_min_len(PAR_CHUNK)
                .for_each(row);
        } else {
            out.chunks_mut(n).enumerate().for_each(row);
        }
        Ok(())
    }

    /// [`super::sign_backward`] over `groups` stacked copies (`z` `groups·p × n`, `out`
    /// `groups·p × d`).
    pub fn sign_backward(&self, z: &[f64], out: &mut [f64], groups: usize) -> Result<(), CvxError> {
        let CvxShape { n, d, p } = self.shape;
        self.shape.check(
            "PatternOps::sign_backward",
            &[("z", z.len(), groups * p * n), ("out", out.len(), groups * p * d)],
        )?;
        let run = |tmp: &mut Vec<f64>, (r, oi): (usize, &mut [f64])| {
            let i = r % p;
            self.xtz_row(&z[r * n..(r + 1) * n], &self.sign[i * n..(i + 1) * n], tmp, oi);
        };
        if self.parallel {
            out.par_chunks_mut(d)
                .enumerate()
                .with_min_len(PAR_CHUNK)
                .for_each_init(|| vec![0.0; n], run);
        } else {
            let mut tmp = vec![0.0; n];
            out.chunks_mut(d).enumerate().for_each(|e| run(&mut tmp, e));
        }
        Ok(())
    }

    /// [`super::masked_forward`]: `out = Σ_i D_i X v_i` (`v` `p × d`, `out` n).
    pub fn masked_forward(&self, v: &[f64], out: &mut [f64]) -> Result<(), CvxError> {
        let CvxShape { n, d, p } = self.shape;
        self.shape.check(
            "PatternOps::masked_forward",
            &[("v", v.len(), p * d), ("out", out.len(), n)],
        )?;
        // Partial sum over a range of patterns, `row` a length-n scratch.
        let partial = |range: std::ops::Range<usize>, acc: &mut [f64], row: &mut [f64]| {
            for i in range {
                self.xv_row(&v[i * d..(i + 1) * d], &self.gate[i * n..(i + 1) * n], row);
                for (a, r) in acc.iter_mut().zip(row.iter()) {
                    *a += r;
                }
            }
        };
        out.fill(0.0);
        if self.parallel {
            let chunks = p.div_ceil(PAR_CHUNK);
            let total = (0..chunks)
                .into_par_iter()
                .fold(
                    || (vec![0.0; n], vec![0.0; n]),
                    |(mut acc, mut row), c| {
                        partial(c * PAR_CHUNK..((c + 1) * PAR_CHUNK).min(p), &mut acc, &mut row);
                        (acc, row)
                    },
                )
                .map(|(acc, _)| acc)
                .reduce(
                    || vec![0.0; n],
                    |mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                        a
                    },
                );
            out.copy_from_slice(&total);
        } else {
            let mut row = vec![0.0; n];
            partial(0..p, out, &mut row);
        }
        Ok(())
    }

    /// [`super::masked_backward`]: `out_i = Xᵀ D_i r` (`r` n, `out` `p × d`).
    pub fn masked_backward(&self, r: &[f64], out: &mut [f64]) -> Result<(), CvxError> {
        let CvxShape { n, d, p } = self.shape;
        self.shape.check(
            "PatternOps::masked_backward",
            &[("r", r.len(), n), ("out", out.len(), p * d)],
        )?;
        let run = |tmp: &mut Vec<f64>, (i, oi): (usize, &mut [f64])| {
            self.xtz_row(r, &self.gate[i * n..(i + 1) * n], tmp, oi);
        };
        if self.parallel {
            out.par_chunks_mut(d)
                .enumerate()
                .with_min_len(PAR_CHUNK)
                .for_each_init(|| vec![0.0; n], run);
        } else {
            let mut tmp = vec![0.0; n];
            out.chunks_mut(d).enumerate().for_each(|e| run(&mut tmp, e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{masked_backward, masked_forward, sign_backward, sign_forward};
    use super::*;

    fn fill(len: usize, seed: u64) -> Vec<f64> {
        (0..len)
            .map(|i| ((i as f64 + 1.0) * 0.731 + seed as f64 * 1.37).sin())
            .collect()
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    }

    /// Every product equals the reference, serial and threaded (the second shape is above
    /// the parallel threshold), with n not a multiple of the 4-lane dot product.
    #[test]
    fn blocked_products_match_the_references() {
        for s in [
            CvxShape { n: 7, d: 3, p: 5 },
            CvxShape {
                n: 203,
                d: 11,
                p: 260,
            },
        ] {
            let x = fill(s.n * s.d, 1);
            let mask: Vec<u8> = (0..s.p * s.n).map(|e| u8::from((e * 7 + 3) % 5 < 3)).collect();
            let mut ops = PatternOps::new(&x, &mask, s).unwrap();
            let mask2: Vec<u8> = mask.iter().chain(&mask).copied().collect();
            let s2 = CvxShape { p: 2 * s.p, ..s };
            let v = fill(2 * s.p * s.d, 2);
            let r = fill(s.n, 3);
            let z = fill(2 * s.p * s.n, 4);
            for parallel in [false, true] {
                ops.set_parallel(parallel);
                let (mut a, mut b) = (vec![0.0; s.n], vec![0.0; s.n]);
                ops.masked_forward(&v[..s.p * s.d], &mut a).unwrap();
                masked_forward(&x, &mask, &v[..s.p * s.d], s, &mut b).unwrap();
                assert!(max_diff(&a, &b) < 1e-12);
                let (mut a, mut b) = (vec![0.0; s.p * s.d], vec![0.0; s.p * s.d]);
                ops.masked_backward(&r, &mut a).unwrap();
                masked_backward(&x, &mask, &r, s, &mut b).unwrap();
                assert!(max_diff(&a, &b) < 1e-12);
                let (mut a, mut b) = (vec![0.0; 2 * s.p * s.n], vec![0.0; 2 * s.p * s.n]);
                ops.sign_forward(&v, &mut a, 2).unwrap();
                sign_forward(&x, &mask2, &v, s2, &mut b).unwrap();
                assert!(max_diff(&a, &b) < 1e-12);
                let (mut a, mut b) = (vec![0.0; 2 * s.p * s.d], vec![0.0; 2 * s.p * s.d]);
                ops.sign_backward(&z, &mut a, 2).unwrap();
                sign_backward(&x, &mask2, &z, s2, &mut b).unwrap();
                assert!(max_diff(&a, &b) < 1e-11);
            }
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let s = CvxShape { n: 2, d: 2, p: 2 };
        assert!(PatternOps::new(&[0.0; 4], &[0u8; 3], s).is_err());
        let ops = PatternOps::new(&[0.0; 4], &[0u8; 4], s).unwrap();
        let err = ops.sign_forward(&[0.0; 4], &mut [0.0; 4], 2).unwrap_err();
        assert!(err.0.contains("sign_forward") && err.0.contains("`v`"), "{err}");
    }
}
