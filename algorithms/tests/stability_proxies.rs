//! [28] exact checks: the qk-layernorm logit bound, the fused z-loss gradient, LR sensitivity,
//! the H2 source; and snapshots of a short sweep.

use algorithms::harness::tokens::{domains, zipf_tokens, MarkovConfig, MarkovSource};
use algorithms::stability_proxies::{
    build_model, lr_grid, lr_sensitivity, train_run, ProxyConfig, RunSetting,
};
use autograd::{CrossEntropyOptions, DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn tiny() -> ProxyConfig {
    ProxyConfig {
        vocab: 32,
        seq: 8,
        batch: 4,
        d_model: 16,
        n_layers: 2,
        n_heads: 2,
        steps: 25,
        eval_batches: 1,
        ..ProxyConfig::quick()
    }
}

#[test]
fn qk_layernorm_bounds_every_attention_logit_during_high_lr_training() {
    let cfg = tiny();
    let src = cfg.source(1);
    let r = train_run(
        &cfg,
        &src,
        RunSetting {
            lr: 0.3,
            qk_norm: true,
            z_loss: 0.0,
        },
        1,
    )
    .unwrap();
    assert_eq!(r.max_logit.len(), cfg.steps);
    for (s, (m, b)) in r.max_logit.iter().zip(&r.logit_bound).enumerate() {
        assert!(
            *m <= b * (1.0 + 1e-5),
            "step {s}: logit {m} above the qk-LN bound {b}"
        );
    }
    // The bound is not vacuous: the gains moved, and so did the logits.
    assert!(r.logit_bound.last().unwrap() != &r.logit_bound[0]);
}

#[test]
fn qk_layernorm_rows_have_zero_mean_and_unit_variance_before_the_gain() {
    let lm = build_model(&tiny(), true, 3).unwrap();
    let q_norm = lm.blocks[0].attn.q_norm.as_ref().unwrap();
    let q = Tensor::randn(&[5, 8], DType::F32, Device::Cpu, &mut StdRng::seed_from_u64(4)).unwrap();
    let y = q.mul_scalar(5.0).unwrap().add_scalar(-2.0).unwrap();
    let out = q_norm.forward(&y).unwrap().to_vec::<f32>().unwrap();
    for row in out.chunks(8) {
        let mean = row.iter().sum::<f32>() / 8.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 8.0;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-4,
            "mean {mean} var {var}"
        );
    }
}

#[test]
fn fused_z_loss_gradient_matches_autodiff_of_the_unfused_graph() {
    let mut rng = StdRng::seed_from_u64(7);
    let logits = Tensor::randn(&[6, 10], DType::F64, Device::Cpu, &mut rng)
        .unwrap()
        .mul_scalar(3.0)
        .unwrap();
    let logits = logits.set_requires_grad(true);
    let targets = Tensor::from_vec(vec![0i64, 3, 9, 2, 2, 7], &[6], Device::Cpu).unwrap();
    let lambda = 0.1; // large enough that a wrong z-loss gradient would show
    let opts = CrossEntropyOptions {
        z_loss: lambda,
        ..CrossEntropyOptions::default()
    };
    let fused = logits.cross_entropy_with(&targets, &opts).unwrap().loss;
    let lse = logits.logsumexp(&[-1], false).unwrap();
    let picked = logits
        .gather(1, &targets.reshape(&[6, 1]).unwrap())
        .unwrap()
        .reshape(&[6])
        .unwrap();
    let unfused = lse
        .sub(&picked)
        .unwrap()
        .add(&lse.pow_scalar(2.0).unwrap().mul_scalar(lambda).unwrap())
        .unwrap()
        .mean_all()
        .unwrap();
    assert!((fused.item().unwrap() - unfused.item().unwrap()).abs() < 1e-12);
    let (gf, gu) = (fused.backward().unwrap(), unfused.backward().unwrap());
    let (a, b) = (
        gf.get(&logits).unwrap().to_vec::<f64>().unwrap(),
        gu.get(&logits).unwrap().to_vec::<f64>().unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-12, "{x} vs {y}");
    }
}

#[test]
fn lr_sensitivity_follows_its_definition() {
    // Capped at l0 = 4: [2, 1, 4 (diverged), 4 (5 capped)]; best 1; mean excess (1+0+3+3)/4.
    assert_eq!(lr_sensitivity(&[2.0, 1.0, f64::INFINITY, 5.0], 4.0), 1.75);
    assert_eq!(lr_sensitivity(&[1.5, 1.5], 4.0), 0.0);
    let g = lr_grid();
    assert_eq!(g.len(), 8);
    assert!((g[0] - 1e-4).abs() < 1e-15 && (g[7] - 0.3).abs() < 1e-12);
}

#[test]
fn markov_source_is_seeded_normalized_and_its_entropy_rate_is_right() {
    let cfg = MarkovConfig {
        vocab: 20,
        branching: 3,
        zipf: Some(1.1),
        sharpness: 1.0,
    };
    let (a, b) = (MarkovSource::new(cfg, 5), MarkovSource::new(cfg, 5));
    let mut r1 = StdRng::seed_from_u64(1);
    let mut r2 = StdRng::seed_from_u64(1);
    assert_eq!(a.sample(3, 10, &mut r1), b.sample(3, 10, &mut r2));
    for row in &a.transitions {
        assert_eq!(row.len(), 3);
        assert!((row.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-12);
    }
    let pi = a.stationary();
    assert!((pi.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    // A deterministic chain has entropy rate 0; equal weights over k successors give ln k.
    let det = MarkovSource::new(MarkovConfig { branching: 1, ..cfg }, 2);
    assert!(det.entropy_rate().abs() < 1e-12);
    let flat = MarkovSource::new(
        MarkovConfig {
            branching: 4,
            sharpness: 0.0,
            ..cfg
        },
        3,
    );
    assert!((flat.entropy_rate() - 4f64.ln()).abs() < 1e-9);
    // Targets are the inputs shifted by one.
    let (x, y) = a.lm_batch(2, 6, &mut r1);
    assert_eq!(&x[1..6], &y[0..5]);
    assert_eq!(domains(cfg, 3, 9).len(), 3);
    let z = zipf_tokens(50, 1.1, 4000, &mut r1);
    let count = |t: i64| z.iter().filter(|&&v| v == t).count();
    assert!(
        count(0) > 3 * count(9),
        "rank 1 should be far more frequent than rank 10"
    );
}

#[test]
fn snapshot_h2_tokens_and_a_short_sweep() {
    let cfg = MarkovConfig {
        vocab: 12,
        branching: 2,
        zipf: Some(1.1),
        sharpness: 1.0,
    };
    let tokens = MarkovSource::new(cfg, 11).sample(2, 12, &mut StdRng::seed_from_u64(0));
    insta::assert_snapshot!("h2_tokens", format!("{tokens:?}"));
    let cfg = ProxyConfig { steps: 12, ..tiny() };
    let src = cfg.source(0);
    let mut lines = Vec::new();
    for (qk_norm, z_loss) in [(false, 0.0), (true, 0.0), (false, 1e-4)] {
        for lr in [1e-3, 1e-1] {
            let r = train_run(&cfg, &src, RunSetting { lr, qk_norm, z_loss }, 0).unwrap();
            lines.push(format!(
                "qk={qk_norm} z={z_loss:e} lr={lr:e}: loss {:.3} -> {:.3}, peak logit {:.3}, last log Z {:.3}",
                r.initial_loss,
                r.final_loss,
                r.max_logit.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                r.mean_log_z.last().unwrap()
            ));
        }
    }
    insta::assert_snapshot!("short_sweep", lines.join("\n"));
}
