//! Properties the papers state, through the optimizer API: the weight-decay modes follow their
//! definitions, and Lion's box is forward-invariant over random gradient streams.

use autograd::{DType, Device, Tensor};
use nn::optim::{AdamW, Kappa, Lion, Optimizer, WeightDecay};
use nn::schedule::Schedule;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A weight with no loss gradient: library decay shrinks it by (1 − lr_t·λ) per step, paper
/// decay by (1 − s_t·λ); Adam-L2 normalizes its own L2 gradient and shrinks it by ≈ lr_t.
#[test]
fn decay_modes_follow_their_definitions() {
    let sched = Schedule::LinearDecay {
        total: 10,
        final_value: 0.5,
    };
    let run = |mode: WeightDecay| -> Vec<f64> {
        let w = Tensor::full(&[1], 2.0, DType::F64, Device::Cpu).unwrap();
        let h = AdamW {
            lr: 0.01,
            weight_decay: 0.1,
            decay_mode: mode,
            ..AdamW::default()
        };
        let mut opt = Optimizer::new(vec![w.clone()], h).unwrap();
        opt.set_schedule(Some(sched.clone())).unwrap();
        let zero = Tensor::zeros(&[1], DType::F64, Device::Cpu).unwrap();
        (0..10)
            .map(|_| {
                opt.step_with(|_| Some(zero.clone())).unwrap();
                w.to_vec::<f64>().unwrap()[0]
            })
            .collect()
    };
    let (mut lib, mut paper) = (2.0f64, 2.0f64);
    for (t, (l, p)) in run(WeightDecay::Library)
        .iter()
        .zip(run(WeightDecay::Paper))
        .enumerate()
    {
        let s = sched.at(t as u64);
        lib *= 1.0 - 0.01 * s * 0.1;
        paper *= 1.0 - s * 0.1;
        assert!(
            (l - lib).abs() < 1e-14 && (p - paper).abs() < 1e-14,
            "t {t}: {l} {lib} {p} {paper}"
        );
    }
    assert_eq!(run(WeightDecay::Independent), run(WeightDecay::Paper));
    let coupled = run(WeightDecay::CoupledL2);
    for (t, w) in coupled.iter().enumerate() {
        let moved: f64 = (0..=t as u64).map(|k| 0.01 * sched.at(k)).sum();
        assert!((2.0 - w - moved).abs() < 0.02 * moved, "t {t}: {w}");
    }
}

/// Lion's box (Chen, Liu, Liang and Liu 2023): with library decay and lr_t·λ <= 1, a parameter
/// inside ‖x‖∞ <= 1/λ stays inside whatever the gradients. A property over random streams
/// (random λ, lr, betas, κ, schedule and gradient scales), in f64 through the optimizer API; the
/// f32 kernel-level version with the per-step contraction is in kernels/src/optim/tests.rs.
#[test]
fn lion_box_is_invariant_over_random_gradient_streams() {
    use rand::RngExt;
    for case in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(1000 + case);
        let lambda: f64 = rng.random_range(0.2..5.0);
        let lr = rng.random_range(0.05..1.0) / lambda;
        let kappa = [Kappa::L1, Kappa::L2, Kappa::Huber { delta: 0.3 }][case as usize % 3];
        let hyper = Lion {
            lr,
            betas: (rng.random_range(0.0..0.99), rng.random_range(0.0..0.99)),
            weight_decay: lambda,
            kappa,
            ..Lion::default()
        };
        let start: Vec<f64> = (0..32).map(|_| rng.random_range(-1.0..1.0) / lambda).collect();
        let x = Tensor::from_vec(start, &[32], Device::Cpu).unwrap();
        let mut opt = Optimizer::new(vec![x.clone()], hyper).unwrap();
        opt.set_schedule(Some(Schedule::Cosine {
            warmup: 5,
            total: 60,
            final_value: 0.0,
        }))
        .unwrap();
        for _ in 0..60 {
            let scale = 10f64.powf(rng.random_range(-6.0..3.0));
            let g: Vec<f64> = (0..32).map(|_| scale * (rng.random::<f64>() - 0.5)).collect();
            let g = Tensor::from_vec(g, &[32], Device::Cpu).unwrap();
            opt.step_with(|_| Some(g.clone())).unwrap();
            let max = x
                .to_vec::<f64>()
                .unwrap()
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(
                max <= (1.0 + 1e-12) / lambda,
                "case {case}: ‖x‖∞ = {max} > 1/λ = {}",
                1.0 / lambda
            );
        }
    }
}
