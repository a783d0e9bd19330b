//! The gated-ReLU relaxation through its dual: a log-barrier Newton method in n dimensions.
//!
//! # Why a second solver for the same program
//! `min_u ℓ(Au) + β Σ_i ‖u_i‖₂` with A = [D_1X, …, D_PX] has P·d unknowns but only n samples,
//! and the blocks of A share X, so A is badly conditioned and first-order methods ([`super::fista`])
//! need thousands of iterations to reach 1e-3 relative accuracy at small β (docs/convex-relu.md).
//! Its dual has only n unknowns, one per sample:
//!
//! ```text
//!   max_θ  −h(θ)   s.t.  ‖A_iᵀθ‖₂ = ‖Xᵀ D_i θ‖₂ ≤ β   (i = 1..P)
//!   squared loss  ½‖ŷ − y‖²:       h(θ) = ½‖θ‖² − θᵀy
//!   logistic loss Σ log(1+e^{−yŷ}): h(θ) = Σ_k p_k log p_k + (1 − p_k) log(1 − p_k),  p_k = y_k θ_k ∈ (0, 1)
//! ```
//!
//! (h is the conjugate ℓ*(−θ); strong duality holds because the primal is unconstrained and
//! finite). The barrier method (Boyd & Vandenberghe, *Convex Optimization*, §11.3) minimizes
//! `F_t(θ) = t·h(θ) − Σ_i log(β² − ‖A_iᵀθ‖²)` by Newton's method for a growing t. With
//! `G_i = A_iᵀθ` (d values) and `s_i = β² − ‖G_i‖²`:
//!
//! ```text
//!   u_i = 2 G_i / (t s_i)                                       (a primal point for every θ)
//!   ∇F_t = t (∇h(θ) + A u)
//!   ∇²F_t = t ∇²h + Σ_i (2/s_i) A_i A_iᵀ + Σ_i (4/s_i²) q_i q_iᵀ,   q_i = A_i G_i
//!         = t ∇²h + (X Xᵀ) ∘ (Mᵀ diag(2/s) M) + Q diag(2/s)² Qᵀ
//! ```
//!
//! where M is the P × n 0/1 pattern matrix (A_i A_iᵀ = D_i XXᵀ D_i) and Q = [q_1 … q_P] =
//! (X Gᵀ) ∘ Mᵀ. So one Newton step is two pattern products (G, and A u), two n × P × n GEMMs,
//! an n × n Cholesky factorization and one more product (A_iᵀΔ, which makes every line-search
//! trial O(P·d)): the cost does not depend on how badly A is conditioned.
//!
//! # The certificate
//! Every θ the method visits is strictly feasible (the line search keeps every s_i > 0; θ = 0,
//! or θ = c·y for logistic, starts it), so −h(θ) is a lower bound on the optimum; every u_i is
//! a primal point, so the primal objective f(u) is an upper bound. The run stops when
//! `f(u) + h(θ) ≤ tol · max(|f(u)|, 1e-300)`: the returned u is then within that relative
//! accuracy of the optimum, proven by the gap, not estimated. At the centre of F_t the gap is
//! `Σ_i 2‖G_i‖/(t(β + ‖G_i‖)) ≤ P/t`, so once Newton's decrement says the centre is reached, t
//! becomes `mu·max(t, P/gap)`: the next centre's gap is at most gap/mu.
//!
//! Rounding sets a floor: s_i = β² − ‖G_i‖² cancels as t grows (s_i ~ 1/t for the active
//! groups), so u loses digits around t ~ 1e10 and a centring can stall; a centring of more
//! than 40 steps, or a line search that cannot decrease F_t, ends the run with the best primal
//! point and its gap (`converged` false if the gap is above `tol`). The default tol 1e-7 is
//! above that floor on every problem tried.
//!
//! At the end, groups whose dual constraint is clearly slack (s_i > 1e-3·β²: zero at the
//! optimum by the KKT conditions) are set exactly to 0 when that does not raise the objective by
//! more than 1e-3·tol of itself, so the solution has R-FISTA's sparsity pattern.
//!
//! # Where it runs
//! The pattern products go through [`Products`] (on `Device::Cuda(i)` they run on the GPU);
//! the Hessian assembly (GEMMs with `kernels::matmul::gemm`, f64) and the n × n Cholesky run on
//! the host. Squared and logistic loss.

use std::time::Instant;

use kernels::cvx::{cholesky, cholesky_solve, CvxShape};
use kernels::matmul::{gemm, MatRef};

use super::device::{Device, Products};
use super::{check_problem, group_norm_sum, ConvexSolution, Dataset, Loss, Patterns};

#[derive(Clone, Debug)]
pub struct BarrierOptions {
    pub loss: Loss,
    pub beta: f64,
    /// Newton steps in all.
    pub max_iters: usize,
    /// Relative duality gap at which to stop (a proven bound on the relative error).
    pub tol: f64,
    /// Factor by which t grows once a centre is reached.
    pub mu: f64,
    /// Newton decrement λ² = ∇Fᵀ(∇²F)⁻¹∇F below which θ counts as the centre of F_t.
    pub centring: f64,
    /// Any value > 0: one progress line per centre (there are tens, not thousands).
    pub log_every: usize,
    /// As in [`super::AdmmOptions::stop_at`]: stop once the primal objective is within `rel` of `p_star`.
    pub stop_at: Option<(f64, f64)>,
    pub device: Device,
}

impl Default for BarrierOptions {
    fn default() -> Self {
        BarrierOptions {
            loss: Loss::Squared,
            beta: 1e-2,
            max_iters: 500,
            tol: 1e-7,
            mu: 20.0,
            centring: 1e-6,
            log_every: 0,
            stop_at: None,
            device: Device::Cpu,
        }
    }
}

/// The dual function h (to be minimized) of a loss, with its gradient and diagonal Hessian.
struct DualLoss<'a> {
    loss: Loss,
    y: &'a [f64],
}

impl DualLoss<'_> {
    /// h(θ), or None outside its domain (logistic: every y_k θ_k in (0, 1)).
    fn value(&self, theta: &[f64]) -> Option<f64> {
        match self.loss {
            Loss::Squared => Some(theta.iter().zip(self.y).map(|(t, y)| 0.5 * t * t - t * y).sum()),
            Loss::Logistic => {
                let mut h = 0.0;
                for (t, y) in theta.iter().zip(self.y) {
                    let p = t * y;
                    if !(p > 0.0 && p < 1.0) {
                        return None;
                    }
                    h += p * p.ln() + (1.0 - p) * (1.0 - p).ln();
                }
                Some(h)
            }
        }
    }

    /// ∇h into `grad`, the diagonal of ∇²h into `hess`.
    fn derivatives(&self, theta: &[f64], grad: &mut [f64], hess: &mut [f64]) {
        for k in 0..theta.len() {
            let (t, y) = (theta[k], self.y[k]);
            match self.loss {
                Loss::Squared => {
                    grad[k] = t - y;
                    hess[k] = 1.0;
                }
                Loss::Logistic => {
                    // y² = 1, so d/dθ = y·d/dp and d²/dθ² = d²/dp².
                    let p = t * y;
                    grad[k] = y * (p / (1.0 - p)).ln();
                    hess[k] = 1.0 / (p * (1.0 - p));
                }
            }
        }
    }

    /// A strictly feasible start: 0 for the squared loss; for logistic c·y with p = c in (0, 1),
    /// small enough that every ‖A_iᵀθ‖ < β (`g_y` holds A_iᵀy).
    fn start(&self, g_y: &[f64], d: usize, beta: f64) -> Vec<f64> {
        match self.loss {
            Loss::Squared => vec![0.0; self.y.len()],
            Loss::Logistic => {
                let worst = g_y.chunks(d).map(super::norm2).fold(0.0f64, f64::max);
                let c = if worst > 0.0 {
                    (0.5 * beta / worst).min(0.5)
                } else {
                    0.5
                };
                self.y.iter().map(|y| c * y).collect()
            }
        }
    }
}

/// `F_t(θ) = t h(θ) − Σ log s_i` at θ whose A_iᵀθ is `g`; None when infeasible.
fn barrier_value(dual: &DualLoss, t: f64, theta: &[f64], g: &[f64], d: usize, beta: f64) -> Option<f64> {
    let h = dual.value(theta)?;
    let mut logs = 0.0;
    for gi in g.chunks(d) {
        let s = beta * beta - gi.iter().map(|v| v * v).sum::<f64>();
        if s <= 0.0 {
            return None;
        }
        logs += s.ln();
    }
    Some(t * h - logs)
}

pub fn solve_gated_barrier(
    ds: &Dataset,
    pats: &Patterns,
    opt: &BarrierOptions,
) -> Result<ConvexSolution, String> {
    check_problem(ds, pats, opt.beta)?;
    opt.loss.check_targets(&ds.y)?;
    if !(opt.mu > 1.0 && opt.tol > 0.0) {
        return Err(format!(
            "barrier: mu must exceed 1 and tol be positive, got mu {} tol {}",
            opt.mu, opt.tol
        ));
    }
    let start = Instant::now();
    let (n, d, p) = (ds.n, ds.d, pats.p);
    let beta = opt.beta;
    let ops = Products::new(&ds.x, &pats.mask, CvxShape { n, d, p }, opt.device)?;
    let gemm_err = |e: kernels::matmul::GemmError| format!("barrier: {e}");
    // X Xᵀ (n × n) and the patterns as f64 (P × n), once.
    let xm = MatRef::row_major(&ds.x, n, d);
    let mut kxx = vec![0.0; n * n];
    gemm(xm, xm.t(), &mut kxx, false).map_err(gemm_err)?;
    let mask: Vec<f64> = pats.mask.iter().map(|&b| b as f64).collect();
    let dual = DualLoss {
        loss: opt.loss,
        y: &ds.y,
    };

    let mut g = vec![0.0; p * d]; // A_iᵀθ
    ops.masked_backward(&ds.y, &mut g)?;
    let mut theta = dual.start(&g, d, beta);
    let (mut u, mut au) = (vec![0.0; p * d], vec![0.0; n]);
    let (mut grad, mut hdiag) = (vec![0.0; n], vec![0.0; n]);
    let (mut w2, mut scaled_mask) = (vec![0.0; p], vec![0.0; p * n]);
    let (mut xg, mut hess, mut mm) = (vec![0.0; n * p], vec![0.0; n * n], vec![0.0; n * n]);
    let (mut step, mut g_step, mut g_try, mut theta_try) =
        (vec![0.0; n], vec![0.0; p * d], vec![0.0; p * d], vec![0.0; n]);

    // t so that the gap at the first centre, P/t, is about the loss at u = 0.
    let f0 = opt.loss.value(&au, &ds.y);
    let mut t = p as f64 / f0.max(1e-300);
    let mut best_u = u.clone();
    let mut best_f = f64::INFINITY;
    let mut history = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    let mut steps_at_t = 0;
    let (mut centred, mut stalled) = (false, false);
    for it in 1..=opt.max_iters {
        iterations = it;
        // A_iᵀθ afresh (the line search updates it linearly, which would drift by rounding),
        // the weights 2/s_i and the primal point u_i = (2/s_i) G_i / t of this θ.
        ops.masked_backward(&theta, &mut g)?;
        for (i, gi) in g.chunks(d).enumerate() {
            w2[i] = 2.0 / (beta * beta - gi.iter().map(|v| v * v).sum::<f64>());
            for (uj, gj) in u[i * d..(i + 1) * d].iter_mut().zip(gi) {
                *uj = w2[i] * gj / t;
            }
        }
        ops.masked_forward(&u, &mut au)?;
        let f = opt.loss.value(&au, &ds.y) + beta * group_norm_sum(&u, d);
        let h = dual
            .value(&theta)
            .ok_or("barrier: the iterate left the dual domain")?;
        if f < best_f {
            best_f = f;
            best_u.copy_from_slice(&u);
        }
        // Any primal value bounds the optimum from above, any feasible dual value from below.
        // (At large t the newest u can be worse than an earlier one: s_i cancels in rounding.)
        let gap = best_f + h;
        history.push((it, f, gap, t));
        if opt.log_every > 0 {
            eprintln!(
                "barrier: step {it:>4}  primal {f:.10e}  gap {gap:.3e}  t {t:.3e}  {:.3}s",
                start.elapsed().as_secs_f64()
            );
        }
        if gap <= opt.tol * best_f.abs().max(1e-300) {
            converged = true;
            break;
        }
        if let Some((p_star, rel)) = opt.stop_at {
            if (best_f - p_star).abs() <= rel * p_star.abs() {
                converged = true;
                break;
            }
        }
        if stalled {
            // Newton cannot decrease F_t any more: rounding, not the method, limits the gap.
            break;
        }
        // θ is the centre of F_t (the last Newton step was already tiny): tighten the barrier.
        // The gap at the next centre is at most P/t (module docs): aim it at gap/μ. Early on the
        // gap is far below P/t, and this skips the centres that would not improve it.
        let t_of_u = t;
        if centred {
            t = opt.mu * t.max(p as f64 / gap.max(1e-300));
            steps_at_t = 0;
        }

        // Newton step on F_t: gradient t ∇h + A(diag(2/s) G) = t ∇h + t_of_u · Au, Hessian as
        // in the module docs (only its ∇²h term depends on t).
        dual.derivatives(&theta, &mut grad, &mut hdiag);
        for k in 0..n {
            grad[k] = t * grad[k] + t_of_u * au[k];
        }
        for i in 0..p {
            for k in 0..n {
                scaled_mask[i * n + k] = w2[i] * mask[i * n + k];
            }
        }
        let mrows = MatRef::row_major(&mask, p, n);
        gemm(mrows.t(), MatRef::row_major(&scaled_mask, p, n), &mut mm, false).map_err(gemm_err)?;
        for e in 0..n * n {
            hess[e] = kxx[e] * mm[e];
        }
        // Q diag(2/s) = ((X Gᵀ) ∘ Mᵀ) diag(2/s): column i is (2/s_i) m_i ∘ (X G_i).
        gemm(xm, MatRef::row_major(&g, p, d).t(), &mut xg, false).map_err(gemm_err)?;
        for k in 0..n {
            for i in 0..p {
                xg[k * p + i] *= w2[i] * mask[i * n + k];
            }
        }
        let q = MatRef::row_major(&xg, n, p);
        gemm(q, q.t(), &mut hess, true).map_err(gemm_err)?;
        for k in 0..n {
            hess[k * n + k] += t * hdiag[k];
        }
        cholesky(&mut hess, n).map_err(|e| format!("barrier: Newton system at t = {t:.3e}: {e}"))?;
        for k in 0..n {
            step[k] = -grad[k];
        }
        cholesky_solve(&hess, n, &mut step);
        let slope: f64 = grad.iter().zip(&step).map(|(a, b)| a * b).sum();
        let decrement = -slope;

        // Backtracking line search on F_t, staying strictly feasible.
        ops.masked_backward(&step, &mut g_step)?;
        let f_now = barrier_value(&dual, t, &theta, &g, d, beta).ok_or("barrier: infeasible iterate")?;
        let mut alpha = 1.0;
        let mut moved = false;
        for _ in 0..60 {
            for k in 0..n {
                theta_try[k] = theta[k] + alpha * step[k];
            }
            for e in 0..p * d {
                g_try[e] = g[e] + alpha * g_step[e];
            }
            if let Some(f_try) = barrier_value(&dual, t, &theta_try, &g_try, d, beta) {
                if f_try <= f_now + 0.25 * alpha * slope {
                    moved = true;
                    break;
                }
            }
            alpha *= 0.5;
        }
        if moved {
            std::mem::swap(&mut theta, &mut theta_try);
            std::mem::swap(&mut g, &mut g_try);
        }
        steps_at_t += 1;
        centred = decrement < opt.centring;
        // A centring that needs more than 40 steps is fighting rounding (s_i = β² − ‖G_i‖²
        // cancels as t grows), not the barrier: evaluate where it is and stop.
        stalled = !moved || steps_at_t > 40;
    }
    // An interior point has no exact zeros: every inactive group keeps a u_i of order
    // 1/(t·s_i). At the optimum u_i ≠ 0 needs ‖A_iᵀθ*‖ = β, so groups whose dual constraint is
    // clearly slack at the final θ (s_i > 1e-3·β²) are set to 0, the sparsity pattern R-FISTA's
    // prox gives, and kept only if the objective does not rise above 1e-3·tol of itself.
    ops.masked_backward(&theta, &mut g)?;
    let mut sparse = best_u.clone();
    for (i, gi) in g.chunks(d).enumerate() {
        if beta * beta - gi.iter().map(|v| v * v).sum::<f64>() > 1e-3 * beta * beta {
            sparse[i * d..(i + 1) * d].fill(0.0);
        }
    }
    ops.masked_forward(&sparse, &mut au)?;
    let f_sparse = opt.loss.value(&au, &ds.y) + beta * group_norm_sum(&sparse, d);
    if f_sparse <= best_f + 1e-3 * opt.tol * best_f.abs() {
        best_f = f_sparse;
        best_u = sparse;
    }
    Ok(ConvexSolution {
        v: best_u,
        w: vec![0.0; p * d],
        objective: best_f,
        iterations,
        converged,
        seconds: start.elapsed().as_secs_f64(),
        history,
        cone_violation: 0.0,
        solver: "barrier",
    })
}
