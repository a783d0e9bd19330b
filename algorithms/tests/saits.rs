//! [427] exact checks: the diagonal mask, the fused backward against the unfused graph, the
//! time-series harness and baselines; SAITS beats mean imputation; snapshots.

use algorithms::harness::timeseries::{
    generate, impute_linear, impute_mean, masked_mae, SeriesConfig, SeriesSet,
};
use algorithms::saits::{impute, run, train, Saits, SaitsConfig, TrainConfig};
use autograd::{AttentionMask, DType, Device, Tensor};
use nn::modules::{blocked_mask, AttentionConfig, Module, MultiHeadAttention};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[test]
fn dmsa_never_attends_a_position_to_itself_and_rows_sum_to_one() {
    let cfg = SaitsConfig {
        steps: 6,
        features: 3,
        d_model: 8,
        n_heads: 2,
        n_layers: 2,
        d_ff: 16,
        diagonal: true,
    };
    let model = Saits::new(cfg, &mut StdRng::seed_from_u64(0)).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let x = Tensor::randn(&[2, 6, 3], DType::F32, Device::Cpu, &mut rng).unwrap();
    let m = Tensor::ones(&[2, 6, 3], DType::F32, Device::Cpu).unwrap();
    let out = model.forward(&x, &m).unwrap();
    let a = out.attn.to_vec::<f32>().unwrap();
    for (r, row) in a.chunks(6).enumerate() {
        assert_eq!(row[r % 6], 0.0, "row {r} attends to itself");
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    // With everything observed the output is the input, exactly.
    assert_eq!(out.imputed.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    let eta = out.eta.to_vec::<f32>().unwrap();
    assert!(eta.iter().all(|&e| e > 0.0 && e < 1.0));
}

#[test]
fn fused_diagonal_attention_backward_matches_the_unfused_graph() {
    let cfg = AttentionConfig {
        init_std: 0.5,
        ..AttentionConfig::new(8, 2)
    };
    let mha = MultiHeadAttention::new(cfg, DType::F64, &mut StdRng::seed_from_u64(2)).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let x = Tensor::randn(&[2, 5, 8], DType::F64, Device::Cpu, &mut rng)
        .unwrap()
        .set_requires_grad(true);
    let r = Tensor::randn(&[2, 5, 8], DType::F64, Device::Cpu, &mut rng).unwrap();
    let fused = mha
        .forward(&x, &AttentionMask::diagonal())
        .unwrap()
        .out
        .mul(&r)
        .unwrap()
        .sum_all()
        .unwrap();
    let blocked = blocked_mask(5, false, true, Device::Cpu).unwrap();
    let unfused = mha
        .forward_unfused(&x, Some(&blocked))
        .unwrap()
        .out
        .mul(&r)
        .unwrap()
        .sum_all()
        .unwrap();
    let (gf, gu) = (fused.backward().unwrap(), unfused.backward().unwrap());
    let mut leaves = vec![x.clone()];
    leaves.extend(mha.parameters());
    for t in &leaves {
        let (a, b) = (
            gf.get(t).unwrap().to_vec::<f64>().unwrap(),
            gu.get(t).unwrap().to_vec::<f64>().unwrap(),
        );
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-11 * (1.0 + v.abs()), "{u} vs {v}");
        }
    }
}

#[test]
fn harness_masks_have_their_rates_and_linear_interpolation_is_exact_on_lines() {
    let set = generate(SeriesConfig::saits_demo(200, 24), 1, 2);
    let n = set.values.len() as f64;
    let observed = set.observed.iter().sum::<f64>() / n;
    let held = set.held_out.iter().sum::<f64>() / set.observed.iter().sum::<f64>();
    assert!(
        (observed - 0.8).abs() < 0.01 && (held - 0.2).abs() < 0.01,
        "{observed} {held}"
    );
    assert!(set.held_out.iter().zip(&set.observed).all(|(h, o)| *h <= *o));
    assert_eq!(
        generate(SeriesConfig::saits_demo(3, 24), 1, 2).values,
        generate(SeriesConfig::saits_demo(3, 24), 1, 2).values
    );
    // A series that is a line in time per channel: interpolation recovers the interior exactly.
    let cfg = SeriesConfig {
        series: 1,
        steps: 10,
        channels: 2,
        ..SeriesConfig::saits_demo(1, 10)
    };
    let values: Vec<f64> = (0..20)
        .map(|i| (i / 2) as f64 * if i % 2 == 0 { 1.0 } else { -0.5 })
        .collect();
    let mut held_out = vec![0.0; 20];
    for i in [4, 5, 9, 12, 13] {
        held_out[i] = 1.0;
    }
    let line = SeriesSet {
        config: cfg,
        values: values.clone(),
        observed: vec![1.0; 20],
        held_out: held_out.clone(),
    };
    assert!(masked_mae(&impute_linear(&line), &values, &held_out) < 1e-12);
    // Mean imputation fills with the readable mean of each channel.
    let filled = impute_mean(&line, &line);
    assert!((filled[4] - (0.0 + 1.0 + 3.0 + 4.0 + 5.0 + 7.0 + 8.0 + 9.0) / 8.0).abs() < 1e-12);
}

#[test]
fn saits_beats_mean_imputation_and_linear_interpolation() {
    let cfg = TrainConfig {
        train_series: 128,
        test_series: 32,
        iters: 150,
        ..TrainConfig::quick()
    };
    let (m, _, _) = run(&cfg, 5, &|_| {}).unwrap();
    assert!(m.saits < m.mean && m.saits < m.linear, "{m:?}");
}

#[test]
fn snapshot_baselines_and_a_short_training_curve() {
    let set = generate(SeriesConfig::saits_demo(32, 24), 0x5EED, 1);
    let test = generate(SeriesConfig::saits_demo(16, 24), 0x5EED, 2);
    let mae = |p: &[f64]| masked_mae(p, &test.values, &test.held_out);
    let baselines = format!(
        "mean {:.4}, linear {:.4}, first values {:?}",
        mae(&impute_mean(&set, &test)),
        mae(&impute_linear(&test)),
        set.values[..4]
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect::<Vec<_>>()
    );
    insta::assert_snapshot!("baselines", baselines);
    let cfg = TrainConfig {
        iters: 21,
        batch: 8,
        ..TrainConfig::quick()
    };
    let trained = train(&cfg, &set, true, 3).unwrap();
    let curve: Vec<String> = trained
        .curve
        .iter()
        .map(|(i, o, m)| format!("{i}: ORT {o:.4} MIT {m:.4}"))
        .collect();
    let imputed = impute(&trained.model, &test).unwrap();
    insta::assert_snapshot!(
        "short_curve",
        format!("{}\ntest MAE {:.4}", curve.join("\n"), mae(&imputed))
    );
}
