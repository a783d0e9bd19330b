//! The training-step kernels: fused masked cross-entropy (autograd, forward and forward +
//! backward), optimizer steps (`nn` optimizers on one large parameter, and on a model-like group
//! of many tensors: one grouped launch per step on CUDA), and the convex-ReLU
//! primitives (`kernels::cvx`, CPU functions: no tensor API exists for them).

use autograd::{ClassMask, CrossEntropyOptions, DType, Device, Tensor};
use kernels::cvx::{self, cost as cc, CvxShape};
use kernels::masked_xent::cost as xc;
use kernels::optim::cost::{self as oc, Step};
use nn::optim::{AdamW, Algorithm, Lion, Optimizer, Sgd};
use serde_json::json;

use super::{dims, err, randn, sets, Body, Case, Reference, Scale};

pub(super) fn cases(scale: Scale) -> Vec<Case> {
    let mut out = Vec::new();
    // The CPU-sized rows run on either device; the GPU-sized ones (the 4k x 32k to
    // 16k x 256k, f32 logits: up to 16 GiB, and as much again for the gradient) only on CUDA.
    let cpu_shapes = scale.pick(
        vec![(4096, 32_768), (64, 262_144)],
        vec![(256, 32_768), (16, 262_144)],
        vec![(8, 100)],
    );
    let gpu_shapes: Vec<(usize, usize)> = match scale {
        Scale::Tiny => Vec::new(),
        _ => XENT_GPU_SHAPES
            .into_iter()
            .filter(|s| !cpu_shapes.contains(s))
            .collect(),
    };
    let shapes = cpu_shapes
        .iter()
        .map(|&s| (s, false))
        .chain(gpu_shapes.into_iter().map(|s| (s, true)));
    for ((rows, classes), gpu_only) in shapes {
        for masked in [false, true] {
            for backward in [false, true] {
                out.push(xent_case(rows, classes, masked, backward, gpu_only, DType::F32));
            }
        }
        // bf16 logits (read as stored, f32 inside, bf16 dlogits): half the logit bytes.
        for backward in [false, true] {
            out.push(xent_case(rows, classes, false, backward, gpu_only, DType::BF16));
        }
    }
    // Optimizer steps over 1M..256M parameters on CUDA (the copy roof is reached only well past
    // the L2 cache); the CPU times one size, where a step already takes ~0.1 s.
    let (cuda_sizes, cpu_n) = scale.pick::<(&[usize], usize)>(
        (&[1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28], 1 << 24),
        (&[1 << 20, 1 << 24], 1 << 22),
        (&[1 << 10], 1 << 10),
    );
    let mut sizes: Vec<usize> = cuda_sizes.to_vec();
    if !sizes.contains(&cpu_n) {
        sizes.push(cpu_n);
        sizes.sort_unstable();
    }
    for n in sizes {
        let on = Devices {
            cuda: cuda_sizes.contains(&n),
            cpu: n == cpu_n,
        };
        let adamw = AdamW::default();
        let one = vec![n];
        out.push(optim_case(
            "AdamW",
            Step::AdamW,
            &one,
            DType::F32,
            adamw.clone(),
            on,
        ));
        out.push(optim_case(
            "AdamW",
            Step::AdamW,
            &one,
            DType::BF16,
            adamw.clone(),
            on,
        ));
        out.push(optim_case(
            "Lion",
            Step::Lion,
            &one,
            DType::F32,
            Lion::default(),
            on,
        ));
        out.push(optim_case(
            "Lion",
            Step::Lion,
            &one,
            DType::BF16,
            Lion::default(),
            on,
        ));
        let sgd = Sgd {
            momentum: 0.9,
            nesterov: true,
            ..Sgd::default()
        };
        out.push(optim_case(
            "SGD (Nesterov)",
            Step::SgdMomentum,
            &one,
            DType::F32,
            sgd,
            on,
        ));
        // The same parameter count as a model's group: many tensors of uneven sizes, one launch
        // per step on CUDA (the grouped kernel), one call per tensor on the CPU.
        let many = model_like_sizes(n);
        out.push(optim_case("AdamW", Step::AdamW, &many, DType::F32, adamw, on));
    }
    let s = scale.pick(
        CvxShape {
            n: 4096,
            d: 64,
            p: 512,
        },
        CvxShape {
            n: 4096,
            d: 64,
            p: 256,
        },
        CvxShape { n: 50, d: 4, p: 8 },
    );
    out.extend(cvx_cases(s));
    out
}

/// rows x classes of the CUDA-only cross-entropy rows.
const XENT_GPU_SHAPES: [(usize, usize); 4] = [
    (4096, 32_768),
    (16_384, 32_768),
    (4096, 262_144),
    (16_384, 262_144),
];

fn xent_case(
    rows: usize,
    classes: usize,
    masked: bool,
    backward: bool,
    gpu_only: bool,
    dtype: DType,
) -> Case {
    // The range mask keeps the first three quarters of the classes (a vocabulary restricted to
    // a prefix, as in constrained decoding).
    let allowed = classes / 4 * 3;
    let mask = if masked {
        ClassMask::ranges(&[(0, allowed)])
    } else {
        ClassMask::All
    };
    let logit_bytes = dtype.size_in_bytes();
    let (dtype_name, torch_dtype) = if dtype == DType::BF16 {
        ("bf16", "bfloat16")
    } else {
        ("f32", "float32")
    };
    let mut bytes = xc::forward_bytes(rows, classes, logit_bytes, &mask);
    let mut flops = xc::forward_flops(rows, classes);
    if backward {
        bytes += xc::backward_bytes(rows, classes, logit_bytes, &mask);
        flops += xc::backward_flops(rows, classes);
    }
    let kernel = format!(
        "cross_entropy{} {}",
        if masked { " (range mask)" } else { "" },
        if backward { "fwd+bwd" } else { "fwd" }
    );
    let py = json!({"op": "xent", "rows": rows, "classes": classes, "dtype": torch_dtype,
        "allowed": if masked { Some(allowed) } else { None }, "backward": backward});
    Case {
        family: "masked_xent",
        kernel,
        shape: dims(&[rows, classes]),
        dtype: dtype_name,
        bytes,
        flops,
        build: Box::new(move |env| {
            let device = env.device;
            if gpu_only && device == Device::Cpu {
                return Err(format!(
                    "GPU-sized ({:.1} GiB of logits): the CPU runs the CPU-sized rows",
                    (rows * classes * logit_bytes) as f64 / f64::from(1 << 30)
                ));
            }
            let opts = CrossEntropyOptions {
                mask: mask.clone(),
                ..Default::default()
            };
            let inputs = sets(env.copies, |seed| {
                let logits = randn(&[rows, classes], DType::F32, device, seed)?;
                let logits = if dtype == DType::F32 {
                    logits
                } else {
                    logits.to_dtype(dtype).map_err(err)?
                };
                let logits = logits.set_requires_grad(backward);
                let t: Vec<i64> = (0..rows)
                    .map(|r| ((r * 7919 + seed as usize) % allowed) as i64)
                    .collect();
                Ok((logits, Tensor::from_vec(t, &[rows], device).map_err(err)?))
            })?;
            Ok(Box::new(move |i| {
                let (logits, targets) = &inputs[i % inputs.len()];
                let loss = logits.cross_entropy_with(targets, &opts).map_err(err)?.loss;
                if backward {
                    loss.backward().map_err(err)?;
                }
                Ok(())
            }))
        }),
        reference: Reference::Python(py),
    }
}

/// Which devices an optimizer row is timed on (the other is skipped with a reason).
#[derive(Clone, Copy)]
struct Devices {
    cuda: bool,
    cpu: bool,
}

/// About `n` parameters cut as a transformer's group is: per layer a square weight, a 4x-wide
/// weight and its transpose-sized partner, and small vectors (biases and norms whose sizes are
/// no multiple of the 4-wide vector), so the grouped launch walks many tensors of mixed sizes.
fn model_like_sizes(n: usize) -> Vec<usize> {
    // 8 layers of d² + 4d² + 4d² + 3d + 7 ≈ 9d² each: d from n ≈ 72 d².
    let d = ((n as f64 / 72.0).sqrt() as usize).max(1);
    let mut sizes = Vec::new();
    for _ in 0..8 {
        sizes.extend([d * d, 4 * d * d, 4 * d * d, d, d, d, 7]);
    }
    sizes
}

fn optim_case<A: Algorithm>(
    name: &str,
    step: Step,
    sizes: &[usize],
    dtype: DType,
    hyper: A,
    on: Devices,
) -> Case {
    let pb = dtype.size_in_bytes();
    let ops = match step {
        Step::AdamW => "adamw",
        Step::Lion => "lion",
        Step::SgdMomentum => "sgd_nesterov",
    };
    let n: usize = sizes.iter().sum();
    let grouped = sizes.len() > 1;
    let reference = if dtype == DType::F32 {
        let mut case = json!({"op": ops, "n": n, "dtype": "float32"});
        if grouped {
            case["sizes"] = json!(sizes);
        }
        Reference::Python(case)
    } else {
        Reference::None("numpy has no bf16")
    };
    let sizes = sizes.to_vec();
    Case {
        family: "optim",
        kernel: if grouped {
            format!("{name} step ({} tensors)", sizes.len())
        } else {
            format!("{name} step")
        },
        shape: dims(&[n]),
        dtype: super::dtype_name(dtype),
        bytes: oc::bytes_moved(step, n, pb, 4),
        flops: oc::flops(step, n),
        build: Box::new(move |env| {
            let device = env.device;
            match device {
                Device::Cpu if !on.cpu => {
                    return Err("the CPU times one optimizer size (a step is ~0.1 s)".into())
                }
                Device::Cuda(_) if !on.cuda => return Err("not one of the CUDA optimizer sizes".into()),
                _ => {}
            }
            let mut opts = sets(env.copies, |seed| {
                let mut params = Vec::with_capacity(sizes.len());
                let mut grads = Vec::with_capacity(sizes.len());
                for (k, &len) in sizes.iter().enumerate() {
                    let s = seed * 1000 + 2 * k as u64;
                    params.push(randn(&[len], dtype, device, s)?.set_requires_grad(true));
                    grads.push(randn(&[len], dtype, device, s + 1)?);
                }
                let opt = Optimizer::new(params.clone(), hyper.clone()).map_err(err)?;
                Ok((opt, params, grads))
            })?;
            let body: Body = Box::new(move |i| {
                let k = i % opts.len();
                let (opt, params, grads) = &mut opts[k];
                opt.step_with(|p| {
                    let j = params.iter().position(|q| q.shares_storage_with(p))?;
                    Some(grads[j].clone())
                })
                .map(drop)
                .map_err(err)
            });
            Ok(body)
        }),
        reference,
    }
}

/// Deterministic data for the cvx primitives: X, a ~50%-dense pattern mask, and per-pattern
/// vectors, all nonzero.
struct CvxData {
    x: Vec<f64>,
    mask: Vec<u8>,
    v: Vec<f64>,
    r: Vec<f64>,
    z: Vec<f64>,
}

fn cvx_data(s: CvxShape, seed: u64) -> CvxData {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut vals = |len: usize| (0..len).map(|_| next()).collect::<Vec<f64>>();
    let (x, v, r, z) = (vals(s.n * s.d), vals(s.p * s.d), vals(s.n), vals(s.p * s.n));
    let mask = z.iter().map(|&u| u8::from(u > 0.0)).collect();
    CvxData { x, mask, v, r, z }
}

fn cvx_cases(s: CvxShape) -> Vec<Case> {
    use cc::Primitive::*;
    let shape = format!("n={} d={} p={}", s.n, s.d, s.p);
    let py =
        |op: &str| Reference::Python(json!({"op": op, "n": s.n, "d": s.d, "p": s.p, "dtype": "float64"}));
    let ops = [
        ("masked_forward", MaskedForward),
        ("masked_backward", MaskedBackward),
        ("sign_forward", SignForward),
        ("sign_backward", SignBackward),
    ];
    let mut out: Vec<Case> = ops
        .into_iter()
        .map(|(name, prim)| Case {
            family: "cvx",
            kernel: name.into(),
            shape: shape.clone(),
            dtype: "f64",
            bytes: cc::bytes_moved(prim, s, 8),
            flops: cc::flops(s),
            build: Box::new(move |env| {
                cpu_only(env.device)?;
                let data = sets(env.copies, |seed| Ok(cvx_data(s, seed)))?;
                let out_len = match prim {
                    MaskedForward => s.n,
                    MaskedBackward | SignBackward => s.p * s.d,
                    SignForward => s.p * s.n,
                };
                let mut buf = vec![0.0f64; out_len];
                Ok(Box::new(move |i| {
                    let c = &data[i % data.len()];
                    match prim {
                        MaskedForward => cvx::masked_forward(&c.x, &c.mask, &c.v, s, &mut buf),
                        MaskedBackward => cvx::masked_backward(&c.x, &c.mask, &c.r, s, &mut buf),
                        SignForward => cvx::sign_forward(&c.x, &c.mask, &c.v, s, &mut buf),
                        SignBackward => cvx::sign_backward(&c.x, &c.mask, &c.z, s, &mut buf),
                    }
                    .map_err(|e| e.to_string())
                }))
            }),
            reference: py(&format!("cvx_{name}")),
        })
        .collect();
    out.push(Case {
        family: "cvx",
        kernel: "group_soft_threshold".into(),
        shape: dims(&[s.p, s.d]),
        dtype: "f64",
        bytes: cc::group_soft_threshold_bytes(s.p, s.d, 8),
        flops: cc::group_soft_threshold_flops(s.p, s.d),
        build: Box::new(move |env| {
            cpu_only(env.device)?;
            let mut data = sets(env.copies, |seed| Ok(cvx_data(s, seed).v))?;
            Ok(Box::new(move |i| {
                let k = i % data.len();
                // A small threshold keeps most groups alive call after call.
                cvx::group_soft_threshold(&mut data[k], s.d, 1e-6)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }))
        }),
        reference: py("group_soft_threshold"),
    });
    out
}

fn cpu_only(device: Device) -> Result<(), String> {
    match device {
        Device::Cpu => Ok(()),
        d => Err(format!(
            "kernels::cvx has no {d} entry point in the public API yet (cvx.cu is compile-checked only)"
        )),
    }
}
