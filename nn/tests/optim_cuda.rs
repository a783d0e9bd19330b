//! CPU/CUDA parity of the fused optimizer steps: trajectories over several steps from the same
//! parameters and gradients must be **bit-identical**. `optim.cu` writes every f32 operation as
//! an explicit round-to-nearest intrinsic in the CPU reference's order (no FMA contraction,
//! IEEE sqrt and division), rounds bf16 parameters the same way, and draws stochastic-rounding
//! bits from the same Philox offsets, so AdamW, Lion (sign, Huber), Signum, signSGD, SGD and
//! UPGD without gating and noise leave no room for a tolerance. Where the device computes a
//! transcendental (UPGD's sigmoid `expf`, its Box–Muller `logf`/`cosf`) or sums in another
//! order (Lion's ℓ2 κ norm, f64 sums in a tree), each test states its tolerance and why.
//! Every optimizer step updates a group in one launch per dtype, so the groups here mix sizes
//! that are 1, not multiples of the 4-wide vector, and straddle 65536-element chunks. Also: a
//! checkpoint of CUDA state resumes bit-exactly, and what has no CUDA kernel is a clear error.
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
const SHAPES: &[&[usize]] = &[&[257, 300], &[7], &[1]];

/// One group of many tensors, one launch: sizes 1..5, around the 4-wide vector and the 256-thread
/// block (255, 256, 257, 1023 = 4·256 − 1, 1025), around the 65536-element chunk (65535, 65537),
/// and one of several chunks with a ragged tail (3 chunks + 5).
const MANY: &[&[usize]] = &[
    &[1],
    &[2],
    &[3],
    &[4],
    &[5],
    &[255],
    &[256],
    &[257],
    &[1023],
    &[5, 205],
    &[65535],
    &[65537],
    &[3, 65536 + 5],
    &[1],
];

/// How a CUDA trajectory must agree with the CPU's.
#[derive(Clone, Copy, Debug)]
enum Agree {
    Bits,
    /// `|cpu − cuda| <= ulps·ulp(|cpu|) + atol`, with ulp in the parameter's dtype.
    Within {
        ulps: f64,
        atol: f64,
    },
}

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

/// The distance between two values of `dtype` in units of the dtype's ulp at `|a|`, plus
/// whether they are within `ulps` ulps and `atol`.
fn within(a: f64, b: f64, dtype: DType, ulps: f64, atol: f64) -> bool {
    if a.to_bits() == b.to_bits() {
        return true;
    }
    let mantissa = if dtype == DType::BF16 { 7 } else { 23 };
    let exp = if a == 0.0 {
        -126
    } else {
        a.abs().log2().floor() as i32
    }
    .max(-126);
    let ulp = 2f64.powi(exp - mantissa);
    (a - b).abs() <= ulps * ulp + atol
}

fn assert_agree(name: &str, dtype: DType, i: usize, step: u64, cpu: &Tensor, gpu: &Tensor, agree: Agree) {
    match agree {
        Agree::Bits => assert_eq!(
            bits(cpu),
            bits(gpu),
            "{name} {dtype}: parameter {i} differs after step {step}"
        ),
        Agree::Within { ulps, atol } => {
            let (c, g) = (cpu.to_vec_f64().unwrap(), gpu.to_vec_f64().unwrap());
            for (j, (a, b)) in c.iter().zip(&g).enumerate() {
                assert!(
                    within(*a, *b, dtype, ulps, atol),
                    "{name} {dtype}: parameter {i}[{j}] after step {step}: CPU {a:e}, CUDA {b:e}"
                );
            }
        }
    }
}

/// `steps` steps of `hyper` on CPU copies and on CUDA copies of the same parameters with the
/// same gradient stream, asserting equal bits after each step.
fn trajectories<A: Algorithm>(name: &str, hyper: A, dtype: DType, rounding: bool, dev: Device, steps: u64) {
    trajectories_of(name, hyper, dtype, rounding, dev, steps, SHAPES, Agree::Bits);
}

/// [`trajectories`] over parameters of `shapes` (one group), agreeing as `agree` says.
#[allow(clippy::too_many_arguments)]
fn trajectories_of<A: Algorithm>(
    name: &str,
    hyper: A,
    dtype: DType,
    rounding: bool,
    dev: Device,
    steps: u64,
    shapes: &[&[usize]],
    agree: Agree,
) {
    let init: Vec<Tensor> = shapes
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
        let grads: Vec<Tensor> = shapes
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
            assert_agree(name, dtype, i, step + 1, c, g, agree);
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
fn many_tensors_of_awkward_sizes_in_one_launch_are_bit_identical() {
    let Some(dev) = cuda_or_skip("grouped launch CUDA parity") else {
        return;
    };
    let adamw = AdamW {
        lr: 1e-2,
        weight_decay: 0.1,
        ..AdamW::default()
    };
    let lion = Lion {
        lr: 1e-2,
        weight_decay: 0.1,
        ..Lion::default()
    };
    let sgd = Sgd {
        lr: 1e-2,
        momentum: 0.9,
        nesterov: true,
        ..Sgd::default()
    };
    // No gating and no noise: s = 1/(1 + exp(0)) = 1/2 exactly, so UPGD is exact too.
    let upgd = Upgd {
        lr: 1e-2,
        sigma: 0.0,
        gating: false,
        ..Upgd::default()
    };
    variants("AdamW (many)", &adamw, dev, 3, MANY, Agree::Bits);
    variants("Lion (many)", &lion, dev, 3, MANY, Agree::Bits);
    variants("SGD (many)", &sgd, dev, 3, MANY, Agree::Bits);
    variants("UPGD (many)", &upgd, dev, 3, MANY, Agree::Bits);
}

/// [`trajectories_of`] in f32, bf16, and bf16 with stochastic rounding.
fn variants<A: Algorithm>(name: &str, hyper: &A, dev: Device, steps: u64, shapes: &[&[usize]], agree: Agree) {
    for (dtype, rounding) in [(DType::F32, false), (DType::BF16, false), (DType::BF16, true)] {
        trajectories_of(name, hyper.clone(), dtype, rounding, dev, steps, shapes, agree);
    }
}

/// The tolerance of a trajectory whose device arithmetic may round one intermediate
/// differently from the CPU's each step: at most one rounding of the parameter flips to its
/// neighbour per step (`steps` ulps), plus `atol` for what a transcendental perturbs.
fn per_step(steps: u64, atol: f64) -> Agree {
    Agree::Within {
        ulps: steps as f64,
        atol,
    }
}

#[test]
fn upgd_trajectories_match_the_cpu() {
    let Some(dev) = cuda_or_skip("UPGD CUDA parity") else {
        return;
    };
    let steps = 4;
    // Exact: no gating (s = 1/2 without exp) and no noise; the global-max pass still runs.
    let exact = Upgd {
        lr: 1e-2,
        sigma: 0.0,
        gating: false,
        ..Upgd::default()
    };
    variants("UPGD exact", &exact, dev, steps, SHAPES, Agree::Bits);
    // Gating and noise: the device's expf (sigmoid) and logf/cosf (Box–Muller on the same Philox
    // words) are within 2 ulp of the CPU's libm, so s and ξ differ by ~2.4e-7 relative; that
    // enters p through lr_gate·(g + ξ)·Δs and lr_gate·σ·Δξ, below 1e-7 absolute here (lr_gate =
    // 2e-2, |g + ξ| < 6), and can flip the parameter's final rounding once per step. The
    // utility and so the global max depend on p, which carries the differences forward.
    let noisy = [
        (
            "UPGD",
            Upgd {
                lr: 1e-2,
                sigma: 0.1,
                ..Upgd::default()
            },
        ),
        (
            "UPGD non-protecting",
            Upgd {
                lr: 1e-2,
                sigma: 0.1,
                protect_gradient: false,
                ..Upgd::default()
            },
        ),
        (
            "UPGD noise only",
            Upgd {
                lr: 1e-2,
                sigma: 0.1,
                gating: false,
                ..Upgd::default()
            },
        ),
    ];
    // bf16: the same perturbation before a coarser rounding, so the same count of flips.
    for (name, hyper) in noisy {
        variants(
            name,
            &hyper,
            dev,
            steps,
            SHAPES,
            per_step(steps, 1e-7 * steps as f64),
        );
        trajectories_of(name, hyper, DType::F32, false, dev, 2, MANY, per_step(2, 2e-7));
    }
}

#[test]
fn upgd_global_max_spans_groups_and_devices() {
    let Some(dev) = cuda_or_skip("UPGD global max") else {
        return;
    };
    // The max runs over every UPGD tensor of the optimizer: two CUDA groups (one device
    // buffer of maxima), and CUDA plus CPU groups (maxima met on the host). Gating on, no noise:
    // only expf differs, so the tolerance is `upgd_trajectories_match_the_cpu`'s.
    let hyper = Upgd {
        lr: 1e-2,
        sigma: 0.0,
        ..Upgd::default()
    };
    // Fresh parameters each run (randn from fixed seeds), half in each group.
    let init = || -> Vec<Tensor> {
        MANY.iter()
            .enumerate()
            .map(|(i, s)| randn(s, DType::F32, 7 + i as u64))
            .collect()
    };
    let half = MANY.len() / 2;
    for second in [dev, Device::Cpu] {
        let cpu_params = init();
        let params: Vec<Tensor> = init()
            .iter()
            .enumerate()
            .map(|(i, p)| p.to_device(if i < half { dev } else { second }).unwrap())
            .collect();
        let mut cpu_opt = Optimizer::new(cpu_params[..half].to_vec(), hyper.clone()).unwrap();
        cpu_opt
            .add_group(cpu_params[half..].to_vec(), hyper.clone())
            .unwrap();
        let mut opt = Optimizer::new(params[..half].to_vec(), hyper.clone()).unwrap();
        opt.add_group(params[half..].to_vec(), hyper.clone()).unwrap();
        for step in 0..3u64 {
            let grads: Vec<Tensor> = MANY
                .iter()
                .enumerate()
                .map(|(i, s)| randn(s, DType::F32, 300 + step * 20 + i as u64))
                .collect();
            let grad_for = |ps: &[Tensor], p: &Tensor| {
                let i = ps.iter().position(|q| q.shares_storage_with(p))?;
                Some(grads[i].to_device(ps[i].device()).unwrap())
            };
            cpu_opt.step_with(|p| grad_for(&cpu_params, p)).unwrap();
            opt.step_with(|p| grad_for(&params, p)).unwrap();
            for (i, (c, g)) in cpu_params.iter().zip(&params).enumerate() {
                let tol = per_step(step + 1, 1e-7);
                assert_agree("UPGD global max", DType::F32, i, step + 1, c, g, tol);
            }
        }
    }
}

#[test]
fn lion_l2_kappa_trajectories_match_the_cpu() {
    let Some(dev) = cuda_or_skip("Lion l2 kappa CUDA parity") else {
        return;
    };
    // The per-tensor Σc² is f64 on both sides (each c² exact in f64) but summed in another
    // order (chunks of 16384 in order on the CPU, a block tree per 65536-element chunk on the
    // device): relative differences ~1e-16, so 1/‖c‖ rounded to f32 almost always agrees; where
    // it lands on the other side of a rounding boundary, u = c/‖c‖ moves by 1 ulp and the
    // parameter's rounding can flip once per step.
    let steps = 4;
    let cases = [
        (
            "Lion-l2",
            Lion {
                lr: 1e-2,
                weight_decay: 0.1,
                kappa: Kappa::L2,
                ..Lion::default()
            },
        ),
        (
            "signSGD-l2",
            Lion {
                kappa: Kappa::L2,
                ..Lion::sign_sgd(1e-2)
            },
        ),
    ];
    for (name, hyper) in cases {
        variants(name, &hyper, dev, steps, SHAPES, per_step(steps, 0.0));
        variants(name, &hyper, dev, 2, MANY, per_step(2, 0.0));
    }
}

/// The global-norm clip on CUDA parameters, f32 and bf16. The norm is summed in f32 on the
/// device (f64 on the CPU), so the two scales s = 1/‖g‖ differ by the norms' relative difference
/// r (asserted <= 1e-5; a few f32 roundings over 77k terms). Clipped, every |s·g_i| <= 1, so
/// the two SGD updates lr·s·g_i differ by at most lr·r per step: the tolerance accumulates
/// lr·r (with the measured r) plus one rounding flip per step (`per_step`'s ulps).
#[test]
fn clip_grad_norm_on_cuda_matches_the_cpu() {
    let Some(dev) = cuda_or_skip("clip_grad_norm parity") else {
        return;
    };
    const LR: f64 = 0.1;
    let steps = 4;
    for dtype in [DType::F32, DType::BF16] {
        let mut drift = 0.0;
        let init: Vec<Tensor> = SHAPES
            .iter()
            .enumerate()
            .map(|(i, s)| randn(s, dtype, 40 + i as u64))
            .collect();
        let mut runs = Vec::new();
        for device in [Device::Cpu, dev] {
            let params: Vec<Tensor> = init.iter().map(|p| p.to_device(device).unwrap()).collect();
            let mut opt = Optimizer::new(
                params.clone(),
                Sgd {
                    lr: 0.1,
                    ..Sgd::default()
                },
            )
            .unwrap();
            opt.set_clip_grad_norm(Some(1.0)).unwrap();
            runs.push((params, opt));
        }
        for step in 0..steps {
            let grads: Vec<Tensor> = SHAPES
                .iter()
                .enumerate()
                .map(|(i, s)| randn(s, dtype, 500 + step * 10 + i as u64))
                .collect();
            let mut norms = Vec::new();
            for (params, opt) in runs.iter_mut() {
                let device = params[0].device();
                let g: Vec<Tensor> = grads.iter().map(|g| g.to_device(device).unwrap()).collect();
                let report = opt
                    .step_with(|p| {
                        params
                            .iter()
                            .position(|q| q.shares_storage_with(p))
                            .map(|i| g[i].clone())
                    })
                    .unwrap_or_else(|e| panic!("clipped SGD {dtype} on {device}: {e}"));
                norms.push(report.grad_norm.expect("clipping reports the norm"));
            }
            assert!(norms[0] > 1.0, "the clip must be active: norm {}", norms[0]);
            assert!(
                (norms[0] - norms[1]).abs() <= 1e-5 * norms[0],
                "{dtype}: global norm CPU {} vs CUDA {}",
                norms[0],
                norms[1]
            );
            drift += LR * (norms[0] - norms[1]).abs() / norms[0];
            for (i, (c, g)) in runs[0].0.iter().zip(&runs[1].0).enumerate() {
                assert_agree("clipped SGD", dtype, i, step + 1, c, g, per_step(step + 1, drift));
            }
        }
    }
}

#[test]
fn what_has_no_cuda_kernel_says_so() {
    let Some(dev) = cuda_or_skip("optimizer CUDA limits") else {
        return;
    };
    // bf16 parameters with f32 gradients: the kernels read gradients in the parameter's dtype.
    let p = randn(&[8], DType::BF16, 1).to_device(dev).unwrap();
    let g = randn(&[8], DType::F32, 2).to_device(dev).unwrap();
    for (name, result) in [
        (
            "AdamW",
            Optimizer::new(vec![p.clone()], AdamW::default())
                .unwrap()
                .step_with(|_| Some(g.clone())),
        ),
        (
            "UPGD",
            Optimizer::new(vec![p.clone()], Upgd::default())
                .unwrap()
                .step_with(|_| Some(g.clone())),
        ),
    ] {
        match result {
            Err(Error::NotImplementedOnDevice { op, .. }) => assert_eq!(op, name),
            other => panic!("{name} with bf16 params and f32 grads on CUDA: {other:?}"),
        }
    }
    // f64 parameters: no f64 kernels, refused when the group is built.
    let p64 = randn(&[8], DType::F64, 3).to_device(dev).unwrap();
    assert!(matches!(
        Optimizer::new(vec![p64], Lion::default()),
        Err(Error::NotImplementedOnDevice { .. })
    ));
}
