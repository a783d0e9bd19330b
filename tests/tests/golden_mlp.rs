//! Golden test against JAX: a small MLP's loss and every gradient (parameters and input).
//!
//! `tests/golden/mlp_golden.json` was written by `tests/golden/mlp_golden.py` (JAX, f64; see
//! `tests/golden/README.md` for the exact command and version). It holds the inputs, the
//! parameters, the targets, the loss and all gradients, so this test reads the inputs rather than
//! reproducing the script's formulas. The network, with PyTorch's Linear layout
//! (`y = x @ Wᵀ + b`, W stored [out, in]):
//!
//!   x [8, 6] → Linear(6, 16) → layer_norm(16, weight, bias, eps) → gelu (erf)
//!            → Linear(16, 5) → cross_entropy(targets, mean)
//!
//! Tolerances, per tensor, as `|ours − jax| ≤ rtol·(|jax| + max|jax|)`, max over the tensor.
//! The second term is there because most gradient elements are sums (over the batch, over
//! features) whose terms are of the order of the tensor's largest entries: an element that
//! cancels to nearly zero keeps the absolute rounding error of its terms, so a pure relative
//! bound would demand an accuracy that no evaluation order has (dβ[7] here is 4e-5 from eight
//! terms of order 1e-2).
//! * f64, rtol = 1e-10. Both sides evaluate the same formulas in f64 and differ only in the order
//!   of summation (matmul, the norm's mean and variance, log-sum-exp) and in their `exp`/`erf`/
//!   `log` implementations (each within a few ulp). Ten ops deep, with the layer norm's 1/σ as the
//!   largest amplification (O(1) here), that predicts errors of a few ulp of the tensor's scale,
//!   ~1e-15 (observed: 6e-16); 1e-10 leaves five orders of margin for reordered kernels (a
//!   blocked GEMM, threads) while a wrong term in any derivative is off by 1e-3 or more.
//! * f32 (inputs rounded to f32, every op computed in f32, compared with JAX's f64 values),
//!   rtol = 1e-5. f32's unit roundoff is 6e-8; the inputs' rounding plus a few ulp per op, over
//!   ten ops and sums of up to 16 terms, predicts ~1e-7 of the tensor's scale (observed: 4e-7),
//!   so 1e-5 has a factor ~25 of margin and still catches a bug in an f32-only code path (a
//!   constant rounded the wrong way, a formula that differs from the f64 one).

use autograd::{DType, Device, Reduction, Tensor};
use serde_json::Value;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/mlp_golden.json");

/// Parameter names in the JSON, in the order `forward` takes them.
const PARAMS: [&str; 6] = ["w1", "b1", "ln_weight", "ln_bias", "w2", "b2"];

fn load() -> Value {
    let text = std::fs::read_to_string(GOLDEN).unwrap_or_else(|e| panic!("reading {GOLDEN}: {e}"));
    serde_json::from_str(&text).expect("golden JSON parses")
}

fn shape(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .expect("shape is an array")
        .iter()
        .map(|d| d.as_u64().expect("dims are integers") as usize)
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v["values"]
        .as_array()
        .expect("values is an array")
        .iter()
        .map(|x| x.as_f64().expect("values are numbers"))
        .collect()
}

/// A tensor of `dtype` from a `{"shape", "values"}` entry, marked as a gradient leaf.
fn leaf(v: &Value, dtype: DType) -> Tensor {
    Tensor::from_vec(floats(v), &shape(v), Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
        .set_requires_grad(true)
}

/// `x @ wᵀ + b` with `w` stored [out, in], as `torch.nn.Linear`.
fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> autograd::Result<Tensor> {
    x.matmul(&w.t()?)?.add(b)
}

fn forward(x: &Tensor, p: &[Tensor], targets: &Tensor, eps: f64) -> autograd::Result<Tensor> {
    let [w1, b1, ln_w, ln_b, w2, b2] = p else {
        panic!("six parameters")
    };
    let h = linear(x, w1, b1)?;
    let h = h.layer_norm(&[h.size(-1)?], Some(ln_w), Some(ln_b), eps)?;
    let logits = linear(&h.gelu()?, w2, b2)?;
    logits.cross_entropy(targets, Reduction::Mean)
}

/// Largest `|ours − expected| / (|expected| + max|expected|)` over the elements, and the index
/// where it occurs.
fn worst_relative_error(ours: &[f64], expected: &[f64]) -> (f64, usize) {
    assert_eq!(ours.len(), expected.len());
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = (0.0, 0);
    for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
        let e = (a - b).abs() / (b.abs() + scale);
        // A NaN counts as the worst, so it cannot hide behind a finite maximum.
        if e.is_nan() || e > worst.0 {
            worst = (e, i);
        }
    }
    worst
}

/// Run the network in `dtype` and compare the loss and every gradient with JAX's at `rtol`.
/// Returns the largest error seen, for the report.
fn check(dtype: DType, rtol: f64) -> f64 {
    let golden = load();
    assert_eq!(golden["dtype"], "f64");
    let eps = golden["eps"].as_f64().unwrap();
    let inputs = &golden["inputs"];
    let x = leaf(&inputs["x"], dtype);
    let params: Vec<Tensor> = PARAMS.iter().map(|n| leaf(&inputs[*n], dtype)).collect();
    let t = &golden["targets"];
    let targets: Vec<i64> = t["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let targets = Tensor::from_vec(targets, &shape(t), Device::Cpu).unwrap();

    let loss = forward(&x, &params, &targets, eps).unwrap();
    // The fused ops under test are on the tape (not a composition that happens to agree).
    let ops = loss.graph_ops();
    for op in ["cross_entropy", "layer_norm", "gelu", "matmul"] {
        assert!(ops.contains(&op), "{op} not recorded: {ops:?}");
    }
    let grads = loss.backward().unwrap();

    let mut worst_overall: f64 = 0.0;
    let mut compare = |what: &str, ours: Vec<f64>, expected: Vec<f64>| {
        let (worst, i) = worst_relative_error(&ours, &expected);
        worst_overall = worst_overall.max(worst);
        assert!(
            worst <= rtol,
            "{dtype} {what}: element {i} is {} vs JAX {} (relative error {worst:.3e} > {rtol:.0e})",
            ours[i],
            expected[i]
        );
    };
    compare(
        "loss",
        vec![loss.item().unwrap()],
        vec![golden["loss"].as_f64().unwrap()],
    );
    let named = std::iter::once(("x", &x)).chain(PARAMS.iter().copied().zip(&params));
    for (name, t) in named {
        let g = grads.get(t).unwrap_or_else(|| panic!("no gradient for {name}"));
        let expected = &golden["grads"][name];
        assert_eq!(g.shape(), shape(expected).as_slice(), "{name} gradient shape");
        compare(&format!("d{name}"), g.to_vec_f64().unwrap(), floats(expected));
    }
    worst_overall
}

#[test]
fn mlp_matches_jax_in_f64() {
    let worst = check(DType::F64, 1e-10);
    println!("f64: largest relative error against JAX {worst:.3e}");
}

#[test]
fn mlp_matches_jax_in_f32() {
    let worst = check(DType::F32, 1e-5);
    println!("f32: largest relative error against JAX's f64 {worst:.3e}");
}

/// The JSON was generated by the pinned JAX the README names; a regenerated file from another
/// version should be a deliberate change, visible here.
#[test]
fn golden_file_records_its_generator() {
    let golden = load();
    assert_eq!(golden["jax_version"], "0.10.2");
    assert_eq!(golden["generator"], "tests/golden/mlp_golden.py");
    let g = &golden["grads"];
    for name in std::iter::once("x").chain(PARAMS) {
        assert_eq!(shape(&g[name]), shape(&golden["inputs"][name]), "{name}");
    }
}
