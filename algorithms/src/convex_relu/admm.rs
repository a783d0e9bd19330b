//! The exact convex ReLU program by ADMM ([161] §3).
//!
//! Splitting (scaled form, penalty ρ): the primal block is u = (u_1..u_P, z_1..z_P); the second
//! block is v = (v_1..v_P, w_1..w_P) with u = v, and the slacks s_i = (2D_i − I)X u_i with
//! s ≥ 0 (and likewise t_i for the z_i). The loss sits on u for the squared loss; for the
//! logistic loss, which has no closed-form u-step, a third copy ŷ = F u (F u = Σ_i D_i X (u_i − z_i))
//! joins the second block, whose update is then a per-sample scalar prox (Newton). So one
//! iteration is
//!
//! ```text
//!   u ← argmin ℓ(Fu) + ρ/2‖u − v + λ‖² + ρ/2‖Gu − s + ν‖²      (the factored linear system)
//!   v ← group soft-threshold(u + λ, β/ρ);   s ← max(0, Gu + ν)  (prox and slack projection)
//!   λ ← λ + u − v;   ν ← ν + Gu − s                              (dual updates)
//! ```
//!
//! with the primal residual ‖(u − v, Gu − s)‖, the dual residual ρ‖Δv + GᵀΔs‖, and Boyd et al.'s
//! stopping rule (§3.3.1 of their ADMM monograph): both below √dim·ε_abs + ε_rel·scale. The
//! paper's dual step size γ_a is 1 here (the standard scaled ADMM).
//!
//! ρ: the system depends on ρ (for the squared loss), so it is factored once per ρ. With
//! `adaptive_rho`, residual balancing (×/÷2 when one residual is 10× the other) runs during the
//! first `adapt_until` iterations only, so the final phase has a fixed ρ and shows the linear rate.

use std::time::Instant;

use kernels::cvx::{
    admm_group_step, admm_slack_step, masked_backward, masked_forward, sign_backward, CvxShape,
};

use super::linsys::SplitSystem;
use super::{
    check_problem, cone_violation, convex_objective, norm2, sigmoid, ConvexSolution, Dataset, Loss, Patterns,
};

#[derive(Clone, Debug)]
pub struct AdmmOptions {
    pub loss: Loss,
    pub beta: f64,
    pub rho: f64,
    pub max_iters: usize,
    pub eps_abs: f64,
    pub eps_rel: f64,
    pub adaptive_rho: bool,
    pub adapt_until: usize,
    /// Print a progress line to stderr every this many iterations (0: never).
    pub log_every: usize,
    /// Stop as soon as the objective is within `rel` of `p_star` and the cone violation is at
    /// most `rel` times the largest |x_kᵀv_i| (the benchmark's time-to-accuracy rule).
    pub stop_at: Option<(f64, f64)>,
}

impl Default for AdmmOptions {
    fn default() -> Self {
        AdmmOptions {
            loss: Loss::Squared,
            beta: 1e-2,
            rho: 0.1,
            max_iters: 20_000,
            eps_abs: 1e-8,
            eps_rel: 1e-6,
            adaptive_rho: false,
            adapt_until: 1000,
            log_every: 0,
            stop_at: None,
        }
    }
}

/// Solves the exact convex program on the given patterns. Errors on mismatched inputs or labels.
pub fn solve_admm(ds: &Dataset, pats: &Patterns, opt: &AdmmOptions) -> Result<ConvexSolution, String> {
    check_problem(ds, pats, opt.beta)?;
    opt.loss.check_targets(&ds.y)?;
    let start = Instant::now();
    let (n, d, p) = (ds.n, ds.d, pats.p);
    let shape = CvxShape { n, d, p };
    let shape2 = CvxShape { n, d, p: 2 * p };
    let mask2: Vec<u8> = pats.mask.iter().chain(&pats.mask).copied().collect();
    let logistic = opt.loss == Loss::Logistic;
    let mut rho = opt.rho;
    // Squared: (FᵀF + ρ(I + GᵀG)); logistic (everything divided by ρ): (FᵀF + I + GᵀG).
    let kappa = |rho: f64| if logistic { 1.0 } else { rho };
    let mut system = SplitSystem::new(ds, pats, 1.0, kappa(rho))?;

    let g2 = 2 * p * d; // weights
    let s2 = 2 * p * n; // slacks
    let (mut u, mut v, mut lam) = (vec![0.0; g2], vec![0.0; g2], vec![0.0; g2]);
    let (mut dv, mut rv) = (vec![0.0; g2], vec![0.0; g2]);
    let (mut s, mut nu, mut ds_, mut rs) = (vec![0.0; s2], vec![0.0; s2], vec![0.0; s2], vec![0.0; s2]);
    // Logistic only: ŷ copy r, its scaled dual θ, and their residual buffers.
    let (mut r, mut theta) = (vec![0.0; n], vec![0.0; n]);
    let mut fu = vec![0.0; n];
    let mut target = ds.y.clone();
    let (mut tmp_pd, mut rhs_g) = (vec![0.0; p * d], vec![0.0; g2]);
    let mut diff = vec![0.0; p * d];
    let mut history = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    let mut rho_changes = 0;
    let sqrt_m = ((g2 + s2 + if logistic { n } else { 0 }) as f64).sqrt();
    let sqrt_nv = (g2 as f64).sqrt();

    for it in 1..=opt.max_iters {
        iterations = it;
        // ---- u-step: rhs = Fᵀt + κ[(v − λ) + Gᵀ(s − ν)], t = y (squared) or r − θ (logistic).
        let k = kappa(rho);
        if logistic {
            for e in 0..n {
                target[e] = r[e] - theta[e];
            }
        }
        masked_backward(&ds.x, &pats.mask, &target, shape, &mut tmp_pd).map_err(|e| e.to_string())?;
        let sm: Vec<f64> = s.iter().zip(&nu).map(|(a, b)| a - b).collect();
        sign_backward(&ds.x, &mask2, &sm, shape2, &mut rhs_g).map_err(|e| e.to_string())?;
        let (mut bu, mut bz) = (vec![0.0; p * d], vec![0.0; p * d]);
        for e in 0..p * d {
            bu[e] = tmp_pd[e] + k * (v[e] - lam[e] + rhs_g[e]);
            bz[e] = -tmp_pd[e] + k * (v[p * d + e] - lam[p * d + e] + rhs_g[p * d + e]);
        }
        system.solve(ds, pats, &mut bu, &mut bz);
        u[..p * d].copy_from_slice(&bu);
        u[p * d..].copy_from_slice(&bz);

        // ---- second block and duals (fused kernels).
        admm_slack_step(&ds.x, &mask2, &u, shape2, &mut s, &mut nu, &mut ds_, &mut rs)
            .map_err(|e| e.to_string())?;
        admm_group_step(&u, &mut lam, &mut v, &mut dv, &mut rv, d, opt.beta / rho)
            .map_err(|e| e.to_string())?;
        let (mut pri2, mut dr) = (rv.iter().chain(&rs).map(|e| e * e).sum::<f64>(), vec![0.0; n]);
        if logistic {
            for e in 0..p * d {
                diff[e] = u[e] - u[p * d + e];
            }
            masked_forward(&ds.x, &pats.mask, &diff, shape, &mut fu).map_err(|e| e.to_string())?;
            for e in 0..n {
                let a = fu[e] + theta[e];
                let rn = logistic_prox(a, ds.y[e], rho);
                dr[e] = rn - r[e];
                r[e] = rn;
                theta[e] = a - rn;
                pri2 += (fu[e] - rn) * (fu[e] - rn);
            }
        }
        // ---- residuals: dual = ρ‖Δv + GᵀΔs + FᵀΔr‖, scale terms for the stopping rule.
        let mut dual_vec = vec![0.0; g2];
        sign_backward(&ds.x, &mask2, &ds_, shape2, &mut dual_vec).map_err(|e| e.to_string())?;
        let mut dual_scale_vec = vec![0.0; g2];
        sign_backward(&ds.x, &mask2, &nu, shape2, &mut dual_scale_vec).map_err(|e| e.to_string())?;
        if logistic {
            masked_backward(&ds.x, &pats.mask, &dr, shape, &mut tmp_pd).map_err(|e| e.to_string())?;
            let mut th = vec![0.0; p * d];
            masked_backward(&ds.x, &pats.mask, &theta, shape, &mut th).map_err(|e| e.to_string())?;
            for e in 0..p * d {
                dual_vec[e] += tmp_pd[e];
                dual_vec[p * d + e] -= tmp_pd[e];
                dual_scale_vec[e] += th[e];
                dual_scale_vec[p * d + e] -= th[e];
            }
        }
        for e in 0..g2 {
            dual_vec[e] += dv[e];
            dual_scale_vec[e] += lam[e];
        }
        let primal = pri2.sqrt();
        let dual = rho * norm2(&dual_vec);
        let gu2: f64 = rs.iter().zip(&s).map(|(a, b)| (a + b) * (a + b)).sum();
        let ax = (norm2(&u).powi(2) + gu2 + if logistic { norm2(&fu).powi(2) } else { 0.0 }).sqrt();
        let bz_ =
            (norm2(&v).powi(2) + norm2(&s).powi(2) + if logistic { norm2(&r).powi(2) } else { 0.0 }).sqrt();
        let eps_pri = sqrt_m * opt.eps_abs + opt.eps_rel * ax.max(bz_);
        let eps_dual = sqrt_nv * opt.eps_abs + opt.eps_rel * rho * norm2(&dual_scale_vec);

        let want_obj = opt.stop_at.is_some() || (opt.log_every > 0 && it % opt.log_every == 0);
        let obj = if want_obj {
            objective(ds, pats, opt, &v)
        } else {
            f64::NAN
        };
        history.push((it, obj, primal, dual));
        if opt.log_every > 0 && it % opt.log_every == 0 {
            eprintln!(
                "admm: iter {it:>6}  objective {obj:.10e}  primal {primal:.3e}  dual {dual:.3e}  rho {rho:.3e}  {:.3}s",
                start.elapsed().as_secs_f64()
            );
        }
        if primal <= eps_pri && dual <= eps_dual {
            converged = true;
            break;
        }
        if let Some((p_star, rel)) = opt.stop_at {
            if (obj - p_star).abs() <= rel * p_star.abs() && violation_ok(ds, pats, &v, rel) {
                converged = true;
                break;
            }
        }
        // ---- residual balancing, early iterations only.
        if opt.adaptive_rho && it <= opt.adapt_until && it % 10 == 0 && rho_changes < 20 {
            let factor = if primal > 10.0 * dual {
                2.0
            } else if dual > 10.0 * primal {
                0.5
            } else {
                1.0
            };
            if factor != 1.0 {
                rho *= factor;
                rho_changes += 1;
                // Scaled duals are y/ρ: keep the unscaled duals fixed.
                lam.iter_mut()
                    .chain(nu.iter_mut())
                    .chain(theta.iter_mut())
                    .for_each(|e| *e /= factor);
                if !logistic {
                    system = SplitSystem::new(ds, pats, 1.0, kappa(rho))?;
                }
            }
        }
    }
    let (vv, ww) = v.split_at(p * d);
    Ok(ConvexSolution {
        objective: objective(ds, pats, opt, &v),
        cone_violation: cone_violation(ds, pats, vv, ww),
        v: vv.to_vec(),
        w: ww.to_vec(),
        iterations,
        converged,
        seconds: start.elapsed().as_secs_f64(),
        history,
        solver: "admm",
    })
}

fn objective(ds: &Dataset, pats: &Patterns, opt: &AdmmOptions, v: &[f64]) -> f64 {
    let (vv, ww) = v.split_at(v.len() / 2);
    convex_objective(ds, pats, opt.loss, opt.beta, vv, ww)
}

fn violation_ok(ds: &Dataset, pats: &Patterns, v: &[f64], rel: f64) -> bool {
    let (vv, ww) = v.split_at(v.len() / 2);
    let scale = super::convex_predict(ds, pats, vv, ww)
        .iter()
        .fold(1e-12f64, |m, e| m.max(e.abs()));
    cone_violation(ds, pats, vv, ww) <= rel * scale
}

/// `argmin_r log(1 + e^{−y r}) + ρ/2 (r − a)²`: the root of the increasing function
/// `φ(r) = −y σ(−y r) + ρ (r − a)`, which lies in [a − 1/ρ, a + 1/ρ] since |σ| < 1. Newton's
/// method from r = a, safeguarded by bisection on that bracket (plain Newton can cycle when ρ is
/// small and |a| large, where σ is nearly flat).
fn logistic_prox(a: f64, y: f64, rho: f64) -> f64 {
    let phi = |r: f64| -y * sigmoid(-y * r) + rho * (r - a);
    let (mut lo, mut hi) = (a - 1.0 / rho, a + 1.0 / rho);
    let mut r = a;
    for _ in 0..200 {
        let g = phi(r);
        if g == 0.0 {
            break;
        }
        if g > 0.0 {
            hi = r;
        } else {
            lo = r;
        }
        let sg = sigmoid(-y * r);
        let newton = r - g / (sg * (1.0 - sg) + rho);
        let next = if newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - r).abs() <= 1e-15 * (1.0 + r.abs()) || hi - lo <= 1e-15 * (1.0 + r.abs()) {
            r = next;
            break;
        }
        r = next;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_prox_solves_its_optimality_condition() {
        for (a, y, rho) in [(0.3, 1.0, 0.1), (-5.0, 1.0, 2.0), (40.0, -1.0, 0.01)] {
            let r = logistic_prox(a, y, rho);
            let g = -y * sigmoid(-y * r) + rho * (r - a);
            assert!(g.abs() < 1e-12, "a={a}: residual {g}");
        }
    }
}
