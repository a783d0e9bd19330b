//! The stored cvxpy problems and optima (`tests/golden/convex_relu_golden.json`, written by
//! `tests/golden/convex_relu_cvxpy.py`), shared by the convex ReLU test files.
#![allow(dead_code)] // each test file uses a different part

use algorithms::convex_relu::*;
use serde_json::Value;

pub struct Golden {
    pub name: String,
    pub ds: Dataset,
    pub pats: Patterns,
    pub beta: f64,
    pub loss: String,
    pub v: Value,
}

pub fn golden() -> Vec<Golden> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/golden/convex_relu_golden.json"
    );
    let root: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        root["cvxpy_version"], "1.9.3",
        "regenerated with another cvxpy: update the pins"
    );
    root["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let f = |k: &str| {
                p[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect::<Vec<_>>()
            };
            let (n, d) = (
                p["n"].as_u64().unwrap() as usize,
                p["d"].as_u64().unwrap() as usize,
            );
            let mut ds = Dataset::new(f("x"), f("y"), d).unwrap();
            ds.has_bias = true; // the script's last column is the bias
            let rows: Vec<Vec<u8>> = p["patterns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|b| b.as_u64().unwrap() as u8)
                        .collect()
                })
                .collect();
            let pats = Patterns::from_rows(&rows, n);
            assert_eq!(pats.p, rows.len());
            Golden {
                name: p["name"].as_str().unwrap().into(),
                ds,
                pats,
                beta: p["beta"].as_f64().unwrap(),
                loss: p["loss"].as_str().unwrap().into(),
                v: p.clone(),
            }
        })
        .collect()
}

pub fn loss_of(g: &Golden) -> Loss {
    match g.loss.as_str() {
        "squared" => Loss::Squared,
        "logistic" => Loss::Logistic,
        other => panic!("{other}"),
    }
}

pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

/// `Some(Device::Cuda(0))` when CUDA is usable; otherwise prints why and returns None (or
/// fails under `REQUIRE_CUDA=1`).
pub fn cuda_or_skip(test: &str) -> Option<Device> {
    match Device::cuda_unavailable_reason() {
        None => Some(Device::Cuda(0)),
        Some(why) => {
            let required = std::env::var("REQUIRE_CUDA").is_ok_and(|v| v == "1");
            assert!(!required, "REQUIRE_CUDA=1 but CUDA is not usable: {why}");
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("\n{test}: SKIPPED (no GPU; REQUIRE_CUDA=1 makes this fail): {why}\n").as_bytes(),
            );
            None
        }
    }
}
