//! The gradient of attention's additive bias, CPU against CUDA (the `attention_bwd_dq_dbias_f32`
//! kernels plus the reduce kernels), for a full `[B, H, nq, nk]` bias and two broadcast shapes
//! (`[1, H, nq, nk]`, summed over the batch, and `[nq, nk]`, summed over batch and heads), with
//! no mask, a bottom-right causal mask with `nq > nk` (its first `nq - nk` rows are fully
//! masked), and a boolean mask with a batch row of key-padding length 0 (every row of it fully
//! masked); GQA and MQA; head dims 32/64/128; awkward lengths.
//!
//! The CPU half runs on every machine: it checks the CPU op against itself through a different
//! path (the broadcast bias's gradient equals the full-shape gradient of the same values summed
//! in f64 by this file, not by `sum_to_shape`), and that masked pairs and fully masked rows get
//! exactly 0. The CUDA half then compares out, lse, dq, dk, dv and dbias with the tolerance of
//! `attention.rs` (relative 1e-5 plus 1e-5 of the compared tensor's largest magnitude; the same
//! reasons: a few ulps per term from summation order and exp2 vs exp, while a wrong pair, a
//! missed tile or an unwritten element is O(1) off or NaN), and the exact zeros again on the GPU.
//!
//! Why the f64 re-summation may differ from the op's own sum at all: the op accumulates dS over
//! the broadcast dimensions in f32, in its own order; 1e-5 of the scale covers that (at most
//! B·H = 8 terms here).

use super::attention::{close_scaled, uniform, Case};
use super::common::*;
use autograd::{attention, AttentionMask, Device, Tensor};

/// Whether query `i` of batch row `b` may attend to key `j` (the same for every head here),
/// written out from the mask's definition rather than taken from the op.
type AllowedFn = fn(&Case, usize, usize, usize) -> bool;

fn pattern(c: &Case, b: usize, i: usize, j: usize) -> bool {
    // The pattern of `attention::bool_mask` ([B, 1, nq, nk]).
    !(((b * c.nq + i) * c.nk + j) * 7919 + 13).is_multiple_of(5)
}

/// Each case with its mask written out, and whether it has fully masked rows by construction.
fn bias_cases() -> Vec<(Case, AllowedFn, bool)> {
    let case = |name: &str, h, hkv, nq, nk, d, mask| Case {
        name: name.to_string(),
        b: 2,
        h,
        hkv,
        nq,
        nk,
        d,
        mask,
    };
    vec![
        (
            case("none", 2, 2, 17, 300, 32, |_, _| AttentionMask::none()),
            |_, _, _, _| true,
            false,
        ),
        (
            // nq - nk = 32 rows see no key (bottom-right alignment).
            case("causal nq > nk", 3, 1, 65, 33, 64, |_, _| AttentionMask::causal()),
            |c, _, i, j| j + c.nq <= i + c.nk,
            true,
        ),
        (
            case("bool + padding 0", 2, 1, 33, 63, 128, |c, d| {
                AttentionMask::key_padding(&[c.nk, 0]).and_boolean(&super::attention::bool_mask(c, d))
            }),
            |c, b, i, j| b == 0 && pattern(c, b, i, j),
            true,
        ),
        (
            case("causal + bool", 4, 2, 63, 65, 32, |c, d| {
                AttentionMask::causal().and_boolean(&super::attention::bool_mask(c, d))
            }),
            |c, b, i, j| j + c.nq <= i + c.nk && pattern(c, b, i, j),
            false,
        ),
    ]
}

/// out, lse, dq, dk, dv, dbias of one run with a tracked bias (the bias leaf made from `bias`).
fn run(c: &Case, bias: &Tensor, device: Device, inputs: &[Tensor; 4]) -> Vec<Tensor> {
    let [q, k, v, dout] = inputs;
    let leaves: Vec<Tensor> = [q, k, v, bias]
        .iter()
        .map(|t| t.to_device(device).unwrap().set_requires_grad(true))
        .collect();
    let mask = (c.mask)(c, device).with_bias(&leaves[3]);
    let a = attention(&leaves[0], &leaves[1], &leaves[2], &mask, None)
        .unwrap_or_else(|e| panic!("{} on {device}: {e}", c.name));
    let grads = a.out.backward_with(&dout.to_device(device).unwrap()).unwrap();
    let mut r = vec![a.out, a.lse];
    r.extend(
        leaves
            .iter()
            .map(|l| grads.get(l).expect("a gradient for every leaf").clone()),
    );
    r
}

/// As `attention.rs`: lse (with its exact -inf rows) against an absolute 1e-5, the rest scaled.
fn compare(what: &str, name: &str, a: &Tensor, b: &Tensor) {
    if name == "lse" {
        let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
        assert_close(what, &a, &b, 1e-5, 1e-5);
    } else {
        close_scaled(what, a, b);
    }
}

/// `full` ([B, H, nq, nk], row-major) summed in f64 down to `shape` (right-aligned broadcast).
fn sum_down(full: &[f64], dims: [usize; 4], shape: &[usize]) -> Vec<f64> {
    let mut padded = [1usize; 4];
    padded[4 - shape.len()..].copy_from_slice(shape);
    let mut out = vec![0.0; padded.iter().product()];
    for (n, &x) in full.iter().enumerate() {
        let idx = [
            n / (dims[1] * dims[2] * dims[3]),
            n / (dims[2] * dims[3]) % dims[1],
            n / dims[3] % dims[2],
            n % dims[3],
        ];
        let mut o = 0;
        for d in 0..4 {
            o = o * padded[d] + if padded[d] == 1 { 0 } else { idx[d] };
        }
        out[o] += x;
    }
    out
}

/// The full-shape bias of a broadcast one: `small` read at every [B, H, nq, nk] index.
fn expand(small: &Tensor, dims: [usize; 4]) -> Tensor {
    let v = small.to_vec_f64().unwrap();
    let mut padded = [1usize; 4];
    padded[4 - small.rank()..].copy_from_slice(small.shape());
    let full: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|n| {
            let idx = [
                n / (dims[1] * dims[2] * dims[3]),
                n / (dims[2] * dims[3]) % dims[1],
                n / dims[3] % dims[2],
                n % dims[3],
            ];
            let mut o = 0;
            for d in 0..4 {
                o = o * padded[d] + if padded[d] == 1 { 0 } else { idx[d] };
            }
            v[o] as f32
        })
        .collect();
    Tensor::from_vec(full, &dims, Device::Cpu).unwrap()
}

/// dbias of the full shape is exactly 0 at every masked pair (so also on fully masked rows),
/// and fully masked rows exist where the case builds them.
fn assert_masked_pairs_zero(
    what: &str,
    c: &Case,
    allowed: AllowedFn,
    masked_rows_expected: bool,
    dbias: &Tensor,
) {
    let g = dbias.to_vec_f64().unwrap();
    let mut masked_rows = 0;
    for b in 0..c.b {
        for h in 0..c.h {
            for i in 0..c.nq {
                let row = &g[((b * c.h + h) * c.nq + i) * c.nk..][..c.nk];
                for (j, &x) in row.iter().enumerate() {
                    assert!(
                        allowed(c, b, i, j) || x == 0.0,
                        "{what}: dbias[{b}, {h}, {i}, {j}] = {x} at a masked pair"
                    );
                }
                masked_rows += (0..c.nk).all(|j| !allowed(c, b, i, j)) as usize;
            }
        }
    }
    assert!(
        masked_rows > 0 || !masked_rows_expected,
        "{what}: no fully masked row"
    );
}

#[test]
fn attention_bias_gradient_full_and_broadcast_shapes() {
    let mut device = None;
    for (n, (c, allowed, masked_rows)) in bias_cases().into_iter().enumerate() {
        let seed = 500 + 10 * n as u64;
        let inputs = [
            uniform(&[c.b, c.h, c.nq, c.d], seed),
            uniform(&[c.b, c.hkv, c.nk, c.d], seed + 1),
            uniform(&[c.b, c.hkv, c.nk, c.d], seed + 2),
            uniform(&[c.b, c.h, c.nq, c.d], seed + 3),
        ];
        let dims = [c.b, c.h, c.nq, c.nk];
        for shape in [dims.to_vec(), vec![1, c.h, c.nq, c.nk], vec![c.nq, c.nk]] {
            let what = format!("{} bias {shape:?}", c.name);
            let bias = uniform(&shape, seed + 4);
            // CPU half: the broadcast bias against the same values materialized at full shape.
            let cpu = run(&c, &bias, Device::Cpu, &inputs);
            let full = run(&c, &expand(&bias, dims), Device::Cpu, &inputs);
            assert_masked_pairs_zero(
                &format!("{what} (cpu, expanded)"),
                &c,
                allowed,
                masked_rows,
                &full[5],
            );
            let summed = sum_down(&full[5].to_vec_f64().unwrap(), dims, &shape);
            let scale = summed.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert_close(
                &format!("{what}: cpu dbias vs f64 sum of the full-shape dbias"),
                &summed,
                &cpu[5].to_vec_f64().unwrap(),
                1e-5,
                1e-5 * scale.max(1e-3),
            );
            for (i, name) in ["out", "lse", "dq", "dk", "dv"].iter().enumerate() {
                compare(
                    &format!("{what} cpu {name} (broadcast vs expanded)"),
                    name,
                    &full[i],
                    &cpu[i],
                );
            }
            // CUDA half (skips here, with the reason printed once per run of this test).
            if device.is_none() {
                device = Some(cuda_or_skip("attention bias gradient parity"));
            }
            let Some(Some(dev)) = device else { continue };
            let gpu = run(&c, &bias, dev, &inputs);
            for (i, name) in ["out", "lse", "dq", "dk", "dv", "dbias"].iter().enumerate() {
                compare(&format!("{what} {name}"), name, &cpu[i], &gpu[i]);
            }
            if shape == dims {
                assert_masked_pairs_zero(&format!("{what} (cuda)"), &c, allowed, masked_rows, &gpu[5]);
            }
        }
    }
}
