//! Indexing ops (index_select, gather, scatter_add, embedding) and dropout: gradchecks over
//! several shapes and axes (negative axes, repeated indices, size-1 and empty selections),
//! forward values against PyTorch's documented examples, dropout's statistics and determinism,
//! and the error variant of each bad input.

use super::common::*;
use autograd::{DType, Device, Error, Tensor};

fn ids(values: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape, Device::Cpu).unwrap()
}

/// Deterministic indices in `0..size` for a tensor of `shape`, with repeats whenever there are
/// more positions than `size` (a stride coprime to most sizes spreads them out).
fn spread(shape: &[usize], size: usize) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<i64> = (0..n).map(|i| ((i * 7 + 3) % size) as i64).collect();
    ids(&v, shape)
}

/// Input shape, axis, index shape, src shape.
type ScatterCase = (&'static [usize], isize, &'static [usize], &'static [usize]);

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut r = rng(8);

    // (input shape, axis, indices): repeats, negative axes, size-1 axes, an empty selection.
    let selects: [(&[usize], isize, &[i64]); 7] = [
        (&[5], 0, &[3, 0, 3, 1]),
        (&[4, 3], 0, &[1, 1, 3]),
        (&[4, 3], -1, &[2, 0, 2, 2]),
        (&[2, 3, 4], 1, &[2, 2, 0]),
        (&[2, 1, 3], -2, &[0, 0, 0]),
        (&[3, 4, 1], 2, &[0]),
        (&[2, 3, 4], -1, &[]),
    ];
    for (shape, axis, idx) in selects {
        let x = randn(shape, &mut r);
        let i = ids(idx, &[idx.len()]);
        cases.push(Case::new(
            format!("index_select {shape:?} axis {axis} {idx:?}"),
            vec![x, i],
            move |x| x[0].index_select(axis, &x[1]),
        ));
    }
    let x = randn(&[4, 3], &mut r);
    cases.push(Case::new(
        "index_select scalar index",
        vec![x, ids(&[2], &[])],
        |x| x[0].index_select(0, &x[1]),
    ));

    // (input shape, axis, index shape): the index may be longer than the input along the axis
    // (repeats) and shorter on the other dimensions.
    let gathers: [(&[usize], isize, &[usize]); 6] = [
        (&[3, 4], 1, &[3, 2]),
        (&[3, 4], 0, &[5, 4]),
        (&[2, 3, 4], -1, &[2, 2, 6]),
        (&[2, 3, 4], 1, &[1, 3, 2]),
        (&[4, 1, 3], -2, &[4, 2, 3]),
        (&[6], -1, &[9]),
    ];
    for (shape, axis, ishape) in gathers {
        let x = randn(shape, &mut r);
        let size = shape[axis.rem_euclid(shape.len() as isize) as usize];
        let i = spread(ishape, size);
        cases.push(Case::new(
            format!("gather {shape:?} axis {axis} index {ishape:?}"),
            vec![x, i],
            move |x| x[0].gather(axis, &x[1]),
        ));
    }

    // (input shape, axis, index shape, src shape): src may be larger than the index.
    let scatters: [ScatterCase; 6] = [
        (&[3, 5], 0, &[2, 5], &[2, 5]),
        (&[3, 4], -1, &[3, 6], &[3, 6]),
        (&[4, 3], 0, &[2, 2], &[3, 3]),
        (&[2, 3, 4], 1, &[2, 5, 4], &[2, 5, 4]),
        (&[1, 4], -2, &[3, 4], &[3, 4]),
        (&[5], 0, &[8], &[10]),
    ];
    for (shape, axis, ishape, sshape) in scatters {
        let x = randn(shape, &mut r);
        let s = randn(sshape, &mut r);
        let size = shape[axis.rem_euclid(shape.len() as isize) as usize];
        let i = spread(ishape, size);
        cases.push(Case::new(
            format!("scatter_add {shape:?} axis {axis} index {ishape:?} src {sshape:?}"),
            vec![x, i, s],
            move |x| x[0].scatter_add(axis, &x[1], &x[2]),
        ));
    }

    // (vocabulary and dim, ids shape): repeated ids, a scalar id, a one-row table.
    let embeddings: [([usize; 2], &[usize]); 4] = [
        ([5, 3], &[4]),
        ([5, 3], &[2, 3]),
        ([6, 2], &[]),
        ([1, 2], &[3, 1]),
    ];
    for ([v, d], ishape) in embeddings {
        let w = randn(&[v, d], &mut r);
        let i = spread(ishape, v);
        cases.push(Case::new(
            format!("embedding [{v}, {d}] ids {ishape:?}"),
            vec![i, w],
            |x| autograd::embedding(&x[0], &x[1]),
        ));
    }

    // Dropout is linear in x for a fixed mask, and the mask is fixed by (seed, offset), so the
    // finite differences see the same mask as the backward.
    for (k, shape) in [&[][..], &[7], &[3, 1, 4], &[2, 3, 5]].into_iter().enumerate() {
        let x = randn(shape, &mut r);
        cases.push(Case::new(format!("dropout 0.3 {shape:?}"), vec![x], move |x| {
            x[0].dropout(0.3, 1234, k as u64, true)
        }));
    }
    let x = randn(&[4, 5], &mut r);
    // The mask applied to x times x: wrong if forward and backward masks differed.
    cases.push(Case::new("dropout then mul by input", vec![x.clone()], |x| {
        x[0].dropout(0.5, 7, 3, true)?.mul(&x[0])
    }));
    cases.push(Case::new("dropout of a transposed view", vec![x.clone()], |x| {
        x[0].t()?.dropout(0.4, 9, 0, true)
    }));
    cases.push(Case::new("dropout p 0", vec![x.clone()], |x| {
        x[0].dropout(0.0, 1, 0, true)
    }));
    cases.push(Case::new("dropout p 1", vec![x.clone()], |x| {
        x[0].dropout(1.0, 1, 0, true)
    }));
    cases.push(Case::new("dropout eval", vec![x], |x| {
        x[0].dropout(0.9, 1, 0, false)
    }));
    cases
}

fn f64s(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape, Device::Cpu).unwrap()
}

#[test]
fn forward_values_match_pytorch() {
    let x = f64s(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let sel = x.index_select(-1, &ids(&[2, 0, 2], &[3])).unwrap();
    assert_eq!(sel.shape(), &[2, 3]);
    assert_eq!(sel.to_vec::<f64>().unwrap(), vec![3., 1., 3., 6., 4., 6.]);
    // torch.gather(t([[1, 2], [3, 4]]), 1, t([[0, 0], [1, 0]])) == [[1, 1], [4, 3]]
    let g = f64s(&[1., 2., 3., 4.], &[2, 2])
        .gather(1, &ids(&[0, 0, 1, 0], &[2, 2]))
        .unwrap();
    assert_eq!(g.to_vec::<f64>().unwrap(), vec![1., 1., 4., 3.]);
    // zeros(3, 5).scatter_add(0, t([[0, 1, 2, 0, 0]]), ones(2, 5))
    let zeros = Tensor::zeros(&[3, 5], DType::F64, Device::Cpu).unwrap();
    let ones = Tensor::ones(&[2, 5], DType::F64, Device::Cpu).unwrap();
    let s = zeros
        .scatter_add(0, &ids(&[0, 1, 2, 0, 0], &[1, 5]), &ones)
        .unwrap();
    let expected = [1., 0., 0., 1., 1., 0., 1., 0., 0., 0., 0., 0., 1., 0., 0.];
    assert_eq!(s.to_vec::<f64>().unwrap(), expected);
    // Selection moves elements of any dtype; only the gradient needs floats.
    let labels = ids(&[10, 11, 12], &[3])
        .index_select(0, &ids(&[2, 2], &[2]))
        .unwrap();
    assert_eq!(labels.to_vec::<i64>().unwrap(), vec![12, 12]);
}

#[test]
fn embedding_accumulates_repeated_ids() {
    let w = f64s(&[0., 1., 10., 11., 20., 21.], &[3, 2]).set_requires_grad(true);
    let e = autograd::embedding(&ids(&[2, 0, 2, 2], &[2, 2]), &w).unwrap();
    assert_eq!(e.shape(), &[2, 2, 2]);
    assert_eq!(
        e.to_vec::<f64>().unwrap(),
        vec![20., 21., 0., 1., 20., 21., 20., 21.]
    );
    let grads = e.sum_all().unwrap().backward().unwrap();
    let gw = grads.get(&w).unwrap().to_vec::<f64>().unwrap();
    assert_eq!(
        gw,
        vec![1., 1., 0., 0., 3., 3.],
        "row 2 looked up three times, row 1 never"
    );
}

/// `|observed - expected| <= 4σ`: a false failure once in ~16,000 runs, for a fixed seed never.
fn within_4_sigma(observed: f64, expected: f64, sigma: f64) -> bool {
    (observed - expected).abs() <= 4.0 * sigma
}

#[test]
fn dropout_keep_rate_and_mean() {
    let n = 100_000usize;
    for p in [0.1, 0.5, 0.9] {
        let mask = Tensor::dropout_mask(&[n], p, 2024, 0).unwrap();
        let kept = mask
            .to_vec::<u8>()
            .unwrap()
            .iter()
            .map(|&m| m as f64)
            .sum::<f64>()
            / n as f64;
        let sigma = (p * (1.0 - p) / n as f64).sqrt();
        assert!(within_4_sigma(kept, 1.0 - p, sigma), "p {p}: kept {kept}");
    }
    // E[dropout(x)] = x: given x, each output is x/(1-p) with probability 1-p, else 0, so the
    // mean's standard deviation is sqrt(p/(1-p) · mean(x²) / n).
    let p = 0.3;
    let x = uniform(&[n], 1.0, 2.0, &mut rng(9));
    let y = x.dropout(p, 77, 5, true).unwrap();
    let (mx, my) = (
        x.mean_all().unwrap().item().unwrap(),
        y.mean_all().unwrap().item().unwrap(),
    );
    let mean_sq = x.mul(&x).unwrap().mean_all().unwrap().item().unwrap();
    let sigma = (p / (1.0 - p) * mean_sq / n as f64).sqrt();
    assert!(within_4_sigma(my, mx, sigma), "mean in {mx}, mean out {my}");
    // The output is the mask applied: x/(1-p) where kept, 0 where dropped.
    let mask = Tensor::dropout_mask(&[n], p, 77, 5)
        .unwrap()
        .to_vec::<u8>()
        .unwrap();
    let (xv, yv) = (x.to_vec::<f64>().unwrap(), y.to_vec::<f64>().unwrap());
    for i in 0..n {
        assert_eq!(
            yv[i],
            if mask[i] == 1 { xv[i] * (1.0 / 0.7) } else { 0.0 },
            "element {i}"
        );
    }
}

#[test]
fn dropout_mask_is_a_function_of_seed_and_offset() {
    let mask = |seed, offset| {
        Tensor::dropout_mask(&[64, 16], 0.5, seed, offset)
            .unwrap()
            .to_vec::<u8>()
            .unwrap()
    };
    assert_eq!(mask(1, 0), mask(1, 0));
    assert_ne!(
        mask(1, 0),
        mask(1, 1),
        "a different offset gives a different mask"
    );
    assert_ne!(mask(1, 0), mask(2, 0), "a different seed gives a different mask");
    // Offsets count 4-element blocks (the kernels::random contract).
    assert_eq!(mask(1, 0)[4..], mask(1, 1)[..64 * 16 - 4]);
    // The mask depends on the logical element order only, not the layout.
    let x = randn(&[16, 64], &mut rng(10));
    let a = x.t().unwrap().dropout(0.5, 3, 0, true).unwrap();
    let b = x
        .t()
        .unwrap()
        .contiguous()
        .unwrap()
        .dropout(0.5, 3, 0, true)
        .unwrap();
    assert_eq!(a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
}

#[test]
fn dropout_edge_probabilities() {
    let x = randn(&[10], &mut rng(11));
    assert_eq!(
        x.dropout(0.0, 1, 0, true).unwrap().to_vec::<f64>(),
        x.to_vec::<f64>()
    );
    assert_eq!(
        x.dropout(1.0, 1, 0, true).unwrap().to_vec::<f64>().unwrap(),
        vec![0.0; 10]
    );
    let eval = x.dropout(0.5, 1, 0, false).unwrap();
    assert!(eval.shares_storage_with(&x), "evaluation mode is the identity");
}

#[test]
fn bad_inputs_give_the_right_errors() {
    let x = f64s(&[1., 2., 3., 4., 5., 6., 7., 8.], &[2, 4]);
    assert_eq!(
        x.index_select(1, &ids(&[0, 4], &[2])).unwrap_err(),
        Error::IndexOutOfRange {
            op: "index_select",
            index: 4,
            size: 4
        }
    );
    assert_eq!(
        x.index_select(0, &ids(&[-1], &[1])).unwrap_err(),
        Error::IndexOutOfRange {
            op: "index_select",
            index: -1,
            size: 2
        }
    );
    assert_eq!(
        x.index_select(0, &f64s(&[0.0], &[1])).unwrap_err(),
        Error::UnsupportedDType {
            op: "index_select",
            dtype: DType::F64,
            expected: "i64"
        }
    );
    assert!(matches!(
        x.index_select(2, &ids(&[0], &[1])),
        Err(Error::BadAxis {
            op: "index_select",
            axis: 2,
            rank: 2
        })
    ));
    assert!(matches!(
        x.index_select(0, &ids(&[0], &[1, 1])),
        Err(Error::ShapeMismatch {
            op: "index_select",
            ..
        })
    ));
    assert!(matches!(
        x.gather(-1, &ids(&[9], &[1, 1])),
        Err(Error::IndexOutOfRange {
            op: "gather",
            index: 9,
            size: 4
        })
    ));
    assert!(matches!(
        x.gather(-3, &ids(&[0], &[1, 1])),
        Err(Error::BadAxis {
            op: "gather",
            axis: -3,
            rank: 2
        })
    ));
    assert!(matches!(
        x.gather(0, &ids(&[0], &[1])),
        Err(Error::ShapeMismatch { op: "gather", .. })
    ));
    assert!(matches!(
        x.gather(0, &ids(&[0; 5], &[1, 5])),
        Err(Error::ShapeMismatch { op: "gather", .. })
    ));
    let src = f64s(&[1.0; 4], &[1, 4]);
    assert!(matches!(
        x.scatter_add(0, &ids(&[0, 1, 2, -3], &[1, 4]), &src),
        Err(Error::IndexOutOfRange {
            op: "scatter_add",
            index: 2,
            size: 2
        })
    ));
    assert!(matches!(
        x.scatter_add(0, &ids(&[0; 8], &[2, 4]), &src),
        Err(Error::ShapeMismatch {
            op: "scatter_add",
            ..
        })
    ));
    assert!(matches!(
        x.scatter_add(1, &ids(&[0; 4], &[1, 4]), &src.to_dtype(DType::F32).unwrap()),
        Err(Error::DTypeMismatch {
            op: "scatter_add",
            ..
        })
    ));
    assert!(matches!(
        autograd::embedding(&ids(&[0, 2], &[2]), &x),
        Err(Error::IndexOutOfRange {
            op: "embedding",
            index: 2,
            size: 2
        })
    ));
    assert!(matches!(
        autograd::embedding(&ids(&[0], &[1]), &f64s(&[0.0; 8], &[2, 2, 2])),
        Err(Error::ShapeMismatch { op: "embedding", .. })
    ));
    assert!(matches!(
        autograd::embedding(&f64s(&[0.0], &[1]), &x),
        Err(Error::UnsupportedDType {
            op: "embedding",
            dtype: DType::F64,
            ..
        })
    ));
    for p in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        for training in [true, false] {
            assert!(
                matches!(
                    x.dropout(p, 0, 0, training),
                    Err(Error::InvalidArgument { op: "dropout", .. })
                ),
                "p {p}"
            );
        }
        assert!(matches!(
            Tensor::dropout_mask(&[3], p, 0, 0),
            Err(Error::InvalidArgument {
                op: "dropout_mask",
                ..
            })
        ));
    }
    assert!(matches!(
        ids(&[1, 2], &[2]).dropout(0.5, 0, 0, true),
        Err(Error::UnsupportedDType {
            op: "dropout",
            dtype: DType::I64,
            ..
        })
    ));
}
