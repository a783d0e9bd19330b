//! Golden test against JAX: masked cross-entropy (hard and finite mask values, z-loss, label
//! smoothing over the allowed classes, ignore_index, focal weight, per-token losses) and masked
//! softmax / log-softmax, loss or output, per-row lse and gradient.
//!
//! `tests/golden/masked_xent_golden.json` was written by `tests/golden/masked_xent_golden.py`
//! (JAX 0.10.2, f64; the command is in `tests/golden/README.md`). JAX computes the loss from its
//! definition, −Σ_c q_c·log p_c, and the gradient with `jax.grad`; the Rust side uses the closed
//! form and the fused backward coefficients, so agreement checks both. The one mask in the file
//! is run through two encodings here (dense bytes and a bitset), which must agree with JAX
//! equally.
//!
//! Tolerances, per tensor, `|ours − jax| ≤ rtol·(|jax| + max|jax|)` (the second term as in
//! `golden_mlp.rs`: gradient entries that cancel keep the absolute rounding of their terms):
//! * f64, rtol = 1e-12: one op deep, both sides in f64, differing in summation order and in
//!   `exp`/`log` (a few ulp each) over 11 classes: predicted ~1e-15 of the scale; 1e-12 leaves
//!   three orders of margin while any wrong term is off by 1e-3 or more.
//! * f32 (logits rounded to f32, computed in f32, against the f64 values), rtol = 2e-6: the
//!   inputs' rounding (6e-8 relative, times |x| ≤ 2.3) and a few f32 ulp per step predict
//!   ~5e-7; 2e-6 keeps a factor ~4 while catching an f32-only formula slip.

use autograd::{ClassMask, CrossEntropyOptions, DType, Device, Reduction, Tensor};
use serde_json::Value;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/masked_xent_golden.json");

fn load() -> Value {
    let text = std::fs::read_to_string(GOLDEN).unwrap_or_else(|e| panic!("reading {GOLDEN}: {e}"));
    serde_json::from_str(&text).expect("golden JSON parses")
}

fn shape(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ints(v: &Value) -> Tensor {
    let t: Vec<i64> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    Tensor::from_vec(t, &shape(v), Device::Cpu).unwrap()
}

/// The file's mask as a dense mask and as a bitset.
fn masks(doc: &Value) -> [ClassMask; 2] {
    let allowed: Vec<bool> = doc["allowed"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_bool().unwrap())
        .collect();
    let [rows, classes] = shape(&doc["allowed"])[..] else {
        panic!("allowed is 2-D")
    };
    let lists: Vec<Vec<usize>> = (0..rows)
        .map(|r| (0..classes).filter(|&c| allowed[r * classes + c]).collect())
        .collect();
    [
        ClassMask::dense(&allowed, rows, classes),
        ClassMask::from_class_lists(classes, &lists),
    ]
}

fn close(what: &str, ours: &[f64], gold: &[f64], rtol: f64) {
    assert_eq!(ours.len(), gold.len(), "{what}: length");
    let scale = gold.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(gold)
        .map(|(a, b)| (a - b).abs() / (b.abs() + scale).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max);
    assert!(
        worst <= rtol,
        "{what}: relative error {worst:e} > {rtol:e}\nours {ours:?}\njax  {gold:?}"
    );
}

fn mask_value(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NEG_INFINITY)
}

#[test]
fn cross_entropy_matches_jax() {
    let doc = load();
    assert_eq!(
        doc["jax_version"], "0.10.2",
        "regenerated with another JAX: update the pin"
    );
    let logits = Tensor::from_vec(floats(&doc["logits"]), &shape(&doc["logits"]), Device::Cpu).unwrap();
    let seed = Tensor::from_vec(floats(&doc["seed"]), &shape(&doc["seed"]), Device::Cpu).unwrap();
    let cases = doc["cross_entropy"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let targets = ints(if case["ignore_index"].is_null() {
            &doc["targets"]
        } else {
            &doc["targets_ignore"]
        });
        let reduction = match case["reduction"].as_str().unwrap() {
            "none" => Reduction::None,
            "sum" => Reduction::Sum,
            _ => Reduction::Mean,
        };
        let encodings = if case["masked"].as_bool().unwrap() {
            masks(&doc).to_vec()
        } else {
            vec![ClassMask::All]
        };
        for mask in encodings {
            for (dtype, rtol) in [(DType::F64, 1e-12), (DType::F32, 2e-6)] {
                let opts = CrossEntropyOptions {
                    mask: mask.clone(),
                    mask_value: mask_value(&case["mask_value"]),
                    reduction,
                    label_smoothing: case["label_smoothing"].as_f64().unwrap(),
                    ignore_index: case["ignore_index"].as_i64(),
                    z_loss: case["z_loss"].as_f64().unwrap(),
                    focal_gamma: case["focal_gamma"].as_f64().unwrap(),
                };
                let what = format!(
                    "{name} ({dtype}, {})",
                    if matches!(mask, ClassMask::Bitset { .. }) {
                        "bitset"
                    } else {
                        "dense/none"
                    }
                );
                let x = logits.to_dtype(dtype).unwrap().set_requires_grad(true);
                let out = x.cross_entropy_with(&targets, &opts).unwrap();
                close(
                    &format!("{what} loss"),
                    &out.loss.to_vec_f64().unwrap(),
                    &floats(&case["loss"]),
                    rtol,
                );
                close(
                    &format!("{what} lse"),
                    &out.lse.to_vec_f64().unwrap(),
                    &floats(&case["lse"]),
                    rtol,
                );
                let grads = if reduction == Reduction::None {
                    out.loss.backward_with(&seed.to_dtype(dtype).unwrap()).unwrap()
                } else {
                    out.loss.backward().unwrap()
                };
                let g = grads.get(&x).unwrap().to_vec_f64().unwrap();
                close(&format!("{what} grad"), &g, &floats(&case["grad"]), rtol);
            }
        }
    }
}

#[test]
fn masked_softmax_matches_jax() {
    let doc = load();
    let logits = Tensor::from_vec(floats(&doc["logits"]), &shape(&doc["logits"]), Device::Cpu).unwrap();
    let seed = Tensor::from_vec(floats(&doc["seed_rows"]), &shape(&doc["seed_rows"]), Device::Cpu).unwrap();
    for case in doc["softmax"].as_array().unwrap() {
        let (log, m) = (case["log"].as_bool().unwrap(), mask_value(&case["mask_value"]));
        for mask in masks(&doc) {
            for (dtype, rtol) in [(DType::F64, 1e-12), (DType::F32, 2e-6)] {
                let what = format!("{} m={m} {dtype}", if log { "log_softmax" } else { "softmax" });
                let x = logits.to_dtype(dtype).unwrap().set_requires_grad(true);
                let y = if log {
                    x.masked_log_softmax(-1, &mask, m)
                } else {
                    x.masked_softmax(-1, &mask, m)
                }
                .unwrap();
                // The file stores the hard log-softmax's -inf entries as 0.
                let yv: Vec<f64> = y
                    .to_vec_f64()
                    .unwrap()
                    .iter()
                    .map(|&v| if v == f64::NEG_INFINITY { 0.0 } else { v })
                    .collect();
                close(&format!("{what} y"), &yv, &floats(&case["y"]), rtol);
                let g = y.backward_with(&seed.to_dtype(dtype).unwrap()).unwrap();
                close(
                    &format!("{what} grad"),
                    &g.get(&x).unwrap().to_vec_f64().unwrap(),
                    &floats(&case["grad"]),
                    rtol,
                );
            }
        }
    }
}
