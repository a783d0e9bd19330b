//! Time to 1e-3 relative optimality: our CPU solvers against cvxpy, side by side, same machine,
//! same problems ([161]; `algorithms::convex_relu`).
//!
//! For each problem (teacher-network data, deterministic) it writes the data and patterns to
//! `target/convex_relu_bench_problems.json`, runs `bench/scripts/convex_relu_cvxpy.py` on them
//! (the Python in `CVXPY_PYTHON`, default `/tmp/venv-cvx/bin/python`; skipped with a printed
//! reason when absent), takes cvxpy's optimum as p*, and times ADMM (exact program), R-FISTA
//! and the dual barrier method (gated relaxation) until `|obj − p*| ≤ 1e-3·|p*|` (ADMM also needs its cone violation within
//! 1e-3 of the prediction scale). Our time is the median of 5 runs (1 with `--quick`), pattern enumeration excluded
//! on both sides; cvxpy's is the median of 3, with and without its problem construction.
//! Prints a table and writes `target/convex_relu_bench.json`.
//!
//! Not criterion: the quantity is a time to reach an accuracy, one number per solver run.
//!
//! `--quick` (as `cargo xtask bench --quick` passes) runs our side once. The two sampled-pattern
//! problems (n = 200 and 500) finish now, but cvxpy needs minutes on the n = 500 one (three
//! repeats), so they run only with `CONVEX_RELU_BENCH_LARGE=1`.

use std::process::Command;
use std::time::Instant;

use algorithms::convex_relu::{
    enumerate_patterns, sample_patterns, solve_admm, solve_fista, solve_gated_barrier, teacher_data,
    AdmmOptions, BarrierOptions, Dataset, FistaOptions, Patterns,
};

struct Case {
    name: String,
    ds: Dataset,
    pats: Patterns,
    beta: f64,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |name: &str, ds: Dataset, pats: Patterns, beta: f64| {
        out.push(Case {
            name: name.into(),
            ds,
            pats,
            beta,
        })
    };
    let ds = teacher_data(40, 1, 3, 0.1, 1).with_bias();
    add(
        "n40_d2_exact",
        ds.clone(),
        enumerate_patterns(&ds, 1 << 20).unwrap(),
        0.01,
    );
    let ds = teacher_data(30, 2, 3, 0.1, 2).with_bias();
    add(
        "n30_d3_exact",
        ds.clone(),
        enumerate_patterns(&ds, 1 << 20).unwrap(),
        0.01,
    );
    let ds = teacher_data(200, 10, 5, 0.1, 3).with_bias();
    add("n200_d11_P50", ds.clone(), sample_patterns(&ds, 50, 4), 0.01);
    let ds = teacher_data(500, 20, 5, 0.1, 5).with_bias();
    add("n500_d21_P100", ds.clone(), sample_patterns(&ds, 100, 6), 0.01);
    if std::env::var_os("CONVEX_RELU_BENCH_LARGE").is_none() {
        out.truncate(2);
    }
    out
}

fn fmt_list(v: &[f64]) -> String {
    v.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(",")
}

fn problems_json(cases: &[Case]) -> String {
    let items: Vec<String> = cases
        .iter()
        .map(|c| {
            let rows: Vec<String> = (0..c.pats.p)
                .map(|i| format!("[{}]", c.pats.row(i).iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")))
                .collect();
            format!(
                "{{\"name\":\"{}\",\"n\":{},\"d\":{},\"beta\":{:?},\"programs\":[\"exact\",\"gated\"],\"x\":[{}],\"y\":[{}],\"patterns\":[{}]}}",
                c.name,
                c.ds.n,
                c.ds.d,
                c.beta,
                fmt_list(&c.ds.x),
                fmt_list(&c.ds.y),
                rows.join(",")
            )
        })
        .collect();
    format!("[{}]", items.join(",\n"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One cvxpy result: (name, program, value, total seconds, solver seconds, solver name).
type CvxRow = (String, String, f64, f64, f64, String);

fn run_cvxpy(path: &std::path::Path) -> Result<Vec<CvxRow>, String> {
    let python = std::env::var("CVXPY_PYTHON").unwrap_or_else(|_| "/tmp/venv-cvx/bin/python".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/convex_relu_cvxpy.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(path)
        .args(["--repeats", "3"])
        .output()
        .map_err(|e| format!("cannot run {python}: {e} (set CVXPY_PYTHON to a Python with cvxpy)"))?;
    if !out.status.success() {
        return Err(format!(
            "cvxpy script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // A tiny reader for the script's flat result objects (the bench crate has no JSON parser).
    let field = |obj: &str, key: &str| -> String {
        let at = obj
            .find(&format!("\"{key}\": "))
            .map(|i| i + key.len() + 4)
            .unwrap_or(0);
        obj[at..]
            .split([',', '}'])
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string()
    };
    let body = text
        .split("\"results\": [")
        .nth(1)
        .ok_or("no results in the cvxpy output")?;
    Ok(body
        .split('{')
        .skip(1)
        .map(|obj| {
            let num = |k: &str| field(obj, k).parse::<f64>().unwrap_or(f64::NAN);
            (
                field(obj, "name"),
                field(obj, "program"),
                num("value"),
                num("total_s"),
                num("solver_s"),
                field(obj, "solver"),
            )
        })
        .collect())
}

fn main() {
    let target = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    let _ = std::fs::create_dir_all(&target);
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 5 };
    let cases = cases();
    let problems = target.join("convex_relu_bench_problems.json");
    std::fs::write(&problems, problems_json(&cases)).expect("write problems");
    eprintln!(
        "convex_relu bench: {} problems written to {}",
        cases.len(),
        problems.display()
    );
    let cvx = match run_cvxpy(&problems) {
        Ok(r) => r,
        Err(why) => {
            eprintln!("convex_relu bench: SKIPPED the cvxpy side: {why}");
            Vec::new()
        }
    };
    let mut json = Vec::new();
    println!(
        "{:<15} {:>4} {:>3} {:>5} {:<6} {:<8} {:>14} {:>10} {:>7} {:>10} {:>10} {:>8}",
        "problem",
        "n",
        "d",
        "P",
        "prog",
        "solver",
        "p* (cvxpy)",
        "ours s",
        "iters",
        "cvxpy s",
        "solver s",
        "speedup"
    );
    for c in &cases {
        for (program, solver) in [("exact", "admm"), ("gated", "fista"), ("gated", "barrier")] {
            let Some(r) = cvx.iter().find(|r| r.0 == c.name && r.1 == program) else {
                continue;
            };
            let p_star = r.2;
            let mut times = Vec::new();
            let mut iters = 0;
            let mut reached = true;
            for _ in 0..runs {
                let t0 = Instant::now();
                let stop_at = Some((p_star, 1e-3));
                let beta = c.beta;
                let sol = match solver {
                    "admm" => solve_admm(
                        &c.ds,
                        &c.pats,
                        &AdmmOptions {
                            beta,
                            stop_at,
                            ..Default::default()
                        },
                    ),
                    "fista" => solve_fista(
                        &c.ds,
                        &c.pats,
                        &FistaOptions {
                            beta,
                            stop_at,
                            ..Default::default()
                        },
                    ),
                    _ => solve_gated_barrier(
                        &c.ds,
                        &c.pats,
                        &BarrierOptions {
                            beta,
                            stop_at,
                            ..Default::default()
                        },
                    ),
                }
                .unwrap();
                times.push(t0.elapsed().as_secs_f64());
                iters = sol.iterations;
                reached &= (sol.objective - p_star).abs() <= 1e-3 * p_star.abs();
            }
            let ours = median(times);
            let speedup = r.3 / ours;
            println!(
                "{:<15} {:>4} {:>3} {:>5} {:<6} {:<8} {:>14.8e} {:>10.4} {:>7} {:>10.4} {:>10.4} {:>7.1}x{}",
                c.name,
                c.ds.n,
                c.ds.d,
                c.pats.p,
                program,
                solver,
                p_star,
                ours,
                iters,
                r.3,
                r.4,
                speedup,
                if reached { "" } else { " (1e-3 NOT reached)" }
            );
            json.push(format!(
                "{{\"problem\":\"{}\",\"n\":{},\"d\":{},\"patterns\":{},\"program\":\"{program}\",\"solver\":\"{solver}\",\"p_star\":{p_star:?},\
                 \"ours_s\":{ours:?},\"iterations\":{iters},\"reached\":{reached},\"cvxpy_total_s\":{:?},\"cvxpy_solver_s\":{:?},\
                 \"cvxpy_solver\":\"{}\",\"speedup_vs_total\":{speedup:?}}}",
                c.name, c.ds.n, c.ds.d, c.pats.p, r.3, r.4, r.5
            ));
        }
    }
    let out = target.join("convex_relu_bench.json");
    std::fs::write(&out, format!("[\n{}\n]\n", json.join(",\n"))).expect("write results");
    eprintln!("convex_relu bench: results in {}", out.display());
}
