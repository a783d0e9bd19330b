//! Correlated multichannel time series with missing values (for [427] SAITS).
//!
//! Each series mixes `factors` latent sinusoids, `z_k(t) = sin(2π f_k t + φ_k)` with per-series
//! random phases and frequencies drawn around fixed per-factor centres, into `channels`
//! channels through a fixed random loading matrix `A` (`x_c(t) = Σ_k A_ck z_k(t) + σ ε`).
//! Channels are therefore correlated: a value missing in one channel is predictable from the
//! others at the same time step, which mean imputation and per-channel interpolation cannot
//! use.
//!
//! Two masks, as in SAITS's evaluation: `observed` (1 = present in the input) drops
//! `missing_rate` of all entries at random (the "originally missing" values), and `held_out`
//! (1 = hidden for evaluation) removes a further `eval_rate` of the remaining observed entries;
//! the input a model sees is `observed ∧ ¬held_out`, and imputation error is measured on
//! `held_out` against the noisy values, which is what a real data set would hold.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesConfig {
    pub series: usize,
    pub steps: usize,
    pub channels: usize,
    pub factors: usize,
    /// Std of the additive Gaussian noise.
    pub noise: f64,
    /// Fraction of entries missing in the data.
    pub missing_rate: f64,
    /// Fraction of the remaining observed entries hidden for evaluation.
    pub eval_rate: f64,
}

impl SeriesConfig {
    /// METHODS.md's [427] demo: 8 correlated sinusoidal channels plus noise, 20% missing, a
    /// further 20% held out.
    pub fn saits_demo(series: usize, steps: usize) -> Self {
        SeriesConfig {
            series,
            steps,
            channels: 8,
            factors: 3,
            noise: 0.1,
            missing_rate: 0.2,
            eval_rate: 0.2,
        }
    }
}

/// A generated set, row-major `[series, steps, channels]`.
#[derive(Clone, Debug)]
pub struct SeriesSet {
    pub config: SeriesConfig,
    /// The full (noisy) values, including the entries that are missing.
    pub values: Vec<f64>,
    /// 1 where the entry is present in the data.
    pub observed: Vec<f64>,
    /// 1 where an observed entry is hidden from the model and scored.
    pub held_out: Vec<f64>,
}

impl SeriesSet {
    /// The mask a model may read: observed and not held out.
    pub fn input_mask(&self) -> Vec<f64> {
        self.observed
            .iter()
            .zip(&self.held_out)
            .map(|(o, h)| o * (1.0 - h))
            .collect()
    }

    /// Values with every unreadable entry zeroed (what a model gets as input).
    pub fn input_values(&self) -> Vec<f64> {
        self.values
            .iter()
            .zip(self.input_mask())
            .map(|(v, m)| v * m)
            .collect()
    }

    /// `[steps, channels]` size of one series.
    pub fn series_len(&self) -> usize {
        self.config.steps * self.config.channels
    }
}

/// The loading matrix and factor frequencies: shared by every set made with `structure_seed`,
/// so a training set and a test set come from one process.
fn structure(config: &SeriesConfig, structure_seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(structure_seed);
    let loading: Vec<f64> = (0..config.channels * config.factors)
        .map(|_| StandardNormal.sample(&mut rng))
        .map(|a: f64| a / (config.factors as f64).sqrt())
        .collect();
    // Periods between 4 and 12 steps: short enough that gaps hurt interpolation.
    let freqs = (0..config.factors)
        .map(|_| 1.0 / rng.random_range(4.0..12.0))
        .collect();
    (loading, freqs)
}

/// A set drawn from the process fixed by `structure_seed`, with series and masks from `seed`.
pub fn generate(config: SeriesConfig, structure_seed: u64, seed: u64) -> SeriesSet {
    let (loading, freqs) = structure(&config, structure_seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let (n, t, c, k) = (config.series, config.steps, config.channels, config.factors);
    let mut values = Vec::with_capacity(n * t * c);
    for _ in 0..n {
        let phases: Vec<f64> = (0..k)
            .map(|_| rng.random_range(0.0..std::f64::consts::TAU))
            .collect();
        let f: Vec<f64> = freqs.iter().map(|&f| f * rng.random_range(0.9..1.1)).collect();
        for step in 0..t {
            let z: Vec<f64> = (0..k)
                .map(|j| (std::f64::consts::TAU * f[j] * step as f64 + phases[j]).sin())
                .collect();
            for ch in 0..c {
                let clean: f64 = (0..k).map(|j| loading[ch * k + j] * z[j]).sum();
                let eps: f64 = StandardNormal.sample(&mut rng);
                values.push(clean + config.noise * eps);
            }
        }
    }
    let observed: Vec<f64> = (0..n * t * c)
        .map(|_| (rng.random::<f64>() >= config.missing_rate) as u8 as f64)
        .collect();
    let held_out = observed
        .iter()
        .map(|&o| {
            if o == 1.0 && rng.random::<f64>() < config.eval_rate {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    SeriesSet {
        config,
        values,
        observed,
        held_out,
    }
}

/// Mean absolute error of `pred` against `truth` over the entries where `mask` is 1 (0 when
/// the mask is empty).
pub fn masked_mae(pred: &[f64], truth: &[f64], mask: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for ((p, t), m) in pred.iter().zip(truth).zip(mask) {
        num += m * (p - t).abs();
        den += m;
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Mean imputation: every unreadable entry gets its channel's mean over the readable entries of
/// `train` (the baseline of SAITS's tables).
pub fn impute_mean(train: &SeriesSet, target: &SeriesSet) -> Vec<f64> {
    let c = train.config.channels;
    let m = train.input_mask();
    let (mut sum, mut cnt) = (vec![0.0; c], vec![0.0; c]);
    for (i, (v, mm)) in train.values.iter().zip(&m).enumerate() {
        sum[i % c] += v * mm;
        cnt[i % c] += mm;
    }
    let mean: Vec<f64> = sum
        .iter()
        .zip(&cnt)
        .map(|(s, n)| if *n > 0.0 { s / n } else { 0.0 })
        .collect();
    let tm = target.input_mask();
    target
        .values
        .iter()
        .zip(&tm)
        .enumerate()
        .map(|(i, (v, mm))| if *mm == 1.0 { *v } else { mean[i % c] })
        .collect()
}

/// Per-channel linear interpolation in time between the nearest readable neighbours; before
/// the first or after the last readable value, that value is carried; a channel with no readable
/// value in a series gets 0.
pub fn impute_linear(target: &SeriesSet) -> Vec<f64> {
    let (n, t, c) = (target.config.series, target.config.steps, target.config.channels);
    let m = target.input_mask();
    let mut out = target.values.clone();
    for s in 0..n {
        for ch in 0..c {
            let idx = |step: usize| (s * t + step) * c + ch;
            let known: Vec<usize> = (0..t).filter(|&st| m[idx(st)] == 1.0).collect();
            for step in 0..t {
                if m[idx(step)] == 1.0 {
                    continue;
                }
                let after = known.partition_point(|&k| k < step);
                out[idx(step)] = match (after.checked_sub(1).map(|i| known[i]), known.get(after)) {
                    (Some(a), Some(&b)) => {
                        let w = (step - a) as f64 / (b - a) as f64;
                        (1.0 - w) * target.values[idx(a)] + w * target.values[idx(b)]
                    }
                    (Some(a), None) => target.values[idx(a)],
                    (None, Some(&b)) => target.values[idx(b)],
                    (None, None) => 0.0,
                };
            }
        }
    }
    out
}
