//! Masked softmax and masked log-softmax, CPU against CUDA (`masked_softmax_{fwd,bwd}_*` of
//! `masked_xent.cu`): forward and backward through the tape for every mask encoding (all,
//! dense per row, ranges per row, bitset broadcast) with a hard (-inf) and a finite mask
//! value, on rows of 1 to 70,001 classes (a 1-class row, rows shorter than a warp, rows that
//! are not a multiple of the 16-byte vector so each starts misaligned, and rows several times
//! longer than one block's pass), along the last and a middle axis; the edge rows (every class
//! masked, allowed logits all -inf, NaN or +inf at an allowed class, NaN and inf in masked
//! slots) give the CPU's documented results. Masked gradients are asserted exactly 0 on the GPU
//! (equality, not closeness). bf16 runs through the kernels directly (tensors compute in f32).
//!
//! Tolerance (f32), per compared tensor: relative 1e-5 (`F32_RTOL`: the GPU's exp is the
//! hardware 2^x of a log2(e)-scaled argument, ~2 ulp, plus one rounding of that argument) and an
//! absolute floor of 3·6e-8·sqrt(n) times the tensor's largest magnitude (at least 1e-6 of it):
//! lse is a sum of n terms added in another order, whose rounding grows like sqrt(n)·eps, and
//! the backward y·(g − Σ g·y) cancels toward 0, so its error is relative to the row's scale.
//! This is `rows.rs`'s rule for the unmasked softmax, which the masked one reduces to.

use super::cases::{run_all, Case};
use super::common::*;
use super::masked_xent::masks;
use autograd::{ClassMask, DType, Device, Error, Tensor};
use half::bf16;
use kernels::cuda::{CudaDevice, FloatType};
use kernels::masked_xent::cpu as k;
use kernels::masked_xent::cuda as xent;
use kernels::masked_xent::launch::XentParams;

/// `rows.rs`'s floor for a result built from a sum of `n` terms (see the header).
fn sum_floor(n: usize) -> f64 {
    (3.0 * 6e-8 * (n as f64).sqrt()).max(1e-6)
}

/// `[rows, classes]`: a 1-class row, around a warp, misaligned rows, and rows longer than one
/// block's pass (4097 f32 is 1025 vectors: a 256-thread block loops; 70,001 uses 512 threads).
const SHAPES: [(usize, usize); 5] = [(1, 1), (3, 31), (33, 33), (9, 4097), (2, 70_001)];

const MASK_VALUES: [f64; 2] = [f64::NEG_INFINITY, -5.0];

fn softmax_case(name: String, x: Tensor, axis: isize, mask: ClassMask, m: f64, log: bool, n: usize) -> Case {
    let f = move |t: &[Tensor]| {
        if log {
            t[0].masked_log_softmax(axis, &mask, m)
        } else {
            t[0].masked_softmax(axis, &mask, m)
        }
    };
    Case::new(name, vec![x], f, F32_RTOL, sum_floor(n))
}

fn from_rows(v: Vec<f32>, rows: usize, classes: usize) -> Tensor {
    Tensor::from_vec(v, &[rows, classes], Device::Cpu).expect("tensor")
}

/// Rows with documented special results, each beside an ordinary row (so a kernel that
/// mishandles one row cannot hide behind a uniform tensor).
fn edge_rows(log: bool) -> Vec<Case> {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let mut cases = Vec::new();
    let name = if log {
        "masked_log_softmax"
    } else {
        "masked_softmax"
    };
    // Row 0 ordinary; row 1 every class masked; row 2 allowed logits all -inf (its finite
    // logits masked); row 3 masked slots hold NaN, +inf and -inf, which must never be read.
    let x = from_rows(
        vec![
            0.5, -1.0, 2.0, 0.25, 1.5, //
            1.0, 2.0, 3.0, 4.0, 5.0, //
            -inf, -inf, 7.0, -inf, 9.0, //
            nan, 0.5, inf, -1.0, -inf,
        ],
        4,
        5,
    );
    let allowed = [
        [true, true, true, true, true],
        [false; 5],
        [true, true, false, true, false],
        [false, true, false, true, false],
    ];
    let mask = ClassMask::dense(allowed.as_flattened(), 4, 5);
    for m in MASK_VALUES {
        cases.push(softmax_case(
            format!("{name} edge rows m={m}"),
            x.clone(),
            -1,
            mask.clone(),
            m,
            log,
            5,
        ));
    }
    // NaN, and +inf, at an allowed class: a NaN row on both devices (as PyTorch); the other
    // row stays finite.
    for bad in [nan, inf] {
        let x = from_rows(vec![0.5, bad, -1.0, 2.0, 1.0, 0.0, -2.0, 3.0], 2, 4);
        cases.push(softmax_case(
            format!("{name} {bad} at an allowed class"),
            x,
            -1,
            ClassMask::ranges(&[(0, 3)]),
            -5.0,
            log,
            4,
        ));
    }
    // A 1-class row that is masked (the whole row masked) and one that is not.
    let x = from_rows(vec![0.7, -0.3], 2, 1);
    for m in MASK_VALUES {
        cases.push(softmax_case(
            format!("{name} 1-class rows, one masked, m={m}"),
            x.clone(),
            -1,
            ClassMask::ranges(&[(0, 0), (0, 1)]),
            m,
            log,
            1,
        ));
    }
    cases
}

pub fn masked_softmax_cases() -> Vec<Case> {
    let mut r = rng(41);
    let mut cases = Vec::new();
    for (rows, n) in SHAPES {
        let x = random(&[rows, n], Domain::Normal, &mut r);
        for (mname, mask) in masks(rows, n) {
            for m in MASK_VALUES {
                for log in [false, true] {
                    let op = if log {
                        "masked_log_softmax"
                    } else {
                        "masked_softmax"
                    };
                    let name = format!("{op} [{rows}, {n}] {mname} m={m}");
                    cases.push(softmax_case(name, x.clone(), -1, mask.clone(), m, log, n));
                }
            }
        }
    }
    // A middle axis: [3, 1025, 2] along axis 1 is 6 rows of 1025 (the mask indexes the rows of
    // the tensor with the axis moved last), and a first axis on a [33, 31] tensor.
    for (shape, axis) in [(vec![3usize, 1025, 2], 1isize), (vec![33, 31], 0)] {
        let n = shape[axis as usize];
        let rows = shape.iter().product::<usize>() / n;
        let x = random(&shape, Domain::Normal, &mut r);
        let (mname, mask) = masks(rows, n).swap_remove(1);
        for log in [false, true] {
            let op = if log {
                "masked_log_softmax"
            } else {
                "masked_softmax"
            };
            let name = format!("{op} {shape:?} axis {axis} {mname}");
            cases.push(softmax_case(name, x.clone(), axis, mask.clone(), -2.0, log, n));
        }
    }
    cases.extend(edge_rows(false));
    cases.extend(edge_rows(true));
    cases
}

#[test]
fn masked_softmax_and_log_softmax() {
    run_all("masked_softmax_and_log_softmax", masked_softmax_cases());
}

/// Masked entries on the GPU: gradient exactly +0.0 (also where the masked slot holds NaN or
/// inf), and for m = -inf softmax exactly 0 and log-softmax exactly -inf.
#[test]
fn masked_softmax_masked_entries_are_exact_on_cuda() {
    let Some(dev) = cuda_or_skip("masked softmax exact zeros") else {
        return;
    };
    let (rows, n) = (9, 4097);
    let clean = random(&[rows, n], Domain::Normal, &mut rng(43))
        .to_vec::<f32>()
        .unwrap();
    for (mname, mask) in masks(rows, n) {
        // Poison every masked slot: nothing read from one may reach an output.
        let mut v = clean.clone();
        for (i, x) in v.iter_mut().enumerate() {
            if !mask.row(i / n).allowed(i % n) {
                *x = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][i % 3];
            }
        }
        let x = from_rows(v.clone(), rows, n)
            .to_device(dev)
            .unwrap()
            .set_requires_grad(true);
        let seed = random(&[rows, n], Domain::Normal, &mut rng(44))
            .to_device(dev)
            .unwrap();
        for m in MASK_VALUES {
            for log in [false, true] {
                let y = if log {
                    x.masked_log_softmax(-1, &mask, m)
                } else {
                    x.masked_softmax(-1, &mask, m)
                }
                .unwrap();
                let dx = y
                    .backward_with(&seed)
                    .unwrap()
                    .get(&x)
                    .unwrap()
                    .to_vec::<f32>()
                    .unwrap();
                let yv = y.to_vec::<f32>().unwrap();
                for i in (0..rows * n).filter(|&i| !mask.row(i / n).allowed(i % n)) {
                    let what = format!("{mname} m={m} log={log} element {i}");
                    assert!(dx[i] == 0.0 && dx[i].is_sign_positive(), "{what}: dx {}", dx[i]);
                    if m == f64::NEG_INFINITY {
                        let want = if log { f32::NEG_INFINITY } else { 0.0 };
                        assert_eq!(yv[i], want, "{what}: y");
                    }
                }
                assert!(
                    yv.iter().all(|y| !y.is_nan()),
                    "{mname} m={m} log={log}: NaN output"
                );
            }
        }
    }
}

/// bf16 tensors at the op level: `masked_softmax` / `masked_log_softmax` of bf16 logits on the
/// CPU (widened to f32, rounded once) and on CUDA (the bf16 kernels) agree, forward and backward
/// (a bf16 seed), along a middle axis so the rows are permuted; masked gradients are exactly 0
/// on both. Tolerance as [`masked_softmax_bf16_kernels`] below (the same two roundings). f16,
/// a storage format these ops do not read, is refused alike.
#[test]
fn masked_softmax_bf16_tensors_cpu_and_cuda_agree() {
    let Some(dev) = cuda_or_skip("masked softmax bf16 tensors") else {
        return;
    };
    let (a, n, c) = (3, 37, 5); // softmax over the middle axis: rows are (a, c) pairs
    let x = random(&[a, n, c], Domain::Normal, &mut rng(45))
        .to_dtype(DType::BF16)
        .unwrap();
    let seed = random(&[a, n, c], Domain::Normal, &mut rng(48))
        .to_dtype(DType::BF16)
        .unwrap();
    let ranges: Vec<(usize, usize)> = (0..a * c).map(|r| (r % 3, n - r % 4)).collect();
    for (mname, mask) in [("all", ClassMask::All), ("ranges", ClassMask::ranges(&ranges))] {
        for m in MASK_VALUES {
            for log in [false, true] {
                let what = format!("bf16 op {mname} m={m} log={log}");
                let mut outs = Vec::new();
                for d in [Device::Cpu, dev] {
                    let xd = x.to_device(d).unwrap().set_requires_grad(true);
                    let y = if log {
                        xd.masked_log_softmax(1, &mask, m)
                    } else {
                        xd.masked_softmax(1, &mask, m)
                    }
                    .unwrap_or_else(|e| panic!("{what} on {d}: {e}"));
                    assert_eq!(y.dtype(), DType::BF16, "{what}");
                    let grads = y.backward_with(&seed.to_device(d).unwrap()).unwrap();
                    let dx = grads.get(&xd).unwrap();
                    assert_eq!(dx.dtype(), DType::BF16, "{what}: dx dtype");
                    outs.push((y.to_vec_f64().unwrap(), dx.to_vec_f64().unwrap()));
                }
                let (gy, gdx) = outs.pop().unwrap();
                let (cy, cdx) = outs.pop().unwrap();
                let scaled = |v: &[f64]| {
                    v.iter()
                        .filter(|v| v.is_finite())
                        .fold(0.0f64, |m, v| m.max(v.abs()))
                };
                assert_close(&format!("{what} y"), &cy, &gy, 1e-2, 1e-2 * scaled(&cy));
                assert_close(&format!("{what} dx"), &cdx, &gdx, 1e-2, 1e-2 * scaled(&cdx));
                for (i, (&cv, &gv)) in cdx.iter().zip(&gdx).enumerate() {
                    let (ai, ni, ci) = (i / (n * c), (i / c) % n, i % c);
                    if !mask.row(ai * c + ci).allowed(ni) {
                        assert!(cv == 0.0 && gv == 0.0, "{what}: masked dx[{i}] cpu {cv} gpu {gv}");
                    }
                }
            }
        }
    }
    let xh = x.to_dtype(DType::F16).unwrap();
    let errs: Vec<String> = [Device::Cpu, dev]
        .into_iter()
        .map(
            |d| match xh.to_device(d).unwrap().masked_softmax(-1, &ClassMask::All, -5.0) {
                Err(e @ Error::UnsupportedDType { .. }) => e.to_string(),
                other => panic!("f16 logits on {d}: {other:?}"),
            },
        )
        .collect();
    assert_eq!(errs[0], errs[1]);
}

/// The bf16 kernels (bf16 in and out, f32 inside) against the CPU's f32 masked softmax of the
/// widened inputs, rounded to bf16. Tolerance relative 1e-2 with a floor of 1e-2 of the tensor's
/// largest magnitude (as `bf16_rows.rs`): both sides round one f32 result to bf16 (relative
/// 2^-9 each, 2^-8 to 2^-7 apart when they straddle a rounding boundary), and the backward,
/// which reads the GPU's bf16 y and bf16 g, cancels toward 0 in g − Σ g·y. Masked gradients are
/// compared for exact equality with +0.
#[test]
fn masked_softmax_bf16_kernels() {
    let Some(_) = cuda_or_skip("masked softmax bf16 kernels") else {
        return;
    };
    let dev = CudaDevice::get(0).unwrap();
    let down = |buf: &kernels::cuda::DeviceBuffer, len: usize| {
        let mut out = vec![bf16::ZERO; len];
        dev.copy_to_host(buf, 0, &mut out).unwrap();
        out
    };
    for (rows, n) in [(1, 1), (33, 33), (9, 4097), (2, 70_001)] {
        let bits = |seed| -> Vec<bf16> {
            let v = random(&[rows, n], Domain::Normal, &mut rng(seed))
                .to_vec::<f32>()
                .unwrap();
            v.into_iter().map(bf16::from_f32).collect()
        };
        let (xb, gb) = (bits(46), bits(47));
        let widen = |v: &[bf16]| -> Vec<f32> { v.iter().map(|b| b.to_f32()).collect() };
        let (xf, gf) = (widen(&xb), widen(&gb));
        for (mname, mask) in masks(rows, n) {
            let bytes = xent::mask_bytes(&mask);
            let mbuf = (!bytes.is_empty()).then(|| dev.upload(&bytes).unwrap());
            let mptr = mbuf.as_ref().map_or(0, |b| b.ptr());
            for m in MASK_VALUES {
                for log in [false, true] {
                    let what = format!("bf16 [{rows}, {n}] {mname} m={m} log={log}");
                    let p = XentParams::softmax(rows, n, &mask, m, log);
                    let (xd, gd) = (dev.upload(&xb).unwrap(), dev.upload(&gb).unwrap());
                    let (y, dx) = (dev.alloc(rows * n * 2).unwrap(), dev.alloc(rows * n * 2).unwrap());
                    // SAFETY: x, y, g and dx hold rows·n bf16; the mask bytes are p's encoding.
                    unsafe { xent::softmax_forward(&dev, FloatType::BF16, &p, xd.ptr(), mptr, y.ptr()) }
                        .unwrap();
                    let yb = down(&y, rows * n);
                    let mf = m as f32;
                    let cpu_y = if log {
                        k::masked_log_softmax(&xf, n, &mask, mf)
                    } else {
                        k::masked_softmax(&xf, n, &mask, mf)
                    };
                    bf16_close(&format!("{what} y"), &cpu_y, &yb);
                    unsafe {
                        xent::softmax_backward(&dev, FloatType::BF16, &p, y.ptr(), gd.ptr(), mptr, dx.ptr())
                    }
                    .unwrap();
                    let dxb = down(&dx, rows * n);
                    let yw = widen(&yb);
                    let cpu_dx = if log {
                        k::masked_log_softmax_backward(&yw, &gf, n, &mask)
                    } else {
                        k::masked_softmax_backward(&yw, &gf, n, &mask)
                    };
                    bf16_close(&format!("{what} dx"), &cpu_dx, &dxb);
                    for i in (0..rows * n).filter(|&i| !mask.row(i / n).allowed(i % n)) {
                        assert_eq!(dxb[i].to_bits(), 0, "{what}: masked dx[{i}] = {}", dxb[i]);
                    }
                }
            }
        }
    }
}

fn bf16_close(what: &str, cpu: &[f32], gpu: &[bf16]) {
    let cpu: Vec<f64> = cpu.iter().map(|&v| bf16::from_f32(v).to_f64()).collect();
    let gpu: Vec<f64> = gpu.iter().map(|v| v.to_f64()).collect();
    let scale = cpu
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(what, &cpu, &gpu, 1e-2, 1e-2 * scale);
}
