//! Masked softmax / log-softmax over several axes and mask encodings, and the fused
//! cross-entropy over every option that changes the gradient (mask encoding × mask value,
//! reduction, label smoothing, ignore_index, z-loss, focal γ, and all of them at once). Plus the
//! exact-value tests: masked gradients are +0.0 bit for bit, the default options reproduce
//! `cross_entropy` bit for bit, a 256k-class row, and every bad input's error.

use super::common::*;
use autograd::{ClassMask, CrossEntropyOptions, DType, Device, Error, Reduction, Tensor};

const HARD: f64 = f64::NEG_INFINITY;

fn targets(values: &[i64]) -> Tensor {
    Tensor::from_vec(values.to_vec(), &[values.len()], Device::Cpu).unwrap()
}

/// Four rows of six classes, in each encoding (the same allowed sets, every row with at least
/// two classes so the targets below are allowed): (name, mask).
fn masks() -> Vec<(&'static str, ClassMask)> {
    let lists: [&[usize]; 4] = [&[0, 1, 4], &[2, 3], &[0, 1, 2, 3, 4, 5], &[1, 5]];
    let mut dense = vec![false; 24];
    for (r, l) in lists.iter().enumerate() {
        for &c in l.iter() {
            dense[r * 6 + c] = true;
        }
    }
    vec![
        ("none", ClassMask::All),
        ("dense", ClassMask::dense(&dense, 4, 6)),
        ("bitset", ClassMask::from_class_lists(6, &lists)),
        ("ranges", ClassMask::ranges(&[(1, 3), (2, 4), (0, 6), (1, 6)])),
        ("broadcast range", ClassMask::ranges(&[(1, 5)])),
    ]
}

/// Allowed targets for each mask of [`masks`], row by row.
fn allowed_targets(name: &str) -> [i64; 4] {
    match name {
        "ranges" => [1, 3, 5, 2],
        "broadcast range" => [1, 4, 2, 3],
        _ => [4, 2, 0, 5],
    }
}

/// A bool tensor, true at the masked entries of a `[rows, cols]` output.
fn masked_entries(mask: &ClassMask, rows: usize, cols: usize) -> Tensor {
    let v: Vec<u8> = (0..rows * cols)
        .map(|i| !mask.allowed(i / cols, i % cols) as u8)
        .collect();
    Tensor::from_vec(v, &[rows, cols], Device::Cpu).unwrap()
}

/// A hard-masked log-softmax is -inf at masked entries, and finite differences of a sum that
/// holds -inf are NaN; replace those constant entries by 0 (`masked_fill` passes no gradient
/// there, so the check still covers every allowed entry's full derivative).
fn hard_to_zero(y: Tensor, masked: &Tensor, m: f64) -> autograd::Result<Tensor> {
    if m == HARD {
        y.masked_fill(masked, 0.0)
    } else {
        Ok(y)
    }
}

fn softmax_cases(cases: &mut Vec<Case>, r: &mut rand::rngs::StdRng) {
    for (name, mask) in masks() {
        for m in [HARD, -1.5, 2.0] {
            let x = randn(&[4, 6], r).mul_scalar(2.0).unwrap();
            let mk = mask.clone();
            cases.push(Case::new(
                format!("masked_softmax {name} m={m}"),
                vec![x.clone()],
                move |x| x[0].masked_softmax(-1, &mk, m),
            ));
            let (mk, out) = (mask.clone(), masked_entries(&mask, 4, 6));
            cases.push(Case::new(
                format!("masked_log_softmax {name} m={m}"),
                vec![x],
                move |x| hard_to_zero(autograd::masked_log_softmax(&x[0], 1, &mk, m)?, &out, m),
            ));
        }
    }
    // Axis 0 of a [6, 4] tensor: the rows of the mask are the columns, as for the transpose.
    let x = randn(&[6, 4], r);
    let mask = ClassMask::ranges(&[(0, 2), (1, 6), (3, 6), (0, 6)]);
    cases.push(Case::new("masked_softmax axis 0", vec![x.clone()], {
        let mask = mask.clone();
        move |x| x[0].masked_softmax(0, &mask, -0.5)
    }));
    let out = masked_entries(&mask, 4, 6);
    cases.push(Case::new(
        "masked_log_softmax of a transposed view",
        vec![x],
        move |x| hard_to_zero(x[0].t()?.masked_log_softmax(-1, &mask, HARD)?, &out, HARD),
    ));
    // A fully masked row: hard gives 0 (log: -inf), finite gives uniform; gradient 0 either way.
    let x = randn(&[2, 3], r);
    let mask = ClassMask::ranges(&[(0, 0), (0, 3)]);
    for m in [HARD, 0.3] {
        let mk = mask.clone();
        cases.push(Case::new(
            format!("masked_softmax with an all-masked row m={m}"),
            vec![x.clone()],
            move |x| x[0].masked_softmax(-1, &mk, m),
        ));
    }
}

fn xent_cases(cases: &mut Vec<Case>, r: &mut rand::rngs::StdRng) {
    let reductions = [Reduction::None, Reduction::Mean, Reduction::Sum];
    for (name, mask) in masks() {
        let t = allowed_targets(name);
        for m in [HARD, -2.0] {
            for (i, reduction) in reductions.into_iter().enumerate() {
                let opts = CrossEntropyOptions {
                    mask: mask.clone(),
                    mask_value: m,
                    reduction,
                    // One extra option per reduction, so each option meets every mask.
                    label_smoothing: if i == 0 { 0.1 } else { 0.0 },
                    z_loss: if i == 1 { 1e-2 } else { 0.0 },
                    focal_gamma: if i == 2 { 2.0 } else { 0.0 },
                    ignore_index: None,
                };
                let x = randn(&[4, 6], r).mul_scalar(1.5).unwrap();
                cases.push(Case::new(
                    format!("cross_entropy_with {name} m={m} {reduction:?} {opts:?}"),
                    vec![x, targets(&t)],
                    move |x| Ok(x[0].cross_entropy_with(&x[1], &opts)?.loss),
                ));
            }
        }
    }
    // Each option alone on unmasked logits, then all at once with ignore_index.
    let singles = [
        CrossEntropyOptions::default(),
        CrossEntropyOptions {
            label_smoothing: 0.3,
            ..Default::default()
        },
        CrossEntropyOptions {
            z_loss: 0.05,
            reduction: Reduction::Sum,
            ..Default::default()
        },
        CrossEntropyOptions {
            focal_gamma: 0.5,
            reduction: Reduction::None,
            ..Default::default()
        },
        CrossEntropyOptions {
            focal_gamma: 1.0,
            ..Default::default()
        },
        CrossEntropyOptions {
            ignore_index: Some(-100),
            ..Default::default()
        },
        CrossEntropyOptions {
            mask: ClassMask::from_class_lists(6, &[[0usize, 2, 3, 5]]),
            mask_value: 0.5,
            reduction: Reduction::Mean,
            label_smoothing: 0.2,
            ignore_index: Some(-100),
            z_loss: 1e-3,
            focal_gamma: 1.5,
        },
    ];
    for opts in singles {
        let x = randn(&[5, 6], r).mul_scalar(2.0).unwrap();
        cases.push(Case::new(
            format!("cross_entropy_with {opts:?}"),
            vec![x, targets(&[0, -100, 3, 5, 2]).where_ignored(&opts)],
            move |x| Ok(autograd::cross_entropy_with(&x[0], &x[1], &opts)?.loss),
        ));
    }
    // 1-D logits with a rank-0 target, and large logits (the streaming lse stays exact).
    let x = randn(&[7], r);
    let t0 = Tensor::from_vec(vec![3i64], &[], Device::Cpu).unwrap();
    let opts = CrossEntropyOptions {
        z_loss: 0.1,
        label_smoothing: 0.1,
        ..Default::default()
    };
    cases.push(Case::new("cross_entropy_with 1-D", vec![x, t0], move |x| {
        Ok(x[0].cross_entropy_with(&x[1], &opts)?.loss)
    }));
    let x = randn(&[3, 5], r).mul_scalar(40.0).unwrap();
    let opts = CrossEntropyOptions {
        mask: ClassMask::ranges(&[(0, 4)]),
        ..Default::default()
    };
    cases.push(Case::new(
        "cross_entropy_with large logits",
        vec![x, targets(&[0, 3, 1])],
        move |x| Ok(x[0].cross_entropy_with(&x[1], &opts)?.loss),
    ));
}

/// Without ignore_index the placeholder target -100 of the option table becomes class 1.
trait WhereIgnored {
    fn where_ignored(self, opts: &CrossEntropyOptions) -> Tensor;
}

impl WhereIgnored for Tensor {
    fn where_ignored(self, opts: &CrossEntropyOptions) -> Tensor {
        if opts.ignore_index.is_some() {
            return self;
        }
        let v: Vec<i64> = self
            .to_vec::<i64>()
            .unwrap()
            .iter()
            .map(|&t| if t == -100 { 1 } else { t })
            .collect();
        targets(&v)
    }
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut r = rng(52);
    softmax_cases(&mut cases, &mut r);
    xent_cases(&mut cases, &mut r);
    cases
}

fn grad_of(x: &Tensor, f: impl Fn(&Tensor) -> autograd::Result<Tensor>) -> Vec<f64> {
    let x = x.detach().set_requires_grad(true);
    let y = f(&x).unwrap();
    let seed = Tensor::ones(y.shape(), y.dtype(), Device::Cpu).unwrap();
    let g = y.backward_with(&seed).unwrap();
    g.get(&x).unwrap().to_vec_f64().unwrap()
}

/// [369]'s exact claim: masked logits get gradient +0.0 bit for bit, for m = -inf and finite m,
/// in f32 and f64, through every op, with smoothing and z-loss on, even with NaN and inf in the
/// masked slots.
#[test]
fn masked_gradients_are_exactly_zero() {
    let mut r = rng(369);
    let mut x = randn(&[3, 10], &mut r).to_vec::<f64>().unwrap();
    x[0] = f64::NAN;
    x[19] = f64::INFINITY;
    let mask = ClassMask::ranges(&[(2, 8), (1, 9), (4, 6)]);
    for dtype in [DType::F32, DType::F64] {
        let x = Tensor::from_vec(x.clone(), &[3, 10], Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        for m in [HARD, -3.0, 1.0] {
            let opts = CrossEntropyOptions {
                mask: mask.clone(),
                mask_value: m,
                label_smoothing: 0.1,
                z_loss: 1e-4,
                focal_gamma: 2.0,
                ..Default::default()
            };
            let t = targets(&[2, 8, 5]);
            let grads = [
                grad_of(&x, |x| Ok(x.cross_entropy_with(&t, &opts)?.loss)),
                grad_of(&x, |x| x.masked_softmax(-1, &mask, m)?.mul_scalar(1.7)),
                grad_of(&x, |x| x.masked_log_softmax(-1, &mask, m)?.mul_scalar(0.3)),
            ];
            for (k, g) in grads.iter().enumerate() {
                for (i, v) in g.iter().enumerate() {
                    if mask.allowed(i / 10, i % 10) {
                        assert!(v.is_finite(), "{dtype} m={m} op {k}: allowed entry {i} is {v}");
                    } else {
                        assert_eq!(v.to_bits(), 0, "{dtype} m={m} op {k}: masked entry {i} is {v}");
                    }
                }
            }
        }
    }
}

/// With default options the fused op is `cross_entropy`: same loss and gradient, bit for bit
/// (both run `kernels::masked_xent::cpu` with coefficients (1, 0, 1)).
#[test]
fn default_options_equal_cross_entropy_exactly() {
    let mut r = rng(1);
    for (dtype, shape) in [(DType::F64, [6, 9]), (DType::F32, [5, 3000])] {
        let x = randn(&shape, &mut r)
            .mul_scalar(3.0)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let t: Vec<i64> = (0..shape[0] as i64).map(|i| (i * 7) % shape[1] as i64).collect();
        let t = targets(&t);
        for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            let opts = CrossEntropyOptions {
                reduction,
                ..Default::default()
            };
            let fused = grad_of(&x, |x| Ok(x.cross_entropy_with(&t, &opts)?.loss));
            let plain = grad_of(&x, |x| x.cross_entropy(&t, reduction));
            assert_eq!(fused, plain, "{dtype} {reduction:?} gradient");
            let a = x
                .cross_entropy_with(&t, &opts)
                .unwrap()
                .loss
                .to_vec_f64()
                .unwrap();
            let b = x.cross_entropy(&t, reduction).unwrap().to_vec_f64().unwrap();
            assert_eq!(a, b, "{dtype} {reduction:?} loss");
        }
    }
}

/// A 256k-class vocabulary on the CPU: finite loss, lse ≥ max logit, gradient rows summing to 0.
#[test]
fn a_256k_class_row_works() {
    let c = 262_144;
    let mut r = rng(2);
    let x = randn(&[2, c], &mut r).to_dtype(DType::F32).unwrap();
    let opts = CrossEntropyOptions {
        mask: ClassMask::ranges(&[(0, 200_000)]),
        z_loss: 1e-4,
        reduction: Reduction::Sum,
        ..Default::default()
    };
    let t = targets(&[5, 199_999]);
    let out = x.cross_entropy_with(&t, &opts).unwrap();
    assert!(out.loss.item().unwrap().is_finite());
    let lse = out.lse.to_vec_f64().unwrap();
    assert!(lse.iter().all(|l| *l > 4.0 && *l < 20.0), "{lse:?}");
    let g = grad_of(&x, |x| Ok(x.cross_entropy_with(&t, &opts)?.loss));
    assert!(g[200_000..c].iter().all(|v| v.to_bits() == 0));
}

/// Every bad input the issue names: a clear error or the documented value.
#[test]
fn bad_inputs() {
    let x = Tensor::from_vec(vec![0.5, 1.0, -1.0, 2.0, 0.0, 0.3], &[2, 3], Device::Cpu).unwrap();
    let ranges = ClassMask::ranges(&[(0, 2), (1, 3)]);
    let err = |t: &[i64], o: CrossEntropyOptions| x.cross_entropy_with(&targets(t), &o).unwrap_err();
    let masked = CrossEntropyOptions {
        mask: ranges.clone(),
        ..Default::default()
    };
    // Masked target, hard and finite mask value: an error naming row and class.
    for m in [HARD, -1.0] {
        let e = err(
            &[0, 0],
            CrossEntropyOptions {
                mask_value: m,
                ..masked.clone()
            },
        );
        assert!(e.to_string().contains("row 1: target class 0 is masked"), "{e}");
    }
    // All-masked row.
    let none = CrossEntropyOptions {
        mask: ClassMask::ranges(&[(0, 3), (2, 2)]),
        ..Default::default()
    };
    let e = err(&[0, 1], none.clone());
    assert!(e.to_string().contains("every class of the row is masked"), "{e}");
    // ... which is fine when the row is ignored: loss 0 there, lse -inf reported.
    let ok = x
        .cross_entropy_with(
            &targets(&[0, -1]),
            &CrossEntropyOptions {
                ignore_index: Some(-1),
                reduction: Reduction::None,
                ..none
            },
        )
        .unwrap();
    assert_eq!(ok.loss.to_vec_f64().unwrap()[1], 0.0);
    assert_eq!(ok.lse.to_vec_f64().unwrap()[1], HARD);
    // Out of range.
    assert_eq!(
        err(&[0, 3], Default::default()),
        Error::IndexOutOfRange {
            op: "cross_entropy_with",
            index: 3,
            size: 3
        }
    );
    assert!(matches!(
        err(&[-100, 1], Default::default()),
        Error::IndexOutOfRange { index: -100, .. }
    ));
    // NaN / +inf at an allowed class; the same NaN in a masked slot is fine.
    for bad in [f64::NAN, f64::INFINITY] {
        let y = Tensor::from_vec(vec![0.5, 1.0, bad, 2.0, 0.0, 0.3], &[2, 3], Device::Cpu).unwrap();
        let e = y
            .cross_entropy_with(&targets(&[0, 1]), &Default::default())
            .unwrap_err();
        assert!(e.to_string().contains("row 0 has a NaN or +inf logit"), "{e}");
        assert!(y.cross_entropy_with(&targets(&[0, 1]), &masked).is_ok());
    }
    // Bad options and shapes.
    for o in [
        CrossEntropyOptions {
            mask_value: f64::NAN,
            ..Default::default()
        },
        CrossEntropyOptions {
            mask_value: f64::INFINITY,
            ..Default::default()
        },
        CrossEntropyOptions {
            label_smoothing: 1.0,
            ..Default::default()
        },
        CrossEntropyOptions {
            z_loss: -1.0,
            ..Default::default()
        },
        CrossEntropyOptions {
            focal_gamma: f64::NAN,
            ..Default::default()
        },
        CrossEntropyOptions {
            mask: ClassMask::ranges(&[(0, 1), (0, 1), (0, 1)]),
            ..Default::default()
        },
        CrossEntropyOptions {
            mask: ClassMask::ranges(&[(0, 4)]),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            err(&[0, 1], o),
            Error::InvalidArgument {
                op: "cross_entropy_with",
                ..
            }
        ));
    }
    assert!(matches!(
        x.masked_softmax(-1, &ClassMask::ranges(&[(0, 9)]), HARD),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        x.masked_softmax(2, &ClassMask::All, HARD),
        Err(Error::BadAxis { .. })
    ));
    // All rows ignored under Mean: 0, with zero gradient (PyTorch: NaN).
    let all_ignored = CrossEntropyOptions {
        ignore_index: Some(-100),
        ..Default::default()
    };
    let xt = x.set_requires_grad(true);
    let out = xt
        .cross_entropy_with(&targets(&[-100, -100]), &all_ignored)
        .unwrap();
    assert_eq!(out.loss.item().unwrap(), 0.0);
    let g = out.loss.backward().unwrap();
    assert!(g
        .get(&xt)
        .unwrap()
        .to_vec_f64()
        .unwrap()
        .iter()
        .all(|v| v.to_bits() == 0));
    // A bool tensor as a dense mask; wrong dtype is an error.
    let b = Tensor::from_vec(vec![1u8, 0, 1], &[3], Device::Cpu).unwrap();
    let m = autograd::class_mask(&b).unwrap();
    assert!(m.allowed(1, 2) && !m.allowed(0, 1));
    assert!(autograd::class_mask(&x).is_err());
}
