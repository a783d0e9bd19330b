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
//! * the prox: group soft-threshold `kernels::cvx::group_soft_threshold`.
//!
//! It stops when the gradient mapping ‖(y − x⁺)/η‖ (zero exactly at a minimizer) falls below
//! `tol·max(1, ‖∇ℓ‖ at 0)`.

use std::time::Instant;

use kernels::cvx::{group_soft_threshold, masked_backward, masked_forward, CvxShape};

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
        }
    }
}

struct Smooth<'a> {
    ds: &'a Dataset,
    pats: &'a Patterns,
    loss: Loss,
    shape: CvxShape,
    yhat: Vec<f64>,
    dl: Vec<f64>,
}

impl Smooth<'_> {
    fn value(&mut self, u: &[f64]) -> f64 {
        masked_forward(&self.ds.x, &self.pats.mask, u, self.shape, &mut self.yhat).expect("shapes");
        self.loss.value(&self.yhat, &self.ds.y)
    }
    /// Value and gradient `Aᵀ ℓ'(A u)`.
    fn value_grad(&mut self, u: &[f64], grad: &mut [f64]) -> f64 {
        let f = self.value(u);
        self.loss.gradient(&self.yhat, &self.ds.y, &mut self.dl);
        masked_backward(&self.ds.x, &self.pats.mask, &self.dl, self.shape, grad).expect("shapes");
        f
    }
}

pub fn solve_fista(ds: &Dataset, pats: &Patterns, opt: &FistaOptions) -> Result<ConvexSolution, String> {
    check_problem(ds, pats, opt.beta)?;
    opt.loss.check_targets(&ds.y)?;
    let start = Instant::now();
    let shape = CvxShape {
        n: ds.n,
        d: ds.d,
        p: pats.p,
    };
    let len = pats.p * ds.d;
    let mut f = Smooth {
        ds,
        pats,
        loss: opt.loss,
        shape,
        yhat: vec![0.0; ds.n],
        dl: vec![0.0; ds.n],
    };
    let (mut x, mut y, mut xn, mut g) = (vec![0.0; len], vec![0.0; len], vec![0.0; len], vec![0.0; len]);
    let mut obj = f.value_grad(&x, &mut g);
    let grad0 = norm2(&g).max(1.0);
    // A first step of 1/‖∇f(0)‖·‖0‖-free guess; the line search corrects it either way.
    let mut eta = 1.0 / grad0;
    let mut t = 1.0f64;
    let mut history = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    for it in 1..=opt.max_iters {
        iterations = it;
        let fy = f.value_grad(&y, &mut g);
        // Backtracking: shrink η until the quadratic model upper-bounds f at the prox point.
        let mut fx;
        loop {
            for e in 0..len {
                xn[e] = y[e] - eta * g[e];
            }
            group_soft_threshold(&mut xn, ds.d, eta * opt.beta).map_err(|e| e.to_string())?;
            fx = f.value(&xn);
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
        std::mem::swap(&mut x, &mut xn);
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
    let objective = f.value(&x) + opt.beta * group_norm_sum(&x, ds.d);
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
