//! The curated cases: per kernel family, a few shapes that matter in training, each with its
//! byte and FLOP counts (from the `cost` modules beside the kernels), a builder that allocates
//! its inputs on the chosen device, and its reference (a numpy / PyTorch case for
//! `bench/reference/reference.py`, or another of our own implementations).
//!
//! Cases go through the public APIs (autograd ops on tensors of the device, `nn` optimizers),
//! so a CUDA row runs as soon as the op has a CUDA path; until then its builder or first call
//! fails with `NotImplementedOnDevice` and the row is listed as skipped with that message.

mod linalg;
mod pointwise;
mod training;

use autograd::{DType, Device, Tensor};
use rand::SeedableRng;
use serde_json::Value;

/// A case's timed body: `body(i)` runs the op once on input set `i % copies`.
pub type Body = Box<dyn FnMut(usize) -> Result<(), String>>;
/// Allocates a case's inputs (`env.copies` sets) and returns its body.
pub type Build = Box<dyn Fn(&Env) -> Result<Body, String>>;

/// Where and how many input sets a builder makes.
pub struct Env {
    pub device: Device,
    /// Input sets to rotate through, so that an input smaller than the cache is not timed hot.
    pub copies: usize,
}

/// Sizes and run counts: the full report, `--quick`, or the tiny shapes of the smoke test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Full,
    Quick,
    Tiny,
}

impl Scale {
    /// `full` at full scale, `quick` with --quick, `tiny` in the smoke test.
    pub fn pick<T>(self, full: T, quick: T, tiny: T) -> T {
        match self {
            Scale::Full => full,
            Scale::Quick => quick,
            Scale::Tiny => tiny,
        }
    }
}

/// What a row is compared with.
pub enum Reference {
    /// A case for `bench/reference/reference.py` (numpy on a CPU, PyTorch on a GPU).
    Python(Value),
    /// Another implementation of ours computing the same function, timed in the same run.
    Ours { label: &'static str, build: Build },
    /// No reference, and why.
    None(&'static str),
    /// One reference on the CPU, another on a GPU (attention: our unfused path on the CPU,
    /// PyTorch's SDPA on a GPU).
    ByDevice {
        cpu: Box<Reference>,
        gpu: Box<Reference>,
    },
}

impl Reference {
    /// The reference that applies on `device` (a `ByDevice` resolved, anything else as is).
    pub fn on(&self, device: Device) -> &Reference {
        match (self, device) {
            (Reference::ByDevice { cpu, .. }, Device::Cpu) => cpu.on(device),
            (Reference::ByDevice { gpu, .. }, _) => gpu.on(device),
            (other, _) => other,
        }
    }
}

pub struct Case {
    pub family: &'static str,
    pub kernel: String,
    pub shape: String,
    pub dtype: &'static str,
    /// Minimum bytes moved and nominal FLOPs of one call (the kernels' `cost` formulas).
    pub bytes: f64,
    pub flops: f64,
    pub build: Build,
    pub reference: Reference,
}

impl Case {
    /// The text `--filter` matches against.
    pub fn label(&self) -> String {
        format!("{} {} {} {}", self.family, self.kernel, self.shape, self.dtype)
    }
}

/// Every case at this scale, in report order.
pub fn all(scale: Scale) -> Vec<Case> {
    let mut cases = pointwise::cases(scale);
    cases.extend(linalg::cases(scale));
    cases.extend(training::cases(scale));
    cases
}

/// How many input sets to rotate: enough that one pass over them exceeds `rotate_bytes`
/// (twice the last-level cache), at most 8 and at most `max_total` bytes in all. A working set
/// already larger than `rotate_bytes` is used as is.
pub fn copies_for(working_set: f64, rotate_bytes: usize, max_total: usize) -> usize {
    if working_set <= 0.0 || working_set >= rotate_bytes as f64 {
        return 1;
    }
    let want = (rotate_bytes as f64 / working_set).ceil() as usize;
    let fit = (max_total as f64 / working_set).floor() as usize;
    want.min(8).min(fit).max(1)
}

pub(crate) fn err(e: autograd::Error) -> String {
    e.to_string()
}

/// Standard normal values (never zeros: `exp` and friends of zeros are not a fair timing).
pub(crate) fn randn(shape: &[usize], dtype: DType, device: Device, seed: u64) -> Result<Tensor, String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let t = Tensor::randn(shape, DType::F32, Device::Cpu, &mut rng).map_err(err)?;
    let t = if dtype == DType::F32 {
        t
    } else {
        t.to_dtype(dtype).map_err(err)?
    };
    t.to_device(device).map_err(err)
}

/// `copies` input sets, each from `make(seed)` with a different seed.
pub(crate) fn sets<T>(copies: usize, make: impl Fn(u64) -> Result<T, String>) -> Result<Vec<T>, String> {
    (0..copies as u64).map(|c| make(1000 * c + 1)).collect()
}

/// `[a, b, c]` as `4096x1024`.
pub(crate) fn dims(shape: &[usize]) -> String {
    shape.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

pub(crate) fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        _ => "other",
    }
}

/// numpy's name for a dtype, for the reference cases.
pub(crate) fn np_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::F64 => "float64",
        _ => "float32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_rule() {
        let mib = 1usize << 20;
        // 48 MiB working set, 210 MiB to exceed: 5 copies.
        assert_eq!(copies_for(48.0 * mib as f64, 210 * mib, 1 << 30), 5);
        // Tiny inputs: capped at 8.
        assert_eq!(copies_for(1024.0, 210 * mib, 1 << 30), 8);
        // Larger than the cache already, or over the memory cap.
        assert_eq!(copies_for(300.0 * mib as f64, 210 * mib, 1 << 30), 1);
        assert_eq!(copies_for(100.0 * mib as f64, 210 * mib, 150 * mib), 1);
    }

    #[test]
    fn every_tiny_case_is_counted_and_named() {
        let cases = all(Scale::Tiny);
        assert!(cases.len() >= 30, "{} cases", cases.len());
        for c in &cases {
            assert!(c.bytes > 0.0 && c.flops > 0.0, "{}", c.label());
        }
        for family in [
            "elementwise",
            "reduce",
            "softmax",
            "norm",
            "matmul",
            "attention",
            "masked_xent",
            "optim",
            "cvx",
            "index",
            "random",
        ] {
            assert!(cases.iter().any(|c| c.family == family), "no {family} case");
        }
    }
}
