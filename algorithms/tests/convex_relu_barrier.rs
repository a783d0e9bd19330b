//! The gated relaxation through its dual ([`algorithms::convex_relu::barrier`]): against
//! cvxpy's stored optima, against R-FISTA, and its duality-gap certificate.

mod convex_relu_golden;
use algorithms::convex_relu::*;
use convex_relu_golden::*;

/// The barrier method stops on a proven relative gap of `tol` = 1e-7; cvxpy/Clarabel's own
/// optimum is accurate to ~1e-8 relative, so agreement within 1e-6 leaves a 10× margin on both.
/// The dual value it proves, objective − gap, must not exceed cvxpy's optimum (beyond that same
/// 1e-6 allowance for cvxpy's error): a lower bound above the optimum would be a bug.
#[test]
fn barrier_matches_cvxpy_and_its_gap_brackets_the_optimum() {
    for g in golden().iter().filter(|g| g.loss != "hinge") {
        let opt = BarrierOptions {
            loss: loss_of(g),
            beta: g.beta,
            ..Default::default()
        };
        let sol = solve_gated_barrier(&g.ds, &g.pats, &opt).unwrap();
        let want = g.v["gated"].as_f64().unwrap();
        let gap = sol.history.last().unwrap().2;
        eprintln!(
            "{}: barrier {:.10} cvxpy {want:.10} rel {:.1e}, gap {gap:.1e}, {} Newton steps, {:.4}s",
            g.name,
            sol.objective,
            rel(sol.objective, want),
            sol.iterations,
            sol.seconds
        );
        assert!(
            sol.converged,
            "{}: no certificate after {} steps",
            g.name, sol.iterations
        );
        assert!(
            gap >= 0.0 && gap <= opt.tol * sol.objective,
            "{}: gap {gap}",
            g.name
        );
        assert!(
            rel(sol.objective, want) < 1e-6,
            "{}: {} vs {want}",
            g.name,
            sol.objective
        );
        assert!(
            sol.objective - gap <= want * (1.0 + 1e-6),
            "{}: dual bound above cvxpy's optimum",
            g.name
        );
        // Second order: tens of Newton steps where R-FISTA needs thousands of iterations.
        assert!(
            sol.iterations <= 150,
            "{}: {} Newton steps",
            g.name,
            sol.iterations
        );
        let exact = g.v["exact"].as_f64().unwrap();
        assert!(
            sol.objective <= exact * (1.0 + 1e-6),
            "{}: gated above exact",
            g.name
        );
    }
}

/// On sampled patterns of larger teacher problems (no golden value), the barrier method and
/// R-FISTA, each run to its own tight stopping rule, reach the same optimum: 1e-6 relative,
/// the barrier's certificate (1e-7) plus FISTA's gradient-mapping tolerance at 1e-10 of the
/// initial gradient, which on these problems leaves it within ~1e-8.
#[test]
fn barrier_and_fista_reach_the_same_optimum() {
    for (n, din, seed, p, loss) in [(60, 4, 11, 40, Loss::Squared), (80, 3, 12, 30, Loss::Logistic)] {
        let mut ds = teacher_data(n, din, 3, 0.1, seed).with_bias();
        if loss == Loss::Logistic {
            ds.y.iter_mut()
                .for_each(|y| *y = if *y >= 0.0 { 1.0 } else { -1.0 });
        }
        let pats = sample_patterns(&ds, p, seed + 1);
        let barrier = solve_gated_barrier(
            &ds,
            &pats,
            &BarrierOptions {
                loss,
                beta: 0.05,
                ..Default::default()
            },
        )
        .unwrap();
        let fista = solve_fista(
            &ds,
            &pats,
            &FistaOptions {
                loss,
                beta: 0.05,
                ..Default::default()
            },
        )
        .unwrap();
        eprintln!(
            "n {n} {loss:?}: barrier {:.12} ({} steps) fista {:.12} ({} iterations)",
            barrier.objective, barrier.iterations, fista.objective, fista.iterations
        );
        assert!(barrier.converged && fista.converged);
        assert!(rel(barrier.objective, fista.objective) < 1e-6, "n {n} {loss:?}");
        // The same neurons: exact zeros from FISTA's prox, from the barrier's final clean-up.
        assert_eq!(
            barrier.active_neurons(ds.d),
            fista.active_neurons(ds.d),
            "n {n} {loss:?}"
        );
    }
}

/// `stop_at` ends the run as soon as the primal objective is within the given relative
/// distance of the given optimum (what the benchmark times), well before the certificate.
#[test]
fn barrier_stops_at_the_requested_accuracy() {
    let g = golden().into_iter().find(|g| g.loss == "squared").unwrap();
    let want = g.v["gated"].as_f64().unwrap();
    let base = BarrierOptions {
        beta: g.beta,
        ..Default::default()
    };
    let full = solve_gated_barrier(&g.ds, &g.pats, &base).unwrap();
    let early = solve_gated_barrier(
        &g.ds,
        &g.pats,
        &BarrierOptions {
            stop_at: Some((want, 1e-3)),
            ..base
        },
    )
    .unwrap();
    assert!(early.converged && rel(early.objective, want) <= 1e-3);
    assert!(
        early.iterations < full.iterations,
        "{} vs {}",
        early.iterations,
        full.iterations
    );
}

#[test]
fn barrier_rejects_bad_options_with_a_clear_error() {
    let g = golden().into_iter().find(|g| g.loss == "squared").unwrap();
    for (mu, tol) in [(1.0, 1e-7), (0.5, 1e-7), (20.0, 0.0), (f64::NAN, 1e-7)] {
        let err = solve_gated_barrier(
            &g.ds,
            &g.pats,
            &BarrierOptions {
                beta: g.beta,
                mu,
                tol,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("barrier") && err.contains("mu"), "{err}");
    }
    let err = solve_gated_barrier(
        &g.ds,
        &g.pats,
        &BarrierOptions {
            beta: -1.0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.contains("beta"), "{err}");
}
