//! Snapshots of every schedule at its phase boundaries and between them, plus the exact
//! properties the papers state (continuity, WSD's plateau, refinement of constant norms =
//! linear decay).

use super::*;

/// `t: value` lines for the given steps, 6 decimals: a reviewable picture of the schedule.
fn render(s: &Schedule, steps: impl IntoIterator<Item = u64>) -> String {
    steps
        .into_iter()
        .map(|t| format!("{t:>5}: {:.6}\n", s.at(t)))
        .collect()
}

#[test]
fn constant_and_linear() {
    insta::assert_snapshot!("constant", render(&Schedule::Constant, [0, 1, 1000]));
    let warm = Schedule::LinearWarmup {
        warmup: 10,
        init: 0.1,
    };
    insta::assert_snapshot!("linear_warmup", render(&warm, [0, 1, 5, 9, 10, 11, 100]));
    let decay = Schedule::LinearDecay {
        total: 100,
        final_value: 0.0,
    };
    insta::assert_snapshot!("linear_decay", render(&decay, [0, 1, 50, 99, 100, 101]));
}

#[test]
fn cosine_with_warmup() {
    let s = Schedule::Cosine {
        warmup: 10,
        total: 110,
        final_value: 0.1,
    };
    insta::assert_snapshot!("cosine", render(&s, [0, 5, 9, 10, 11, 35, 60, 85, 109, 110, 200]));
    assert_eq!(s.at(10), 1.0);
    assert!(
        (s.at(60) - 0.55).abs() < 1e-12,
        "midpoint is the mean of 1 and final"
    );
}

#[test]
fn warmup_stable_decay_linear_and_one_minus_sqrt() {
    for (name, shape) in [
        ("wsd_linear", DecayShape::Linear),
        ("wsd_1_sqrt", DecayShape::OneMinusSqrt),
    ] {
        let s = Schedule::WarmupStableDecay {
            warmup: 10,
            total: 100,
            decay: 20,
            final_value: 0.0,
            shape,
        };
        s.validate().unwrap();
        insta::assert_snapshot!(
            name,
            render(&s, [0, 5, 10, 50, 79, 80, 81, 85, 90, 95, 99, 100, 150])
        );
        // Stable phase exactly 1, continuous into the decay, ends at final_value.
        assert!((10..=80).all(|t| s.at(t) == 1.0));
        assert!((s.at(81) - 1.0).abs() < 0.25);
        assert_eq!(s.at(100), 0.0);
    }
}

#[test]
fn infinite_schedule_phases() {
    let mut s = Schedule::Infinite {
        warmup: 10,
        cooldown: 40,
        cooldown_shape: CooldownShape::Cosine,
        constant: 0.25,
        anneal_start: None,
        anneal_steps: 20,
        min: 0.01,
    };
    insta::assert_snapshot!(
        "infinite_no_anneal",
        render(&s, [0, 5, 10, 30, 49, 50, 51, 500, 100_000])
    );
    if let Schedule::Infinite { anneal_start, .. } = &mut s {
        *anneal_start = Some(200);
    }
    s.validate().unwrap();
    insta::assert_snapshot!(
        "infinite_anneal",
        render(&s, [199, 200, 205, 210, 219, 220, 1000])
    );
    assert_eq!(s.at(200), 0.25);
    assert!((s.at(220) - 0.01).abs() < 1e-15);
    assert!(
        (s.at(210) - (0.25f64 * 0.01).sqrt()).abs() < 1e-15,
        "geometric midpoint"
    );
}

#[test]
fn infinite_schedule_inverse_sqrt_cooldown() {
    let s = Schedule::Infinite {
        warmup: 10,
        cooldown: 40,
        cooldown_shape: CooldownShape::InverseSqrt { timescale: 10.0 },
        constant: 0.25,
        anneal_start: Some(200),
        anneal_steps: 20,
        min: 0.01,
    };
    s.validate().unwrap();
    insta::assert_snapshot!(
        "infinite_inverse_sqrt",
        render(&s, [0, 5, 10, 11, 14, 20, 30, 49, 50, 51, 199, 200, 210, 220])
    );
    // Continuous at both ends of the cooldown, and monotone within it.
    assert_eq!(s.at(10), 1.0);
    assert!((s.at(50) - 0.25).abs() < 1e-15);
    assert!((10..50).all(|t| s.at(t + 1) < s.at(t)));
    // The definition at the midpoint: 1 + (c - 1)·h(1/2)/h(1), h(x) = 1/sqrt(1 + 10x) - 1.
    let h = |x: f64| 1.0 / (1.0 + 10.0 * x).sqrt() - 1.0;
    assert!((s.at(30) - (1.0 - 0.75 * h(0.5) / h(1.0))).abs() < 1e-15);
    // It front-loads the decay: a quarter in, more than half of the drop is done (the cosine
    // has done 15%).
    assert!(s.at(20) < 1.0 - 0.5 * 0.75);
}

#[test]
fn rewarming_restarts_each_stage() {
    let s = Schedule::Rewarm {
        stage_starts: vec![0, 100],
        warmup: 10,
        length: 60,
        final_value: 0.1,
    };
    s.validate().unwrap();
    insta::assert_snapshot!(
        "rewarm",
        render(&s, [0, 5, 10, 40, 70, 99, 100, 105, 110, 160, 300])
    );
    assert_eq!(s.at(99), 0.1);
    assert_eq!(
        s.at(100),
        0.1,
        "the re-warm starts where the previous stage ended"
    );
    assert_eq!(s.at(110), 1.0);
}

#[test]
fn refinement_of_constant_norms_is_linear_decay() {
    let s = refine_from_grad_norms(&[2.0; 11], RefineWeights::InverseSquare, 1).unwrap();
    for t in 0..11u64 {
        let linear = (10 - t) as f64 / 10.0;
        assert!((s.at(t) - linear).abs() < 1e-12, "t {t}: {} vs {linear}", s.at(t));
    }
    insta::assert_snapshot!("refined_constant", render(&s, 0..12));
    // Norms that shrink late give a warmup (small w_t early) and a fast final anneal.
    let norms: Vec<f64> = (0..20).map(|t| 4.0 / (1.0 + t as f64 * 0.3)).collect();
    let r = refine_from_grad_norms(&norms, RefineWeights::InverseSquare, 3).unwrap();
    insta::assert_snapshot!("refined_shrinking_norms", render(&r, 0..20));
    assert!(r.at(0) < r.at(8), "warmup emerges");
    assert_eq!(r.at(19), 0.0);
}

#[test]
fn bad_parameters_are_errors() {
    let bad = [
        Schedule::Cosine {
            warmup: 20,
            total: 10,
            final_value: 0.0,
        },
        Schedule::WarmupStableDecay {
            warmup: 10,
            total: 20,
            decay: 15,
            final_value: 0.0,
            shape: DecayShape::Linear,
        },
        Schedule::LinearDecay {
            total: 10,
            final_value: f64::NAN,
        },
        Schedule::Rewarm {
            stage_starts: vec![5],
            warmup: 1,
            length: 2,
            final_value: 0.0,
        },
        Schedule::Infinite {
            warmup: 10,
            cooldown: 10,
            cooldown_shape: CooldownShape::Cosine,
            constant: 0.0,
            anneal_start: None,
            anneal_steps: 1,
            min: 0.0,
        },
        Schedule::Infinite {
            warmup: 10,
            cooldown: 10,
            cooldown_shape: CooldownShape::InverseSqrt { timescale: 0.0 },
            constant: 0.5,
            anneal_start: None,
            anneal_steps: 1,
            min: 0.0,
        },
    ];
    for s in bad {
        assert!(s.validate().is_err(), "{s:?}");
    }
    assert!(refine_from_grad_norms(&[1.0], RefineWeights::Inverse, 1).is_err());
    assert!(refine_from_grad_norms(&[1.0, 0.0], RefineWeights::Inverse, 1).is_err());
}
