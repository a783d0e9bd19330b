//! Global training of two-layer ReLU networks through their convex reformulation.
//!
//! Paper [161]: Yatong Bai, Tanmay Gautam, Somayeh Sojoudi, *Efficient Global Optimization of
//! Two-layer ReLU Networks: Quadratic-time Algorithms and Adversarial Training*, arXiv:2201.01965
//! (January 2022), SIAM Journal on Mathematics of Data Science (2023). It builds on the convex
//! program of Pilanci & Ergen, *Neural Networks are Convex Regularizers* (ICML 2020).
//!
//! # The equations
//! Non-convex network of width m on data X (n × d, a bias column included) and targets y:
//! `f(X) = Σ_j (X u_j)₊ α_j`, trained on `ℓ(f(X), y) + (β/2)·Σ_j (‖u_j‖² + α_j²)`.
//! With D_1..D_P the activation patterns `diag(1[X h ≥ 0])` ([`patterns`]), the convex program
//!
//! ```text
//!   min  ℓ(Σ_i D_i X (v_i − w_i), y) + β Σ_i (‖v_i‖₂ + ‖w_i‖₂)
//!   s.t. (2D_i − I) X v_i ≥ 0,  (2D_i − I) X w_i ≥ 0            (the cone constraints)
//! ```
//!
//! has the same optimal value once m ≥ m* (at most n + 1 neurons) and P covers every pattern.
//! Losses ([`Loss`]): squared `½‖ŷ − y‖²` (regression) and logistic `Σ log(1 + e^{−y ŷ})` with
//! labels ±1 (classification); the robust program uses the hinge loss.
//!
//! * [`admm`]: the exact program by ADMM as in [161] §3 (splitting u = v, (2D_i − I)X u_i = s_i,
//!   s ≥ 0; the linear system factorized once, exploiting that every (2D_i − I)X block has Gram
//!   matrix XᵀX; group soft-thresholding; slack projection; scaled dual updates; primal and dual
//!   residuals with Boyd et al.'s stopping rule).
//! * [`fista`]: the unconstrained gated-ReLU relaxation `min ℓ(Σ_i D_i X u_i, y) + β Σ_i ‖u_i‖₂`,
//!   the kind of unconstrained convex program [161]'s second algorithm solves, by restarted
//!   accelerated proximal gradient (FISTA with backtracking line search and restarts, as in
//!   Mishkin, Sahiner & Pilanci, ICML 2022).
//! * [`barrier`]: the same gated relaxation through its dual, which has one unknown per sample
//!   (`max −h(θ)` s.t. `‖Xᵀ D_i θ‖₂ ≤ β`), by a log-barrier Newton method whose n × n Newton
//!   systems do not care how badly the P·d primal columns are conditioned; it stops on a proven
//!   duality gap. Tens of Newton steps where R-FISTA needs thousands of iterations.
//! * [`robust`]: adversarial training for ℓ∞-bounded input perturbations (‖δ_k‖∞ ≤ ε), [161] §4:
//!   hinge loss, the cone constraints tightened to `(2D_i − I) X v_i ≥ ε‖v_i‖₁` so that no
//!   perturbation can flip an activation, and the worst-case loss in closed form.
//! * [`recover`]: the width-m network from a convex solution (`u = v_i/√‖v_i‖`, `α = √‖v_i‖`;
//!   `u = w_i/√‖w_i‖`, `α = −√‖w_i‖`) and its non-convex objective, equal to the convex one.
//! * [`baseline`]: the same-width network trained by Adam from random inits (autograd).
//!
//! The inner loops (masked products and adjoints, group prox, slack projection, Cholesky) are
//! `kernels::cvx`; its `cvx.cu` holds the CUDA versions. Every solver takes a `device`
//! option: on `Device::Cuda(i)` its pattern products run on the GPU ([`device`] says what
//! stays on the host).
//!
//! # What the report shows (`cargo xtask convex-relu`, tests, `docs/convex-relu.md`)
//! The optimal value matches cvxpy's interior-point solution (stored golden values, 1e-4
//! relative with exact patterns); the recovered network's objective equals the convex optimum;
//! ADMM's residuals fall linearly on a log scale; the gated relaxation is never worse than the
//! exact program on the same patterns; the convex optimum is no worse than the best Adam run;
//! and the time to 1e-3 relative optimality against cvxpy on the same machine.

pub mod admm;
pub mod barrier;
pub mod baseline;
pub mod data;
pub mod device;
pub mod fista;
mod linsys;
pub mod patterns;
pub mod recover;
pub mod robust;

pub use admm::{solve_admm, AdmmOptions};
pub use barrier::{solve_gated_barrier, BarrierOptions};
pub use baseline::{train_baseline, BaselineOptions, BaselineRun};
pub use data::{teacher_data, DataError, Dataset};
pub use device::{Device, Products};

pub use fista::{solve_fista, FistaOptions};
pub use patterns::{enumerate_patterns, sample_patterns, PatternSource, Patterns};
pub use recover::{recover_network, Network};
pub use robust::{robust_objective, solve_robust, RobustOptions};

use kernels::cvx::{masked_forward, CvxShape};

/// The training loss, summed over samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// `½ Σ_k (ŷ_k − y_k)²`.
    Squared,
    /// `Σ_k log(1 + exp(−y_k ŷ_k))`, labels y_k ∈ {−1, +1}.
    Logistic,
}

impl Loss {
    pub fn value(self, yhat: &[f64], y: &[f64]) -> f64 {
        match self {
            Loss::Squared => 0.5 * yhat.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>(),
            Loss::Logistic => yhat.iter().zip(y).map(|(a, b)| softplus(-a * b)).sum(),
        }
    }

    /// dℓ/dŷ, written into `out`.
    pub fn gradient(self, yhat: &[f64], y: &[f64], out: &mut [f64]) {
        for ((o, a), b) in out.iter_mut().zip(yhat).zip(y) {
            *o = match self {
                Loss::Squared => a - b,
                Loss::Logistic => -b * sigmoid(-a * b),
            };
        }
    }

    /// Checks the targets: logistic labels must be ±1.
    pub fn check_targets(self, y: &[f64]) -> Result<(), String> {
        if self == Loss::Logistic {
            if let Some(k) = y.iter().position(|&v| v != 1.0 && v != -1.0) {
                return Err(format!(
                    "the logistic (and hinge) loss needs labels -1 or +1; sample {} has {}",
                    k + 1,
                    y[k]
                ));
            }
        }
        Ok(())
    }
}

/// `log(1 + e^z)` without overflow.
pub(crate) fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// What every solver hands back: the convex weights, the objective, and how it got there.
#[derive(Clone, Debug)]
pub struct ConvexSolution {
    /// `p × d`: the v_i (for the gated relaxation: its u_i).
    pub v: Vec<f64>,
    /// `p × d`: the w_i (all zero for the gated relaxation, which has none).
    pub w: Vec<f64>,
    pub objective: f64,
    pub iterations: usize,
    pub converged: bool,
    pub seconds: f64,
    /// Per iteration (or per logged iteration): (iteration, objective, primal residual, dual
    /// residual). FISTA logs its gradient-mapping norm as the "primal" residual and 0 as dual.
    pub history: Vec<(usize, f64, f64, f64)>,
    /// Largest violation of the cone constraints, `max(0, −(2D_i − I)X v_i)` (0 for gated).
    pub cone_violation: f64,
    pub solver: &'static str,
}

impl ConvexSolution {
    /// Non-zero groups: the width of the network this solution recovers.
    pub fn active_neurons(&self, d: usize) -> usize {
        let big = |g: &[f64]| g.iter().map(|v| v * v).sum::<f64>().sqrt() > 1e-10;
        self.v.chunks(d).filter(|g| big(g)).count() + self.w.chunks(d).filter(|g| big(g)).count()
    }
}

/// `Σ_i D_i X (v_i − w_i)`: the convex model's prediction.
pub fn convex_predict(ds: &Dataset, pats: &Patterns, v: &[f64], w: &[f64]) -> Vec<f64> {
    let diff: Vec<f64> = v.iter().zip(w).map(|(a, b)| a - b).collect();
    let mut out = vec![0.0; ds.n];
    let shape = CvxShape {
        n: ds.n,
        d: ds.d,
        p: pats.p,
    };
    masked_forward(&ds.x, &pats.mask, &diff, shape, &mut out).expect("shapes checked by the solver");
    out
}

/// `ℓ(Σ_i D_i X (v_i − w_i), y) + β Σ_i (‖v_i‖ + ‖w_i‖)`.
pub fn convex_objective(ds: &Dataset, pats: &Patterns, loss: Loss, beta: f64, v: &[f64], w: &[f64]) -> f64 {
    let yhat = convex_predict(ds, pats, v, w);
    loss.value(&yhat, &ds.y) + beta * (group_norm_sum(v, ds.d) + group_norm_sum(w, ds.d))
}

/// `Σ_i ‖v_i‖₂` over groups of `d`.
pub fn group_norm_sum(v: &[f64], d: usize) -> f64 {
    v.chunks(d)
        .map(|g| g.iter().map(|e| e * e).sum::<f64>().sqrt())
        .sum()
}

/// `max(0, max_{i,k} −(2D_i − I)X v_i)` over both v and w.
pub fn cone_violation(ds: &Dataset, pats: &Patterns, v: &[f64], w: &[f64]) -> f64 {
    let mut worst = 0.0f64;
    let shape = CvxShape {
        n: ds.n,
        d: ds.d,
        p: pats.p,
    };
    let mut g = vec![0.0; pats.p * ds.n];
    for weights in [v, w] {
        kernels::cvx::sign_forward(&ds.x, &pats.mask, weights, shape, &mut g).expect("shapes");
        worst = g.iter().fold(worst, |m, &e| m.max(-e));
    }
    worst
}

/// Checks that data, patterns and β fit together; every solver starts with it.
pub(crate) fn check_problem(ds: &Dataset, pats: &Patterns, beta: f64) -> Result<(), String> {
    if pats.n != ds.n {
        return Err(format!(
            "patterns are over {} samples, the data has {}",
            pats.n, ds.n
        ));
    }
    if pats.p == 0 {
        return Err("no activation patterns".into());
    }
    if !(beta.is_finite() && beta > 0.0) {
        return Err(format!("beta must be positive and finite, got {beta}"));
    }
    Ok(())
}

pub(crate) fn norm2(a: &[f64]) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}
