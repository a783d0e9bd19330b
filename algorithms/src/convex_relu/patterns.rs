//! Activation patterns D_i = diag(1[X h_i ≥ 0]): exact enumeration of the hyperplane
//! arrangement for low-dimensional data, or sampling from Gaussian directions.
//!
//! Exact enumeration. When X (n × d) has full column rank d, every region of the central
//! arrangement {h : x_kᵀh = 0} is a pointed cone, so it has an extreme ray, and an extreme ray is
//! the intersection of d − 1 independent hyperplanes. So: for every set of d − 1 linearly
//! independent rows, take the line h orthogonal to them, both of its directions ±h, and every
//! region that touches that ray: the rows not in the set keep the sign of x_kᵀh, and the rows of
//! the set (and any other row through h) take the sign of x_kᵀq for a small perturbation q,
//! where q runs over the 2^(d−1) solutions of x_lᵀq = ±1 on the set. That is
//! O(C(n, d−1)·2^d·n d) work: exact and fast for d ≤ 4 or so, hopeless beyond, which is why the
//! paper samples. The all-zero pattern is dropped: its D_i X is 0, so its weights only cost
//! regularization and are 0 at any optimum.

use std::collections::HashSet;

use rand::{RngExt, SeedableRng};

use super::data::Dataset;

/// How a set of patterns was obtained (reported next to the count).
#[derive(Clone, Debug, PartialEq)]
pub enum PatternSource {
    /// Every region of the arrangement.
    Exact,
    /// `requested` Gaussian directions, deduplicated (the count may be smaller).
    Sampled { requested: usize, seed: u64 },
    /// Given by the caller (e.g. read from a golden file).
    Given,
}

/// P distinct patterns over n samples, pattern-major (`mask[i*n + k]`), as `kernels::cvx` takes
/// them. `directions` holds a generating h_i per pattern (`p × d`) when known.
#[derive(Clone, Debug)]
pub struct Patterns {
    pub mask: Vec<u8>,
    pub p: usize,
    pub n: usize,
    pub source: PatternSource,
}

impl Patterns {
    /// Patterns given as rows of 0/1 (deduplicated, all-zero rows dropped).
    pub fn from_rows(rows: &[Vec<u8>], n: usize) -> Patterns {
        let mut set = Dedup::new(n);
        for r in rows {
            set.push(r);
        }
        set.finish(PatternSource::Given)
    }

    pub fn row(&self, i: usize) -> &[u8] {
        &self.mask[i * self.n..(i + 1) * self.n]
    }

    /// The patterns as a set of rows, for order-free comparison.
    pub fn row_set(&self) -> HashSet<Vec<u8>> {
        (0..self.p).map(|i| self.row(i).to_vec()).collect()
    }

    /// One line for logs: `242 patterns (exact)` or `87 patterns (100 sampled, seed 1)`.
    pub fn describe(&self) -> String {
        match &self.source {
            PatternSource::Exact => format!("{} patterns (exact enumeration)", self.p),
            PatternSource::Sampled { requested, seed } => {
                format!(
                    "{} distinct patterns ({requested} Gaussian directions sampled, seed {seed})",
                    self.p
                )
            }
            PatternSource::Given => format!("{} patterns (given)", self.p),
        }
    }
}

struct Dedup {
    n: usize,
    seen: HashSet<Vec<u8>>,
    mask: Vec<u8>,
}

impl Dedup {
    fn new(n: usize) -> Dedup {
        Dedup {
            n,
            seen: HashSet::new(),
            mask: Vec::new(),
        }
    }
    fn push(&mut self, row: &[u8]) {
        if row.iter().any(|&b| b != 0) && self.seen.insert(row.to_vec()) {
            self.mask.extend_from_slice(row);
        }
    }
    fn finish(self, source: PatternSource) -> Patterns {
        let p = self.mask.len() / self.n.max(1);
        Patterns {
            mask: self.mask,
            p,
            n: self.n,
            source,
        }
    }
}

/// Standard normal samples by Box–Muller, so the crate needs no distribution library.
#[derive(Default)]
pub struct Gaussian {
    spare: Option<f64>,
}

impl Gaussian {
    pub fn sample<R: rand::Rng>(&mut self, rng: &mut R) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = rng.random_range(0.0..1.0);
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }
}

/// `count` directions h ~ N(0, I_d), their patterns 1[Xh ≥ 0], deduplicated.
pub fn sample_patterns(ds: &Dataset, count: usize, seed: u64) -> Patterns {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut gauss = Gaussian::default();
    let mut set = Dedup::new(ds.n);
    let mut row = vec![0u8; ds.n];
    let mut h = vec![0.0; ds.d];
    for _ in 0..count {
        h.iter_mut().for_each(|e| *e = gauss.sample(&mut rng));
        for (k, r) in row.iter_mut().enumerate() {
            *r = u8::from(dot(ds.row(k), &h) >= 0.0);
        }
        set.push(&row);
    }
    set.finish(PatternSource::Sampled {
        requested: count,
        seed,
    })
}

/// Every pattern of the arrangement (module docs). Errors when X lacks full column rank, or
/// when the enumeration would visit more than `max_subsets` row subsets (ask for sampling then).
pub fn enumerate_patterns(ds: &Dataset, max_subsets: usize) -> Result<Patterns, String> {
    let (n, d) = (ds.n, ds.d);
    let rank = ds.rank();
    if rank < d {
        return Err(format!(
            "exact pattern enumeration needs X of full column rank, but rank(X) = {rank} < d = {d}; \
             drop the dependent columns or sample patterns"
        ));
    }
    let subsets = binomial(n, d - 1);
    if subsets > max_subsets as f64 {
        return Err(format!(
            "exact enumeration would visit C({n}, {}) = {subsets:.3e} row subsets (limit {max_subsets}); \
             sample patterns instead",
            d - 1
        ));
    }
    let scale =
        ds.x.iter()
            .fold(0.0f64, |m, v| m.max(v.abs()))
            .max(f64::MIN_POSITIVE);
    let tol = 1e-9 * scale;
    let mut set = Dedup::new(n);
    let mut row = vec![0u8; n];
    let mut subset: Vec<usize> = (0..d - 1).collect();
    loop {
        if let Some((h, qs)) = ray_and_perturbations(ds, &subset) {
            let xh: Vec<f64> = (0..n).map(|k| dot(ds.row(k), &h)).collect();
            for sign in [1.0, -1.0] {
                for q in &qs {
                    for k in 0..n {
                        let on_ray = xh[k].abs() <= tol * norm(&h);
                        let val = if on_ray { dot(ds.row(k), q) } else { sign * xh[k] };
                        row[k] = u8::from(val >= 0.0);
                    }
                    set.push(&row);
                }
            }
        }
        if !next_subset(&mut subset, n) {
            break;
        }
    }
    Ok(set.finish(PatternSource::Exact))
}

/// For rows `subset` (d − 1 of them): a unit h orthogonal to all of them, and the 2^(d−1)
/// perturbations q with x_lᵀq = ±1 on the subset (least-norm, within the rows' span, so
/// x_lᵀ(h + δq) keeps the sign of x_lᵀh for every row off the ray when δ is small). None when
/// the rows are dependent.
fn ray_and_perturbations(ds: &Dataset, subset: &[usize]) -> Option<(Vec<f64>, Vec<Vec<f64>>)> {
    let d = ds.d;
    let m = subset.len();
    // h: the null vector of the m × d system, by Gaussian elimination on [rows].
    let rows: Vec<Vec<f64>> = subset.iter().map(|&k| ds.row(k).to_vec()).collect();
    let h = null_vector(&rows, d)?;
    // Gram matrix of the subset rows and its inverse applied to each sign vector.
    let gram: Vec<f64> = (0..m * m).map(|e| dot(&rows[e / m], &rows[e % m])).collect();
    let mut qs = Vec::with_capacity(1 << m);
    for bits in 0..(1usize << m) {
        let mut rhs: Vec<f64> = (0..m)
            .map(|l| if bits >> l & 1 == 1 { 1.0 } else { -1.0 })
            .collect();
        let mut l = gram.clone();
        if m > 0 {
            kernels::cvx::cholesky(&mut l, m).ok()?;
            kernels::cvx::cholesky_solve(&l, m, &mut rhs);
        }
        let mut q = vec![0.0; d];
        for (c, r) in rhs.iter().zip(&rows) {
            for j in 0..d {
                q[j] += c * r[j];
            }
        }
        qs.push(q);
    }
    Some((h, qs))
}

/// A unit vector orthogonal to every row (rows: m < d vectors of length d), or None if the
/// rows are linearly dependent.
fn null_vector(rows: &[Vec<f64>], d: usize) -> Option<Vec<f64>> {
    let m = rows.len();
    let mut a: Vec<Vec<f64>> = rows.to_vec();
    let scale = a
        .iter()
        .flatten()
        .fold(0.0f64, |s, v| s.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    let mut pivots = Vec::with_capacity(m);
    let mut r = 0;
    for col in 0..d {
        if r == m {
            break;
        }
        let piv = (r..m).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() <= 1e-12 * scale {
            continue;
        }
        a.swap(r, piv);
        let p = a[r][col];
        a[r].iter_mut().for_each(|v| *v /= p);
        for i in 0..m {
            if i != r {
                let f = a[i][col];
                let pivot_row = a[r].clone();
                a[i].iter_mut().zip(&pivot_row).for_each(|(v, pv)| *v -= f * pv);
            }
        }
        pivots.push(col);
        r += 1;
    }
    if r < m {
        return None;
    }
    // Reduced row echelon form: the one free column gets 1, pivots follow from the rows.
    let free = (0..d).find(|c| !pivots.contains(c))?;
    let mut h = vec![0.0; d];
    h[free] = 1.0;
    for (i, &pc) in pivots.iter().enumerate() {
        h[pc] = -a[i][free];
    }
    let nh = norm(&h);
    h.iter_mut().for_each(|v| *v /= nh);
    Some(h)
}

fn next_subset(s: &mut [usize], n: usize) -> bool {
    let m = s.len();
    for i in (0..m).rev() {
        if s[i] < n - m + i {
            s[i] += 1;
            for j in i + 1..m {
                s[j] = s[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::super::data::teacher_data;
    use super::*;

    /// Regions of a central arrangement of n hyperplanes in general position in R^d:
    /// 2·Σ_{k<d} C(n−1, k) (Cover 1965); the all-zero region is not counted by us.
    fn regions(n: usize, d: usize) -> usize {
        2 * (0..d).map(|k| binomial(n - 1, k) as usize).sum::<usize>()
    }

    #[test]
    fn exact_enumeration_counts_every_region_and_sampling_finds_a_subset() {
        for (n, f) in [(9, 1), (12, 2), (10, 3)] {
            let ds = teacher_data(n, f, 3, 0.1, 7).with_bias();
            let exact = enumerate_patterns(&ds, 1_000_000).unwrap();
            // Random data is in general position; the all-zero pattern is one of the regions.
            assert_eq!(exact.p, regions(n, ds.d) - 1, "n={n} d={}", ds.d);
            let sampled = sample_patterns(&ds, 20_000, 3);
            let all = exact.row_set();
            assert!(sampled.row_set().iter().all(|r| all.contains(r)));
            // Small cells are rarely hit by random directions (here ~80% are found in 20k draws
            // for d = 4): the reason the sampled program is only an approximation.
            assert!(sampled.p >= exact.p / 2, "{} of {}", sampled.p, exact.p);
            assert!(exact.describe().contains("exact"));
        }
    }

    #[test]
    fn rank_deficient_data_is_an_error() {
        let ds = Dataset::new(vec![1.0, 2.0, 2.0, 4.0, 3.0, 6.0], vec![0.0; 3], 2).unwrap();
        assert!(enumerate_patterns(&ds, 1000).unwrap_err().contains("rank"));
    }
}
