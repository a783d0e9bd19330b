//! Golden test against JAX: `autograd::attention` (tiled CPU kernel, recompute backward) on five
//! masked cases: causal with nq > nk, key padding with an empty batch row, diagonal, a boolean
//! mask plus a tracked bias, and GQA with causal + padding. Every case but the diagonal one has
//! fully masked rows, where JAX's explicit formula gives out = 0, lse = -inf and zero gradients.
//!
//! `tests/golden/attention_golden.json` was written by `tests/golden/attention_golden.py` (JAX
//! 0.10.2, f64; see `tests/golden/README.md`), which also checks its formula against
//! `jax.nn.dot_product_attention` on every row that is not fully masked.
//!
//! Tolerance: `|ours − jax| ≤ 1e-10·(|jax| + max|jax|)` per tensor, as in `golden_mlp.rs`. Both sides
//! evaluate the same f64 formulas in different orders (online softmax over key tiles against a
//! materialized softmax; δ = ⟨dout, out⟩ against Σ P·dP), a few ulp of the tensor's scale, ~1e-15;
//! a wrong term in a gradient is off by far more than 1e-10. Fully masked rows are compared exactly.

use autograd::{attention, AttentionMask, DType, Device, Tensor};
use serde_json::Value;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/attention_golden.json");

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

/// Values, with the strings "-inf" / "inf" for non-finite ones.
fn floats(v: &Value) -> Vec<f64> {
    v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| match x.as_str() {
            Some("-inf") => f64::NEG_INFINITY,
            Some("inf") => f64::INFINITY,
            Some(other) => panic!("unexpected value {other:?}"),
            None => x.as_f64().unwrap(),
        })
        .collect()
}

fn tensor(v: &Value) -> Tensor {
    Tensor::from_vec(floats(v), &shape(v), Device::Cpu).unwrap()
}

/// Returns the worst `|ours − jax| / (|jax| + max|jax|)`.
fn check(case: &str, what: &str, ours: &Tensor, expected: &Value) -> f64 {
    assert_eq!(ours.shape(), shape(expected).as_slice(), "{case} {what}: shape");
    let (ours, jax) = (ours.to_vec_f64().unwrap(), floats(expected));
    let scale = jax
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |m, x| m.max(x.abs()));
    let mut worst = 0.0f64;
    for (i, (a, b)) in ours.iter().zip(&jax).enumerate() {
        if !b.is_finite() {
            assert_eq!(a, b, "{case} {what}[{i}]");
            continue;
        }
        let err = (a - b).abs();
        assert!(
            err <= 1e-10 * (b.abs() + scale),
            "{case} {what}[{i}]: {a} vs JAX {b} (error {err:.3e})"
        );
        if scale > 0.0 {
            worst = worst.max(err / (b.abs() + scale));
        }
    }
    worst
}

#[test]
fn attention_matches_jax() {
    let golden = load();
    assert_eq!(golden["jax_version"], "0.10.2");
    assert_eq!(golden["generator"], "tests/golden/attention_golden.py");
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    let mut fully_masked_rows = 0;
    let mut worst = 0.0f64;
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let q = tensor(&c["q"]).set_requires_grad(true);
        let k = tensor(&c["k"]).set_requires_grad(true);
        let v = tensor(&c["v"]).set_requires_grad(true);
        let mut mask = AttentionMask::none();
        if c["causal"].as_bool().unwrap() {
            mask = mask.and_causal();
        }
        if c["diagonal"].as_bool().unwrap() {
            mask = mask.and_diagonal();
        }
        if let Some(lengths) = c["lengths"].as_array() {
            let l: Vec<usize> = lengths.iter().map(|x| x.as_u64().unwrap() as usize).collect();
            mask = mask.and_key_padding(&l);
        }
        if !c["bool_mask"].is_null() {
            let m = &c["bool_mask"];
            let bytes: Vec<u8> = m["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u8)
                .collect();
            mask = mask.and_boolean(&Tensor::from_vec(bytes, &shape(m), Device::Cpu).unwrap());
        }
        let bias = (!c["bias"].is_null()).then(|| tensor(&c["bias"]).set_requires_grad(true));
        if let Some(b) = &bias {
            mask = mask.with_bias(b);
        }
        let a = attention(&q, &k, &v, &mask, Some(c["scale"].as_f64().unwrap())).unwrap();
        assert_eq!(a.out.dtype(), DType::F64);
        worst = worst.max(check(name, "out", &a.out, &c["out"]));
        worst = worst.max(check(name, "lse", &a.lse, &c["lse"]));
        fully_masked_rows += a
            .lse
            .to_vec_f64()
            .unwrap()
            .iter()
            .filter(|x| **x == f64::NEG_INFINITY)
            .count();
        let grads = a.out.backward_with(&tensor(&c["w"])).unwrap();
        worst = worst.max(check(name, "dq", grads.get(&q).unwrap(), &c["dq"]));
        worst = worst.max(check(name, "dk", grads.get(&k).unwrap(), &c["dk"]));
        worst = worst.max(check(name, "dv", grads.get(&v).unwrap(), &c["dv"]));
        if let Some(b) = &bias {
            worst = worst.max(check(name, "dbias", grads.get(b).unwrap(), &c["dbias"]));
        }
    }
    println!("worst relative error against JAX: {worst:.2e}; {fully_masked_rows} fully masked rows");
    assert!(
        fully_masked_rows >= 10,
        "the golden cases must exercise fully masked rows"
    );
}
