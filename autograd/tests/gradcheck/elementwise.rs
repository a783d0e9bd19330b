//! Unary, binary, scalar, clamp and where/masked_fill cases over several shapes, including
//! broadcasting and size-1 dimensions.

use super::common::*;
use autograd::Tensor;
use kernels::elementwise::UnaryOp;

/// Shapes for unary ops: a scalar, a vector, size-1 dims, and a rank-3 block.
const UNARY_SHAPES: [&[usize]; 4] = [&[], &[7], &[3, 1, 4], &[2, 3, 5]];

/// Pairs that broadcast: equal, row vs matrix, column vs row, rank-0 vs anything, and
/// size-1 dims on both sides.
const BINARY_SHAPES: [(&[usize], &[usize]); 5] = [
    (&[3, 4], &[3, 4]),
    (&[2, 3, 4], &[4]),
    (&[3, 1], &[1, 5]),
    (&[], &[2, 3]),
    (&[2, 1, 3], &[4, 1]),
];

pub fn unary_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut r = rng(1);
    for op in UnaryOp::ALL {
        for shape in UNARY_SHAPES {
            // log/sqrt/rsqrt need positive inputs; abs/relu/sign are checked away from their kink
            // (random values land within h of 0 with probability ~1e-6).
            let x = match op {
                UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => uniform(shape, 0.2, 3.0, &mut r),
                _ => randn(shape, &mut r).mul_scalar(1.5).unwrap(),
            };
            let f = move |xs: &[Tensor]| match op {
                UnaryOp::Neg => xs[0].neg(),
                UnaryOp::Exp => xs[0].exp(),
                UnaryOp::Log => xs[0].log(),
                UnaryOp::Sqrt => xs[0].sqrt(),
                UnaryOp::Rsqrt => xs[0].rsqrt(),
                UnaryOp::Abs => xs[0].abs(),
                UnaryOp::Sign => xs[0].sign(),
                UnaryOp::Tanh => xs[0].tanh(),
                UnaryOp::Sigmoid => xs[0].sigmoid(),
                UnaryOp::Relu => xs[0].relu(),
                UnaryOp::GeluErf => xs[0].gelu(),
                UnaryOp::GeluTanh => xs[0].gelu_tanh(),
                UnaryOp::Silu => xs[0].silu(),
                UnaryOp::Softplus => xs[0].softplus(),
                UnaryOp::Erf => xs[0].erf(),
            };
            cases.push(Case::new(format!("{} {shape:?}", op.name()), vec![x], f));
        }
    }
    cases
}

pub fn binary_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut r = rng(2);
    for (sa, sb) in BINARY_SHAPES {
        let a = randn(sa, &mut r);
        let b = randn(sb, &mut r);
        // Divisors and pow bases kept away from 0.
        let pos_a = uniform(sa, 0.5, 2.0, &mut r);
        let pos_b = uniform(sb, 0.5, 2.0, &mut r);
        cases.push(Case::new(
            format!("add {sa:?} {sb:?}"),
            vec![a.clone(), b.clone()],
            |x| x[0].add(&x[1]),
        ));
        cases.push(Case::new(
            format!("sub {sa:?} {sb:?}"),
            vec![a.clone(), b.clone()],
            |x| x[0].sub(&x[1]),
        ));
        cases.push(Case::new(
            format!("mul {sa:?} {sb:?}"),
            vec![a.clone(), b.clone()],
            |x| x[0].mul(&x[1]),
        ));
        cases.push(Case::new(
            format!("div {sa:?} {sb:?}"),
            vec![a.clone(), pos_b.clone()],
            |x| x[0].div(&x[1]),
        ));
        cases.push(Case::new(
            format!("pow {sa:?} {sb:?}"),
            vec![pos_a, b.clone()],
            |x| x[0].pow(&x[1]),
        ));
        // The same tensor on both sides: gradients from both uses must add up.
        cases.push(Case::new(format!("mul self {sa:?}"), vec![a.clone()], |x| {
            x[0].mul(&x[0])
        }));
    }
    cases
}

pub fn scalar_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut r = rng(3);
    for shape in UNARY_SHAPES {
        let x = randn(shape, &mut r);
        let pos = uniform(shape, 0.3, 2.0, &mut r);
        cases.push(Case::new(format!("add_scalar {shape:?}"), vec![x.clone()], |x| {
            x[0].add_scalar(0.7)
        }));
        cases.push(Case::new(format!("sub_scalar {shape:?}"), vec![x.clone()], |x| {
            x[0].sub_scalar(0.7)
        }));
        cases.push(Case::new(format!("mul_scalar {shape:?}"), vec![x.clone()], |x| {
            x[0].mul_scalar(-1.3)
        }));
        cases.push(Case::new(format!("div_scalar {shape:?}"), vec![x.clone()], |x| {
            x[0].div_scalar(2.5)
        }));
        cases.push(Case::new(
            format!("pow_scalar 3 {shape:?}"),
            vec![x.clone()],
            |x| x[0].pow_scalar(3.0),
        ));
        cases.push(Case::new(format!("pow_scalar -1.5 {shape:?}"), vec![pos], |x| {
            x[0].pow_scalar(-1.5)
        }));
        cases.push(Case::new(format!("clamp {shape:?}"), vec![x.clone()], |x| {
            x[0].clamp(Some(-0.5), Some(0.8))
        }));
        cases.push(Case::new(format!("clamp min {shape:?}"), vec![x], |x| {
            x[0].clamp(Some(0.1), None)
        }));
    }
    cases
}

pub fn select_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut r = rng(4);
    for (sa, sb) in BINARY_SHAPES {
        let a = randn(sa, &mut r);
        let b = randn(sb, &mut r);
        let cond_src = randn(sa, &mut r);
        cases.push(Case::new(
            format!("where {sa:?} {sb:?}"),
            vec![cond_src.clone(), a.clone(), b],
            |x| {
                let cond = x[0].gt_scalar(0.0)?;
                autograd::Tensor::where_cond(&cond, &x[1], &x[2])
            },
        ));
        cases.push(Case::new(format!("masked_fill {sa:?}"), vec![cond_src, a], |x| {
            let mask = x[0].lt_scalar(0.2)?;
            x[1].masked_fill(&mask, -3.0)
        }));
    }
    cases
}
