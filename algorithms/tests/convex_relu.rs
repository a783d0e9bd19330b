//! [161] convex ReLU training against cvxpy's interior-point optima
//! (`tests/golden/convex_relu_golden.json`, from `tests/golden/convex_relu_cvxpy.py`), plus the
//! structural claims: the recovered network's objective equals the convex one, ADMM's residuals
//! fall linearly, the gated relaxation is never worse, and the convex optimum is no worse than the
//! best non-convex Adam run.

use algorithms::convex_relu::*;

mod convex_relu_golden;
use convex_relu_golden::*;

/// Our exact enumeration (extreme rays of the arrangement, Rust) finds the same set of patterns
/// as the script's (numpy): the stored patterns are every region.
#[test]
fn exact_enumeration_matches_the_golden_patterns() {
    for g in golden() {
        let ours = enumerate_patterns(&g.ds, 1_000_000).unwrap();
        assert_eq!(ours.row_set(), g.pats.row_set(), "{}", g.name);
    }
}

/// Tolerance 1e-4 relative: cvxpy's Clarabel stops at ~1e-8 relative gap, ADMM at its residual
/// tolerances; observed agreement is printed.
#[test]
fn admm_matches_cvxpy_and_the_recovered_network_attains_the_optimum() {
    for g in golden().iter().filter(|g| g.loss != "hinge") {
        let loss = loss_of(g);
        let opt = AdmmOptions {
            loss,
            beta: g.beta,
            ..Default::default()
        };
        let sol = solve_admm(&g.ds, &g.pats, &opt).unwrap();
        let want = g.v["exact"].as_f64().unwrap();
        eprintln!(
            "{}: admm {:.10} cvxpy {want:.10} rel {:.1e}, {} iters, {:.3}s, cone violation {:.1e}, {} neurons",
            g.name,
            sol.objective,
            rel(sol.objective, want),
            sol.iterations,
            sol.seconds,
            sol.cone_violation,
            sol.active_neurons(g.ds.d)
        );
        // The logistic split (ŷ = Fu copied into the second block) converges linearly but slowly:
        // it reaches 1e-4 within the iteration cap, not the 1e-6 stopping rule (see the docs).
        if loss == Loss::Squared {
            assert!(
                sol.converged,
                "{}: not converged in {} iterations",
                g.name, sol.iterations
            );
        }
        assert!(
            rel(sol.objective, want) < 1e-4,
            "{}: {} vs {want}",
            g.name,
            sol.objective
        );

        // Recovery: the width-m ReLU network has the same (non-convex) objective.
        let net = recover_network(&sol.v, &sol.w, g.ds.d, 1e-8);
        let nonconvex = net.objective(&g.ds, loss, g.beta);
        eprintln!(
            "{}: recovered width {}, non-convex objective {nonconvex:.12}",
            g.name,
            net.width()
        );
        assert!(
            rel(nonconvex, sol.objective) < 1e-6,
            "{}: {nonconvex} vs {}",
            g.name,
            sol.objective
        );
    }
}

#[test]
fn fista_matches_cvxpy_on_the_gated_relaxation_which_is_never_worse() {
    for g in golden().iter().filter(|g| g.loss != "hinge") {
        let loss = loss_of(g);
        let sol = solve_fista(
            &g.ds,
            &g.pats,
            &FistaOptions {
                loss,
                beta: g.beta,
                ..Default::default()
            },
        )
        .unwrap();
        let want = g.v["gated"].as_f64().unwrap();
        eprintln!(
            "{}: fista {:.10} cvxpy {want:.10} rel {:.1e}, {} iters, {:.3}s",
            g.name,
            sol.objective,
            rel(sol.objective, want),
            sol.iterations,
            sol.seconds
        );
        assert!(
            rel(sol.objective, want) < 1e-4,
            "{}: {} vs {want}",
            g.name,
            sol.objective
        );
        let exact = g.v["exact"].as_f64().unwrap();
        assert!(
            sol.objective <= exact * (1.0 + 1e-6),
            "{}: gated {} > exact {exact}",
            g.name,
            sol.objective
        );
    }
}

#[test]
fn robust_program_matches_cvxpy_with_and_without_perturbation() {
    for g in golden().iter().filter(|g| g.loss == "hinge") {
        for (eps, key) in [(g.v["eps"].as_f64().unwrap(), "robust"), (0.0, "robust_eps0")] {
            let opt = RobustOptions {
                beta: g.beta,
                eps,
                ..Default::default()
            };
            let sol = solve_robust(&g.ds, &g.pats, &opt).unwrap();
            let want = g.v[key].as_f64().unwrap();
            eprintln!(
                "{} eps={eps}: pdhg {:.10} cvxpy {want:.10} rel {:.1e}, {} iters, {:.3}s, violation {:.1e}",
                g.name,
                sol.objective,
                rel(sol.objective, want),
                sol.iterations,
                sol.seconds,
                sol.cone_violation
            );
            assert!(
                rel(sol.objective, want) < 1e-4,
                "{} eps={eps}: {} vs {want}",
                g.name,
                sol.objective
            );
            assert!(sol.cone_violation < 1e-6, "{}", sol.cone_violation);
        }
    }
}

/// ADMM's residuals fall linearly: a least-squares fit of log10(primal residual) against the
/// iteration over the run's second half has a clearly negative slope, and the residual at the
/// end is orders of magnitude below the start.
#[test]
fn admm_residuals_decay_linearly() {
    let g = golden().into_iter().find(|g| g.name == "reg_d2").unwrap();
    let sol = solve_admm(
        &g.ds,
        &g.pats,
        &AdmmOptions {
            beta: g.beta,
            ..Default::default()
        },
    )
    .unwrap();
    let h = &sol.history;
    let half = &h[h.len() / 2..];
    let pts: Vec<(f64, f64)> = half
        .iter()
        .map(|e| (e.0 as f64, e.2.max(1e-300).log10()))
        .collect();
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let slope = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
        / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
    let (first, last) = (h[0].2, h[h.len() - 1].2);
    eprintln!(
        "primal residual {first:.2e} -> {last:.2e} in {} iterations; log10 slope {slope:.2e}/iter",
        h.len()
    );
    assert!(slope < -1e-4, "slope {slope}");
    assert!(last < 1e-5 * first, "{first} -> {last}");
    let (d0, d1) = (h[0].3, h[h.len() - 1].3);
    assert!(d1 < 1e-3 * d0, "dual {d0} -> {d1}");
}

/// The convex optimum lower-bounds every same-width Adam run; the best run is reported.
#[test]
fn convex_optimum_is_no_worse_than_the_best_adam_run() {
    let g = golden().into_iter().find(|g| g.name == "reg_d2").unwrap();
    let sol = solve_admm(
        &g.ds,
        &g.pats,
        &AdmmOptions {
            beta: g.beta,
            ..Default::default()
        },
    )
    .unwrap();
    let width = recover_network(&sol.v, &sol.w, g.ds.d, 1e-8).width();
    let opt = BaselineOptions {
        beta: g.beta,
        width,
        runs: 4,
        steps: 1500,
        ..Default::default()
    };
    let runs = train_baseline(&g.ds, &opt).unwrap();
    let best = runs.iter().map(|r| r.objective).fold(f64::INFINITY, f64::min);
    let all: Vec<String> = runs.iter().map(|r| format!("{:.6}", r.objective)).collect();
    eprintln!(
        "width {width}: convex {:.8}, Adam runs [{}], best {best:.8}",
        sol.objective,
        all.join(", ")
    );
    assert!(
        sol.objective <= best * (1.0 + 1e-6),
        "convex {} > best Adam {best}",
        sol.objective
    );
}

#[test]
fn bad_problems_are_errors_not_panics() {
    let g = golden().into_iter().find(|g| g.name == "reg_d2").unwrap();
    let bad_beta = AdmmOptions {
        beta: -1.0,
        ..Default::default()
    };
    assert!(solve_admm(&g.ds, &g.pats, &bad_beta)
        .unwrap_err()
        .contains("beta"));
    let logistic = AdmmOptions {
        loss: Loss::Logistic,
        beta: 0.1,
        ..Default::default()
    };
    assert!(solve_admm(&g.ds, &g.pats, &logistic)
        .unwrap_err()
        .contains("labels"));
    let other = Patterns::from_rows(&[vec![1, 0, 1]], 3);
    assert!(solve_fista(&g.ds, &other, &FistaOptions::default())
        .unwrap_err()
        .contains("samples"));
}

/// Regression: the [161] demo's own problem and ADMM configuration (`convex_relu_demo`)
/// meets its stopping rule (primal and dual residuals below ε_abs/ε_rel) within its iteration
/// budget, for both demo sizes, and at the `--quick` size its solution passes the demo's
/// recovery claim (recovered network's objective within 1e-6 of the convex one). An earlier change of the solver's
/// defaults stalled this problem (2 of 4 claims failed on a fresh clone) without any test
/// noticing. The demo problem has no stored cvxpy value, so the optimum is cross-checked
/// against the solver's defaults (automatic ρ, α = 1.6 with the stall fall-back), which must
/// converge too, to 1e-4 relative as against cvxpy: both runs stop on a 1e-6 relative residual
/// rule, which bounds the objective less tightly (observed difference 2.9e-6 at n = 12).
#[test]
fn demo_admm_configuration_converges() {
    let opts = algorithms::repro::ReproOptions::quick_cpu();
    for quick in [true, false] {
        let (ds, pats, admm) = algorithms::convex_relu_demo::demo_problem(quick, opts.seed(0)).unwrap();
        let sol = solve_admm(&ds, &pats, &admm).unwrap();
        let defaults = AdmmOptions {
            beta: admm.beta,
            eps_abs: admm.eps_abs,
            eps_rel: admm.eps_rel,
            max_iters: admm.max_iters,
            ..Default::default()
        };
        let auto = solve_admm(&ds, &pats, &defaults).unwrap();
        let recovered = recover_network(&sol.v, &sol.w, ds.d, 1e-8).objective(&ds, admm.loss, admm.beta);
        let last = sol.history.last().unwrap();
        eprintln!(
            "demo n={} P={}: demo config (rho {}, alpha {}) {} iterations (converged {}), primal {:.1e} dual {:.1e}, \
             objective {:.10}, recovered {:.1e} relative; defaults {} iterations (converged {}), primal {:.1e}, \
             objective {:.10}",
            ds.n,
            pats.p,
            admm.rho,
            admm.relaxation,
            sol.iterations,
            sol.converged,
            last.2,
            last.3,
            sol.objective,
            rel(recovered, sol.objective),
            auto.iterations,
            auto.converged,
            auto.history.last().unwrap().2,
            auto.objective
        );
        assert!(
            sol.converged && sol.iterations < admm.max_iters,
            "demo n={}: the demo's ADMM configuration did not meet its stopping rule in {} iterations",
            ds.n,
            admm.max_iters
        );
        // The claim is checked at the `--quick` size, the one CI's repro runs. At n = 20 the same
        // configuration misses it (3.7e-6 observed, 2026-11-22; docs/convex-relu.md): the
        // stopping rule bounds the residuals, not the cone violation that recovery is sensitive
        // to.
        assert!(
            !quick || rel(recovered, sol.objective) < 1e-6,
            "demo n={}: recovered {recovered} vs convex {}",
            ds.n,
            sol.objective
        );
        assert!(
            auto.converged,
            "demo n={}: the default options did not converge",
            ds.n
        );
        assert!(
            rel(auto.objective, sol.objective) < 1e-4,
            "{} vs {}",
            auto.objective,
            sol.objective
        );
    }
}

/// The CUDA device for the CPU/CUDA solver parity test, or `None` after printing why it skips
/// (the conventions of `autograd/tests/parity`): `REQUIRE_CUDA=1` turns the skip into a failure.
/// Every solver gives the same iterates with its products on CUDA as on the CPU, over a short
/// run (50 iterations) of each golden problem kind. Tolerance 1e-9 relative to the iterate's
/// size: the f64 products differ in summation order only (~1e-16 relative each), ADMM and
/// PDHG are non-expansive, and FISTA's restart and backtracking tests are not near ties on
/// these problems, so 50 iterations cannot grow rounding to anywhere near 1e-9. The barrier
/// method runs 10 Newton steps: its host-side Cholesky and GEMMs are the same code on both
/// sides, so only the products' rounding differs, and the early Newton systems are well
/// conditioned (t is small).
#[test]
fn solvers_give_the_same_iterates_on_cpu_and_cuda() {
    let Some(cuda) = cuda_or_skip("solvers_give_the_same_iterates_on_cpu_and_cuda") else {
        return;
    };
    let close = |what: &str, a: &ConvexSolution, b: &ConvexSolution| {
        let scale = a.v.iter().chain(&a.w).fold(1e-12f64, |m, e| m.max(e.abs()));
        let worst =
            a.v.iter()
                .zip(&b.v)
                .chain(a.w.iter().zip(&b.w))
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        eprintln!(
            "{what}: objective cpu {:.12} cuda {:.12}, max |Δ| {worst:.1e} (scale {scale:.1e})",
            a.objective, b.objective
        );
        assert!(worst <= 1e-9 * scale, "{what}: iterates differ by {worst:e}");
        assert!(rel(b.objective, a.objective) < 1e-9, "{what}: objectives differ");
    };
    for g in golden() {
        if g.loss == "hinge" {
            let run = |device| {
                let opt = RobustOptions {
                    beta: g.beta,
                    eps: g.v["eps"].as_f64().unwrap(),
                    max_iters: 50,
                    device,
                    ..Default::default()
                };
                solve_robust(&g.ds, &g.pats, &opt).unwrap()
            };
            close(&format!("{} robust", g.name), &run(Device::Cpu), &run(cuda));
            continue;
        }
        let loss = loss_of(&g);
        let admm = |device| {
            let opt = AdmmOptions {
                loss,
                beta: g.beta,
                max_iters: 50,
                device,
                ..Default::default()
            };
            solve_admm(&g.ds, &g.pats, &opt).unwrap()
        };
        close(&format!("{} admm", g.name), &admm(Device::Cpu), &admm(cuda));
        let fista = |device| {
            let opt = FistaOptions {
                loss,
                beta: g.beta,
                max_iters: 50,
                device,
                ..Default::default()
            };
            solve_fista(&g.ds, &g.pats, &opt).unwrap()
        };
        close(&format!("{} fista", g.name), &fista(Device::Cpu), &fista(cuda));
        let barrier = |device| {
            let opt = BarrierOptions {
                loss,
                beta: g.beta,
                max_iters: 10,
                device,
                ..Default::default()
            };
            solve_gated_barrier(&g.ds, &g.pats, &opt).unwrap()
        };
        close(
            &format!("{} barrier", g.name),
            &barrier(Device::Cpu),
            &barrier(cuda),
        );
    }
}

/// Without a GPU, asking for one is an error naming the solver's device, never a silent CPU run.
#[test]
fn cuda_without_a_gpu_is_a_clear_error() {
    if Device::cuda_unavailable_reason().is_none() {
        return; // a GPU is present: the parity test above covers the CUDA path
    }
    let g = golden().into_iter().find(|g| g.name == "reg_d2").unwrap();
    let opt = AdmmOptions {
        beta: g.beta,
        device: Device::Cuda(0),
        ..Default::default()
    };
    let err = solve_admm(&g.ds, &g.pats, &opt).unwrap_err();
    assert!(err.contains("cuda:0") && err.contains("no usable GPU"), "{err}");
}
