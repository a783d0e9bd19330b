//! The row-wise families on CUDA: max, min, logsumexp and var over any axes (row kernels and
//! the middle-axis kernels), softmax and log_softmax along any axis, layer_norm and rms_norm
//! with and without their parameters. Rows of 1 to 1024 elements run in warp mode, longer
//! ones in block mode; both are covered, with row counts that are not multiples of 8.

use super::cases::{run_all, Case};
use super::common::*;
use autograd::Tensor;

/// Row lengths: 1, around a warp, the warp/block switch (1024 | 1025), and long block rows.
const ROW_LENS: [usize; 7] = [1, 31, 33, 1000, 1024, 1025, 4097];
/// Row counts, none a multiple of the 8 warps per block.
const ROW_COUNTS: [usize; 3] = [1, 3, 33];

/// Relative floor for a result built from a sum of `n` terms: the two devices add in different
/// orders, and such a sum's rounding error grows like sqrt(n)·eps (eps = 6e-8), with a factor 3
/// of headroom (the rule of the existing sum parity tests).
fn sum_floor(n: usize) -> f64 {
    3.0 * 6e-8 * (n as f64).sqrt()
}

/// Shapes `[rows, n]` and one very long row set.
fn row_shapes() -> Vec<Vec<usize>> {
    let mut v: Vec<Vec<usize>> = ROW_COUNTS
        .iter()
        .flat_map(|&r| ROW_LENS.iter().map(move |&n| vec![r, n]))
        .collect();
    v.push(vec![2, 70_001]);
    v
}

pub fn reduction_cases() -> Vec<Case> {
    let mut r = rng(21);
    let mut cases = Vec::new();
    // (shape, axes): the last axis (row kernels), a middle block (middle-axis kernels for
    // max/min; moved innermost for logsumexp/var), the first axis, several axes, all axes.
    let mut layouts: Vec<(Vec<usize>, Vec<isize>)> = row_shapes().into_iter().map(|s| (s, vec![1])).collect();
    layouts.extend([
        (vec![5, 33, 7], vec![1]),
        (vec![3, 1000, 2], vec![1]),
        (vec![1025, 3], vec![0]),
        (vec![2, 3, 4, 5], vec![1, 2]),
        (vec![4, 5, 6], vec![0, 2]),
        (vec![31, 33], vec![]),
    ]);
    for (shape, axes) in layouts {
        let n: usize = if axes.is_empty() {
            shape.iter().product()
        } else {
            axes.iter().map(|&a| shape[a as usize]).product()
        };
        let x = random(&shape, Domain::Normal, &mut r);
        let tag = format!("{shape:?} axes {axes:?}");
        // A max or min selects an element (no rounding); its backward is g divided by the
        // number of tied maxima, one correctly rounded division on both devices: exact.
        let a = axes.clone();
        cases.push(Case::new(
            format!("max {tag}"),
            vec![x.clone()],
            move |t| t[0].max(&a, false),
            0.0,
            0.0,
        ));
        let a = axes.clone();
        cases.push(Case::new(
            format!("min {tag}"),
            vec![x.clone()],
            move |t| t[0].min(&a, true),
            0.0,
            0.0,
        ));
        let a = axes.clone();
        cases.push(Case::new(
            format!("logsumexp {tag}"),
            vec![x.clone()],
            move |t| t[0].logsumexp(&a, false),
            F32_RTOL,
            sum_floor(n),
        ));
        if n > 1 {
            let a = axes.clone();
            cases.push(Case::new(
                format!("var {tag}"),
                vec![x],
                move |t| t[0].var(&a, false, 1),
                F32_RTOL,
                sum_floor(n),
            ));
        }
    }
    // Ties: the gradient is shared among them; a row of -inf gives logsumexp -inf, gradient 0.
    let ties = Tensor::from_vec(
        vec![1.0f32, 3.0, 3.0, -1.0, 2.0, 2.0, 2.0, 2.0],
        &[2, 4],
        autograd::Device::Cpu,
    )
    .expect("tensor");
    cases.push(Case::new(
        "max ties",
        vec![ties],
        |t| t[0].max(&[1], false),
        0.0,
        0.0,
    ));
    let inf = f32::NEG_INFINITY;
    let masked = Tensor::from_vec(
        vec![inf, inf, inf, 0.5, -1.0, inf],
        &[2, 3],
        autograd::Device::Cpu,
    )
    .expect("tensor");
    cases.push(Case::new(
        "logsumexp -inf row",
        vec![masked],
        |t| t[0].logsumexp(&[1], false),
        F32_RTOL,
        1e-6,
    ));
    cases
}

pub fn softmax_cases() -> Vec<Case> {
    let mut r = rng(22);
    let mut cases = Vec::new();
    let mut layouts: Vec<(Vec<usize>, isize)> = row_shapes().into_iter().map(|s| (s, -1)).collect();
    layouts.extend([(vec![33, 31], 0), (vec![3, 1025, 2], 1), (vec![], 0)]);
    for (shape, axis) in layouts {
        let n = if shape.is_empty() {
            1
        } else {
            shape[axis.rem_euclid(shape.len() as isize) as usize]
        };
        let x = random(&shape, Domain::Normal, &mut r);
        // Each output is exp(x − m)/Σ: an exp (2 ulp) over a sum of n terms added in another
        // order (sum_floor); the backward y·(g − Σ g·y) cancels to about ulp(g)·y, which the
        // floor (relative to the largest |dx|) covers.
        cases.push(Case::new(
            format!("softmax {shape:?} axis {axis}"),
            vec![x.clone()],
            move |t| t[0].softmax(axis),
            F32_RTOL,
            sum_floor(n).max(1e-6),
        ));
        cases.push(Case::new(
            format!("log_softmax {shape:?} axis {axis}"),
            vec![x],
            move |t| t[0].log_softmax(axis),
            F32_RTOL,
            sum_floor(n).max(1e-6),
        ));
    }
    // A fully masked row gives softmax 0 and log_softmax -inf, with zero gradient, not NaN.
    let inf = f32::NEG_INFINITY;
    let masked = Tensor::from_vec(
        vec![inf, inf, inf, inf, 0.5, -1.0, inf, 2.0],
        &[2, 4],
        autograd::Device::Cpu,
    )
    .expect("tensor");
    cases.push(Case::new(
        "softmax masked row",
        vec![masked.clone()],
        |t| t[0].softmax(-1),
        F32_RTOL,
        1e-6,
    ));
    cases.push(Case::new(
        "log_softmax masked row",
        vec![masked],
        |t| t[0].log_softmax(-1),
        F32_RTOL,
        1e-6,
    ));
    cases
}

pub fn norm_cases() -> Vec<Case> {
    let mut r = rng(23);
    let mut cases = Vec::new();
    for shape in row_shapes() {
        let (rows, n) = (shape[0], shape[1]);
        let x = random(&shape, Domain::Normal, &mut r);
        let w = random(&[n], Domain::Normal, &mut r);
        let b = random(&[n], Domain::Normal, &mut r);
        // Statistics are sums over n (sum_floor(n)); dγ and dβ are sums over the rows.
        let floor = sum_floor(n.max(rows)).max(1e-6);
        cases.push(Case::new(
            format!("layer_norm {shape:?}"),
            vec![x.clone(), w.clone(), b],
            move |t| t[0].layer_norm(&[n], Some(&t[1]), Some(&t[2]), 1e-5),
            F32_RTOL,
            floor,
        ));
        cases.push(Case::new(
            format!("layer_norm no affine {shape:?}"),
            vec![x.clone()],
            move |t| t[0].layer_norm(&[n], None, None, 1e-5),
            F32_RTOL,
            floor,
        ));
        cases.push(Case::new(
            format!("rms_norm {shape:?}"),
            vec![x.clone(), w],
            move |t| t[0].rms_norm(&[n], Some(&t[1]), 1e-6),
            F32_RTOL,
            floor,
        ));
        cases.push(Case::new(
            format!("rms_norm no weight {shape:?}"),
            vec![x],
            move |t| t[0].rms_norm(&[n], None, 1e-6),
            F32_RTOL,
            floor,
        ));
    }
    // Two normalized dims, on a transposed (non-contiguous) input.
    let x = random(&[6, 5, 7], Domain::Normal, &mut r);
    let w = random(&[5, 6], Domain::Normal, &mut r);
    cases.push(Case::new(
        "layer_norm 2 dims, transposed input",
        vec![x, w],
        |t| {
            t[0].permute(&[2, 1, 0])?
                .layer_norm(&[5, 6], Some(&t[1]), None, 1e-5)
        },
        F32_RTOL,
        1e-6,
    ));
    cases
}

#[test]
fn reductions_max_min_logsumexp_var() {
    run_all("reductions_max_min_logsumexp_var", reduction_cases());
}

#[test]
fn softmax_and_log_softmax() {
    run_all("softmax_and_log_softmax", softmax_cases());
}

#[test]
fn layer_norm_and_rms_norm() {
    run_all("layer_norm_and_rms_norm", norm_cases());
}
