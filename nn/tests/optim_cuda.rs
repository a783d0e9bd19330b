//! CPU/CUDA parity of the fused optimizer steps: trajectories over several steps from the same
//! parameters and gradients must be **bit-identical**. `optim.cu` writes every f32 operation as
//! an explicit round-to-nearest intrinsic in the CPU reference's order (no FMA contraction,
//! IEEE sqrt and division), rounds bf16 parameters the same way, and draws stochastic-rounding
//! bits from the same Philox offsets, so AdamW, Lion (sign, Huber), Signum, signSGD and SGD
//! leave no room for a tolerance. Also: a checkpoint of CUDA state resumes bit-exactly, and
//! what has no CUDA launcher yet (UPGD, Lion's l2 κ) is a clear error.
//!
//! Skips with a printed reason where there is no GPU; `REQUIRE_CUDA=1` makes that a failure.

use autograd::{DType, Device, Error, Tensor};
use nn::optim::{AdamW, Algorithm, Kappa, Lion, Optimizer, Sgd, Upgd, WeightDecay};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn cuda_or_skip(test: &str) -> Option<Device> {
    match Device::cuda_unavailable_reason() {
        None => Some(Device::Cuda(0)),
        Some(why) => {
            assert!(
                std::env::var("REQUIRE_CUDA").as_deref() != Ok("1"),
                "REQUIRE_CUDA=1 but CUDA is not usable: {why}"
            );
            eprintln!("{test}: SKIPPED (no GPU; REQUIRE_CUDA=1 makes this fail): {why}");
            None
        }
    }
}

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::randn(shape, DType::F32, Device::Cpu, &mut rng)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Parameter shapes: a chunk-sized tensor plus odd sizes (tails of the 4-wide vector loop).
const SHAPES: [&[usize]; 3] = [&[257, 300], &[7], &[1]];

fn bits(t: &Tensor) -> Vec<u64> {
    // Bit patterns, so that -0 vs +0 and NaN payloads count as differences.
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits() as u64)
            .collect(),
        DType::BF16 => t
            .to_vec::<half::bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits() as u64)
            .collect(),
        d => panic!("unexpected dtype {d}"),
    }
}

/// `steps` steps of `hyper` on CPU copies and on CUDA copies of the same parameters with the
/// same gradient stream; returns the two optimizers after asserting equal bits each step.
fn trajectories<A: Algorithm>(name: &str, hyper: A, dtype: DType, rounding: bool, dev: Device, steps: u64) {
    let init: Vec<Tensor> = SHAPES
        .iter()
        .enumerate()
        .map(|(i, s)| randn(s, dtype, i as u64))
        .collect();
    let mut runs = Vec::new();
    for device in [Device::Cpu, dev] {
        let params: Vec<Tensor> = init.iter().map(|p| p.to_device(device).unwrap()).collect();
        let mut opt = Optimizer::new(params.clone(), hyper.clone()).unwrap();
        opt.set_seed(1234);
        opt.set_stochastic_rounding(rounding);
        runs.push((params, opt));
    }
    for step in 0..steps {
        let grads: Vec<Tensor> = SHAPES
            .iter()
            .enumerate()
            .map(|(i, s)| randn(s, dtype, 100 + step * 10 + i as u64))
            .collect();
        for (params, opt) in runs.iter_mut() {
            let device = params[0].device();
            let g: Vec<Tensor> = grads.iter().map(|g| g.to_device(device).unwrap()).collect();
            opt.step_with(|p| {
                params
                    .iter()
                    .position(|q| q.shares_storage_with(p))
                    .map(|i| g[i].clone())
            })
            .unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
        }
        for (i, (c, g)) in runs[0].0.iter().zip(&runs[1].0).enumerate() {
            assert_eq!(
                bits(c),
                bits(g),
                "{name} {dtype}: parameter {i} differs after step {}",
                step + 1
            );
        }
    }
}

fn algorithms_f32_and_bf16<A: Algorithm>(dev: Device, cases: Vec<(&str, A)>) {
    for (name, hyper) in cases {
        trajectories(name, hyper.clone(), DType::F32, false, dev, 5);
        trajectories(name, hyper.clone(), DType::BF16, false, dev, 5);
        trajectories(
            &format!("{name} (stochastic rounding)"),
            hyper,
            DType::BF16,
            true,
            dev,
            5,
        );
    }
}

#[test]
fn adamw_trajectories_are_bit_identical() {
    let Some(dev) = cuda_or_skip("AdamW CUDA parity") else {
        return;
    };
    let modes = [
        WeightDecay::Library,
        WeightDecay::Paper,
        WeightDecay::Independent,
        WeightDecay::CoupledL2,
    ];
    let cases = modes
        .iter()
        .map(|&m| {
            (
                "AdamW",
                AdamW {
                    lr: 1e-2,
                    weight_decay: 0.1,
                    decay_mode: m,
                    ..AdamW::default()
                },
            )
        })
        .collect();
    algorithms_f32_and_bf16(dev, cases);
}

#[test]
fn lion_signum_signsgd_trajectories_are_bit_identical() {
    let Some(dev) = cuda_or_skip("Lion CUDA parity") else {
        return;
    };
    let huber = Lion {
        kappa: Kappa::Huber { delta: 0.5 },
        weight_decay: 0.1,
        ..Lion::default()
    };
    let cases = vec![
        (
            "Lion",
            Lion {
                weight_decay: 0.1,
                lr: 1e-2,
                ..Lion::default()
            },
        ),
        ("Lion-Huber", huber),
        ("Signum", Lion::signum(1e-2, 0.9)),
        ("signSGD", Lion::sign_sgd(1e-2)),
    ];
    algorithms_f32_and_bf16(dev, cases);
}

#[test]
fn sgd_trajectories_are_bit_identical() {
    let Some(dev) = cuda_or_skip("SGD CUDA parity") else {
        return;
    };
    let cases = vec![
        (
            "SGD",
            Sgd {
                lr: 1e-2,
                ..Sgd::default()
            },
        ),
        (
            "SGD momentum",
            Sgd {
                lr: 1e-2,
                momentum: 0.9,
                dampening: 0.1,
                weight_decay: 1e-2,
                ..Sgd::default()
            },
        ),
        (
            "SGD Nesterov",
            Sgd {
                lr: 1e-2,
                momentum: 0.9,
                nesterov: true,
                ..Sgd::default()
            },
        ),
        ("SGDW", Sgd::sgdw(1e-2, 0.9, 0.1)),
    ];
    algorithms_f32_and_bf16(dev, cases);
}

#[test]
fn cuda_state_checkpoints_resume_bit_exactly() {
    let Some(dev) = cuda_or_skip("CUDA optimizer checkpoint") else {
        return;
    };
    let hyper = AdamW {
        lr: 1e-2,
        ..AdamW::default()
    };
    let init = randn(&[33, 5], DType::F32, 3);
    let grads: Vec<Tensor> = (0..4)
        .map(|s| randn(&[33, 5], DType::F32, 50 + s).to_device(dev).unwrap())
        .collect();
    // Uninterrupted: 4 steps.
    let p = init.to_device(dev).unwrap();
    let mut opt = Optimizer::new(vec![p.clone()], hyper.clone()).unwrap();
    for g in &grads {
        opt.step_with(|_| Some(g.clone())).unwrap();
    }
    // Interrupted after 2: save, rebuild, load, 2 more.
    let q = init.to_device(dev).unwrap();
    let mut first = Optimizer::new(vec![q.clone()], hyper.clone()).unwrap();
    for g in &grads[..2] {
        first.step_with(|_| Some(g.clone())).unwrap();
    }
    let saved = first.save_state().unwrap();
    let mut second = Optimizer::new(vec![q.clone()], hyper).unwrap();
    second.load_state(&saved).unwrap();
    for g in &grads[2..] {
        second.step_with(|_| Some(g.clone())).unwrap();
    }
    assert_eq!(bits(&p), bits(&q));
}

#[test]
fn what_has_no_cuda_launcher_says_so() {
    let Some(dev) = cuda_or_skip("optimizer CUDA limits") else {
        return;
    };
    let p = randn(&[8], DType::F32, 1).to_device(dev).unwrap();
    let g = randn(&[8], DType::F32, 2).to_device(dev).unwrap();
    let mut upgd = Optimizer::new(vec![p.clone()], Upgd::default()).unwrap();
    match upgd.step_with(|_| Some(g.clone())) {
        Err(Error::NotImplementedOnDevice { op, .. }) => assert_eq!(op, "UPGD"),
        other => panic!("UPGD on CUDA: {other:?}"),
    }
    let l2 = Lion {
        kappa: Kappa::L2,
        ..Lion::default()
    };
    let mut lion = Optimizer::new(vec![p.clone()], l2).unwrap();
    assert!(matches!(
        lion.step_with(|_| Some(g.clone())),
        Err(Error::NotImplementedOnDevice { .. })
    ));
}
