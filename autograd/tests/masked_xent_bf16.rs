//! bf16 logits at the op level, on the CPU: `cross_entropy_with`, `masked_softmax` and
//! `masked_log_softmax` read bf16 as stored and compute in f32. Widening bf16 to f32 is exact
//! and the kernels run the same f32 code on the widened values, so the contract is checked
//! exactly, not within a tolerance: loss and lse equal the f32 op's on the widened logits bit
//! for bit, and dlogits (bf16) equals the f32 op's gradient rounded once to bf16. Masked
//! gradients are exactly 0. (CPU/CUDA agreement is in `tests/parity`.)

use autograd::{ClassMask, CrossEntropyOptions, DType, Device, Error, Reduction, Tensor};
use half::bf16;
use rand::SeedableRng;

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// `[rows, classes]` logits in [-4, 4), rounded to bf16 (returned as bf16 and widened to f32).
fn logits(rows: usize, classes: usize, seed: u64) -> (Tensor, Tensor) {
    let x = Tensor::rand_uniform(
        &[rows, classes],
        -4.0,
        4.0,
        DType::F32,
        Device::Cpu,
        &mut rng(seed),
    )
    .unwrap()
    .to_dtype(DType::BF16)
    .unwrap();
    let wide = x.to_dtype(DType::F32).unwrap();
    (x, wide)
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

fn rounded(t: &Tensor) -> Vec<u16> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|&v| bf16::from_f32(v).to_bits())
        .collect()
}

fn masks(rows: usize, classes: usize) -> Vec<(&'static str, ClassMask)> {
    let dense: Vec<bool> = (0..rows * classes)
        .map(|i| i % 3 != 1 || i % classes == 0)
        .collect();
    let ranges: Vec<(usize, usize)> = (0..rows).map(|r| (r % 2, classes - r % 3)).collect();
    let lists: Vec<Vec<usize>> = vec![(0..classes).filter(|c| c % 4 != 2).collect()];
    vec![
        ("all", ClassMask::All),
        ("dense", ClassMask::dense(&dense, rows, classes)),
        ("ranges", ClassMask::ranges(&ranges)),
        ("bitset", ClassMask::from_class_lists(classes, &lists)),
    ]
}

fn allowed_targets(rows: usize, classes: usize, mask: &ClassMask, ignore: Option<i64>) -> Tensor {
    let t: Vec<i64> = (0..rows)
        .map(|r| match ignore {
            Some(i) if r % 4 == 3 => i,
            _ => {
                let start = (r * 31 + 7) % classes;
                (0..classes)
                    .map(|k| (start + k) % classes)
                    .find(|&c| mask.row(r).allowed(c))
                    .unwrap() as i64
            }
        })
        .collect();
    Tensor::from_vec(t, &[rows], Device::Cpu).unwrap()
}

#[test]
fn cross_entropy_with_bf16_logits_is_the_f32_op_on_the_widened_logits() {
    let (rows, classes) = (9, 1500); // more than one 1024-logit chunk per row
    let (xb, xf) = logits(rows, classes, 1);
    for (mname, mask) in masks(rows, classes) {
        for mask_value in [f64::NEG_INFINITY, -5.0] {
            for (oname, eps, ignore, z, gamma) in [
                ("plain", 0.0, None, 0.0, 0.0),
                ("smoothing", 0.1, None, 0.0, 0.0),
                ("ignore", 0.0, Some(-100), 0.0, 0.0),
                ("z-loss", 0.0, None, 1e-4, 0.0),
                ("focal", 0.0, None, 0.0, 2.0),
                ("everything", 0.1, Some(-100), 1e-4, 2.0),
            ] {
                for reduction in [Reduction::None, Reduction::Sum, Reduction::Mean] {
                    let what = format!("{mname} m={mask_value} {oname} {reduction:?}");
                    let opts = CrossEntropyOptions {
                        mask: mask.clone(),
                        mask_value,
                        reduction,
                        label_smoothing: eps,
                        ignore_index: ignore,
                        z_loss: z,
                        focal_gamma: gamma,
                    };
                    let t = allowed_targets(rows, classes, &mask, ignore);
                    let (lb, lf) = (xb.set_requires_grad(true), xf.set_requires_grad(true));
                    let ob = lb.cross_entropy_with(&t, &opts).unwrap();
                    let of = lf.cross_entropy_with(&t, &opts).unwrap();
                    assert_eq!(ob.loss.dtype(), DType::F32, "{what}");
                    assert_eq!(ob.lse.dtype(), DType::F32, "{what}");
                    assert_eq!(bits(&ob.loss), bits(&of.loss), "{what}: loss");
                    assert_eq!(bits(&ob.lse), bits(&of.lse), "{what}: lse");
                    let gb = ob
                        .loss
                        .backward_with(&Tensor::ones(ob.loss.shape(), DType::F32, Device::Cpu).unwrap());
                    let gf = of
                        .loss
                        .backward_with(&Tensor::ones(of.loss.shape(), DType::F32, Device::Cpu).unwrap());
                    let dxb = gb.unwrap().get(&lb).unwrap().clone();
                    let dxf = gf.unwrap().get(&lf).unwrap().clone();
                    assert_eq!(dxb.dtype(), DType::BF16, "{what}: dlogits dtype");
                    let got: Vec<u16> = dxb
                        .to_vec::<bf16>()
                        .unwrap()
                        .iter()
                        .map(|b| b.to_bits())
                        .collect();
                    assert_eq!(got, rounded(&dxf), "{what}: dlogits");
                    for (i, &b) in got.iter().enumerate() {
                        if !mask.row(i / classes).allowed(i % classes) {
                            assert_eq!(b, 0, "{what}: masked dlogits[{i}] is not +0");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn masked_softmax_of_bf16_is_the_f32_result_rounded_once() {
    let (rows, n) = (6, 1100);
    let (xb, xf) = logits(rows, n, 2);
    let g = Tensor::rand_uniform(&[rows, n], -1.0, 1.0, DType::F32, Device::Cpu, &mut rng(3))
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    for (mname, mask) in masks(rows, n) {
        for m in [f64::NEG_INFINITY, -5.0] {
            for log in [false, true] {
                let what = format!("{mname} m={m} log={log}");
                let run = |x: &Tensor| {
                    let x = x.set_requires_grad(true);
                    let y = if log {
                        x.masked_log_softmax(-1, &mask, m)
                    } else {
                        x.masked_softmax(-1, &mask, m)
                    }
                    .unwrap();
                    (x, y)
                };
                let (lb, yb) = run(&xb);
                let (_, yf) = run(&xf);
                assert_eq!(yb.dtype(), DType::BF16, "{what}");
                let got: Vec<u16> = yb.to_vec::<bf16>().unwrap().iter().map(|b| b.to_bits()).collect();
                assert_eq!(got, rounded(&yf), "{what}: y");
                // The backward reads the bf16 output and the bf16 seed widened, as the CUDA
                // kernel does: the f32 op's backward from those widened values, rounded once.
                let dx = yb.backward_with(&g).unwrap().get(&lb).unwrap().clone();
                assert_eq!(dx.dtype(), DType::BF16, "{what}: dx dtype");
                let y_wide = yb.detach().to_dtype(DType::F32).unwrap();
                let g_wide = g.to_dtype(DType::F32).unwrap();
                let (yv, gv) = (y_wide.to_vec::<f32>().unwrap(), g_wide.to_vec::<f32>().unwrap());
                let want = if log {
                    kernels::masked_xent::cpu::masked_log_softmax_backward(&yv, &gv, n, &mask)
                } else {
                    kernels::masked_xent::cpu::masked_softmax_backward(&yv, &gv, n, &mask)
                };
                let got: Vec<u16> = dx.to_vec::<bf16>().unwrap().iter().map(|b| b.to_bits()).collect();
                let want: Vec<u16> = want.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
                assert_eq!(got, want, "{what}: dx");
                for (i, &b) in got.iter().enumerate() {
                    if !mask.row(i / n).allowed(i % n) {
                        assert_eq!(b, 0, "{what}: masked dx[{i}] is not +0");
                    }
                }
            }
        }
    }
}

/// Dtypes the ops do not read: a clear error naming the op and the dtype.
#[test]
fn other_dtypes_are_refused_naming_the_op() {
    let (_, xf) = logits(2, 8, 4);
    let t = Tensor::from_vec(vec![0i64, 1], &[2], Device::Cpu).unwrap();
    for dt in [DType::F16, DType::I64] {
        let x = xf.to_dtype(dt).unwrap();
        let e = x
            .cross_entropy_with(&t, &CrossEntropyOptions::default())
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnsupportedDType {
                    op: "cross_entropy_with",
                    ..
                }
            ),
            "{dt:?}: {e}"
        );
        for (op, r) in [
            ("masked_softmax", x.masked_softmax(-1, &ClassMask::All, -5.0)),
            (
                "masked_log_softmax",
                x.masked_log_softmax(-1, &ClassMask::All, -5.0),
            ),
        ] {
            let e = r.unwrap_err();
            assert!(
                matches!(&e, Error::UnsupportedDType { op: o, .. } if *o == op),
                "{dt:?}: {e}"
            );
            assert!(e.to_string().contains("bf16"), "{e}");
        }
    }
}
