//! Seeded parameter initializers (`torch.nn.init`). Each draws from the caller's RNG, in f64,
//! then converts to `dtype`, so an f32 and an f64 model built from the same seed hold the same
//! values up to rounding (what the f64 gradchecks of f32-sized models rely on).
//!
//! Fans follow PyTorch for a weight of shape `[out, in, ...]`: `fan_in = in · receptive`,
//! `fan_out = out · receptive`, where `receptive` is the product of the trailing dims.

use autograd::{DType, Device, Error, Result, Tensor};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

const OP: &str = "init";

fn bad(reason: String) -> Error {
    Error::InvalidArgument { op: OP, reason }
}

fn build(values: Vec<f64>, shape: &[usize], dtype: DType) -> Result<Tensor> {
    if !dtype.is_float() {
        return Err(Error::UnsupportedDType {
            op: OP,
            dtype,
            expected: "a float dtype",
        });
    }
    Tensor::from_vec(values, shape, Device::Cpu)?.to_dtype(dtype)
}

/// `(fan_in, fan_out)` of a weight shaped `[out, in, ...]`; a vector counts as `[n]` with
/// both fans `n`.
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    match shape {
        [] => Err(bad("fans of a scalar are undefined".into())),
        [n] => Ok((*n, *n)),
        [out, inp, rest @ ..] => {
            let r: usize = rest.iter().product();
            Ok((inp * r, out * r))
        }
    }
}

pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
    Tensor::zeros(shape, dtype, Device::Cpu)
}

pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
    Tensor::ones(shape, dtype, Device::Cpu)
}

/// `N(mean, std²)` (`torch.nn.init.normal_`).
pub fn normal<R: Rng + ?Sized>(
    shape: &[usize],
    mean: f64,
    std: f64,
    dtype: DType,
    rng: &mut R,
) -> Result<Tensor> {
    if !(std >= 0.0 && std.is_finite() && mean.is_finite()) {
        return Err(bad(format!(
            "normal: need finite mean and std >= 0, got {mean}, {std}"
        )));
    }
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| mean + std * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng))
        .collect();
    build(v, shape, dtype)
}

/// `U(low, high)` (`torch.nn.init.uniform_`).
pub fn uniform<R: Rng + ?Sized>(
    shape: &[usize],
    low: f64,
    high: f64,
    dtype: DType,
    rng: &mut R,
) -> Result<Tensor> {
    let dist = Uniform::new(low, high).map_err(|e| bad(format!("uniform({low}, {high}): {e}")))?;
    let n: usize = shape.iter().product();
    build((0..n).map(|_| dist.sample(rng)).collect(), shape, dtype)
}

/// `N(mean, std²)` conditioned on `[a, b]`, by rejection (`torch.nn.init.trunc_normal_`, whose
/// bounds are absolute, default ±2). Rejection is exact; `[a, b]` must hold at least 1% of the
/// mass so it cannot spin for long.
pub fn trunc_normal<R: Rng + ?Sized>(
    shape: &[usize],
    mean: f64,
    std: f64,
    a: f64,
    b: f64,
    dtype: DType,
    rng: &mut R,
) -> Result<Tensor> {
    let (lo, hi) = ((a - mean) / std, (b - mean) / std);
    let mass = 0.5 * (libm::erf(hi / std::f64::consts::SQRT_2) - libm::erf(lo / std::f64::consts::SQRT_2));
    if !(std > 0.0 && a < b && mass >= 0.01) {
        return Err(bad(format!(
            "trunc_normal: need std > 0, a < b and [a, b] holding >= 1% of N(mean, std²); got mean {mean}, \
             std {std}, [{a}, {b}]"
        )));
    }
    let n: usize = shape.iter().product();
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let z: f64 = StandardNormal.sample(rng);
        if (lo..=hi).contains(&z) {
            v.push(mean + std * z);
        }
    }
    build(v, shape, dtype)
}

/// Glorot and Bengio's uniform: `U(±gain·sqrt(6 / (fan_in + fan_out)))`.
pub fn xavier_uniform<R: Rng + ?Sized>(
    shape: &[usize],
    gain: f64,
    dtype: DType,
    rng: &mut R,
) -> Result<Tensor> {
    let (fi, fo) = fans(shape)?;
    let bound = gain * (6.0 / (fi + fo) as f64).sqrt();
    uniform(shape, -bound, bound, dtype, rng)
}

/// Glorot and Bengio's normal: `N(0, gain²·2 / (fan_in + fan_out))`.
pub fn xavier_normal<R: Rng + ?Sized>(
    shape: &[usize],
    gain: f64,
    dtype: DType,
    rng: &mut R,
) -> Result<Tensor> {
    let (fi, fo) = fans(shape)?;
    normal(shape, 0.0, gain * (2.0 / (fi + fo) as f64).sqrt(), dtype, rng)
}

/// He et al.'s uniform over `fan_in`: `U(±gain·sqrt(3 / fan_in))` (`kaiming_uniform_`, mode
/// `fan_in`); `gain = sqrt(2)` for ReLU. PyTorch's `nn.Linear` default is `gain = sqrt(1/3)`
/// (its `a = sqrt(5)`), which gives `U(±1/sqrt(fan_in))`.
pub fn kaiming_uniform<R: Rng + ?Sized>(
    shape: &[usize],
    gain: f64,
    dtype: DType,
    rng: &mut R,
) -> Result<Tensor> {
    let (fi, _) = fans(shape)?;
    let bound = gain * (3.0 / fi as f64).sqrt();
    uniform(shape, -bound, bound, dtype, rng)
}

/// He et al.'s normal over `fan_in`: `N(0, gain² / fan_in)`.
pub fn kaiming_normal<R: Rng + ?Sized>(
    shape: &[usize],
    gain: f64,
    dtype: DType,
    rng: &mut R,
) -> Result<Tensor> {
    let (fi, _) = fans(shape)?;
    normal(shape, 0.0, gain / (fi as f64).sqrt(), dtype, rng)
}
