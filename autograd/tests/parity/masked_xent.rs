//! Fused masked cross-entropy, CPU against CUDA (`masked_xent.cu`): loss, lse and dlogits for
//! every mask encoding with hard and finite mask values, every reduction, and label smoothing,
//! ignore_index, z-loss and focal weight; rows of 1 to 262,144 classes. Masked gradients must
//! be exactly 0 on the GPU too. bf16 logits run through the kernels directly.
//!
//! Tolerance (f32): relative 1e-5 with an absolute floor of 1e-5 times the tensor's largest
//! magnitude. The GPU sums a row in another order (per-thread online max/sum, then a block
//! reduction) and takes exp as the hardware 2^x of a log2(e)-scaled argument (~2 ulp); over
//! 262,144 terms that moves lse by a few 1e-7 relative, and loss = lse - x_t can cancel, so the
//! floor is relative to the tensor's scale, not to each element.

use super::common::*;
use autograd::{ClassMask, CrossEntropyOptions, DType, Device, Error, Reduction, Tensor};
use half::bf16;
use kernels::cuda::{CudaDevice, FloatType};
use kernels::masked_xent::cpu::cross_entropy_forward;
use kernels::masked_xent::cuda as xent;
use kernels::masked_xent::launch::XentParams;
use kernels::masked_xent::XentOptions;

/// The op under test (the coverage test looks for its quoted name here).
const OP: &str = "cross_entropy_with";

fn close_scaled(what: &str, cpu: &[f64], gpu: &[f64], rtol: f64) {
    let scale = cpu
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(what, cpu, gpu, rtol, rtol * scale.max(1e-3));
}

fn logits(rows: usize, classes: usize, seed: u64) -> Tensor {
    Tensor::rand_uniform(
        &[rows, classes],
        -4.0,
        4.0,
        DType::F32,
        Device::Cpu,
        &mut rng(seed),
    )
    .unwrap()
}

/// Targets allowed by `mask`: the first allowed class at or after a pseudo-random start.
fn targets(rows: usize, classes: usize, mask: &ClassMask, ignore: Option<i64>) -> Vec<i64> {
    (0..rows)
        .map(|r| {
            if let (Some(i), 3) = (ignore, r % 5) {
                return i;
            }
            let start = (r * 7919 + 11) % classes;
            (0..classes)
                .map(|i| (start + i) % classes)
                .find(|&c| mask.row(r).allowed(c))
                .expect("every test row allows a class") as i64
        })
        .collect()
}

/// The four mask encodings over `[rows, classes]` (rows of 1 class need `rows == 1`).
pub(super) fn masks(rows: usize, classes: usize) -> Vec<(&'static str, ClassMask)> {
    let dense: Vec<bool> = (0..rows * classes)
        .map(|i| i % 3 != 1 || i % classes == 0)
        .collect();
    let ranges: Vec<(usize, usize)> = (0..rows)
        .map(|r| (r % 2, classes - (r % 3).min(classes - 1 - r % 2)))
        .collect();
    let lists: Vec<Vec<usize>> = vec![(0..classes).filter(|c| c % 4 != 2).collect()];
    vec![
        ("all", ClassMask::All),
        ("dense", ClassMask::dense(&dense, rows, classes)),
        ("ranges", ClassMask::ranges(&ranges)),
        ("bitset (broadcast)", ClassMask::from_class_lists(classes, &lists)),
    ]
}

fn run(dev: Device, name: &str, x: &Tensor, t: &[i64], opts: &CrossEntropyOptions) {
    let mut outs = Vec::new();
    for device in [Device::Cpu, dev] {
        let xd = x.to_device(device).unwrap().set_requires_grad(true);
        let td = Tensor::from_vec(t.to_vec(), &[t.len()], Device::Cpu)
            .unwrap()
            .to_device(device)
            .unwrap();
        let o = xd
            .cross_entropy_with(&td, opts)
            .unwrap_or_else(|e| panic!("{OP} {name} on {device}: {e}"));
        assert_eq!(o.loss.device(), device);
        let seed =
            Tensor::rand_uniform(o.loss.shape(), 0.5, 1.5, DType::F32, Device::Cpu, &mut rng(3)).unwrap();
        let grads = o.loss.backward_with(&seed.to_device(device).unwrap()).unwrap();
        let dx = grads.get(&xd).unwrap().to_vec_f64().unwrap();
        outs.push((o.loss.to_vec_f64().unwrap(), o.lse.to_vec_f64().unwrap(), dx));
    }
    let (gl, gs, gd) = outs.pop().unwrap();
    let (cl, cs, cd) = outs.pop().unwrap();
    close_scaled(&format!("{name} loss"), &cl, &gl, 1e-5);
    close_scaled(&format!("{name} lse"), &cs, &gs, 1e-5);
    if x.dtype() == DType::BF16 {
        // dx is the f32 gradient rounded once to bf16 on each device: the f32 values differ
        // as above (1e-5 of the scale), and a value that close to a rounding boundary may round
        // the other way, one bf16 ulp (at most 2^-7 of its magnitude).
        let scale = cd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert_close(
            &format!("{name} dx (bf16)"),
            &cd,
            &gd,
            2f64.powi(-7),
            1e-5 * scale.max(1e-3),
        );
    } else {
        close_scaled(&format!("{name} dx"), &cd, &gd, 1e-5);
    }
    // Masked classes: exactly zero on both (the CPU's own tests pin its side).
    let classes = x.shape()[1];
    for (i, (&c, &g)) in cd.iter().zip(&gd).enumerate() {
        if opts.mask.row(i / classes).allowed(i % classes) {
            continue;
        }
        assert!(c == 0.0 && g == 0.0, "{name}: masked dx[{i}] = {g} on the GPU");
    }
}

#[test]
fn masked_xent_every_option_and_encoding() {
    let Some(dev) = cuda_or_skip("masked cross-entropy parity") else {
        return;
    };
    for &(rows, classes) in &[(1, 5), (17, 1000), (300, 33)] {
        let x = logits(rows, classes, (rows * classes) as u64);
        for (mname, mask) in masks(rows, classes) {
            for mask_value in [f64::NEG_INFINITY, -5.0] {
                let variants = [
                    ("plain", 0.0, None, 0.0, 0.0),
                    ("smoothing", 0.1, None, 0.0, 0.0),
                    ("ignore", 0.0, Some(-100), 0.0, 0.0),
                    ("z-loss", 0.0, None, 1e-4, 0.0),
                    ("focal", 0.0, None, 0.0, 2.0),
                    ("everything", 0.1, Some(-100), 1e-4, 2.0),
                ];
                for (oname, eps, ignore, z, gamma) in variants {
                    for reduction in [Reduction::None, Reduction::Sum, Reduction::Mean] {
                        let opts = CrossEntropyOptions {
                            mask: mask.clone(),
                            mask_value,
                            reduction,
                            label_smoothing: eps,
                            ignore_index: ignore,
                            z_loss: z,
                            focal_gamma: gamma,
                        };
                        let t = targets(rows, classes, &mask, ignore);
                        let name = format!("{rows}x{classes} {mname} m={mask_value} {oname} {reduction:?}");
                        run(dev, &name, &x, &t, &opts);
                    }
                }
            }
        }
    }
}

/// bf16 logits at the op level (`masked_xent_fwd_bf16` / `_bwd_bf16` behind
/// `cross_entropy_with`): every mask encoding, hard and finite mask value, the options all at
/// once and alone, on a shape with a partial last block; loss and lse f32, dx bf16.
#[test]
fn masked_xent_bf16_logits_every_encoding() {
    let Some(dev) = cuda_or_skip("masked cross-entropy bf16 logits") else {
        return;
    };
    let (rows, classes) = (13, 777);
    let x = logits(rows, classes, 21).to_dtype(DType::BF16).unwrap();
    for (mname, mask) in masks(rows, classes) {
        for mask_value in [f64::NEG_INFINITY, -5.0] {
            for (oname, eps, ignore, z, gamma, reduction) in [
                ("plain", 0.0, None, 0.0, 0.0, Reduction::Mean),
                ("everything", 0.1, Some(-100), 1e-4, 2.0, Reduction::None),
                ("sum", 0.0, None, 1e-4, 0.0, Reduction::Sum),
            ] {
                let opts = CrossEntropyOptions {
                    mask: mask.clone(),
                    mask_value,
                    reduction,
                    label_smoothing: eps,
                    ignore_index: ignore,
                    z_loss: z,
                    focal_gamma: gamma,
                };
                let t = targets(rows, classes, &mask, ignore);
                run(
                    dev,
                    &format!("bf16 {mname} m={mask_value} {oname}"),
                    &x,
                    &t,
                    &opts,
                );
            }
        }
    }
}

#[test]
fn masked_xent_256k_vocabulary() {
    let Some(dev) = cuda_or_skip("masked cross-entropy 256k") else {
        return;
    };
    let (rows, classes) = (4, 262_144);
    let x = logits(rows, classes, 5);
    let ranges = ClassMask::ranges(&[(0, classes), (1000, 200_000), (0, 1), (131_072, classes)]);
    for (mname, mask) in [("all", ClassMask::All), ("ranges", ranges)] {
        let opts = CrossEntropyOptions {
            mask: mask.clone(),
            z_loss: 1e-4,
            label_smoothing: 0.05,
            ..CrossEntropyOptions::default()
        };
        let t = targets(rows, classes, &mask, None);
        run(dev, &format!("256k {mname}"), &x, &t, &opts);
    }
}

#[test]
fn masked_xent_bad_input_on_cuda_matches_the_cpu_errors() {
    let Some(dev) = cuda_or_skip("masked cross-entropy errors") else {
        return;
    };
    let mut v = logits(3, 8, 9).to_vec::<f32>().unwrap();
    v[8 + 2] = f32::NAN; // row 1, an allowed class
    let x = Tensor::from_vec(v, &[3, 8], Device::Cpu)
        .unwrap()
        .to_device(dev)
        .unwrap();
    let t = Tensor::from_vec(vec![0i64, 1, 2], &[3], Device::Cpu)
        .unwrap()
        .to_device(dev)
        .unwrap();
    match x.cross_entropy_with(&t, &CrossEntropyOptions::default()) {
        Err(Error::InvalidArgument { reason, .. }) => assert!(reason.contains("row 1"), "{reason}"),
        other => panic!("NaN logit on CUDA: {other:?}"),
    }
    let bad = Tensor::from_vec(vec![0i64, 9, 2], &[3], Device::Cpu)
        .unwrap()
        .to_device(dev)
        .unwrap();
    assert!(matches!(
        x.cross_entropy_with(&bad, &CrossEntropyOptions::default()),
        Err(Error::IndexOutOfRange { index: 9, .. })
    ));
}

/// bf16 logits: the forward computes in f32 from the widened values, so loss and lse get f32
/// tolerances; dx is rounded to bf16 once (1e-2: two bf16 ulps, as `bf16.rs`).
#[test]
fn masked_xent_bf16_kernels() {
    let Some(_) = cuda_or_skip("masked cross-entropy bf16") else {
        return;
    };
    let dev = CudaDevice::get(0).unwrap();
    let (rows, classes) = (33, 3000);
    let xb: Vec<bf16> = logits(rows, classes, 21)
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|&v| bf16::from_f32(v))
        .collect();
    let xf: Vec<f32> = xb.iter().map(|v| v.to_f32()).collect();
    for (mname, mask) in masks(rows, classes) {
        let opts = XentOptions {
            mask_value: -3.0,
            label_smoothing: 0.1,
            ignore_index: None,
            z_loss: 1e-4,
            focal_gamma: 1.0,
        };
        let t = targets(rows, classes, &mask, None);
        let cpu = cross_entropy_forward(&xf, &t, classes, &mask, &opts);
        let p = XentParams::cross_entropy(rows, classes, &mask, &opts);
        let bytes = xent::mask_bytes(&mask);
        let mask_buf = (!bytes.is_empty()).then(|| dev.upload(&bytes).unwrap());
        let xd = dev.upload(&xb).unwrap();
        let td = dev.upload(&t).unwrap();
        let (loss, lse, coef) = (
            dev.alloc(rows * 4).unwrap(),
            dev.alloc(rows * 4).unwrap(),
            dev.alloc(rows * 12).unwrap(),
        );
        let status = dev.upload(&xent::STATUS_INIT).unwrap();
        let b = xent::ForwardBuffers {
            x: xd.ptr(),
            targets: td.ptr(),
            mask: mask_buf.as_ref().map_or(0, |m| m.ptr()),
            loss: loss.ptr(),
            lse: lse.ptr(),
            coef: coef.ptr(),
            status: status.ptr(),
        };
        // SAFETY: buffers sized for rows x classes.
        unsafe { xent::forward(&dev, FloatType::BF16, &p, &b) }.unwrap();
        let mut gl = vec![0f32; rows];
        dev.copy_to_host(&loss, 0, &mut gl).unwrap();
        let gl: Vec<f64> = gl.iter().map(|&v| v as f64).collect();
        let cl: Vec<f64> = cpu.loss.iter().map(|&v| v as f64).collect();
        close_scaled(&format!("bf16 {mname} loss"), &cl, &gl, 1e-5);
        let g = dev.upload(&[1.0f32]).unwrap();
        let dx = dev.alloc(rows * classes * 2).unwrap();
        let bb = xent::BackwardBuffers {
            x: xd.ptr(),
            targets: td.ptr(),
            mask: b.mask,
            lse: lse.ptr(),
            coef: coef.ptr(),
            g: g.ptr(),
            g_stride: 0,
            g_scale: 1.0,
            dx: dx.ptr(),
        };
        unsafe { xent::backward(&dev, FloatType::BF16, &p, &bb) }.unwrap();
        let mut gd = vec![bf16::ZERO; rows * classes];
        dev.copy_to_host(&dx, 0, &mut gd).unwrap();
        let gd: Vec<f64> = gd.iter().map(|v| v.to_f64()).collect();
        let ones = vec![1.0f32; rows];
        let cd = kernels::masked_xent::cpu::cross_entropy_backward(
            &xf, &t, classes, &mask, &cpu.lse, &cpu.coef, &ones,
        );
        let cd: Vec<f64> = cd.iter().map(|&v| bf16::from_f32(v).to_f64()).collect();
        close_scaled(&format!("bf16 {mname} dx"), &cd, &gd, 1e-2);
    }
}

/// `f` on the CPU and on CUDA: both must fail, with the same error word for word.
fn same_error<T: std::fmt::Debug>(
    what: &str,
    dev: Device,
    f: impl Fn(Device) -> autograd::Result<T>,
) -> Error {
    let cpu = f(Device::Cpu).expect_err(&format!("{what}: no error on the CPU"));
    let gpu = f(dev).expect_err(&format!("{what}: no error on {dev}"));
    assert_eq!(cpu.to_string(), gpu.to_string(), "{what}: the devices disagree");
    cpu
}

/// The documented bad inputs (`Tensor::cross_entropy_with`): a masked target (hard and finite
/// m), a row with every class masked, a target out of range, NaN or +inf at an allowed class,
/// and f16 logits (a storage format these ops do not read) give the CPU's error on CUDA; NaN and inf in masked
/// slots, and a fully masked row that is ignored, are not errors and give the CPU's results.
#[test]
fn masked_xent_bad_input_same_errors_and_results_as_the_cpu() {
    let Some(dev) = cuda_or_skip("masked cross-entropy bad input") else {
        return;
    };
    let (rows, classes) = (4, 40);
    let x = logits(rows, classes, 31);
    let xv = x.to_vec::<f32>().unwrap();
    let run_on = |d: Device, x: &Tensor, t: &[i64], opts: &CrossEntropyOptions| {
        let td = Tensor::from_vec(t.to_vec(), &[rows], Device::Cpu)
            .unwrap()
            .to_device(d)
            .unwrap();
        x.to_device(d)
            .unwrap()
            .cross_entropy_with(&td, opts)
            .map(|o| o.loss)
    };
    let ranges = |r: [(usize, usize); 4]| CrossEntropyOptions {
        mask: ClassMask::ranges(&r),
        ..CrossEntropyOptions::default()
    };
    let full = (0, classes);
    // Row 1 allows 5..30 only; its target 2 is masked.
    for mask_value in [f64::NEG_INFINITY, -5.0] {
        let opts = CrossEntropyOptions {
            mask_value,
            ..ranges([full, (5, 30), full, full])
        };
        let e = same_error("masked target", dev, |d| run_on(d, &x, &[0, 2, 1, 1], &opts));
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("row 1"), "{e}");
    }
    // Row 2 allows nothing.
    let all_masked = ranges([full, full, (3, 3), full]);
    let e = same_error("fully masked row", dev, |d| {
        run_on(d, &x, &[0, 1, 3, 1], &all_masked)
    });
    assert!(e.to_string().contains("every class of the row is masked"), "{e}");
    // Out of range, above and below.
    for bad in [classes as i64, -1] {
        let e = same_error("target out of range", dev, |d| {
            run_on(d, &x, &[0, bad, 1, 1], &CrossEntropyOptions::default())
        });
        assert!(matches!(e, Error::IndexOutOfRange { .. }), "{e}");
    }
    // NaN or +inf at an allowed class of row 2 (the kernel's status word on CUDA).
    for v in [f32::NAN, f32::INFINITY] {
        let mut bad = xv.clone();
        bad[2 * classes + 7] = v;
        let xb = Tensor::from_vec(bad, &[rows, classes], Device::Cpu).unwrap();
        let e = same_error("non-finite logit", dev, |d| {
            run_on(d, &xb, &[0, 1, 2, 3], &CrossEntropyOptions::default())
        });
        assert!(e.to_string().contains("row 2"), "{e}");
    }
    // f16 logits: a storage format these ops do not read (bf16 they do), on both devices.
    let xh = x.to_dtype(DType::F16).unwrap();
    let e = same_error("f16 logits", dev, |d| {
        run_on(d, &xh, &[0, 1, 2, 3], &CrossEntropyOptions::default())
    });
    assert!(matches!(e, Error::UnsupportedDType { .. }), "{e}");

    // Not errors: NaN, +inf and -inf in row 1's masked slots are never read ...
    let mut poisoned = xv.clone();
    for (c, v) in [(0, f32::NAN), (2, f32::INFINITY), (35, f32::NEG_INFINITY)] {
        poisoned[classes + c] = v;
    }
    let xp = Tensor::from_vec(poisoned, &[rows, classes], Device::Cpu).unwrap();
    for mask_value in [f64::NEG_INFINITY, -5.0] {
        let opts = CrossEntropyOptions {
            mask_value,
            reduction: Reduction::None,
            ..ranges([full, (5, 30), full, full])
        };
        run(
            dev,
            &format!("poisoned masked slots m={mask_value}"),
            &xp,
            &[0, 6, 1, 1],
            &opts,
        );
    }
    // ... and a fully masked row may be ignored (loss 0, no gradient; its lse is -inf for a
    // hard mask, m + ln C for a finite one).
    for mask_value in [f64::NEG_INFINITY, -5.0] {
        let opts = CrossEntropyOptions {
            mask_value,
            ignore_index: Some(-100),
            ..ranges([full, full, (3, 3), full])
        };
        run(
            dev,
            &format!("ignored fully masked row m={mask_value}"),
            &x,
            &[0, 1, -100, 1],
            &opts,
        );
    }
}
