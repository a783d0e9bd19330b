//! Exact checks of the class-incremental masking methods ([369] softmax masking, [52]
//! instance-wise logit masking) and snapshots of their metrics at fixed seeds.

use algorithms::continual::ReplayBuffer;
use algorithms::logit_masking::{self, per_row_gradient_check, StreamConfig};
use algorithms::softmax_masking::{self, masked_gradient_check, Masking, RunConfig};
use rand::SeedableRng;

fn fmt(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ")
}

#[test]
fn masked_logits_get_exactly_zero_gradient() {
    for m in [f64::NEG_INFINITY, 0.0, -5.0, 3.0] {
        let (masked, nonzero) = masked_gradient_check(m, 1).unwrap();
        assert_eq!((masked, nonzero), (96, 0), "m = {m}");
    }
    let (masked, nonzero) = per_row_gradient_check(2).unwrap();
    assert!(masked > 0);
    assert_eq!(nonzero, 0);
}

/// Buffer-free, plain SGD: the masked loss leaves old-class output rows bit-identical; the
/// unmasked loss moves them (so the check can fail).
#[test]
fn masking_freezes_old_head_rows_without_replay_and_raises_old_accuracy() {
    let seed = 0x5EED_0000;
    let masked =
        softmax_masking::run(&RunConfig::new(Masking::Mask(f64::NEG_INFINITY), 0, true, seed)).unwrap();
    let finite = softmax_masking::run(&RunConfig::new(Masking::Mask(0.0), 0, true, seed)).unwrap();
    let plain = softmax_masking::run(&RunConfig::new(Masking::None, 0, true, seed)).unwrap();
    assert_eq!(masked.old_rows_changed, 0);
    assert_eq!(finite.old_rows_changed, 0);
    assert!(plain.old_rows_changed > 0);
    assert!(
        masked.final_old_accuracy > plain.final_old_accuracy,
        "{} vs {}",
        masked.final_old_accuracy,
        plain.final_old_accuracy
    );
    assert!(masked.final_old_confidence > plain.final_old_confidence);
    insta::assert_snapshot!(
        "softmax_masking_seed0_buffer0",
        format!(
            "mask -inf: seen {} | old acc {:.3} conf {:.3}\nno mask:   seen {} | old acc {:.3} conf {:.3}",
            fmt(&masked.seen_accuracy),
            masked.final_old_accuracy,
            masked.final_old_confidence,
            fmt(&plain.seen_accuracy),
            plain.final_old_accuracy,
            plain.final_old_confidence
        )
    );
}

#[test]
fn replay_run_is_deterministic() {
    let cfg = RunConfig::new(Masking::Mask(f64::NEG_INFINITY), 20, true, 3);
    let a = softmax_masking::run(&cfg).unwrap();
    assert_eq!(a, softmax_masking::run(&cfg).unwrap());
    insta::assert_snapshot!("softmax_masking_seed3_buffer20", fmt(&a.seen_accuracy));
}

#[test]
fn reservoir_keeps_capacity_and_uniform_inclusion() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut hits = [0usize; 100];
    for _ in 0..200 {
        let mut b = ReplayBuffer::new(10, 1, 100);
        for k in 0..100 {
            b.offer(&[k as f32], k as i64, &mut rng);
        }
        assert_eq!(b.data.len(), 10);
        for &y in &b.data.y {
            hits[y as usize] += 1;
        }
    }
    // Each sample is kept with probability 0.1: 20 of 200 expected; first and last halves alike.
    let (first, last): (usize, usize) = (hits[..50].iter().sum(), hits[50..].iter().sum());
    assert!(
        (first as f64 / last as f64 - 1.0).abs() < 0.2,
        "{first} vs {last}"
    );
    assert!(ReplayBuffer::new(0, 1, 2).sample(5, &mut rng).is_empty());
}

#[test]
fn blurry_stream_metrics_at_a_fixed_seed() {
    let er = logit_masking::run(&StreamConfig::new(false, true, 0x5EED_0000)).unwrap();
    let mk = logit_masking::run(&StreamConfig::new(true, true, 0x5EED_0000)).unwrap();
    assert!(er.a_last > 0.1 && mk.a_last > 0.1);
    insta::assert_snapshot!(
        "logit_masking_seed0",
        format!(
            "ER: A_auc {:.3} A_last {:.3}\nmasked: A_auc {:.3} A_last {:.3}\nblurry {:.3}",
            er.a_auc, er.a_last, mk.a_auc, mk.a_last, er.blurry_fraction
        )
    );
}
