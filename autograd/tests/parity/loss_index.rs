//! Losses (cross_entropy, mse_loss with every reduction), indexing (index_select, embedding,
//! gather, scatter_add, with repeated indices) and dropout on CUDA, plus the error values a bad
//! index or target gives on the device.

use super::cases::{run_all, Case};
use super::common::*;
use autograd::{Device, Reduction, Tensor};
use rand::RngExt;

/// i64 indices in `[0, size)` (repeats likely), as a CPU tensor of `shape`.
fn indices(shape: &[usize], size: usize, seed: u64) -> Tensor {
    let mut r = rng(seed);
    let n = shape.iter().product();
    let v: Vec<i64> = (0..n).map(|_| r.random_range(0..size as i64)).collect();
    Tensor::from_vec(v, shape, Device::Cpu).expect("indices")
}

fn sum_floor(n: usize) -> f64 {
    3.0 * 6e-8 * (n as f64).sqrt()
}

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Sum, Reduction::Mean];

pub fn loss_cases() -> Vec<Case> {
    let mut r = rng(31);
    let mut cases = Vec::new();
    for (rows, classes) in [
        (1, 1),
        (3, 31),
        (33, 33),
        (31, 1000),
        (5, 1025),
        (3, 4097),
        (2, 70_001),
    ] {
        let x = random(&[rows, classes], Domain::Normal, &mut r);
        let t = indices(&[rows], classes, rows as u64 * 7 + classes as u64);
        for red in REDUCTIONS {
            // lse is a sum over the classes; a sum or mean adds the rows too.
            cases.push(Case::new(
                format!("cross_entropy [{rows}, {classes}] {red:?}"),
                vec![x.clone(), t.clone()],
                move |v| v[0].cross_entropy(&v[1], red),
                F32_RTOL,
                sum_floor(classes * rows).max(1e-6),
            ));
        }
    }
    // 1-D logits with a rank-0 target.
    let x = random(&[33], Domain::Normal, &mut r);
    let t = Tensor::from_vec(vec![5i64], &[], Device::Cpu).expect("target");
    cases.push(Case::new(
        "cross_entropy [33] rank-0 target",
        vec![x, t],
        |v| v[0].cross_entropy(&v[1], Reduction::Mean),
        F32_RTOL,
        1e-6,
    ));
    for shape in SIZES {
        let (p, q) = (
            random(shape, Domain::Normal, &mut r),
            random(shape, Domain::Normal, &mut r),
        );
        let n: usize = shape.iter().product();
        for red in REDUCTIONS {
            cases.push(Case::new(
                format!("mse_loss {shape:?} {red:?}"),
                vec![p.clone(), q.clone()],
                move |v| v[0].mse_loss(&v[1], red),
                F32_RTOL,
                sum_floor(n).max(1e-6),
            ));
        }
    }
    cases
}

/// Indexing only moves values (forward exact); index_select's backward adds in the CPU's order
/// (exact), gather's adds repeated indices with atomics in any order (a few adds of O(1)
/// values: 1e-6 of the largest gradient).
pub fn index_cases() -> Vec<Case> {
    let mut r = rng(32);
    let mut cases = Vec::new();
    for (shape, axis, n) in [
        (vec![1], 0, 1),
        (vec![33, 31], 0, 100),
        (vec![33, 31], 1, 7),
        (vec![4, 1000, 3], 1, 33),
        (vec![5, 4097], 1, 31),
        (vec![1000, 64], 0, 4097),
    ] {
        let x = random(&shape, Domain::Normal, &mut r);
        let ix = indices(&[n], shape[axis], n as u64);
        cases.push(Case::new(
            format!("index_select {shape:?} axis {axis} n {n}"),
            vec![x, ix],
            move |v| v[0].index_select(axis as isize, &v[1]),
            0.0,
            0.0,
        ));
    }
    let w = random(&[1000, 33], Domain::Normal, &mut r);
    let ids = indices(&[31, 33], 1000, 5);
    cases.push(Case::new(
        "embedding [31, 33] ids into [1000, 33]",
        vec![ids, w],
        |v| Tensor::embedding(&v[0], &v[1]),
        0.0,
        0.0,
    ));
    for (shape, axis, ishape) in [
        (vec![33, 31], 0usize, vec![100, 31]),
        (vec![33, 31], 1, vec![33, 5]),
        (vec![4, 7, 1025], 2, vec![3, 7, 2000]),
        (vec![1], 0, vec![1]),
    ] {
        let x = random(&shape, Domain::Normal, &mut r);
        let ix = indices(&ishape, shape[axis], 9);
        cases.push(Case::new(
            format!("gather {shape:?} axis {axis} index {ishape:?}"),
            vec![x.clone(), ix.clone()],
            move |v| v[0].gather(axis as isize, &v[1]),
            0.0,
            1e-6,
        ));
        let src = random(&ishape, Domain::Normal, &mut r);
        // The forward adds repeated indices with atomics too.
        cases.push(Case::new(
            format!("scatter_add {shape:?} axis {axis} index {ishape:?}"),
            vec![x, ix, src],
            move |v| v[0].scatter_add(axis as isize, &v[1], &v[2]),
            F32_RTOL,
            1e-6,
        ));
    }
    cases
}

/// Dropout is exact: the mask is the same integer function of (seed, offset, i) on both
/// devices and a kept value is one multiply by the same scale.
pub fn dropout_cases() -> Vec<Case> {
    let mut r = rng(33);
    let mut cases = Vec::new();
    for shape in SIZES {
        let x = random(shape, Domain::Normal, &mut r);
        for (p, seed, offset) in [(0.1, 1u64, 0u64), (0.5, 42, 17), (0.0, 3, 0), (1.0, 3, 0)] {
            cases.push(Case::new(
                format!("dropout {shape:?} p {p} seed {seed} offset {offset}"),
                vec![x.clone()],
                move |v| v[0].dropout(p, seed, offset, true),
                0.0,
                0.0,
            ));
        }
    }
    // A view that starts one element in: unaligned, so the kernel's scalar path runs.
    let x = random(&[4097], Domain::Normal, &mut r);
    cases.push(Case::new(
        "dropout unaligned view",
        vec![x],
        |v| {
            v[0].narrow(0, 1, 4093)?
                .dropout(0.3, u64::MAX, u64::MAX - 2, true)
        },
        0.0,
        0.0,
    ));
    cases
}

#[test]
fn losses_cross_entropy_and_mse() {
    run_all("losses_cross_entropy_and_mse", loss_cases());
}

#[test]
fn indexing_select_embedding_gather_scatter() {
    run_all("indexing_select_embedding_gather_scatter", index_cases());
}

#[test]
fn dropout_matches_the_cpu_bit_for_bit() {
    run_all("dropout_matches_the_cpu_bit_for_bit", dropout_cases());
}

/// A bad index or target on the device is the same error value as on the CPU (op, index,
/// size), never a panic or a silent 0.
#[test]
fn bad_indices_and_targets_are_errors_on_the_device() {
    let Some(dev) = cuda_or_skip("bad_indices_and_targets_are_errors_on_the_device") else {
        return;
    };
    let up = |t: &Tensor| t.to_device(dev).expect("upload");
    let x = random(&[4, 5], Domain::Normal, &mut rng(34));
    let bad = Tensor::from_vec(vec![1i64, 7, -1, 9], &[4], Device::Cpu).expect("index");
    type IndexOp = Box<dyn Fn(&Tensor, &Tensor) -> autograd::Result<Tensor>>;
    let cases: [(&str, IndexOp); 3] = [
        ("index_select", Box::new(|x, i| x.index_select(1, i))),
        ("gather", Box::new(|x, i| x.gather(1, &i.reshape(&[4, 1])?))),
        (
            "cross_entropy",
            Box::new(|x, i| x.cross_entropy(i, Reduction::Mean)),
        ),
    ];
    for (name, f) in cases {
        let cpu = f(&x, &bad).expect_err(name);
        let gpu = f(&up(&x), &up(&bad)).expect_err(name);
        assert_eq!(cpu, gpu, "{name}");
        assert!(
            matches!(
                gpu,
                autograd::Error::IndexOutOfRange {
                    index: 7,
                    size: 5,
                    ..
                }
            ),
            "{gpu}"
        );
    }
    let src = random(&[4, 1], Domain::Normal, &mut rng(35));
    let ix = bad.reshape(&[4, 1]).expect("reshape");
    let cpu = x.scatter_add(1, &ix, &src).expect_err("scatter_add");
    let gpu = up(&x)
        .scatter_add(1, &up(&ix), &up(&src))
        .expect_err("scatter_add");
    assert_eq!(cpu, gpu);
}
