//! Fused attention: every mask kind, GQA, nq != nk both ways, fully masked rows, and a tracked
//! bias (broadcast over heads, so its gradient is a sum). Each case checks q, k, v (and the bias)
//! against central differences of `⟨out, r⟩`.
//!
//! Inputs are scaled so that the softmax is neither uniform nor one-hot (logits of order 1), so
//! every term of the backward matters. Masked positions and fully masked rows are inside the
//! function: their outputs do not move with q, k, v, so the numeric derivative there is exactly
//! 0 and the analytic one must be too.

use super::common::*;
use autograd::{attention, AttentionMask, Device, Tensor};

fn bools(values: &[u8], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape, Device::Cpu).unwrap()
}

/// q [B, H, nq, D], k and v [B, Hkv, nk, D].
fn qkv(
    r: &mut rand::rngs::StdRng,
    b: usize,
    h: usize,
    hkv: usize,
    nq: usize,
    nk: usize,
    d: usize,
) -> Vec<Tensor> {
    vec![
        randn(&[b, h, nq, d], r).mul_scalar(1.2).unwrap(),
        randn(&[b, hkv, nk, d], r).mul_scalar(1.2).unwrap(),
        randn(&[b, hkv, nk, d], r),
    ]
}

fn case(name: &str, inputs: Vec<Tensor>, mask: AttentionMask, scale: Option<f64>) -> Case {
    Case::new(name, inputs, move |x| {
        let mask = match x.get(3) {
            Some(bias) => mask.clone().with_bias(bias),
            None => mask.clone(),
        };
        Ok(attention(&x[0], &x[1], &x[2], &mask, scale)?.out)
    })
}

pub fn cases() -> Vec<Case> {
    let r = &mut rng(41);
    let mut cases = vec![
        case(
            "attention, no mask",
            qkv(r, 2, 2, 2, 3, 4, 3),
            AttentionMask::none(),
            None,
        ),
        case(
            "attention, GQA 4 query heads on 2 KV heads",
            qkv(r, 1, 4, 2, 3, 5, 2),
            AttentionMask::none(),
            None,
        ),
        case(
            "attention, MQA, explicit scale",
            qkv(r, 2, 3, 1, 2, 3, 4),
            AttentionMask::none(),
            Some(0.7),
        ),
        case(
            "attention, causal nq = nk",
            qkv(r, 1, 2, 1, 4, 4, 3),
            AttentionMask::causal(),
            None,
        ),
        case(
            "attention, causal nq < nk",
            qkv(r, 2, 1, 1, 2, 5, 3),
            AttentionMask::causal(),
            None,
        ),
        // nq > nk: the first two queries see no key (fully masked rows).
        case(
            "attention, causal nq > nk",
            qkv(r, 1, 2, 2, 5, 3, 2),
            AttentionMask::causal(),
            None,
        ),
        // Batch row 1 has no valid key: all its rows are fully masked.
        case(
            "attention, key padding",
            qkv(r, 3, 2, 1, 3, 4, 3),
            AttentionMask::key_padding(&[4, 0, 2]),
            None,
        ),
        case(
            "attention, diagonal",
            qkv(r, 2, 2, 2, 4, 4, 3),
            AttentionMask::diagonal(),
            None,
        ),
        case(
            "attention, causal + diagonal + padding",
            qkv(r, 2, 2, 1, 4, 4, 2),
            AttentionMask::causal().and_diagonal().and_key_padding(&[3, 4]),
            None,
        ),
    ];
    // A [nq, nk] boolean mask broadcast over batch and heads; row 1 fully masked.
    let m = bools(&[1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0], &[3, 4]);
    cases.push(case(
        "attention, boolean [nq, nk]",
        qkv(r, 2, 2, 1, 3, 4, 3),
        AttentionMask::boolean(&m),
        None,
    ));
    // A per-batch, per-head mask [B, H, 1, nk] (key masks that differ by head).
    let m = bools(&[1, 1, 0, 1, 0, 1, 1, 1], &[2, 2, 1, 2]);
    cases.push(case(
        "attention, boolean [B, H, 1, nk]",
        qkv(r, 2, 2, 2, 3, 2, 2),
        AttentionMask::boolean(&m),
        None,
    ));
    // Tracked biases: full [B, H, nq, nk] and broadcast [B, 1, nq, nk] (gradient summed over H).
    let mut inputs = qkv(r, 2, 2, 1, 3, 4, 2);
    inputs.push(randn(&[2, 2, 3, 4], r));
    cases.push(case(
        "attention, bias [B, H, nq, nk]",
        inputs,
        AttentionMask::none(),
        None,
    ));
    let mut inputs = qkv(r, 2, 2, 2, 3, 4, 2);
    inputs.push(randn(&[2, 1, 3, 4], r));
    let m = bools(&[1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0], &[3, 4]);
    cases.push(case(
        "attention, bias [B, 1, nq, nk] + causal + boolean",
        inputs,
        AttentionMask::causal().and_boolean(&m),
        None,
    ));
    // Enough queries and keys to span several tiles of the CPU kernel (64 x 64), so the online
    // softmax's rescaling across key tiles and the tile skipping are differentiated too; D = 1
    // and one head keep it to 2 x 130 + 2 x 70 finite differences.
    cases.push(case(
        "attention, causal across tiles",
        qkv(r, 1, 1, 1, 70, 130, 1),
        AttentionMask::causal(),
        None,
    ));
    cases
}
