//! Softmax and log-softmax over several axes, layer norm and RMS norm with and without
//! parameters, cross-entropy and MSE with every reduction. Shapes include size-1 dims, rows of
//! length 1, rank-0 and 1-D inputs, and non-contiguous (transposed) inputs. Plus the fully
//! masked (-inf) row checks, which are exact-value tests rather than finite differences.

use super::common::*;
use autograd::{DType, Device, Reduction, Tensor};

/// (shape, axis): last, first, middle and negative axes, a size-1 axis (rows of length 1), a
/// size-1 dim beside the axis, a 1-D and a rank-0 input.
const SOFTMAX_CONFIGS: [(&[usize], isize); 8] = [
    (&[5], 0),
    (&[3, 4], -1),
    (&[3, 4], 0),
    (&[2, 3, 4], 1),
    (&[2, 3, 4], -3),
    (&[2, 1, 4], 1),
    (&[4, 1], -1),
    (&[], 0),
];

/// (input shape, normalized_shape): one and two trailing dims, a single row, and rows of
/// length 1.
const NORM_CONFIGS: [(&[usize], &[usize]); 5] = [
    (&[4, 6], &[6]),
    (&[2, 3, 4], &[3, 4]),
    (&[2, 3, 4], &[4]),
    (&[5], &[5]),
    (&[3, 1], &[1]),
];

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

fn targets(values: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape, Device::Cpu).unwrap()
}

fn softmax_cases(cases: &mut Vec<Case>, r: &mut rand::rngs::StdRng) {
    for (shape, axis) in SOFTMAX_CONFIGS {
        let x = randn(shape, r).mul_scalar(2.0).unwrap();
        cases.push(Case::new(
            format!("softmax {shape:?} axis {axis}"),
            vec![x.clone()],
            move |x| x[0].softmax(axis),
        ));
        cases.push(Case::new(
            format!("log_softmax {shape:?} axis {axis}"),
            vec![x],
            move |x| x[0].log_softmax(axis),
        ));
    }
    let x = randn(&[4, 3], r);
    cases.push(Case::new("softmax of transposed view", vec![x.clone()], |x| {
        x[0].t()?.softmax(-1)
    }));
    cases.push(Case::new("log_softmax then free fn", vec![x.clone()], |x| {
        autograd::softmax(&autograd::log_softmax(&x[0], 0)?, 1)
    }));
    // Masked entries (and one fully masked row) set to -inf inside the function: their outputs
    // are exactly 0 whatever x is, so the finite-difference derivative there is 0, and the
    // analytic one must be 0 too, not NaN.
    let x = randn(&[3, 4], r);
    let mask = Tensor::from_vec(vec![0u8, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0], &[3, 4], Device::Cpu).unwrap();
    cases.push(Case::new(
        "softmax with masked entries and a masked row",
        vec![x],
        move |x| x[0].masked_fill(&mask, f64::NEG_INFINITY)?.softmax(-1),
    ));
}

fn norm_cases(cases: &mut Vec<Case>, r: &mut rand::rngs::StdRng) {
    for (shape, norm) in NORM_CONFIGS {
        let x = randn(shape, r).mul_scalar(1.5).unwrap().add_scalar(0.3).unwrap();
        let w = uniform(norm, 0.5, 1.5, r);
        let b = randn(norm, r);
        let ns = norm.to_vec();
        cases.push(Case::new(
            format!("layer_norm {shape:?} over {norm:?}"),
            vec![x.clone()],
            {
                let ns = ns.clone();
                move |x| x[0].layer_norm(&ns, None, None, 1e-5)
            },
        ));
        cases.push(Case::new(
            format!("layer_norm {shape:?} over {norm:?} weight bias"),
            vec![x.clone(), w.clone(), b.clone()],
            {
                let ns = ns.clone();
                move |x| x[0].layer_norm(&ns, Some(&x[1]), Some(&x[2]), 1e-5)
            },
        ));
        cases.push(Case::new(
            format!("layer_norm {shape:?} over {norm:?} weight"),
            vec![x.clone(), w.clone()],
            {
                let ns = ns.clone();
                move |x| x[0].layer_norm(&ns, Some(&x[1]), None, 1e-5)
            },
        ));
        // A constant (untracked) weight with a tracked bias: the gradients must land on the
        // right inputs when a parameter in the middle is absent from the tape.
        cases.push(Case::new(
            format!("layer_norm {shape:?} over {norm:?} const weight, bias"),
            vec![x.clone(), b.clone()],
            {
                let ns = ns.clone();
                move |x| x[0].layer_norm(&ns, Some(&w), Some(&x[1]), 1e-5)
            },
        ));
        let w = uniform(norm, 0.5, 1.5, r);
        cases.push(Case::new(
            format!("rms_norm {shape:?} over {norm:?}"),
            vec![x.clone()],
            {
                let ns = ns.clone();
                move |x| x[0].rms_norm(&ns, None, 1e-5)
            },
        ));
        cases.push(Case::new(
            format!("rms_norm {shape:?} over {norm:?} weight"),
            vec![x, w],
            move |x| autograd::rms_norm(&x[0], &ns, Some(&x[1]), 1e-5),
        ));
    }
    let x = randn(&[5, 3], r);
    let w = uniform(&[5], 0.5, 1.5, r);
    let b = randn(&[5], r);
    cases.push(Case::new(
        "layer_norm of transposed view",
        vec![x.clone(), w.clone(), b],
        |x| autograd::layer_norm(&x[0].t()?, &[5], Some(&x[1]), Some(&x[2]), 1e-5),
    ));
    cases.push(Case::new("rms_norm of transposed view", vec![x, w], |x| {
        x[0].t()?.rms_norm(&[5], Some(&x[1]), 1e-5)
    }));
}

fn loss_cases(cases: &mut Vec<Case>, r: &mut rand::rngs::StdRng) {
    // (logits shape, targets, targets shape): a batch, one row, one class (loss and gradient
    // 0), and 1-D logits with a rank-0 target.
    let configs: [(&[usize], &[i64], &[usize]); 4] = [
        (&[4, 5], &[1, 0, 4, 1], &[4]),
        (&[1, 3], &[2], &[1]),
        (&[3, 1], &[0, 0, 0], &[3]),
        (&[5], &[3], &[]),
    ];
    for (shape, t, t_shape) in configs {
        for reduction in REDUCTIONS {
            let logits = randn(shape, r).mul_scalar(2.0).unwrap();
            cases.push(Case::new(
                format!("cross_entropy {shape:?} {reduction:?}"),
                vec![logits, targets(t, t_shape)],
                move |x| x[0].cross_entropy(&x[1], reduction),
            ));
        }
    }
    let logits = randn(&[5, 3], r);
    cases.push(Case::new(
        "cross_entropy of transposed view",
        vec![logits.clone(), targets(&[0, 2, 1], &[3])],
        |x| autograd::cross_entropy(&x[0].t()?, &x[1], Reduction::Sum),
    ));
    // Large logits: the stable log-sum-exp keeps the loss and gradient finite and accurate.
    cases.push(Case::new(
        "cross_entropy_mean of large logits",
        vec![logits.mul_scalar(40.0).unwrap(), targets(&[1, 1, 0, 2, 0], &[5])],
        |x| autograd::cross_entropy_mean(&x[0], &x[1]),
    ));
    for shape in [&[][..], &[3, 4], &[2, 1, 3]] {
        for reduction in REDUCTIONS {
            let p = randn(shape, r);
            let q = randn(shape, r);
            cases.push(Case::new(
                format!("mse_loss {shape:?} {reduction:?}"),
                vec![p, q],
                move |x| x[0].mse_loss(&x[1], reduction),
            ));
        }
    }
    let p = randn(&[3, 2], r);
    let q = randn(&[2, 3], r);
    cases.push(Case::new("mse_loss of transposed view", vec![p, q], |x| {
        autograd::mse_loss(&x[0].t()?, &x[1], Reduction::Mean)
    }));
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut r = rng(8);
    softmax_cases(&mut cases, &mut r);
    norm_cases(&mut cases, &mut r);
    loss_cases(&mut cases, &mut r);
    cases
}

/// A row (and, along axis 0, a column) that is entirely -inf: softmax exactly 0 and
/// log-softmax exactly -inf there, gradients exactly 0 there, and no NaN anywhere.
#[test]
fn fully_masked_softmax_row_is_zero_not_nan() {
    let ninf = f64::NEG_INFINITY;
    #[rustfmt::skip]
    let values = vec![
        0.3, -1.2, ninf, 0.8,
        ninf, ninf, ninf, ninf,
        1.1, 0.0, ninf, -0.4,
    ];
    let x = Tensor::from_vec(values, &[3, 4], Device::Cpu)
        .unwrap()
        .set_requires_grad(true);
    let seed = randn(&[3, 4], &mut rng(9));
    // (axis, the masked elements: row 1 along the last axis, column 2 along axis 0)
    let configs: [(isize, Vec<usize>); 2] = [(-1, vec![4, 5, 6, 7]), (0, vec![2, 6, 10])];
    for (axis, masked) in configs {
        for log in [false, true] {
            let y = if log { x.log_softmax(axis) } else { x.softmax(axis) }.unwrap();
            let yv = y.to_vec::<f64>().unwrap();
            let g = y.backward_with(&seed).unwrap();
            let gv = g.get(&x).unwrap().to_vec::<f64>().unwrap();
            let what = format!("{} axis {axis}", if log { "log_softmax" } else { "softmax" });
            for &i in &masked {
                let expect = if log { ninf } else { 0.0 };
                assert_eq!(yv[i], expect, "{what}: output {i}");
                assert_eq!(gv[i], 0.0, "{what}: gradient {i}");
            }
            assert!(yv.iter().all(|v| !v.is_nan()), "{what}: NaN in output {yv:?}");
            assert!(
                gv.iter().all(|v| v.is_finite()),
                "{what}: non-finite gradient {gv:?}"
            );
        }
    }
}

/// Cross-entropy on a fully masked row: loss +inf (the target has probability 0), and a zero,
/// not NaN, gradient for that row while the other rows' gradients are unaffected.
#[test]
fn cross_entropy_on_a_masked_row() {
    let ninf = f64::NEG_INFINITY;
    let x = Tensor::from_vec(vec![0.5, -0.5, 1.0, ninf, ninf, ninf], &[2, 3], Device::Cpu)
        .unwrap()
        .set_requires_grad(true);
    let t = targets(&[2, 1], &[2]);
    let loss = x.cross_entropy(&t, Reduction::None).unwrap();
    let lv = loss.to_vec::<f64>().unwrap();
    assert!(lv[0].is_finite() && lv[1] == f64::INFINITY, "{lv:?}");
    let ones = Tensor::ones(&[2], DType::F64, Device::Cpu).unwrap();
    let g = loss.backward_with(&ones).unwrap();
    let gv = g.get(&x).unwrap().to_vec::<f64>().unwrap();
    assert_eq!(&gv[3..], &[0.0; 3]);
    let p = x.detach().softmax(-1).unwrap().to_vec::<f64>().unwrap();
    // softmax − onehot, to rounding (the fused backward computes exp(x − lse), softmax divides).
    let expect = [p[0], p[1], p[2] - 1.0];
    assert!(
        gv[..3].iter().zip(expect).all(|(a, b)| (a - b).abs() < 1e-15),
        "{gv:?} vs {expect:?}"
    );
}
