//! The reference column: `bench/reference/reference.py` run once with every case that has a
//! Python reference, numpy on a CPU and PyTorch on a GPU, in the same run as our kernels and
//! timed the same way (warm-up, then per-call times; on a GPU synchronized before each clock
//! read). The script receives the cases and the run plan as JSON on stdin and prints the raw
//! times as JSON on stdout; the statistics are computed here, by the same code as ours.
//!
//! The Python is `$BENCH_PYTHON` or the PATH's `python3`. When it is missing or lacks the
//! library, the column is empty and the report says why.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use autograd::Device;
use serde_json::{json, Value};

use super::timing::{Plan, Timing};

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/reference/reference.py");

/// The script to run: `$BENCH_REFERENCE_SCRIPT` (the GPU bundle carries a copy away from the
/// source tree), else the one in this source tree.
fn script() -> String {
    std::env::var("BENCH_REFERENCE_SCRIPT").unwrap_or_else(|_| SCRIPT.into())
}
/// The script as the report names it.
pub const SCRIPT_NAME: &str = "bench/reference/reference.py";

/// What the reference run produced: the library's description and per-case times or reasons.
#[derive(Debug, Default)]
pub struct Outcome {
    /// e.g. "numpy 2.4.6"; `None` when nothing ran.
    pub library: Option<String>,
    /// Why the whole column is empty, when it is.
    pub unavailable: Option<String>,
    pub results: HashMap<usize, Result<Timing, String>>,
}

fn python() -> String {
    std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The library a reference on `device` needs, and a one-line check that it is importable.
fn library(device: Device) -> (&'static str, &'static str) {
    match device {
        Device::Cpu => ("numpy", "import numpy; print('numpy', numpy.__version__)"),
        Device::Cuda(_) => (
            "torch",
            "import torch; assert torch.cuda.is_available(), 'torch has no CUDA'; print('torch', torch.__version__)",
        ),
    }
}

/// Checks that the Python and its library are there; `Err` says what is missing.
pub fn probe(device: Device) -> Result<String, String> {
    let py = python();
    let (lib, check) = library(device);
    let out = Command::new(&py)
        .args(["-c", check])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("no Python ({py}: {e}); set BENCH_PYTHON to a python with {lib}"))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let last = why.lines().last().unwrap_or("").trim();
        return Err(format!(
            "{py} cannot import {lib} ({last}); set BENCH_PYTHON to a python with {lib}"
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs the reference script on `cases` (`(id, spec)`), each rotated over its `copies`.
pub fn run(device: Device, plan: &Plan, cases: &[(usize, Value)]) -> Outcome {
    let mut outcome = Outcome::default();
    if cases.is_empty() {
        return outcome;
    }
    match probe(device) {
        Ok(lib) => outcome.library = Some(lib),
        Err(why) => {
            outcome.unavailable = Some(why);
            return outcome;
        }
    }
    let input = json!({
        "device": if device == Device::Cpu { "cpu".to_string() } else { device.to_string() },
        "plan": {"warmup": plan.warmup_runs, "min_runs": plan.min_runs, "max_runs": plan.max_runs,
                 "budget_s": plan.budget.as_secs_f64()},
        "cases": cases.iter().map(|(id, spec)| {
            let mut spec = spec.clone();
            spec["id"] = json!(id);
            spec
        }).collect::<Vec<_>>(),
    });
    match call(&input) {
        Ok(reply) => outcome.results = parse(&reply),
        Err(why) => outcome.unavailable = Some(why),
    }
    outcome
}

/// Feeds `input` to the script; its stderr (progress) goes straight to ours.
fn call(input: &Value) -> Result<Value, String> {
    let py = python();
    let script = script();
    let mut child = Command::new(&py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("could not start {py} {script}: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.to_string().as_bytes())
        .map_err(|e| format!("writing the cases to {script}: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("{script}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{script} failed ({})", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{script} printed no JSON: {e}"))
}

/// `{"results": {"<id>": {"times": [...]} | {"skipped": "why"}}}` into per-case outcomes.
pub fn parse(reply: &Value) -> HashMap<usize, Result<Timing, String>> {
    let mut map = HashMap::new();
    let Some(results) = reply.get("results").and_then(Value::as_object) else {
        return map;
    };
    for (id, r) in results {
        let Ok(id) = id.parse::<usize>() else { continue };
        let times: Option<Vec<f64>> = r
            .get("times")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect());
        let result = match (times.as_deref().and_then(Timing::from_samples), r.get("skipped")) {
            (Some(t), _) => Ok(t),
            (None, Some(why)) => Err(why.as_str().unwrap_or("skipped").to_string()),
            (None, None) => Err("no times returned".into()),
        };
        map.insert(id, result);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_and_reasons() {
        let reply = json!({"results": {
            "0": {"times": [0.3, 0.1, 0.2]},
            "4": {"skipped": "numpy has no erf"},
            "x": {"times": [1.0]},
            "5": {}
        }});
        let m = parse(&reply);
        assert_eq!(m.len(), 3);
        assert_eq!(m[&0].as_ref().unwrap().median_s, 0.2);
        assert_eq!(m[&4], Err("numpy has no erf".to_string()));
        assert!(m[&5].is_err());
    }

    #[test]
    fn missing_python_is_a_reason_not_a_panic() {
        std::env::set_var("BENCH_PYTHON", "/nonexistent/python3");
        let why = probe(Device::Cpu).unwrap_err();
        std::env::remove_var("BENCH_PYTHON");
        assert!(why.contains("BENCH_PYTHON"), "{why}");
    }
}
