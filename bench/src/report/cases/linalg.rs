//! Matrix multiply and attention: the compute-bound rows. On the CPU, attention is compared with
//! our own unfused path (matmul, scale, softmax, matmul through the tensor API, which
//! materializes the `n × n` scores) rather than with numpy: the question the row answers is what
//! the fused tiled kernel buys over composing the ops we already have. On a GPU the same rows are
//! compared with PyTorch's `scaled_dot_product_attention` (forward, or forward + backward).
//!
//! The boolean-mask forward row ("arbitrary mask", issue 4's "at least 0.8x our dense path") is
//! compared on the CPU with our own fused forward with no mask at the same shape, so its ratio is
//! the cost of an arbitrary mask; on a GPU with SDPA given the same boolean mask.

use autograd::{attention, AttentionMask, DType, Device, Tensor};
use kernels::attention::{cost as ac, AttnShape};
use kernels::matmul::cost as mc;
use serde_json::json;

use super::pointwise::op_case;
use super::{dims, err, randn, sets, Body, Build, Case, Reference, Scale};

pub(super) fn cases(scale: Scale) -> Vec<Case> {
    let mut out = Vec::new();
    let squares: &[(usize, DType)] = scale.pick(
        &[
            (512, DType::F32),
            (1024, DType::F32),
            (2048, DType::F32),
            (1024, DType::F64),
        ],
        &[(512, DType::F32), (1024, DType::F32)],
        &[(32, DType::F32)],
    );
    for &(n, dtype) in squares {
        let e = dtype.size_in_bytes();
        out.push(op_case(
            "matmul",
            "matmul",
            vec![vec![n, n], vec![n, n]],
            dtype,
            mc::bytes_moved(n, n, n, 1, e),
            mc::flops(n, n, n, 1),
            json!({"op": "matmul"}),
            |x| x[0].matmul(&x[1]),
        ));
    }
    // Batched, attention-shaped: 16 heads of [256, 64] @ [64, 256].
    let (b, m, k) = scale.pick((16, 256, 64), (16, 256, 64), (2, 8, 4));
    out.push(op_case(
        "matmul",
        "matmul (batched)",
        vec![vec![b, m, k], vec![b, k, m]],
        DType::F32,
        mc::bytes_moved(m, m, k, b, 4),
        mc::flops(m, m, k, b),
        json!({"op": "matmul"}),
        |x| x[0].matmul(&x[1]),
    ));

    let lens: &[usize] = scale.pick(&[1024, 2048], &[1024], &[32]);
    let (heads, d) = scale.pick((4, 64), (4, 64), (2, 16));
    let shape = |n| AttnShape {
        batch: 1,
        heads,
        kv_heads: heads,
        q_len: n,
        kv_len: n,
        head_dim: d,
    };
    for &n in lens {
        for causal in [false, true] {
            for backward in [false, true] {
                out.push(attention_case(shape(n), causal, backward));
            }
        }
        out.push(bool_mask_case(shape(n)));
    }
    out
}

/// The pattern of the boolean-mask row, `[n, n]` broadcast over batch and heads: about 4 in 5
/// pairs attend, scattered (no tile is empty or full), so every tile takes the per-element test.
fn mask_pattern(n: usize) -> Vec<u8> {
    (0..n * n)
        .map(|i| !(i * 7919 + 13).is_multiple_of(5) as u8)
        .collect()
}

/// The PyTorch SDPA spec of an attention row (`bench/reference/reference.py`, GPU only).
fn sdpa(s: AttnShape, causal: bool, backward: bool, mask: bool) -> Reference {
    Reference::Python(json!({
        "op": "attention",
        "batch": s.batch,
        "heads": s.heads,
        "n": s.q_len,
        "d": s.head_dim,
        "causal": causal,
        "backward": backward,
        "bool_mask": mask,
    }))
}

/// The boolean-mask forward, against our fused dense forward (CPU) or SDPA with the mask (GPU).
fn bool_mask_case(s: AttnShape) -> Case {
    Case {
        family: "attention",
        kernel: "attention bool-mask fwd".into(),
        shape: dims(&[s.batch, s.heads, s.q_len, s.head_dim]),
        dtype: "f32",
        // The mask's n² bytes on top of the dense forward's minimum.
        bytes: ac::forward_bytes(&s, 4) + (s.q_len * s.kv_len) as f64,
        flops: ac::flops(&s, false, false),
        build: attention_build(s, Masking::Bool, false, false),
        reference: Reference::ByDevice {
            cpu: Box::new(Reference::Ours {
                label: "ours, fused, no mask (same shape)",
                build: attention_build(s, Masking::None, false, false),
            }),
            gpu: Box::new(sdpa(s, false, false, true)),
        },
    }
}

/// Which mask an attention row applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Masking {
    None,
    Causal,
    Bool,
}

fn attention_case(s: AttnShape, causal: bool, backward: bool) -> Case {
    let masking = if causal { Masking::Causal } else { Masking::None };
    let mut flops = ac::flops(&s, causal, false);
    let mut bytes = ac::forward_bytes(&s, 4);
    if backward {
        flops += ac::flops(&s, causal, true);
        bytes += ac::backward_bytes(&s, 4);
    }
    let kernel = format!(
        "attention {}{}",
        if causal { "causal " } else { "" },
        if backward { "fwd+bwd" } else { "fwd" }
    );
    Case {
        family: "attention",
        kernel,
        shape: dims(&[s.batch, s.heads, s.q_len, s.head_dim]),
        dtype: "f32",
        bytes,
        flops,
        build: attention_build(s, masking, backward, false),
        reference: Reference::ByDevice {
            cpu: Box::new(Reference::Ours {
                label: "ours, unfused (matmul·softmax·matmul)",
                build: attention_build(s, masking, backward, true),
            }),
            gpu: Box::new(sdpa(s, causal, backward, false)),
        },
    }
}

/// One set of q, k, v (and the output gradient), as leaves that require gradient when the
/// backward is timed.
fn qkv(s: AttnShape, device: Device, seed: u64, grad: bool) -> Result<[Tensor; 4], String> {
    let shape = [s.batch, s.heads, s.q_len, s.head_dim];
    let t = |k: u64| randn(&shape, DType::F32, device, seed + k).map(|t| t.set_requires_grad(grad));
    Ok([t(0)?, t(1)?, t(2)?, t(3)?.set_requires_grad(false)])
}

fn attention_build(s: AttnShape, masking: Masking, backward: bool, unfused: bool) -> Build {
    let causal = masking == Masking::Causal;
    Box::new(move |env| {
        let device = env.device;
        if unfused && masking == Masking::Bool {
            return Err("the unfused attention row has no boolean mask".into());
        }
        let inputs = sets(env.copies, |seed| qkv(s, device, seed, backward))?;
        let bool_mask = if masking == Masking::Bool {
            let m = Tensor::from_vec(mask_pattern(s.q_len), &[s.q_len, s.kv_len], Device::Cpu)
                .and_then(|t| t.to_device(device))
                .map_err(err)?;
            Some(m)
        } else {
            None
        };
        // The unfused path masks with an additive bias: -1e30 above the diagonal (not -inf, so
        // that no 0·inf can appear in the softmax's backward).
        let bias = if causal && unfused {
            let n = s.q_len;
            let v: Vec<f32> = (0..n * n)
                .map(|i| if i % n > i / n { -1e30 } else { 0.0 })
                .collect();
            Some(Tensor::from_vec(v, &[n, n], device).map_err(err)?)
        } else {
            None
        };
        let scale = 1.0 / (s.head_dim as f64).sqrt();
        let body: Body = Box::new(move |i| {
            let [q, k, v, dout] = &inputs[i % inputs.len()];
            let out = if unfused {
                let mut scores = q
                    .matmul(&k.transpose(-2, -1).map_err(err)?)
                    .map_err(err)?
                    .mul_scalar(scale)
                    .map_err(err)?;
                if let Some(b) = &bias {
                    scores = scores.add(b).map_err(err)?;
                }
                scores.softmax(-1).map_err(err)?.matmul(v).map_err(err)?
            } else {
                let mask = match (masking, &bool_mask) {
                    (Masking::Causal, _) => AttentionMask::causal(),
                    (Masking::Bool, Some(m)) => AttentionMask::boolean(m),
                    _ => AttentionMask::none(),
                };
                attention(q, k, v, &mask, None).map_err(err)?.out
            };
            if backward {
                out.backward_with(dout).map_err(err)?;
            }
            Ok(())
        });
        Ok(body)
    })
}
