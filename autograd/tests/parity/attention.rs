//! Fused attention, CPU (tiled online softmax) against CUDA (the FA2-style f32 kernels), through
//! the autograd op: out, lse, max_logit and dq, dk, dv, for every mask kind, GQA and MQA, head
//! dims 32/64/128, and awkward lengths (1, 17, 63, 65, 300, nq != nk in both directions).
//!
//! Tolerance: relative 1e-5 plus an absolute floor of 1e-5 times the largest magnitude of the
//! compared tensor. Why scaled: every element is a sum over up to 300 keys of products whose
//! rounding is relative to the operands (|p·v| <= max|v|), not to the result, and results that
//! cancel to near zero (dq, dk with dS of both signs) make a pure relative test meaningless.
//! The two devices differ in summation order (tiles of 32 vs 64 keys, a different online-max
//! schedule) and in exp (the GPU's exp2 of a log2(e)-scaled logit, ~2 ulp, vs libm exp):
//! a few ulps per term, far below 1e-5 of the scale, while a wrong mask, a wrong KV head or
//! an unwritten element (poisoned NaN) is O(1) off.
//!
//! Fully masked rows are compared exactly: out and the gradients of those rows must be +0 or
//! -0 on the GPU, lse -inf.

use super::common::*;
use autograd::{attention, AttentionMask, DType, Device, Error, Tensor};

const RTOL: f64 = 1e-5;
const SCALED_ATOL: f64 = 1e-5;

pub(super) fn uniform(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, Device::Cpu, &mut rng(seed)).unwrap()
}

pub(super) fn close_scaled(what: &str, cpu: &Tensor, gpu: &Tensor) {
    assert_eq!(cpu.shape(), gpu.shape(), "{what}: shapes");
    let (c, g) = (cpu.to_vec_f64().unwrap(), gpu.to_vec_f64().unwrap());
    let scale = c
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(what, &c, &g, RTOL, SCALED_ATOL * scale.max(1e-3));
}

/// Largest Euclidean norm of the last-axis rows of `t`.
fn max_row_norm(t: &Tensor) -> f64 {
    let d = *t.shape().last().unwrap();
    let v = t.to_vec_f64().unwrap();
    v.chunks(d.max(1))
        .map(|r| r.iter().map(|x| x * x).sum::<f64>().sqrt())
        .fold(0.0, f64::max)
}

/// dq and dk: as [`close_scaled`], with the absolute floor also covering the rounding of the
/// terms that cancel. dq_i = scale Σ_j P_ij (dP_ij - Δ_i) k_j, and dP_ij - Δ_i cancels exactly
/// when a row sees one key (nq = nk = 1: the true dq and dk are 0, and the CPU's rounding
/// leaves ~5e-8 while the kernel gives an exact 0). The rounding of that difference is relative
/// to |dP| <= max‖dO_i‖·max‖v_j‖ (Cauchy-Schwarz), not to the result, so the floor adds 16 f32
/// ulps of the largest term, scale · max|dP| · max|k| (max|q| for dk). In the ordinary cases
/// this is below the result-scaled floor, so it changes nothing there.
fn close_scaled_cancelling(what: &str, cpu: &Tensor, gpu: &Tensor, term_scale: f64) {
    assert_eq!(cpu.shape(), gpu.shape(), "{what}: shapes");
    let (c, g) = (cpu.to_vec_f64().unwrap(), gpu.to_vec_f64().unwrap());
    let scale = c
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let floor = (SCALED_ATOL * scale.max(1e-3)).max(16.0 * f32::EPSILON as f64 * term_scale);
    assert_close(what, &c, &g, RTOL, floor);
}

fn max_abs(t: &Tensor) -> f64 {
    t.to_vec_f64().unwrap().iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// One attention problem: shapes and a mask builder (the mask's tensors are made for the
/// device the call runs on).
pub(super) struct Case {
    pub(super) name: String,
    pub(super) b: usize,
    pub(super) h: usize,
    pub(super) hkv: usize,
    pub(super) nq: usize,
    pub(super) nk: usize,
    pub(super) d: usize,
    pub(super) mask: MaskFn,
}

/// Builds a case's mask for a device.
pub(super) type MaskFn = fn(&Case, Device) -> AttentionMask;

pub(super) fn bool_mask(c: &Case, dev: Device) -> Tensor {
    // A pseudo-random pattern broadcast over heads: [B, 1, nq, nk].
    let v: Vec<u8> = (0..c.b * c.nq * c.nk)
        .map(|i| ((i * 7919 + 13) % 5 != 0) as u8)
        .collect();
    Tensor::from_vec(v, &[c.b, 1, c.nq, c.nk], Device::Cpu)
        .unwrap()
        .to_device(dev)
        .unwrap()
}

fn bias(c: &Case, dev: Device) -> Tensor {
    // ALiBi-like [H, nq, nk] bias, broadcast over the batch; a constant (no gradient).
    let v: Vec<f32> = (0..c.h * c.nq * c.nk)
        .map(|i| {
            let (h, j) = (i / (c.nq * c.nk), i % c.nk);
            -0.05 * (h + 1) as f32 * (j as f32 / c.nk.max(1) as f32)
        })
        .collect();
    Tensor::from_vec(v, &[c.h, c.nq, c.nk], Device::Cpu)
        .unwrap()
        .to_device(dev)
        .unwrap()
}

fn lengths(c: &Case) -> Vec<usize> {
    // Batch row 0 keeps every key, the others fewer; never more than nk.
    (0..c.b)
        .map(|b| if b == 0 { c.nk } else { (c.nk * 2 / 3).max(1) })
        .collect()
}

fn mask_kinds() -> Vec<(&'static str, MaskFn)> {
    vec![
        ("none", |_, _| AttentionMask::none()),
        ("causal", |_, _| AttentionMask::causal()),
        ("diagonal", |_, _| AttentionMask::diagonal()),
        ("padding", |c, _| AttentionMask::key_padding(&lengths(c))),
        ("bool", |c, d| AttentionMask::boolean(&bool_mask(c, d))),
        ("bias", |c, d| AttentionMask::none().with_bias(&bias(c, d))),
        ("all", |c, d| {
            AttentionMask::causal()
                .and_diagonal()
                .and_key_padding(&lengths(c))
                .and_boolean(&bool_mask(c, d))
                .with_bias(&bias(c, d))
        }),
    ]
}

/// Runs one case on both devices; compares everything, then returns the GPU tensors for
/// extra checks (out, lse, dq, dk, dv).
fn run_case(c: &Case, dev: Device) -> [Tensor; 5] {
    let seed = (c.nq * 1000 + c.nk * 10 + c.d) as u64;
    let q = uniform(&[c.b, c.h, c.nq, c.d], seed);
    let k = uniform(&[c.b, c.hkv, c.nk, c.d], seed + 1);
    let v = uniform(&[c.b, c.hkv, c.nk, c.d], seed + 2);
    let dout = uniform(&[c.b, c.h, c.nq, c.d], seed + 3);
    let mut results = Vec::new();
    for device in [Device::Cpu, dev] {
        let leaves: Vec<Tensor> = [&q, &k, &v]
            .iter()
            .map(|t| t.to_device(device).unwrap().set_requires_grad(true))
            .collect();
        let a = attention(&leaves[0], &leaves[1], &leaves[2], &(c.mask)(c, device), None)
            .unwrap_or_else(|e| panic!("{} on {device}: {e}", c.name));
        assert_eq!(a.out.device(), device);
        let grads = a.out.backward_with(&dout.to_device(device).unwrap()).unwrap();
        let g: Vec<Tensor> = leaves.iter().map(|l| grads.get(l).unwrap().clone()).collect();
        results.push((a, g));
    }
    let (gpu, gg) = results.pop().unwrap();
    let (cpu, gc) = results.pop().unwrap();
    close_scaled(&format!("{} out", c.name), &cpu.out, &gpu.out);
    // lse: -inf rows must agree exactly (assert_close treats equal values as equal).
    assert_close(
        &format!("{} lse", c.name),
        &cpu.lse.to_vec_f64().unwrap(),
        &gpu.lse.to_vec_f64().unwrap(),
        RTOL,
        1e-5,
    );
    assert_close(
        &format!("{} max_logit", c.name),
        &cpu.max_logit.to_vec_f64().unwrap(),
        &gpu.max_logit.to_vec_f64().unwrap(),
        RTOL,
        1e-5,
    );
    let max_dp = max_row_norm(&dout) * max_row_norm(&v);
    let softmax_scale = 1.0 / (c.d as f64).sqrt();
    close_scaled_cancelling(
        &format!("{} dq", c.name),
        &gc[0],
        &gg[0],
        softmax_scale * max_dp * max_abs(&k),
    );
    close_scaled_cancelling(
        &format!("{} dk", c.name),
        &gc[1],
        &gg[1],
        softmax_scale * max_dp * max_abs(&q),
    );
    close_scaled(&format!("{} dv", c.name), &gc[2], &gg[2]);
    let [dq, dk, dv]: [Tensor; 3] = gg.try_into().unwrap();
    [gpu.out, gpu.lse, dq, dk, dv]
}

#[test]
fn attention_f32_every_mask_kind_and_awkward_lengths() {
    let Some(dev) = cuda_or_skip("attention f32 parity") else {
        return;
    };
    let lens = [
        (1, 1),
        (17, 17),
        (63, 65),
        (65, 63),
        (300, 300),
        (17, 300),
        (300, 17),
    ];
    for (mask_name, mask) in mask_kinds() {
        for (i, &(nq, nk)) in lens.iter().enumerate() {
            // Head dims and head layouts rotate over the lengths so every combination of mask
            // kind with each D and with MHA/GQA/MQA is covered without a full product.
            let d = [32, 64, 128][i % 3];
            let (h, hkv) = [(2, 2), (4, 2), (3, 1)][(i / 3) % 3];
            let case = Case {
                name: format!("{mask_name} nq={nq} nk={nk} D={d} H={h} Hkv={hkv}"),
                b: 2,
                h,
                hkv,
                nq,
                nk,
                d,
                mask,
            };
            run_case(&case, dev);
        }
    }
}

fn all_zero(t: &Tensor, range: std::ops::Range<usize>) -> bool {
    t.to_vec_f64().unwrap()[range].iter().all(|&v| v == 0.0)
}

#[test]
fn attention_fully_masked_rows_are_exact_zeros_on_cuda() {
    let Some(dev) = cuda_or_skip("attention fully masked rows") else {
        return;
    };
    // Batch row 1 has no valid key (padding length 0): all its rows are fully masked. With
    // nq = 1 = nk, the diagonal mask masks the only key of every row.
    let cases: [Case; 2] = [
        Case {
            name: "padding length 0".into(),
            b: 2,
            h: 2,
            hkv: 1,
            nq: 33,
            nk: 40,
            d: 64,
            mask: |_, _| AttentionMask::key_padding(&[40, 0]),
        },
        Case {
            name: "diagonal of one key".into(),
            b: 1,
            h: 2,
            hkv: 2,
            nq: 1,
            nk: 1,
            d: 32,
            mask: |_, _| AttentionMask::diagonal(),
        },
    ];
    for c in &cases {
        let [out, lse, dq, dk, dv] = run_case(c, dev);
        let masked_b = if c.b == 2 { 1 } else { 0 };
        let per_b_q = c.h * c.nq * c.d;
        let per_b_kv = c.hkv * c.nk * c.d;
        let q_range = masked_b * per_b_q..(masked_b + 1) * per_b_q;
        let kv_range = masked_b * per_b_kv..(masked_b + 1) * per_b_kv;
        assert!(all_zero(&out, q_range.clone()), "{}: out not exactly 0", c.name);
        assert!(all_zero(&dq, q_range), "{}: dq not exactly 0", c.name);
        assert!(all_zero(&dk, kv_range.clone()), "{}: dk not exactly 0", c.name);
        assert!(all_zero(&dv, kv_range), "{}: dv not exactly 0", c.name);
        let rows = c.h * c.nq;
        let l = lse.to_vec_f64().unwrap();
        assert!(
            l[masked_b * rows..(masked_b + 1) * rows]
                .iter()
                .all(|&v| v == f64::NEG_INFINITY),
            "{}: lse of fully masked rows is -inf",
            c.name
        );
    }
}

#[test]
fn attention_cuda_limits_are_clear_errors() {
    let Some(dev) = cuda_or_skip("attention CUDA limits") else {
        return;
    };
    let t = |shape: &[usize], seed| uniform(shape, seed).to_device(dev).unwrap();
    // A head dim without a kernel instance.
    let q = t(&[1, 1, 4, 48], 1);
    match attention(&q, &q, &q, &AttentionMask::none(), None) {
        Err(Error::InvalidArgument {
            op: "attention",
            reason,
        }) => assert!(reason.contains("48"), "{reason}"),
        other => panic!("head dim 48 on CUDA: {other:?}"),
    }
    // Under no_grad a bias that requires gradient is only read, and the call works (its
    // gradient is covered by `attention_bias_gradient_*` below).
    let q = t(&[1, 1, 4, 32], 2);
    let b = t(&[4, 4], 3).set_requires_grad(true);
    let a = autograd::no_grad(|| attention(&q, &q, &q, &AttentionMask::none().with_bias(&b), None));
    assert!(a.is_ok(), "{a:?}");
}
