//! H2: token streams for tiny language models, from sparse random Markov (bigram) sources with
//! an optional Zipfian unigram, in one or several "domains".
//!
//! A source over `vocab` tokens gives each token `branching` successors with random weights;
//! successors are drawn from the Zipf law `p(r) ∝ r^(−s)` over a fixed random ranking of the
//! vocabulary when `zipf` is set (so frequent tokens are frequent successors), uniformly
//! otherwise. The chain's entropy rate `H = Σ_i π_i H(P_i·)` (π stationary) is the loss a
//! perfect next-token model reaches, which reports use as the floor ℓ*.

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

/// How a [`MarkovSource`] is built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarkovConfig {
    pub vocab: usize,
    /// Successors per token (≥ 1); 1 makes the stream deterministic after its first token.
    pub branching: usize,
    /// Zipf exponent `s` of the successor draw (e.g. 1.1), or `None` for uniform.
    pub zipf: Option<f64>,
    /// Dirichlet-like skew of the successor weights: weight `u^sharpness` for `u ~ U(0, 1)`;
    /// 0 gives equal weights, larger values make one successor dominate.
    pub sharpness: f64,
}

/// A sparse first-order Markov chain over `0..vocab`.
#[derive(Clone, Debug)]
pub struct MarkovSource {
    pub config: MarkovConfig,
    /// Per token, its `(successor, probability)` pairs (probabilities sum to 1).
    pub transitions: Vec<Vec<(usize, f64)>>,
}

fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let w: Vec<f64> = (1..=n).map(|r| (r as f64).powf(-s)).collect();
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    w.iter()
        .map(|x| {
            acc += x / total;
            acc
        })
        .collect()
}

fn draw_cdf<R: Rng + ?Sized>(cdf: &[f64], rng: &mut R) -> usize {
    let u: f64 = rng.random();
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

impl MarkovSource {
    /// The source for `config` and `seed`. Panics never: a zero vocab or branching is raised to 1.
    pub fn new(config: MarkovConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let v = config.vocab.max(1);
        let k = config.branching.clamp(1, v);
        // A random ranking so that rank 1 is not always token 0.
        let mut rank: Vec<usize> = (0..v).collect();
        for i in (1..v).rev() {
            rank.swap(i, rng.random_range(0..=i));
        }
        let cdf = config.zipf.map(|s| zipf_cdf(v, s));
        let transitions = (0..v)
            .map(|_| {
                let mut succ: Vec<usize> = Vec::with_capacity(k);
                while succ.len() < k {
                    let t = match &cdf {
                        Some(c) => rank[draw_cdf(c, &mut rng)],
                        None => rng.random_range(0..v),
                    };
                    if !succ.contains(&t) {
                        succ.push(t);
                    }
                }
                let w: Vec<f64> = succ
                    .iter()
                    .map(|_| rng.random::<f64>().max(1e-3).powf(config.sharpness))
                    .collect();
                let total: f64 = w.iter().sum();
                succ.into_iter().zip(w.iter().map(|x| x / total)).collect()
            })
            .collect();
        MarkovSource { config, transitions }
    }

    pub fn vocab(&self) -> usize {
        self.transitions.len()
    }

    /// The next token after `tok`.
    pub fn next<R: Rng + ?Sized>(&self, tok: usize, rng: &mut R) -> usize {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let row = &self.transitions[tok];
        for &(t, p) in row {
            acc += p;
            if u < acc {
                return t;
            }
        }
        row[row.len() - 1].0
    }

    /// `batch` sequences of `len` tokens, row-major; each starts from a uniform token and then
    /// follows the chain.
    pub fn sample<R: Rng + ?Sized>(&self, batch: usize, len: usize, rng: &mut R) -> Vec<i64> {
        let mut out = Vec::with_capacity(batch * len);
        for _ in 0..batch {
            let mut tok = rng.random_range(0..self.vocab());
            for _ in 0..len {
                out.push(tok as i64);
                tok = self.next(tok, rng);
            }
        }
        out
    }

    /// Language-model pairs: `(inputs, targets)`, each `batch × len` row-major, where the targets
    /// are the inputs shifted by one token.
    pub fn lm_batch<R: Rng + ?Sized>(&self, batch: usize, len: usize, rng: &mut R) -> (Vec<i64>, Vec<i64>) {
        let seqs = self.sample(batch, len + 1, rng);
        let mut x = Vec::with_capacity(batch * len);
        let mut y = Vec::with_capacity(batch * len);
        for row in seqs.chunks(len + 1) {
            x.extend_from_slice(&row[..len]);
            y.extend_from_slice(&row[1..]);
        }
        (x, y)
    }

    /// The stationary distribution, by power iteration from uniform (500 steps, or until the
    /// change is below 1e-12; a periodic chain gets its Cesàro average, which is stationary).
    pub fn stationary(&self) -> Vec<f64> {
        let v = self.vocab();
        let mut pi = vec![1.0 / v as f64; v];
        let mut avg = vec![0.0; v];
        for it in 1..=500 {
            let mut next = vec![0.0; v];
            for (i, row) in self.transitions.iter().enumerate() {
                for &(j, p) in row {
                    next[j] += pi[i] * p;
                }
            }
            let delta: f64 = next.iter().zip(&pi).map(|(a, b)| (a - b).abs()).sum();
            pi = next;
            for (a, p) in avg.iter_mut().zip(&pi) {
                *a += (p - *a) / it as f64;
            }
            if delta < 1e-12 {
                return pi;
            }
        }
        avg
    }

    /// The entropy rate in nats: the expected next-token loss of the true chain from its
    /// stationary distribution (the first token of a sequence, drawn uniformly, costs more).
    pub fn entropy_rate(&self) -> f64 {
        let pi = self.stationary();
        self.transitions
            .iter()
            .zip(&pi)
            .map(|(row, p)| {
                p * row
                    .iter()
                    .map(|&(_, q)| if q > 0.0 { -q * q.ln() } else { 0.0 })
                    .sum::<f64>()
            })
            .sum()
    }
}

/// `n` sources over the same vocabulary with independent transition tables (domains).
pub fn domains(config: MarkovConfig, n: usize, seed: u64) -> Vec<MarkovSource> {
    (0..n)
        .map(|d| MarkovSource::new(config, seed.wrapping_mul(1_000_003).wrapping_add(d as u64)))
        .collect()
}

/// `n` tokens drawn i.i.d. from a Zipf law over `0..vocab` (rank r has probability ∝ r^(−s),
/// token r − 1 is rank r).
pub fn zipf_tokens<R: Rng + ?Sized>(vocab: usize, s: f64, n: usize, rng: &mut R) -> Vec<i64> {
    let cdf = zipf_cdf(vocab.max(1), s);
    (0..n).map(|_| draw_cdf(&cdf, rng) as i64).collect()
}
