//! The gradcheck harness: a case is a function of some tensors and the inputs to check it at.

use autograd::gradcheck::{gradcheck, GradcheckOptions};
use autograd::{DType, Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub type OpFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

pub struct Case {
    pub name: String,
    pub inputs: Vec<Tensor>,
    pub f: OpFn,
    pub opts: GradcheckOptions,
}

impl Case {
    pub fn new(
        name: impl Into<String>,
        inputs: Vec<Tensor>,
        f: impl Fn(&[Tensor]) -> Result<Tensor> + 'static,
    ) -> Case {
        Case {
            name: name.into(),
            inputs,
            f: Box::new(f),
            opts: GradcheckOptions::default(),
        }
    }

    /// Non-default tolerances; every caller states why next to the call.
    pub fn with_opts(mut self, opts: GradcheckOptions) -> Case {
        self.opts = opts;
        self
    }
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Standard normal f64 values.
pub fn randn(shape: &[usize], rng: &mut StdRng) -> Tensor {
    Tensor::randn(shape, DType::F64, Device::Cpu, rng).unwrap()
}

/// Uniform f64 values in `[lo, hi)`.
pub fn uniform(shape: &[usize], lo: f64, hi: f64, rng: &mut StdRng) -> Tensor {
    Tensor::rand_uniform(shape, lo, hi, DType::F64, Device::Cpu, rng).unwrap()
}

/// Run every case; panics with the failing case's name and the checker's message.
pub fn run(cases: Vec<Case>) {
    assert!(!cases.is_empty());
    for case in &cases {
        match gradcheck(&case.f, &case.inputs, case.opts) {
            Ok(report) => assert!(report.elements > 0, "{}: checked no element", case.name),
            Err(e) => panic!("gradcheck failed for case `{}`: {e}", case.name),
        }
    }
}

/// The ops each case records (one forward with tracked inputs, no finite differences).
pub fn recorded_ops(cases: &[Case]) -> Vec<&'static str> {
    let mut ops = Vec::new();
    for case in cases {
        let tracked: Vec<Tensor> = case
            .inputs
            .iter()
            .map(|t| {
                if t.dtype() == DType::F64 {
                    t.set_requires_grad(true)
                } else {
                    t.clone()
                }
            })
            .collect();
        let y = (case.f)(&tracked).unwrap_or_else(|e| panic!("case `{}` failed: {e}", case.name));
        ops.extend(y.graph_ops());
    }
    ops
}
