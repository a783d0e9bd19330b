//! Views and copies: reshape, permute/transpose, narrow, broadcast_to, squeeze/unsqueeze, cat,
//! stack, contiguous copies of views, and dtype round trips. Each output is multiplied by a
//! non-contiguous-aware op afterwards where that exercises strided reads.

use super::common::*;
use autograd::gradcheck::GradcheckOptions;
use autograd::{DType, Tensor};

pub fn cases() -> Vec<Case> {
    let mut r = rng(6);
    let x = randn(&[2, 3, 4], &mut r);
    let y = randn(&[2, 5, 4], &mut r);
    let v = randn(&[3, 1], &mut r);
    let s = randn(&[3, 4], &mut r);
    vec![
        Case::new("reshape", vec![x.clone()], |x| x[0].reshape(&[6, 4])),
        Case::new("reshape_infer", vec![x.clone()], |x| x[0].reshape_infer(&[4, -1])),
        Case::new("flatten of transposed", vec![x.clone()], |x| {
            x[0].transpose(0, 2)?.flatten()
        }),
        Case::new("permute", vec![x.clone()], |x| x[0].permute(&[2, 0, 1])),
        Case::new("permute then exp", vec![x.clone()], |x| {
            x[0].permute(&[1, 2, 0])?.exp()
        }),
        Case::new("transpose", vec![x.clone()], |x| x[0].transpose(-1, 0)),
        Case::new("t", vec![s.clone()], |x| x[0].t()),
        Case::new("narrow", vec![x.clone()], |x| x[0].narrow(1, 1, 2)),
        Case::new("narrow twice", vec![x.clone()], |x| {
            x[0].narrow(2, 1, 3)?.narrow(0, 1, 1)
        }),
        Case::new("broadcast_to", vec![v.clone()], |x| x[0].broadcast_to(&[2, 3, 5])),
        Case::new("expand then mul", vec![v.clone(), s.clone()], |x| {
            x[0].expand(&[3, 4])?.mul(&x[1])
        }),
        Case::new("unsqueeze", vec![s.clone()], |x| x[0].unsqueeze(1)),
        Case::new("squeeze", vec![v.clone()], |x| x[0].squeeze(-1)),
        Case::new("cat axis 1", vec![x.clone(), y.clone()], |x| {
            Tensor::cat(&[&x[0], &x[1]], 1)
        }),
        Case::new("cat axis -1 three", vec![s.clone(), v.clone(), s.clone()], |x| {
            Tensor::cat(&[&x[0], &x[1], &x[2]], -1)
        }),
        Case::new("stack", vec![s.clone(), s.exp().unwrap()], |x| {
            Tensor::stack(&[&x[0], &x[1]], 1)
        }),
        Case::new("contiguous of view", vec![x.clone()], |x| {
            x[0].transpose(0, 1)?.contiguous()
        }),
        // Through f32 the function is piecewise constant at f64 resolution, so h must be far
        // above f32's spacing: with h = 1e-2 the rounding error of a difference is ~1e-7·|x|/h
        // ≈ 1e-5 relative, and the cast is linear, so there is no truncation error.
        Case::new("to_dtype f32 round trip", vec![s], |x| {
            x[0].to_dtype(DType::F32)?.to_dtype(DType::F64)
        })
        .with_opts(GradcheckOptions {
            eps: 1e-2,
            rtol: 1e-4,
            atol: 1e-6,
        }),
    ]
}
