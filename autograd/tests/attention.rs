//! `attention` through the tape: agreement with the unfused composition of existing ops,
//! fully masked rows (exact zeros, never NaN), side outputs, and bad input as error values.

use autograd::{attention, AttentionMask, DType, Device, Error, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    Tensor::randn(shape, dtype, Device::Cpu, &mut StdRng::seed_from_u64(seed)).unwrap()
}

fn bools(values: &[u8], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape, Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// The same attention from matmul, masked_fill and softmax (materialized, GQA by repeating KV
/// heads): an independent path through already-tested ops.
fn unfused(q: &Tensor, k: &Tensor, v: &Tensor, allowed: &Tensor, bias: &Tensor) -> Tensor {
    let (b, h, hkv, nk, d) = (
        q.shape()[0],
        q.shape()[1],
        k.shape()[1],
        k.shape()[2],
        k.shape()[3],
    );
    let g = h / hkv;
    let rep = |t: &Tensor| {
        t.unsqueeze(2)
            .unwrap()
            .expand(&[b, hkv, g, nk, d])
            .unwrap()
            .reshape(&[b, h, nk, d])
            .unwrap()
    };
    let s = q
        .matmul(&rep(k).transpose(-2, -1).unwrap())
        .unwrap()
        .mul_scalar(1.0 / (d as f64).sqrt())
        .unwrap()
        .add(bias)
        .unwrap();
    let not_allowed = Tensor::from_vec(
        allowed
            .to_vec::<u8>()
            .unwrap()
            .iter()
            .map(|&x| 1 - x)
            .collect::<Vec<u8>>(),
        allowed.shape(),
        Device::Cpu,
    )
    .unwrap();
    s.masked_fill(&not_allowed, f64::NEG_INFINITY)
        .unwrap()
        .softmax(-1)
        .unwrap()
        .matmul(&rep(v))
        .unwrap()
}

#[test]
fn matches_the_unfused_composition_with_gradients() {
    let (b, h, hkv, nq, nk, d) = (2, 4, 2, 5, 7, 3);
    let q = randn(&[b, h, nq, d], DType::F64, 1).set_requires_grad(true);
    let k = randn(&[b, hkv, nk, d], DType::F64, 2).set_requires_grad(true);
    let v = randn(&[b, hkv, nk, d], DType::F64, 3).set_requires_grad(true);
    let bias = randn(&[1, h, 1, nk], DType::F64, 4).set_requires_grad(true);
    // Causal (bottom-right: query i sees keys <= i + 2) AND padding AND a boolean [nq, nk] mask.
    let lens = [7usize, 4];
    let bm: Vec<u8> = (0..nq * nk).map(|x| (x % 5 != 1) as u8).collect();
    let mask = AttentionMask::causal()
        .and_key_padding(&lens)
        .and_boolean(&bools(&bm, &[nq, nk]))
        .with_bias(&bias);
    let mut allowed = vec![0u8; b * h * nq * nk];
    for bb in 0..b {
        for hh in 0..h {
            for i in 0..nq {
                for j in 0..nk {
                    let ok = j <= i + 2 && j < lens[bb] && bm[i * nk + j] == 1;
                    allowed[((bb * h + hh) * nq + i) * nk + j] = ok as u8;
                }
            }
        }
    }
    let allowed = bools(&allowed, &[b, h, nq, nk]);
    let fused = attention(&q, &k, &v, &mask, None).unwrap();
    let reference = unfused(&q, &k, &v, &allowed, &bias);
    assert!(max_abs_diff(&fused.out, &reference) < 1e-13);
    let w = randn(&[b, h, nq, d], DType::F64, 5);
    let gf = fused.out.backward_with(&w).unwrap();
    let gr = reference.backward_with(&w).unwrap();
    for (name, t) in [("q", &q), ("k", &k), ("v", &v), ("bias", &bias)] {
        let e = max_abs_diff(gf.get(t).unwrap(), gr.get(t).unwrap());
        assert!(e < 1e-12, "d{name}: {e}");
    }
    // max_logit is the max of the allowed logits (bias included), per (batch, head).
    assert_eq!(fused.max_logit.shape(), &[b, h]);
    assert_eq!(fused.lse.shape(), &[b, h, nq]);
}

#[test]
fn fully_masked_rows_give_exact_zeros_and_zero_gradients() {
    for dtype in [DType::F32, DType::F64] {
        let q = randn(&[2, 2, 4, 8], dtype, 6).set_requires_grad(true);
        let k = randn(&[2, 1, 3, 8], dtype, 7).set_requires_grad(true);
        let v = randn(&[2, 1, 3, 8], dtype, 8).set_requires_grad(true);
        // Causal with nq = 4 > nk = 3: query 0 sees nothing; batch row 1 has no key at all.
        let mask = AttentionMask::causal().and_key_padding(&[3, 0]);
        let a = attention(&q, &k, &v, &mask, None).unwrap();
        let out = a.out.to_vec_f64().unwrap();
        let lse = a.lse.to_vec_f64().unwrap();
        let g = a.out.sum_all().unwrap().backward().unwrap();
        let dq = g.get(&q).unwrap().to_vec_f64().unwrap();
        for bh in 0..4 {
            for i in 0..4 {
                let masked = i == 0 || bh >= 2;
                let row = bh * 4 + i;
                if masked {
                    assert!(out[row * 8..][..8].iter().all(|&x| x == 0.0), "{dtype} row {row}");
                    assert!(dq[row * 8..][..8].iter().all(|&x| x == 0.0), "{dtype} row {row}");
                    assert_eq!(lse[row], f64::NEG_INFINITY);
                } else {
                    assert!(lse[row].is_finite());
                }
            }
        }
        let dk = g.get(&k).unwrap().to_vec_f64().unwrap();
        assert!(
            dk[24..].iter().all(|&x| x == 0.0),
            "batch row 1 has no key: zero dk"
        );
        assert!(dk.iter().chain(&dq).all(|x| x.is_finite()));
        let ml = a.max_logit.to_vec_f64().unwrap();
        assert!(ml[0].is_finite() && ml[2] == f64::NEG_INFINITY);
    }
}

#[test]
fn zero_length_sequences() {
    let q = randn(&[1, 2, 0, 4], DType::F32, 1);
    let k = randn(&[1, 2, 3, 4], DType::F32, 2);
    let a = attention(&q, &k, &k, &AttentionMask::causal(), None).unwrap();
    assert_eq!(a.out.shape(), &[1, 2, 0, 4]);
    // No keys: every row fully masked, output 0, lse -inf, gradient 0.
    let q = randn(&[1, 2, 3, 4], DType::F64, 3).set_requires_grad(true);
    let k = Tensor::zeros(&[1, 1, 0, 4], DType::F64, Device::Cpu).unwrap();
    let a = attention(&q, &k, &k, &AttentionMask::none(), None).unwrap();
    assert!(a.out.to_vec_f64().unwrap().iter().all(|&x| x == 0.0));
    assert!(a
        .lse
        .to_vec_f64()
        .unwrap()
        .iter()
        .all(|&x| x == f64::NEG_INFINITY));
    let g = a.out.sum_all().unwrap().backward().unwrap();
    assert!(g.get(&q).unwrap().to_vec_f64().unwrap().iter().all(|&x| x == 0.0));
}

#[test]
fn bad_input_is_an_error_naming_the_op() {
    let q = randn(&[2, 4, 3, 8], DType::F32, 1);
    let k = randn(&[2, 2, 5, 8], DType::F32, 2);
    let none = AttentionMask::none();
    let shape_err = |r: autograd::Result<autograd::AttentionOutput>, needle: &str| match r {
        Err(e @ Error::ShapeMismatch { op: "attention", .. }) => {
            assert!(e.to_string().contains(needle), "{e}")
        }
        other => panic!("expected a shape error with {needle:?}, got {other:?}"),
    };
    shape_err(
        attention(
            &q,
            &randn(&[2, 2, 5, 4], DType::F32, 3),
            &randn(&[2, 2, 5, 4], DType::F32, 3),
            &none,
            None,
        ),
        "head dims differ",
    );
    shape_err(
        attention(
            &q,
            &randn(&[2, 3, 5, 8], DType::F32, 3),
            &randn(&[2, 3, 5, 8], DType::F32, 3),
            &none,
            None,
        ),
        "multiple of key/value heads",
    );
    shape_err(
        attention(&q, &k, &randn(&[2, 2, 6, 8], DType::F32, 3), &none, None),
        "k and v differ",
    );
    shape_err(
        attention(
            &q,
            &randn(&[1, 2, 5, 8], DType::F32, 3),
            &randn(&[1, 2, 5, 8], DType::F32, 3),
            &none,
            None,
        ),
        "batch sizes differ",
    );
    shape_err(
        attention(&q.reshape(&[8, 3, 8]).unwrap(), &k, &k, &none, None),
        "[batch, heads, seq, head_dim]",
    );
    let bad_mask = AttentionMask::boolean(&bools(&[1; 4 * 4], &[4, 4]));
    shape_err(attention(&q, &k, &k, &bad_mask, None), "does not broadcast");
    let bad_bias = AttentionMask::none().with_bias(&randn(&[3, 4], DType::F32, 4));
    shape_err(attention(&q, &k, &k, &bad_bias, None), "does not broadcast");
    let float_mask = AttentionMask::boolean(&randn(&[3, 5], DType::F32, 4));
    assert!(matches!(
        attention(&q, &k, &k, &float_mask, None),
        Err(Error::UnsupportedDType { op: "attention", .. })
    ));
    let bad_lens = AttentionMask::key_padding(&[5, 6]);
    assert!(matches!(
        attention(&q, &k, &k, &bad_lens, None),
        Err(Error::InvalidArgument { op: "attention", .. })
    ));
    let few_lens = AttentionMask::key_padding(&[5]);
    assert!(matches!(
        attention(&q, &k, &k, &few_lens, None),
        Err(Error::InvalidArgument { op: "attention", .. })
    ));
    let k64 = randn(&[2, 2, 5, 8], DType::F64, 2);
    assert!(matches!(
        attention(&q, &k64, &k64, &none, None),
        Err(Error::DTypeMismatch { op: "attention", .. })
    ));
    assert!(matches!(
        attention(&q, &k, &k, &none, Some(f64::NAN)),
        Err(Error::InvalidArgument { op: "attention", .. })
    ));
    let q0 = Tensor::zeros(&[2, 4, 3, 0], DType::F32, Device::Cpu).unwrap();
    let k0 = Tensor::zeros(&[2, 2, 5, 0], DType::F32, Device::Cpu).unwrap();
    assert!(matches!(
        attention(&q0, &k0, &k0, &none, None),
        Err(Error::InvalidArgument { op: "attention", .. })
    ));
    let qi = Tensor::zeros(&[2, 4, 3, 8], DType::I64, Device::Cpu).unwrap();
    assert!(matches!(
        attention(&qi, &qi, &qi, &none, None),
        Err(Error::UnsupportedDType { op: "attention", .. })
    ));
}
