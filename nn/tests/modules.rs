//! Modules: shapes, names, gradients (f64 finite differences), save/load, train/eval, errors,
//! and a tiny LM that learns.

use autograd::gradcheck::{gradcheck, GradcheckOptions};
use autograd::{AttentionMask, DType, Device, Tensor};
use nn::modules::{
    blocked_mask, init, load_parameters, save_parameters, Arrangement, AttentionConfig, BlockConfig,
    DecoderLm, Dropout, Embedding, LayerNorm, Linear, LmConfig, Mlp, Module, MultiHeadAttention, NormKind,
    RmsNorm, TransformerBlock,
};
use nn::optim::{AdamW, Optimizer};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    Tensor::randn(shape, dtype, Device::Cpu, &mut rng(seed)).unwrap()
}

fn ids(values: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape, Device::Cpu).unwrap()
}

fn block_config(d: usize, heads: usize, kv: usize, qk_norm: bool, post_ln: bool) -> BlockConfig {
    BlockConfig {
        attn: AttentionConfig {
            n_kv_heads: kv,
            qk_norm,
            bias: true,
            init_std: 0.3,
            out_std: 0.3,
            ..AttentionConfig::new(d, heads)
        },
        d_ff: 2 * d,
        norm: NormKind::LayerNorm,
        post_ln,
        dropout: 0.0,
        seed: 0,
        mlp_bias: true,
    }
}

#[test]
fn shapes_of_every_module() {
    let mut r = rng(0);
    let x = randn(&[2, 5, 8], DType::F32, 1);
    assert_eq!(
        Linear::new(8, 3, true, DType::F32, &mut r)
            .unwrap()
            .forward(&x)
            .unwrap()
            .shape(),
        &[2, 5, 3]
    );
    assert_eq!(
        LayerNorm::new(8, true, 1e-5, DType::F32)
            .unwrap()
            .forward(&x)
            .unwrap()
            .shape(),
        &[2, 5, 8]
    );
    assert_eq!(
        RmsNorm::new(8, 1e-6, DType::F32)
            .unwrap()
            .forward(&x)
            .unwrap()
            .shape(),
        &[2, 5, 8]
    );
    assert_eq!(
        Mlp::new(8, 32, 4, true, DType::F32, &mut r)
            .unwrap()
            .forward(&x)
            .unwrap()
            .shape(),
        &[2, 5, 4]
    );
    let emb = Embedding::new(10, 6, 1.0, DType::F32, &mut r).unwrap();
    assert_eq!(
        emb.forward(&ids(&[1, 2, 3, 9, 0, 4], &[2, 3])).unwrap().shape(),
        &[2, 3, 6]
    );
    // Grouped-query attention: 4 query heads over 2 KV heads.
    let cfg = AttentionConfig {
        n_kv_heads: 2,
        ..AttentionConfig::new(8, 4)
    };
    let mha = MultiHeadAttention::new(cfg, DType::F32, &mut r).unwrap();
    assert_eq!(mha.k_proj.weight.shape(), &[4, 8]);
    let a = mha.forward(&x, &AttentionMask::causal()).unwrap();
    assert_eq!(a.out.shape(), &[2, 5, 8]);
    assert_eq!(a.max_logit.shape(), &[2, 4]);
    let lm = DecoderLm::new(LmConfig::tiny(11, 7), DType::F32, &mut r).unwrap();
    let out = lm
        .forward(&ids(&[1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 10], &[2, 6]))
        .unwrap();
    assert_eq!(out.logits.shape(), &[2, 6, 11]);
    assert_eq!(out.max_logits.len(), 2);
}

#[test]
fn named_parameters_are_dotted_and_feed_optimizer_groups() {
    let cfg = LmConfig {
        qk_norm: true,
        tied_head: true,
        ..LmConfig::tiny(13, 8)
    };
    let lm = DecoderLm::new(cfg, DType::F32, &mut rng(0)).unwrap();
    let names: Vec<String> = lm.named_parameters().into_iter().map(|(n, _)| n).collect();
    for expected in [
        "tok_emb.weight",
        "pos_emb.weight",
        "blocks.0.ln1.weight",
        "blocks.0.attn.q_proj.weight",
        "blocks.1.attn.k_norm.weight",
        "blocks.1.mlp.fc2.bias",
        "ln_f.bias",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("head")),
        "a tied head has no weight of its own"
    );
    let total: usize = lm.parameters().iter().map(Tensor::numel).sum();
    assert_eq!(total, lm.num_parameters());
    let (decay, no_decay) = lm.param_groups();
    assert!(decay.iter().all(|p| p.rank() == 2) && no_decay.iter().all(|p| p.rank() == 1));
    let mut opt = Optimizer::new(decay, AdamW::default()).unwrap();
    opt.add_group(
        no_decay,
        AdamW {
            weight_decay: 0.0,
            ..AdamW::default()
        },
    )
    .unwrap();
    assert_eq!(opt.groups().len(), 2);
}

/// Runs `block` with its parameters replaced by `inputs[1..]` on input `inputs[0]`.
fn block_with(block: &TransformerBlock, inputs: &[Tensor], mask: &AttentionMask) -> autograd::Result<Tensor> {
    let mut b = block.clone();
    let mut k = 1;
    b.visit_parameters_mut(&mut |_, p| {
        *p = inputs[k].clone();
        k += 1;
        Ok(())
    })?;
    b.forward(&inputs[0], mask).map(|o| o.out)
}

#[test]
fn transformer_block_gradients_match_finite_differences() {
    // Pre-LN with GQA and qk-layernorm, Post-LN with plain attention; f64 throughout.
    for (i, (kv, qk_norm, post_ln, mask)) in [
        (1, true, false, AttentionMask::causal()),
        (2, false, true, AttentionMask::diagonal()),
    ]
    .into_iter()
    .enumerate()
    {
        let block = TransformerBlock::new(
            block_config(4, 2, kv, qk_norm, post_ln),
            DType::F64,
            &mut rng(i as u64),
        )
        .unwrap();
        let mut inputs = vec![randn(&[2, 3, 4], DType::F64, 10 + i as u64)];
        inputs.extend(block.parameters());
        let report = gradcheck(
            |t| block_with(&block, t, &mask),
            &inputs,
            GradcheckOptions::default(),
        )
        .unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert!(report.ops.contains(&"attention") && report.ops.contains(&"layer_norm"));
        assert_eq!(report.elements, inputs.iter().map(Tensor::numel).sum::<usize>());
    }
}

#[test]
fn fused_and_unfused_attention_agree_and_the_diagonal_is_never_attended() {
    let cfg = AttentionConfig {
        n_kv_heads: 1,
        qk_norm: true,
        init_std: 0.5,
        ..AttentionConfig::new(8, 2)
    };
    let mha = MultiHeadAttention::new(cfg, DType::F64, &mut rng(3)).unwrap();
    let x = randn(&[2, 5, 8], DType::F64, 4);
    let fused = mha.forward(&x, &AttentionMask::diagonal()).unwrap();
    let blocked = blocked_mask(5, false, true, Device::Cpu).unwrap();
    let unfused = mha.forward_unfused(&x, Some(&blocked)).unwrap();
    let (a, b) = (
        fused.out.to_vec::<f64>().unwrap(),
        unfused.out.to_vec::<f64>().unwrap(),
    );
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-12));
    let (ma, mb) = (
        fused.max_logit.to_vec::<f64>().unwrap(),
        unfused.max_logit.to_vec::<f64>().unwrap(),
    );
    assert!(
        ma.iter().zip(&mb).all(|(x, y)| (x - y).abs() < 1e-12),
        "{ma:?} vs {mb:?}"
    );
    let probs = unfused.mean_probs.unwrap().to_vec::<f64>().unwrap();
    for row in probs.chunks(5).enumerate() {
        let (r, p) = row;
        assert_eq!(p[r % 5], 0.0, "position {} attends to itself", r % 5);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}

#[test]
fn qk_layernorm_rows_have_zero_mean_and_unit_variance() {
    let ln = LayerNorm::new(16, false, 1e-5, DType::F64).unwrap();
    let q = randn(&[3, 16], DType::F64, 5)
        .mul_scalar(7.0)
        .unwrap()
        .add_scalar(3.0)
        .unwrap();
    let y = ln.forward(&q).unwrap().to_vec::<f64>().unwrap();
    for row in y.chunks(16) {
        let mean = row.iter().sum::<f64>() / 16.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 16.0;
        assert!(
            mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-5,
            "mean {mean} var {var}"
        );
    }
}

#[test]
fn save_load_round_trip_is_bit_exact_and_checks_names() {
    let cfg = LmConfig {
        qk_norm: true,
        ..LmConfig::tiny(9, 6)
    };
    let a = DecoderLm::new(cfg, DType::F32, &mut rng(1)).unwrap();
    let mut b = DecoderLm::new(cfg, DType::F32, &mut rng(2)).unwrap();
    let held = b.parameters(); // as an optimizer would hold them
    load_parameters(&mut b, &save_parameters(&a).unwrap()).unwrap();
    for ((n, pa), pb) in a.named_parameters().iter().zip(&held) {
        let (va, vb) = (pa.to_vec::<f32>().unwrap(), pb.to_vec::<f32>().unwrap());
        assert!(va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()), "{n}");
    }
    let x = ids(&[1, 2, 3, 4, 5, 6], &[1, 6]);
    let (la, lb) = (a.forward(&x).unwrap().logits, b.forward(&x).unwrap().logits);
    assert_eq!(la.to_vec::<f32>().unwrap(), lb.to_vec::<f32>().unwrap());
    // Another architecture: an error, and nothing written.
    let mut other = DecoderLm::new(LmConfig::tiny(9, 6), DType::F32, &mut rng(3)).unwrap();
    let before = other.parameters()[0].to_vec::<f32>().unwrap();
    let err = load_parameters(&mut other, &save_parameters(&a).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("load_parameters") && err.contains("_norm.weight"),
        "{err}"
    );
    assert_eq!(other.parameters()[0].to_vec::<f32>().unwrap(), before);
}

#[test]
fn dropout_is_identity_in_eval_and_fresh_in_training() {
    let mut d = Dropout::new(0.5, 7).unwrap();
    let x = randn(&[64], DType::F32, 1);
    let (y1, y2) = (d.forward(&x).unwrap(), d.forward(&x).unwrap());
    let zeros = |t: &Tensor| t.to_vec::<f32>().unwrap().iter().filter(|v| **v == 0.0).count();
    assert!(zeros(&y1) > 10 && zeros(&y1) < 54);
    assert_ne!(
        y1.to_vec::<f32>().unwrap(),
        y2.to_vec::<f32>().unwrap(),
        "each call draws a new mask"
    );
    d.eval();
    assert_eq!(
        d.forward(&x).unwrap().to_vec::<f32>().unwrap(),
        x.to_vec::<f32>().unwrap()
    );
    let mut lm = DecoderLm::new(
        LmConfig {
            dropout: 0.3,
            ..LmConfig::tiny(9, 6)
        },
        DType::F32,
        &mut rng(0),
    )
    .unwrap();
    lm.eval();
    let t = ids(&[1, 2, 3], &[1, 3]);
    let (a, b) = (lm.forward(&t).unwrap().logits, lm.forward(&t).unwrap().logits);
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    lm.train();
    let c = lm.forward(&t).unwrap().logits;
    assert_ne!(a.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap());
}

#[test]
fn bad_inputs_are_errors_naming_module_and_shapes() {
    let lin = Linear::new(4, 3, true, DType::F32, &mut rng(0)).unwrap();
    let err = lin
        .forward(&randn(&[2, 5], DType::F32, 0))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Linear") && err.contains("in_features = 4") && err.contains("[2, 5]"),
        "{err}"
    );
    let emb = Embedding::new(10, 4, 1.0, DType::F32, &mut rng(0)).unwrap();
    let err = emb.forward(&ids(&[1, 70], &[1, 2])).unwrap_err().to_string();
    assert!(
        err.starts_with("Embedding") && err.contains("70") && err.contains("0..10"),
        "{err}"
    );
    assert!(emb.forward(&ids(&[-1], &[1])).is_err());
    let lm = DecoderLm::new(LmConfig::tiny(9, 4), DType::F32, &mut rng(0)).unwrap();
    let err = lm.forward(&ids(&[1; 5], &[1, 5])).unwrap_err().to_string();
    assert!(
        err.starts_with("DecoderLm") && err.contains("max_seq = 4") && err.contains("[1, 5]"),
        "{err}"
    );
    let mha = MultiHeadAttention::new(AttentionConfig::new(8, 2), DType::F32, &mut rng(0)).unwrap();
    let err = mha
        .forward(&randn(&[2, 3, 6], DType::F32, 0), &AttentionMask::none())
        .unwrap_err();
    assert!(err.to_string().contains("MultiHeadAttention"), "{err}");
    assert!(MultiHeadAttention::new(AttentionConfig::new(8, 3), DType::F32, &mut rng(0)).is_err());
    assert!(Dropout::new(1.5, 0).is_err());
    assert!(init::trunc_normal(&[3], 0.0, 1.0, 5.0, 6.0, DType::F32, &mut rng(0)).is_err());
}

#[test]
fn initializers_are_seeded_and_have_their_scales() {
    let a = init::xavier_uniform(&[200, 100], 1.0, DType::F64, &mut rng(1)).unwrap();
    let b = init::xavier_uniform(&[200, 100], 1.0, DType::F64, &mut rng(1)).unwrap();
    assert_eq!(a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
    let bound = (6.0f64 / 300.0).sqrt();
    assert!(a.to_vec::<f64>().unwrap().iter().all(|v| v.abs() <= bound));
    let var = |t: &Tensor| {
        let v = t.to_vec::<f64>().unwrap();
        v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64
    };
    let k = init::kaiming_normal(&[400, 100], 2f64.sqrt(), DType::F64, &mut rng(2)).unwrap();
    assert!((var(&k) - 0.02).abs() < 0.001, "{}", var(&k));
    let t = init::trunc_normal(&[20000], 0.0, 1.0, -2.0, 2.0, DType::F64, &mut rng(3)).unwrap();
    assert!(t.to_vec::<f64>().unwrap().iter().all(|v| v.abs() <= 2.0));
    assert!((var(&t) - 0.774).abs() < 0.02, "{}", var(&t)); // variance of N(0,1) on [-2, 2]
    assert_eq!(init::fans(&[8, 4, 3, 3]).unwrap(), (36, 72));
}

#[test]
fn mix_ln_places_post_ln_in_the_early_layers() {
    let mix = Arrangement::MixLn { alpha: 0.25 };
    let post: Vec<bool> = (0..8).map(|l| mix.is_post_ln(l, 8)).collect();
    assert_eq!(post, [true, true, false, false, false, false, false, false]);
    assert!((0..8).all(|l| Arrangement::PostLn.is_post_ln(l, 8) && !Arrangement::PreLn.is_post_ln(l, 8)));
}

#[test]
fn tiny_lm_learns_a_deterministic_pattern() {
    // Next token = (3·t + 1) mod 16: fully predictable after the first token.
    let (vocab, t_len, batch) = (16usize, 12usize, 8usize);
    let mut seqs = Vec::new();
    for b in 0..batch {
        let mut tok = b as i64 * 2 % vocab as i64;
        for _ in 0..=t_len {
            seqs.push(tok);
            tok = (3 * tok + 1) % vocab as i64;
        }
    }
    let rows: Vec<&[i64]> = seqs.chunks(t_len + 1).collect();
    let input: Vec<i64> = rows.iter().flat_map(|r| r[..t_len].to_vec()).collect();
    let target: Vec<i64> = rows.iter().flat_map(|r| r[1..].to_vec()).collect();
    let (x, y) = (ids(&input, &[batch, t_len]), ids(&target, &[batch, t_len]));
    let cfg = LmConfig {
        d_model: 32,
        d_ff: 64,
        n_heads: 2,
        n_kv_heads: 2,
        ..LmConfig::tiny(vocab, t_len)
    };
    let lm = DecoderLm::new(cfg, DType::F32, &mut rng(0)).unwrap();
    let mut opt = Optimizer::new(
        lm.parameters(),
        AdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..AdamW::default()
        },
    )
    .unwrap();
    let mut first = None;
    let mut last = f64::NAN;
    for _ in 0..60 {
        let loss = DecoderLm::loss(&lm.forward(&x).unwrap().logits, &y, 0.0)
            .unwrap()
            .loss;
        last = loss.item().unwrap();
        first.get_or_insert(last);
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    let ln_v = (vocab as f64).ln();
    assert!(
        (first.unwrap() - ln_v).abs() < 0.2,
        "initial loss {first:?} should be near ln(V) = {ln_v}"
    );
    assert!(
        last < 0.1 * ln_v,
        "final loss {last} is not well below ln(V) = {ln_v}"
    );
}
