//! The optimizer API: bad input is an error that changes nothing, checkpoints resume bit for
//! bit, groups / clip / schedules / accumulation behave as documented, and UPGD reduces to SGDW.

use autograd::{DType, Device, Error, Tensor};
use nn::optim::{AdamW, Algorithm, Kappa, Lion, Optimizer, Sgd, Upgd, WeightDecay};
use nn::schedule::{DecayShape, Schedule};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::randn(shape, DType::F32, Device::Cpu, &mut rng)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// A linear least-squares model `y ≈ x Wᵀ + b` and data for it.
struct Problem {
    x: Tensor,
    y: Tensor,
}

impl Problem {
    fn new() -> Problem {
        Problem {
            x: randn(&[16, 4], DType::F32, 1),
            y: randn(&[16, 3], DType::F32, 2),
        }
    }

    /// Gradients of the mean squared error at `params = [W, b]`, computed in f32 on detached
    /// copies so that bf16 and f64 parameters work too.
    fn grads(&self, params: &[Tensor]) -> Vec<Tensor> {
        let leaves: Vec<Tensor> = params
            .iter()
            .map(|p| p.to_dtype(DType::F32).unwrap().detach().set_requires_grad(true))
            .collect();
        let pred = self
            .x
            .matmul(&leaves[0].t().unwrap())
            .unwrap()
            .add(&leaves[1])
            .unwrap();
        let loss = pred
            .sub(&self.y)
            .unwrap()
            .pow_scalar(2.0)
            .unwrap()
            .mean_all()
            .unwrap();
        let g = loss.backward().unwrap();
        leaves
            .iter()
            .zip(params)
            .map(|(l, p)| {
                let g = g.get(l).unwrap().clone();
                if p.dtype() == DType::F64 {
                    g.to_dtype(DType::F64).unwrap()
                } else {
                    g
                }
            })
            .collect()
    }

    fn step<A: Algorithm>(&self, opt: &mut Optimizer<A>, params: &[Tensor]) {
        let grads = self.grads(params);
        opt.step_with(|p| {
            params
                .iter()
                .position(|q| q.shares_storage_with(p))
                .map(|i| grads[i].clone())
        })
        .unwrap();
    }
}

fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec_f64().unwrap().iter().map(|v| v.to_bits()).collect()
}

fn params(dtype: DType) -> Vec<Tensor> {
    vec![randn(&[3, 4], dtype, 3), randn(&[3], dtype, 4)]
}

/// Two groups (the bias without decay), the given extras, `steps` steps.
fn build<A: Algorithm>(hyper: &A, params: &[Tensor], setup: &dyn Fn(&mut Optimizer<A>)) -> Optimizer<A> {
    let mut opt = Optimizer::new(vec![params[0].clone()], hyper.clone()).unwrap();
    let mut bias = hyper.clone();
    bias.set_lr(hyper.lr() * 0.5);
    opt.add_group(vec![params[1].clone()], bias).unwrap();
    setup(&mut opt);
    opt
}

/// Run 12 steps straight, or 7 steps, a checkpoint (state + parameter values), a fresh
/// optimizer and fresh parameters restored from it, and 5 more: identical bits.
fn assert_resume_bit_exact<A: Algorithm>(hyper: A, dtype: DType, setup: &dyn Fn(&mut Optimizer<A>)) {
    let problem = Problem::new();
    let straight = params(dtype);
    let mut opt = build(&hyper, &straight, setup);
    for _ in 0..12 {
        problem.step(&mut opt, &straight);
    }
    let first = params(dtype);
    let mut opt1 = build(&hyper, &first, setup);
    for _ in 0..7 {
        problem.step(&mut opt1, &first);
    }
    let dir = std::env::temp_dir().join(format!("nn-optim-resume-{}-{}", A::KIND, std::process::id()));
    opt1.save(&dir).unwrap();
    let saved: Vec<Vec<f64>> = first.iter().map(|p| p.to_vec_f64().unwrap()).collect();
    drop((opt1, first));
    let resumed: Vec<Tensor> = saved
        .into_iter()
        .zip(params(dtype))
        .map(|(v, p)| {
            Tensor::from_vec(v, p.shape(), Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
        })
        .collect();
    let mut opt2 = build(&hyper, &resumed, setup);
    opt2.load(&dir).unwrap();
    std::fs::remove_file(&dir).unwrap();
    for _ in 0..5 {
        problem.step(&mut opt2, &resumed);
    }
    assert_eq!(opt2.steps_taken(), 12);
    for (a, b) in straight.iter().zip(&resumed) {
        assert_eq!(
            bits(a),
            bits(b),
            "{} {dtype}: parameters differ after resume",
            A::KIND
        );
        let (ta, sa) = opt.state_of(a).unwrap();
        let (tb, sb) = opt2.state_of(b).unwrap();
        assert_eq!(ta, tb);
        for (x, y) in sa.iter().zip(sb) {
            assert_eq!(bits(x), bits(y), "{}: state differs after resume", A::KIND);
        }
    }
}

#[test]
fn resume_is_bit_exact_for_every_optimizer() {
    let wsd = Schedule::WarmupStableDecay {
        warmup: 3,
        total: 12,
        decay: 4,
        final_value: 0.0,
        shape: DecayShape::OneMinusSqrt,
    };
    let with_schedule_and_clip = |opt: &mut Optimizer<AdamW>| {
        opt.set_schedule(Some(wsd.clone())).unwrap();
        opt.set_clip_grad_norm(Some(0.5)).unwrap();
    };
    let paper = AdamW {
        lr: 0.05,
        decay_mode: WeightDecay::Paper,
        ..AdamW::default()
    };
    assert_resume_bit_exact(paper, DType::F32, &with_schedule_and_clip);
    let rounding = |opt: &mut Optimizer<Lion>| {
        opt.set_stochastic_rounding(true);
        opt.set_seed(11);
    };
    let lion = Lion {
        lr: 0.01,
        weight_decay: 0.3,
        kappa: Kappa::Huber { delta: 0.1 },
        ..Lion::default()
    };
    assert_resume_bit_exact(lion, DType::BF16, &rounding);
    let noisy = |opt: &mut Optimizer<Upgd>| opt.set_seed(5);
    assert_resume_bit_exact(
        Upgd {
            lr: 0.05,
            sigma: 0.01,
            beta_utility: 0.9,
            ..Upgd::default()
        },
        DType::F32,
        &noisy,
    );
    let nesterov = Sgd {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-3,
        ..Sgd::default()
    };
    assert_resume_bit_exact(nesterov, DType::F64, &|_| {});
}

fn invalid_op(e: Error) -> &'static str {
    match e {
        Error::InvalidArgument { op, .. } => op,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn bad_hyperparameters_are_errors_naming_the_optimizer() {
    let p = || vec![randn(&[2], DType::F32, 0)];
    let adamw = |h: AdamW| Optimizer::new(p(), h).map(drop);
    assert_eq!(
        invalid_op(
            adamw(AdamW {
                lr: -1e-3,
                ..AdamW::default()
            })
            .unwrap_err()
        ),
        "AdamW"
    );
    assert_eq!(
        invalid_op(
            adamw(AdamW {
                betas: (1.0, 0.999),
                ..AdamW::default()
            })
            .unwrap_err()
        ),
        "AdamW"
    );
    assert_eq!(
        invalid_op(
            adamw(AdamW {
                betas: (0.9, -0.1),
                ..AdamW::default()
            })
            .unwrap_err()
        ),
        "AdamW"
    );
    assert_eq!(
        invalid_op(
            adamw(AdamW {
                eps: 0.0,
                ..AdamW::default()
            })
            .unwrap_err()
        ),
        "AdamW"
    );
    assert_eq!(
        invalid_op(
            adamw(AdamW {
                lr: f64::NAN,
                ..AdamW::default()
            })
            .unwrap_err()
        ),
        "AdamW"
    );
    let lion = Optimizer::new(
        p(),
        Lion {
            betas: (0.9, 1.5),
            ..Lion::default()
        },
    )
    .unwrap_err();
    assert_eq!(invalid_op(lion), "Lion");
    let signum = Optimizer::new(
        p(),
        Lion {
            lr: -1.0,
            ..Lion::signum(0.1, 0.9)
        },
    )
    .unwrap_err();
    assert_eq!(invalid_op(signum), "Signum");
    let sgd = Optimizer::new(
        p(),
        Sgd {
            nesterov: true,
            ..Sgd::default()
        },
    )
    .unwrap_err();
    assert_eq!(invalid_op(sgd), "SGD");
    assert!(Optimizer::new(
        p(),
        Sgd {
            momentum: 1.0,
            ..Sgd::default()
        }
    )
    .is_err());
    assert!(Optimizer::new(
        p(),
        Upgd {
            sigma: -1.0,
            ..Upgd::default()
        }
    )
    .is_err());
    assert!(Optimizer::new(
        p(),
        Upgd {
            beta_utility: 1.0,
            ..Upgd::default()
        }
    )
    .is_err());
    let mut opt = Optimizer::new(p(), Sgd::default()).unwrap();
    assert!(opt.set_clip_grad_norm(Some(0.0)).is_err());
    assert!(opt
        .set_schedule(Some(Schedule::Cosine {
            warmup: 9,
            total: 3,
            final_value: 0.0
        }))
        .is_err());
    // A hyperparameter made invalid between steps is caught by the next step.
    let w = opt.groups()[0].params[0].clone();
    let before = bits(&w);
    opt.hyper_mut(0).unwrap().lr = -0.1;
    let g = Tensor::ones(&[2], DType::F32, Device::Cpu).unwrap();
    assert_eq!(invalid_op(opt.step_with(|_| Some(g.clone())).unwrap_err()), "SGD");
    assert_eq!((bits(&w), opt.steps_taken()), (before, 0));
}

#[test]
fn bad_parameters_and_gradients_are_errors_that_change_nothing() {
    let ints = Tensor::from_vec(vec![1i64, 2], &[2], Device::Cpu).unwrap();
    assert!(matches!(
        Optimizer::new(vec![ints], Sgd::default()),
        Err(Error::UnsupportedDType { .. })
    ));
    let m = randn(&[2, 3], DType::F32, 0);
    assert!(
        Optimizer::new(vec![m.t().unwrap()], Sgd::default()).is_err(),
        "non-contiguous"
    );
    assert!(
        Optimizer::new(vec![m.clone(), m.clone()], Sgd::default()).is_err(),
        "shared storage"
    );

    let (a, b) = (randn(&[2, 3], DType::F32, 1), randn(&[3], DType::F32, 2));
    let mut opt = Optimizer::new(vec![a.clone(), b.clone()], AdamW::default()).unwrap();
    let before = (bits(&a), bits(&b));
    let good = Tensor::ones(&[2, 3], DType::F32, Device::Cpu).unwrap();
    let wrong_shape = Tensor::ones(&[3, 2], DType::F32, Device::Cpu).unwrap();
    let wrong_dtype = Tensor::ones(&[3], DType::F64, Device::Cpu).unwrap();
    // The first gradient is fine; the second is bad: nothing may be updated.
    let err = opt.step_with(|p| {
        Some(if p.shares_storage_with(&a) {
            good.clone()
        } else {
            wrong_shape.clone()
        })
    });
    assert!(
        matches!(err, Err(Error::ShapeMismatch { op: "AdamW", .. })),
        "{err:?}"
    );
    let err = opt.step_with(|p| {
        Some(if p.shares_storage_with(&a) {
            good.clone()
        } else {
            wrong_dtype.clone()
        })
    });
    assert!(
        matches!(err, Err(Error::DTypeMismatch { op: "AdamW", .. })),
        "{err:?}"
    );
    assert_eq!((bits(&a), bits(&b)), before);
    assert_eq!(opt.steps_taken(), 0);
    assert_eq!(opt.state_of(&a).unwrap().0, 0);
}

#[test]
fn checkpoint_mismatches_are_errors_that_change_nothing() {
    let problem = Problem::new();
    let ps = params(DType::F32);
    let mut opt = build(&AdamW::default(), &ps, &|_| {});
    problem.step(&mut opt, &ps);
    let bytes = opt.save_state().unwrap();
    // Same structure, other shapes: W is [4, 3] instead of [3, 4].
    let other = vec![randn(&[4, 3], DType::F32, 5), randn(&[3], DType::F32, 6)];
    let mut target = build(&AdamW::default(), &other, &|_| {});
    let err = target.load_state(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                op: "Optimizer::load_state",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(target.steps_taken(), 0);
    assert!(target.state_of(&other[1]).unwrap().1[0]
        .to_vec_f64()
        .unwrap()
        .iter()
        .all(|&v| v == 0.0));
    // Another algorithm, another group count, garbage.
    let mut lion = build(&Lion::default(), &params(DType::F32), &|_| {});
    assert!(lion.load_state(&bytes).unwrap_err().to_string().contains("AdamW"));
    let mut one_group = Optimizer::new(params(DType::F32), AdamW::default()).unwrap();
    assert!(one_group.load_state(&bytes).is_err());
    assert!(target.load_state(b"not a checkpoint").is_err());
    assert!(target.load("/nonexistent/dir/state.safetensors").is_err());
    // The original loads into a matching optimizer.
    let mut same = build(&AdamW::default(), &params(DType::F32), &|_| {});
    same.load_state(&bytes).unwrap();
    assert_eq!(same.steps_taken(), 1);
}

/// UPGD with no noise and no utility gating (ū ≡ ½, so 2·lr·(1 − ū) = lr) is SGDW, bit for bit,
/// under a schedule and with two groups.
#[test]
fn upgd_without_noise_or_gating_is_sgdw_bit_for_bit() {
    let problem = Problem::new();
    let sched = Schedule::LinearDecay {
        total: 20,
        final_value: 0.1,
    };
    let (pa, pb) = (params(DType::F32), params(DType::F32));
    let upgd = Upgd {
        lr: 0.05,
        weight_decay: 0.2,
        sigma: 0.0,
        gating: false,
        ..Upgd::default()
    };
    let mut a = build(&upgd, &pa, &|o| o.set_schedule(Some(sched.clone())).unwrap());
    let mut b = build(&Sgd::sgdw(0.05, 0.0, 0.2), &pb, &|o| {
        o.set_schedule(Some(sched.clone())).unwrap()
    });
    for _ in 0..20 {
        problem.step(&mut a, &pa);
        problem.step(&mut b, &pb);
    }
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(bits(x), bits(y));
    }
}

#[test]
fn clip_groups_schedule_and_skipping() {
    let (w, b) = (
        Tensor::zeros(&[2], DType::F64, Device::Cpu).unwrap(),
        Tensor::zeros(&[1], DType::F64, Device::Cpu).unwrap(),
    );
    let mut opt = Optimizer::new(
        vec![w.clone()],
        Sgd {
            lr: 1.0,
            ..Sgd::default()
        },
    )
    .unwrap();
    opt.add_group(
        vec![b.clone()],
        Sgd {
            lr: 0.5,
            ..Sgd::default()
        },
    )
    .unwrap();
    opt.set_clip_grad_norm(Some(1.0)).unwrap();
    opt.set_schedule(Some(Schedule::LinearDecay {
        total: 2,
        final_value: 0.0,
    }))
    .unwrap();
    let gw = Tensor::from_vec(vec![3.0f64, 4.0], &[2], Device::Cpu).unwrap();
    let gb = Tensor::from_vec(vec![0.0f64], &[1], Device::Cpu).unwrap();
    let report = opt
        .step_with(|p| {
            Some(if p.shares_storage_with(&w) {
                gw.clone()
            } else {
                gb.clone()
            })
        })
        .unwrap();
    assert_eq!(report.grad_norm, Some(5.0));
    let f = 1.0 / (5.0 + 1e-6);
    assert_eq!(report.grad_scale, f);
    assert_eq!(w.to_vec::<f64>().unwrap(), vec![-3.0 * f, -4.0 * f]);
    // Second step: schedule at t = 1 is 0.5; only w has a gradient; b keeps its step count.
    let report = opt
        .step_with(|p| p.shares_storage_with(&w).then(|| gw.clone()))
        .unwrap();
    assert_eq!((report.multiplier, report.updated), (0.5, 1));
    assert_eq!(w.to_vec::<f64>().unwrap()[0], -3.0 * f - 0.5 * 3.0 * f);
    assert_eq!(opt.state_of(&b).unwrap().0, 1);
    assert_eq!(opt.state_of(&w).unwrap().0, 2);
    // A NaN gradient with clipping on is an error before any update.
    let nan = Tensor::from_vec(vec![f64::NAN, 0.0], &[2], Device::Cpu).unwrap();
    let before = bits(&w);
    assert!(opt
        .step_with(|p| p.shares_storage_with(&w).then(|| nan.clone()))
        .is_err());
    assert_eq!(bits(&w), before);
}

#[test]
fn accumulate_then_step_is_the_step_of_the_summed_gradients() {
    let problem = Problem::new();
    let (pa, pb) = (params(DType::F32), params(DType::F32));
    // Leaves sharing storage with `pa`, so backward() reports gradients for them.
    let leaves: Vec<Tensor> = pa.iter().map(|p| p.set_requires_grad(true)).collect();
    let mut a = Optimizer::new(leaves.clone(), AdamW::default()).unwrap();
    let mut b = Optimizer::new(pb.clone(), AdamW::default()).unwrap();
    // Two micro-batches of the same data: the sum is twice the gradient.
    for _ in 0..2 {
        let pred = problem
            .x
            .matmul(&leaves[0].t().unwrap())
            .unwrap()
            .add(&leaves[1])
            .unwrap();
        let loss = pred
            .sub(&problem.y)
            .unwrap()
            .pow_scalar(2.0)
            .unwrap()
            .mean_all()
            .unwrap();
        a.accumulate(&loss.backward().unwrap()).unwrap();
    }
    a.step_accumulated().unwrap();
    let g = problem.grads(&pb);
    let doubled: Vec<Tensor> = g.iter().map(|g| g.mul_scalar(2.0).unwrap()).collect();
    b.step_with(|p| {
        pb.iter()
            .position(|q| q.shares_storage_with(p))
            .map(|i| doubled[i].clone())
    })
    .unwrap();
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(bits(x), bits(y));
    }
    a.zero_grad();
    let report = a.step_accumulated().unwrap();
    assert_eq!(report.updated, 0, "zero_grad dropped the buffers");
}

#[test]
fn stochastic_rounding_is_seeded() {
    let problem = Problem::new();
    let run = |seed: u64| {
        let ps = params(DType::BF16);
        let mut opt = build(
            &Sgd {
                lr: 1e-3,
                ..Sgd::default()
            },
            &ps,
            &|o| {
                o.set_stochastic_rounding(true);
                o.set_seed(seed);
            },
        );
        for _ in 0..3 {
            problem.step(&mut opt, &ps);
        }
        ps.iter().flat_map(bits).collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}
