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

fn masks(rows: usize, classes: usize) -> Vec<(&'static str, ClassMask)> {
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
    close_scaled(&format!("{name} dx"), &cd, &gd, 1e-5);
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
