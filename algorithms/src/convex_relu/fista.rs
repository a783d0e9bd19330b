//! The unconstrained gated-ReLU relaxation by restarted accelerated proximal gradient.
//!
//! Dropping the cone constraints of the exact program leaves
//! `min ℓ(Σ_i D_i X u_i, y) + β Σ_i ‖u_i‖₂` (one group per pattern: without the constraints,
//! v_i − w_i collapses into one u_i at no extra cost). It is the convex program of a "gated ReLU"
//! network, whose gates 1[Xh_i ≥ 0] are fixed, and a relaxation of the exact program on the same
//! patterns: its optimum is never larger. [161] solves unconstrained programs of this kind with
//! its second algorithm; here they are solved by R-FISTA as in Mishkin, Sahiner & Pilanci (ICML
//! 2022): FISTA (Beck & Teboulle 2009) with
//! * a backtracking line search on the quadratic upper bound, and a step that grows by 1.25×
//!   after every accepted step (so it never stays smaller than the local curvature needs);
//! * adaptive restarts (O'Donoghue & Candès 2015): momentum resets to 0 when the objective
//!   rises or the step points against the momentum;
//! * a first step 1/L from a power-iteration estimate of the gradient's Lipschitz constant;
//! * the prediction of the momentum point carried along linearly (one forward product per
//!   iteration plus one per backtrack), products on `kernels::cvx::PatternOps`;
//! * the prox: group soft-threshold `kernels::cvx::group_soft_threshold`.
//!
//! It stops when the gradient mapping ‖(y − x⁺)/η‖ (zero exactly at a minimizer) falls below
//! `tol·max(1, ‖∇ℓ‖ at 0)`.

use std::time::Instant;

use kernels::cvx::{group_soft_threshold, CvxShape};

use super::device::{Device, Products};

use super::{check_problem, group_norm_sum, norm2, ConvexSolution, Dataset, Loss, Patterns};

#[derive(Clone, Debug)]
pub struct FistaOptions {
    pub loss: Loss,
    pub beta: f64,
    pub max_iters: usize,
    pub tol: f64,
    pub log_every: usize,
    /// As in [`super::AdmmOptions::stop_at`]: stop once within `rel` of `p_star`.
    pub stop_at: Option<(f64, f64)>,
    /// Where the pattern products run (see [`super::device`]); the rest stays on the host.
    pub device: Device,
}

impl Default for FistaOptions {
    fn default() -> Self {
        FistaOptions {
            loss: Loss::Squared,
            beta: 1e-2,
            max_iters: 50_000,
            tol: 1e-10,
            log_every: 0,
            stop_at: None,
            device: Device::Cpu,
        }
    }
}

/// Largest eigenvalue of AᵀA (A = [D_1X, …, D_PX]) by a few power iterations: a lower estimate
/// of the gradient's Lipschitz constant, so 1/L is a first step the line search rarely shrinks
/// by more than once or twice.
pub(crate) fn lipschitz_estimate(ops: &Products, len: usize, n: usize) -> Result<f64, String> {
    let mut v: Vec<f64> = (0..len).map(|e| 1.0 + 0.1 * ((e as f64) * 0.618).sin()).collect();
    let mut av = vec![0.0; n];
    let mut lam = 0.0;
    for _ in 0..20 {
        let nv = norm2(&v);
        if nv == 0.0 {
            break;
        }
        v.iter_mut().for_each(|e| *e /= nv);
        ops.masked_forward(&v, &mut av)?;
        ops.masked_backward(&av, &mut v)?;
        lam = norm2(&v);
    }
    Ok(lam)
}

pub fn solve_fista(ds: &Dataset, pats: &Patterns, opt: &FistaOptions) -> Result<ConvexSolution, String> {
    check_problem(ds, pats, opt.beta)?;
    opt.loss.check_targets(&ds.y)?;
    let start = Instant::now();
    let n = ds.n;
    let ops = Products::new(
        &ds.x,
        &pats.mask,
        CvxShape {
            n,
            d: ds.d,
            p: pats.p,
        },
        opt.device,
    )?;
    let len = pats.p * ds.d;
    let loss = opt.loss;
    let (mut x, mut y, mut xn, mut g) = (vec![0.0; len], vec![0.0; len], vec![0.0; len], vec![0.0; len]);
    // Predictions A x, A y, A x⁺. The prediction is linear in the weights, so A y after the
    // momentum step is the same combination of A x⁺ and A x: one forward product per iteration
    // (at the prox point) instead of two.
    let (mut ax, mut ay, mut axn, mut dl) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut obj = loss.value(&ax, &ds.y);
    loss.gradient(&ay, &ds.y, &mut dl);
    ops.masked_backward(&dl, &mut g).map_err(|e| e.to_string())?;
    let grad0 = norm2(&g).max(1.0);
    // The logistic loss has curvature at most 1/4.
    let curvature = if loss == Loss::Logistic { 0.25 } else { 1.0 };
    let lip = curvature * lipschitz_estimate(&ops, len, n)?;
    let mut eta = if lip > 0.0 && lip.is_finite() {
        1.0 / lip
    } else {
        1.0 / grad0
    };
    let mut t = 1.0f64;
    let mut history = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    for it in 1..=opt.max_iters {
        iterations = it;
        let fy = loss.value(&ay, &ds.y);
        loss.gradient(&ay, &ds.y, &mut dl);
        ops.masked_backward(&dl, &mut g).map_err(|e| e.to_string())?;
        // Backtracking: shrink η until the quadratic model upper-bounds f at the prox point.
        let mut fx;
        loop {
            for e in 0..len {
                xn[e] = y[e] - eta * g[e];
            }
            group_soft_threshold(&mut xn, ds.d, eta * opt.beta).map_err(|e| e.to_string())?;
            ops.masked_forward(&xn, &mut axn).map_err(|e| e.to_string())?;
            fx = loss.value(&axn, &ds.y);
            let mut lin = 0.0;
            let mut sq = 0.0;
            for e in 0..len {
                let dlt = xn[e] - y[e];
                lin += g[e] * dlt;
                sq += dlt * dlt;
            }
            if fx <= fy + lin + sq / (2.0 * eta) + 1e-12 * fy.abs() || eta < 1e-30 {
                break;
            }
            eta *= 0.5;
        }
        let new_obj = fx + opt.beta * group_norm_sum(&xn, ds.d);
        let gmap = xn
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt()
            / eta;
        // Restart when the objective went up or the step opposes the momentum direction.
        let against: f64 = (0..len).map(|e| (y[e] - xn[e]) * (xn[e] - x[e])).sum();
        let restart = new_obj > obj || against > 0.0;
        let t_next = if restart {
            1.0
        } else {
            0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt())
        };
        let momentum = if restart { 0.0 } else { (t - 1.0) / t_next };
        for e in 0..len {
            y[e] = xn[e] + momentum * (xn[e] - x[e]);
        }
        for e in 0..n {
            ay[e] = axn[e] + momentum * (axn[e] - ax[e]);
        }
        std::mem::swap(&mut x, &mut xn);
        std::mem::swap(&mut ax, &mut axn);
        t = t_next;
        obj = new_obj;
        eta *= 1.25;
        history.push((it, obj, gmap, 0.0));
        if opt.log_every > 0 && it % opt.log_every == 0 {
            eprintln!(
                "fista: iter {it:>6}  objective {obj:.10e}  grad-map {gmap:.3e}  step {eta:.3e}  {:.3}s",
                start.elapsed().as_secs_f64()
            );
        }
        if gmap <= opt.tol * grad0 {
            converged = true;
            break;
        }
        if let Some((p_star, rel)) = opt.stop_at {
            if (obj - p_star).abs() <= rel * p_star.abs() {
                converged = true;
                break;
            }
        }
    }
    ops.masked_forward(&x, &mut ax).map_err(|e| e.to_string())?;
    let objective = loss.value(&ax, &ds.y) + opt.beta * group_norm_sum(&x, ds.d);
    Ok(ConvexSolution {
        v: x,
        w: vec![0.0; len],
        objective,
        iterations,
        converged,
        seconds: start.elapsed().as_secs_f64(),
        history,
        cone_violation: 0.0,
        solver: "fista",
    })
}
