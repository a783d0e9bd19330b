//! Checks of the CPU reference steps: textbook formulas, the exact identities the papers
//! state (Lion's box, UPGD's reduction to SGDW), bf16 rounding, and thread-count independence.

use super::config::*;
use super::cpu::{self, RngOffsets};
use super::elem::Bf16;
use crate::random::philox::uniform_f32;

/// Uniform values in `[-scale, scale)` from the crate's Philox stream (no rand dependency).
fn stream(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (2.0 * uniform_f32(seed, 0, i as u64) - 1.0) * scale)
        .collect()
}

fn no_rng() -> RngOffsets {
    RngOffsets::default()
}

#[test]
fn adamw_library_mode_matches_the_textbook_in_f64() {
    let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.1);
    let g_seq = [0.3, -1.2, 0.05, 2.0, -0.7];
    let mut p = [1.5f64];
    let (mut m, mut v) = ([0.0f64], [0.0f64]);
    // Textbook (Loshchilov and Hutter, PyTorch's library form): m̂ = m/(1-β1ᵗ), v̂ = v/(1-β2ᵗ),
    // θ ← θ − lr·λ·θ − lr·m̂/(√v̂ + ε).
    let (mut theta, mut tm, mut tv) = (1.5f64, 0.0f64, 0.0f64);
    for (t, &g) in g_seq.iter().enumerate() {
        let t = t as u64 + 1;
        let cfg = AdamWConfig::<f64>::new(lr, b1, b2, eps, t, true, lr * wd, 0.0);
        cpu::adamw(&cfg, &mut p, &[g], &mut m, &mut v, no_rng());
        tm = b1 * tm + (1.0 - b1) * g;
        tv = b2 * tv + (1.0 - b2) * g * g;
        let (mh, vh) = (tm / (1.0 - b1.powi(t as i32)), tv / (1.0 - b2.powi(t as i32)));
        theta = theta - lr * wd * theta - lr * mh / (vh.sqrt() + eps);
        assert!((p[0] - theta).abs() < 1e-14, "step {t}: {} vs {theta}", p[0]);
    }
}

#[test]
fn coupled_l2_is_adam_on_the_regularized_gradient() {
    let n = 257;
    let p0 = stream(1, n, 2.0);
    let g = stream(2, n, 1.0);
    let lambda = 0.05f32;
    let mut a = p0.clone();
    let (mut ma, mut va) = (vec![0.0; n], vec![0.0; n]);
    let coupled = AdamWConfig::<f32>::new(1e-2, 0.9, 0.99, 1e-8, 1, true, 0.0, lambda as f64);
    cpu::adamw(&coupled, &mut a, &g, &mut ma, &mut va, no_rng());
    let mut b = p0.clone();
    let (mut mb, mut vb) = (vec![0.0; n], vec![0.0; n]);
    let g_reg: Vec<f32> = g.iter().zip(&p0).map(|(&g, &p)| g + lambda * p).collect();
    let plain = AdamWConfig::<f32>::new(1e-2, 0.9, 0.99, 1e-8, 1, true, 0.0, 0.0);
    cpu::adamw(&plain, &mut b, &g_reg, &mut mb, &mut vb, no_rng());
    assert_eq!(a, b);
    assert_eq!(ma, mb);
}

/// Lion's exact consequence (Chen et al. 2023, METHODS [157]): per coordinate
/// `|x_t| <= (1 - ηλ)|x_{t-1}| + η` because `|∇κ| <= 1`, so with `ηλ <= 1` the box
/// `‖x‖∞ <= 1/λ` is forward-invariant and the excess outside it contracts by `1 - ηλ`.
/// Checked over random gradient streams (scales from 1e-6 to 1e3, exact zeros included), for
/// every κ, in f32 with a rounding slack of a few ulps.
#[test]
fn lion_box_is_invariant_and_outside_contracts_for_every_kappa() {
    let eps = f32::EPSILON as f64;
    for case in 0..60u64 {
        let u = |k: u64| uniform_f32(case, 1000, k) as f64;
        let lambda = 0.1 + 3.0 * u(0);
        let lr = (0.02 + 0.98 * u(1)) / lambda; // ηλ in (0.02, 1]
        let (b1, b2) = (0.99 * u(2), 0.99 * u(3));
        let kappa = match case % 3 {
            0 => Kappa::L1,
            1 => Kappa::L2,
            _ => Kappa::Huber { delta: 0.01 + u(4) },
        };
        let n = 48;
        let bound = 1.0 / lambda;
        // Half the coordinates start inside the box, half up to 10/λ outside it.
        let mut x: Vec<f32> = stream(case + 7, n, 1.0)
            .iter()
            .enumerate()
            .map(|(i, &r)| (r as f64 * bound * if i % 2 == 0 { 1.0 } else { 10.0 }) as f32)
            .collect();
        let mut m = vec![0.0f32; n];
        for t in 0..40u64 {
            let scale = [1e-6, 1.0, 1e3][((case + t) % 3) as usize];
            let mut g = stream(case * 1000 + t, n, scale);
            g[(t as usize) % n] = 0.0;
            let cfg = LionConfig::<f32>::new(lr, b1, b2, lr * lambda, kappa);
            let sumsq = cpu::lion_sumsq(&cfg, &g, &m);
            let inv_norm = if sumsq > 0.0 {
                (1.0 / sumsq.sqrt()) as f32
            } else {
                0.0
            };
            let before = x.clone();
            cpu::lion(&cfg, &mut x, &g, &mut m, inv_norm, no_rng());
            let keep = 1.0 - lr * lambda;
            for (i, (&a, &b)) in before.iter().zip(&x).enumerate() {
                let (a, b) = (a.abs() as f64, b.abs() as f64);
                let step_bound = keep * a + lr;
                assert!(
                    b <= step_bound * (1.0 + 4.0 * eps) + 1e-30,
                    "case {case} step {t} coord {i}: |x| {a} -> {b} > {step_bound}"
                );
                if a <= bound {
                    assert!(
                        b <= bound * (1.0 + 4.0 * eps),
                        "left the box: {a} -> {b}, 1/λ = {bound}"
                    );
                } else {
                    let excess = (b - bound).max(0.0);
                    assert!(
                        excess <= keep * (a - bound) + 4.0 * eps * a,
                        "no contraction: {a} -> {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn signum_and_sign_sgd_are_lion_special_cases() {
    let n = 100;
    let g = stream(3, n, 1.0);
    // signSGD: no buffer, the step is -lr·sign(g).
    let mut p = vec![0.5f32; n];
    let cfg = LionConfig::<f32>::new(0.25, 0.0, 0.0, 0.0, Kappa::L1);
    cpu::lion(&cfg, &mut p, &g, &mut [], 0.0, no_rng());
    for (p, g) in p.iter().zip(&g) {
        assert_eq!(*p, 0.5 - 0.25 * g.signum());
    }
    // Signum (β1 = β2 = β): the sign of the updated EMA.
    let beta = 0.9f32;
    let mut p = vec![0.0f32; n];
    let mut m = stream(4, n, 1.0);
    let m_new: Vec<f32> = m
        .iter()
        .zip(&g)
        .map(|(&m, &g)| beta * m + (1.0 - beta) * g)
        .collect();
    let cfg = LionConfig::<f32>::new(1.0, beta as f64, beta as f64, 0.0, Kappa::L1);
    cpu::lion(&cfg, &mut p, &g, &mut m, 0.0, no_rng());
    for i in 0..n {
        assert_eq!(p[i], -m_new[i].signum());
        assert_eq!(m[i], m_new[i]);
    }
}

#[test]
fn sgd_follows_pytorch_momentum_dampening_and_nesterov() {
    let (lr, mu, damp, wd) = (0.1, 0.9, 0.2, 0.01);
    for nesterov in [false, true] {
        let (mut p, mut b) = ([2.0f64], [0.0f64]);
        let (mut tp, mut tb) = (2.0f64, 0.0f64);
        for (t, &g) in [1.0, -0.5, 0.25, 3.0].iter().enumerate() {
            let cfg = SgdConfig::<f64>::new(lr, mu, damp, nesterov, t == 0, 0.0, wd);
            cpu::sgd(&cfg, &mut p, &[g], &mut b, no_rng());
            // torch.optim.SGD: d = g + wd·p; buf = d (first step) or μ·buf + (1-τ)·d;
            // d = d + μ·buf (Nesterov) or buf; p -= lr·d.
            let d = g + wd * tp;
            tb = if t == 0 { d } else { mu * tb + (1.0 - damp) * d };
            let step = if nesterov { d + mu * tb } else { tb };
            tp -= lr * step;
            assert!((p[0] - tp).abs() < 1e-15 && (b[0] - tb).abs() < 1e-15);
        }
    }
}

/// UPGD with zero noise and zero utilities is SGD with decoupled weight decay, bit for bit:
/// the gate is sigmoid(0) = 1/2 exactly, and the authors' factor 2 on the step makes
/// `2·lr·(g·(1 - 1/2)) = lr·g` exactly (scaling by powers of two is exact).
#[test]
fn upgd_with_zero_noise_and_utilities_is_sgdw_bit_for_bit() {
    let n = 1001;
    let (lr, wd) = (0.03, 0.1);
    let mut a = stream(5, n, 3.0);
    let mut b = a.clone();
    let zero_u = vec![0.0f32; n];
    for t in 1..=25u64 {
        let g = stream(100 + t, n, 2.0);
        let up = UpgdConfig::<f32>::new(lr, 0.9, t, 0.0, lr * wd, true, true, 9);
        // Any util_scale: zero utilities give a zero sigmoid input.
        cpu::upgd_update(&up, 123.0, &mut a, &g, &zero_u, no_rng());
        let sgdw = SgdConfig::<f32>::new(lr, 0.0, 0.0, false, false, lr * wd, 0.0);
        cpu::sgd(&sgdw, &mut b, &g, &mut [], no_rng());
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "step {t}: UPGD and SGDW differ");
    }
    // The non-protecting variant and "gating off" reduce the same way.
    let mut c = stream(6, n, 1.0);
    let mut d = c.clone();
    let g = stream(7, n, 1.0);
    let u = stream(8, n, 1.0);
    let nonprot = UpgdConfig::<f32>::new(lr, 0.9, 3, 0.0, 0.0, false, true, 9);
    cpu::upgd_update(&nonprot, 5.0, &mut c, &g, &u, no_rng());
    let off = UpgdConfig::<f32>::new(lr, 0.9, 3, 0.0, 0.0, true, false, 9);
    let mut e = d.clone();
    cpu::upgd_update(&off, off.util_scale(4.0), &mut e, &g, &u, no_rng());
    let sgd = SgdConfig::<f32>::new(lr, 0.0, 0.0, false, false, 0.0, 0.0);
    cpu::sgd(&sgd, &mut d, &g, &mut [], no_rng());
    assert_eq!(c, d);
    assert_eq!(e, d);
}

#[test]
fn upgd_utility_pass_tracks_the_ema_and_the_max() {
    let n = 300;
    let p = stream(9, n, 1.0);
    let g = stream(10, n, 1.0);
    let mut u = stream(11, n, 0.1);
    let before = u.clone();
    let cfg = UpgdConfig::<f32>::new(0.1, 0.75, 2, 0.0, 0.0, true, true, 0);
    let max = cpu::upgd_utility(&cfg, &p, &g, &mut u);
    let mut expected_max = f32::NEG_INFINITY;
    for i in 0..n {
        let e = 0.75 * before[i] + 0.25 * (-(g[i] * p[i]));
        assert_eq!(u[i], e);
        expected_max = expected_max.max(e);
    }
    assert_eq!(max, expected_max);
    assert_eq!(
        cpu::upgd_utility::<f32, f32>(&cfg, &[], &[], &mut []),
        f32::NEG_INFINITY
    );
}

#[test]
fn upgd_noise_has_the_requested_scale_and_is_reproducible() {
    let n = 20_000;
    let (lr, sigma) = (0.5, 0.2);
    let cfg = UpgdConfig::<f32>::new(lr, 0.9, 1, sigma, 0.0, true, true, 42);
    let rng = RngOffsets { noise: 17, round: 0 };
    let g = vec![0.0f32; n];
    let u = vec![0.0f32; n];
    let mut p = vec![0.0f32; n];
    cpu::upgd_update(&cfg, 0.0, &mut p, &g, &u, rng);
    // p = -2·lr·(ξ·1/2) = -lr·ξ, so std(p) = lr·σ.
    let mean = p.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let var = p.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(
        mean.abs() < 0.005 && (var.sqrt() - lr * sigma).abs() < 0.005,
        "{mean} {var}"
    );
    let mut q = vec![0.0f32; n];
    cpu::upgd_update(&cfg, 0.0, &mut q, &g, &u, rng);
    assert_eq!(p, q);
}

#[test]
fn bf16_parameters_round_the_f32_update_once() {
    let n = 500;
    let p32 = stream(12, n, 2.0);
    let mut p: Vec<Bf16> = p32.iter().map(|&x| Bf16::from_f32_nearest(x)).collect();
    let g: Vec<Bf16> = stream(13, n, 1.0)
        .iter()
        .map(|&x| Bf16::from_f32_nearest(x))
        .collect();
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    let cfg = AdamWConfig::<f32>::new(1e-2, 0.9, 0.999, 1e-8, 1, true, 1e-3, 0.0);
    let expected: Vec<Bf16> = (0..n)
        .map(|i| {
            let (mut mi, mut vi) = (0.0, 0.0);
            let x = cpu::adamw_elem(&cfg, p[i].to_f32(), g[i].to_f32(), &mut mi, &mut vi);
            Bf16::from_f32_nearest(x)
        })
        .collect();
    cpu::adamw(&cfg, &mut p, &g, &mut m, &mut v, no_rng());
    assert_eq!(p, expected);
}

/// Steps far below half a bf16 ulp vanish under round-to-nearest but accumulate on average
/// under stochastic rounding: the point of the option.
#[test]
fn stochastic_rounding_keeps_tiny_updates_on_average() {
    let n = 8192;
    let (lr, steps) = (1e-4, 100u64);
    let g = vec![Bf16::from_f32_nearest(1.0); n];
    let mut nearest = vec![Bf16::from_f32_nearest(1.0); n];
    let mut stochastic = nearest.clone();
    for t in 0..steps {
        let cfg = SgdConfig::<f32>::new(lr, 0.0, 0.0, false, false, 0.0, 0.0);
        cpu::sgd(&cfg, &mut nearest, &g, &mut [], no_rng());
        let sr = cfg.with_stochastic_rounding(77);
        let rng = RngOffsets {
            noise: 0,
            round: t * (n as u64 / 4),
        };
        cpu::sgd(&sr, &mut stochastic, &g, &mut [], rng);
    }
    assert!(nearest.iter().all(|x| x.to_f32() == 1.0));
    let mean = stochastic.iter().map(|x| x.to_f32() as f64).sum::<f64>() / n as f64;
    let target = 1.0 - lr * steps as f64;
    assert!(
        (mean - target).abs() < 3e-4,
        "mean {mean}, f32 trajectory {target}"
    );
}

/// The parallel split changes nothing: a large tensor updated in one call equals the same
/// tensor updated in small serial pieces whose Philox offsets follow the element index.
#[test]
fn parallel_chunks_equal_serial_pieces() {
    let n = 70_001;
    let p0: Vec<Bf16> = stream(14, n, 1.0)
        .iter()
        .map(|&x| Bf16::from_f32_nearest(x))
        .collect();
    let g: Vec<Bf16> = stream(15, n, 1.0)
        .iter()
        .map(|&x| Bf16::from_f32_nearest(x))
        .collect();
    let u = stream(16, n, 0.1);
    let cfg = UpgdConfig::<f32>::new(1e-2, 0.9, 3, 0.1, 1e-3, true, true, 5).with_rounding();
    let rng = RngOffsets {
        noise: 1000,
        round: 2000,
    };
    let mut whole = p0.clone();
    cpu::upgd_update(&cfg, 0.7, &mut whole, &g, &u, rng);
    let mut pieces = p0.clone();
    let piece = 4096;
    for start in (0..n).step_by(piece) {
        let end = (start + piece).min(n);
        let r = RngOffsets {
            noise: rng.noise + (start / 2) as u64,
            round: rng.round + (start / 4) as u64,
        };
        cpu::upgd_update(
            &cfg,
            0.7,
            &mut pieces[start..end],
            &g[start..end],
            &u[start..end],
            r,
        );
    }
    assert_eq!(whole, pieces);
    let big = stream(17, 200_000, 1.0);
    let serial: f64 = big.iter().map(|&x| (x as f64).powi(2)).sum();
    assert!((cpu::grad_sumsq(&big) - serial).abs() < 1e-9 * serial);
}

impl UpgdConfig<f32> {
    fn with_rounding(mut self) -> Self {
        self.stochastic_rounding = ROUND_STOCHASTIC;
        self
    }
}
