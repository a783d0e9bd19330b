//! `DecoderLm`: a tiny GPT-style decoder language model.

use super::{
    visit_child, visit_child_mut, Arrangement, AttentionConfig, BlockConfig, Dropout, Embedding, Linear,
    Module, Norm, NormKind, TransformerBlock,
};
use autograd::{
    AttentionMask, CrossEntropyOptions, CrossEntropyOutput, DType, Device, Error, Result, Tensor,
};
use rand::Rng;

/// Shape and options of a [`DecoderLm`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LmConfig {
    pub vocab: usize,
    /// Longest sequence (rows of the learned position embedding).
    pub max_seq: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_ff: usize,
    pub qk_norm: bool,
    pub norm: NormKind,
    pub arrangement: Arrangement,
    /// Output head shares the token embedding's weight (`logits = h Eᵀ`).
    pub tied_head: bool,
    pub dropout: f64,
    /// Std of embeddings and projections; residual output projections use
    /// `init_std / sqrt(2·n_layers)` (GPT-2).
    pub init_std: f64,
    /// Seed of the dropout streams (parameters come from the caller's RNG).
    pub seed: u64,
}

impl LmConfig {
    /// A small Pre-LN model: 2 layers, d = 64, 4 heads, d_ff = 256, LayerNorm, untied head.
    pub fn tiny(vocab: usize, max_seq: usize) -> Self {
        LmConfig {
            vocab,
            max_seq,
            d_model: 64,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 4,
            d_ff: 256,
            qk_norm: false,
            norm: NormKind::LayerNorm,
            arrangement: Arrangement::PreLn,
            tied_head: false,
            dropout: 0.0,
            init_std: 0.02,
            seed: 0,
        }
    }
}

/// What [`DecoderLm::forward`] returns.
#[derive(Clone, Debug)]
pub struct LmOutput {
    /// `[B, T, vocab]`.
    pub logits: Tensor,
    /// Per layer, the attention's max logit per (batch, head) `[B, H]`.
    pub max_logits: Vec<Tensor>,
}

/// Token + learned position embedding, `n_layers` causal blocks, a final norm and a head.
/// The final norm is applied in every arrangement (after a Post-LN last block it renormalizes an
/// already normalized stream, which costs nothing in expressiveness).
#[derive(Clone, Debug)]
pub struct DecoderLm {
    pub config: LmConfig,
    pub tok_emb: Embedding,
    pub pos_emb: Embedding,
    pub blocks: Vec<TransformerBlock>,
    pub ln_f: Norm,
    /// `None` when tied to `tok_emb`.
    pub head: Option<Linear>,
    pub dropout: Dropout,
}

impl DecoderLm {
    pub fn new<R: Rng + ?Sized>(config: LmConfig, dtype: DType, rng: &mut R) -> Result<Self> {
        let c = config;
        if c.vocab == 0 || c.max_seq == 0 || c.n_layers == 0 {
            return Err(Error::InvalidArgument {
                op: "DecoderLm",
                reason: format!(
                    "vocab {}, max_seq {} and n_layers {} must be > 0",
                    c.vocab, c.max_seq, c.n_layers
                ),
            });
        }
        let out_std = c.init_std / (2.0 * c.n_layers as f64).sqrt();
        let attn = AttentionConfig {
            n_kv_heads: c.n_kv_heads,
            qk_norm: c.qk_norm,
            init_std: c.init_std,
            out_std,
            ..AttentionConfig::new(c.d_model, c.n_heads)
        };
        let tok_emb = Embedding::new(c.vocab, c.d_model, c.init_std, dtype, rng)?;
        let pos_emb = Embedding::new(c.max_seq, c.d_model, c.init_std, dtype, rng)?;
        let blocks = (0..c.n_layers)
            .map(|l| {
                let bc = BlockConfig {
                    attn,
                    d_ff: c.d_ff,
                    norm: c.norm,
                    post_ln: c.arrangement.is_post_ln(l, c.n_layers),
                    dropout: c.dropout,
                    seed: c.seed.wrapping_add(1 + l as u64),
                    mlp_bias: true,
                };
                TransformerBlock::new(bc, dtype, rng)
            })
            .collect::<Result<Vec<_>>>()?;
        let head = if c.tied_head {
            None
        } else {
            Some(Linear::normal(c.d_model, c.vocab, false, c.init_std, dtype, rng)?)
        };
        Ok(DecoderLm {
            ln_f: Norm::new(c.norm, c.d_model, dtype)?,
            dropout: Dropout::new(c.dropout, c.seed)?,
            config,
            tok_emb,
            pos_emb,
            blocks,
            head,
        })
    }

    /// `ids` `[B, T]` (i64, `T <= max_seq`) to next-token logits `[B, T, vocab]`, causally.
    pub fn forward(&self, ids: &Tensor) -> Result<LmOutput> {
        if ids.rank() != 2 || ids.shape()[1] > self.config.max_seq || ids.shape()[1] == 0 {
            return Err(Error::ShapeMismatch {
                op: "DecoderLm",
                shapes: vec![autograd::Shape::from_slice(ids.shape())],
                reason: format!(
                    "ids must be [batch, seq] with 1 <= seq <= max_seq = {}",
                    self.config.max_seq
                ),
            });
        }
        let t = ids.shape()[1];
        let pos = Tensor::arange(0.0, t as f64, 1.0, DType::I64, ids.device())?;
        let x = self.tok_emb.forward(ids)?.add(&self.pos_emb.forward(&pos)?)?;
        let mut x = self.dropout.forward(&x)?;
        let mask = AttentionMask::causal();
        let mut max_logits = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let o = b.forward(&x, &mask)?;
            x = o.out;
            max_logits.push(o.max_logit);
        }
        let h = self.ln_f.forward(&x)?;
        let logits = match &self.head {
            Some(head) => head.forward(&h)?,
            None => h.matmul(&self.tok_emb.weight.t()?)?,
        };
        Ok(LmOutput { logits, max_logits })
    }

    /// Mean next-token cross-entropy of `logits` `[B, T, V]` against `targets` `[B, T]`, with
    /// `z_loss`·(log Z)² added ([28]; 0 turns it off). The output's `lse` is log Z per token.
    pub fn loss(logits: &Tensor, targets: &Tensor, z_loss: f64) -> Result<CrossEntropyOutput> {
        let v = *logits.shape().last().unwrap_or(&0);
        let n = targets.numel();
        let opts = CrossEntropyOptions {
            z_loss,
            ..CrossEntropyOptions::default()
        };
        logits
            .reshape(&[n, v])?
            .cross_entropy_with(&targets.reshape(&[n])?, &opts)
    }

    pub fn device(&self) -> Device {
        self.tok_emb.weight.device()
    }
}

impl Module for DecoderLm {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child(&self.tok_emb, "tok_emb", f);
        visit_child(&self.pos_emb, "pos_emb", f);
        for (i, b) in self.blocks.iter().enumerate() {
            visit_child(b, &format!("blocks.{i}"), f);
        }
        visit_child(&self.ln_f, "ln_f", f);
        if let Some(h) = &self.head {
            visit_child(h, "head", f);
        }
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        visit_child_mut(&mut self.tok_emb, "tok_emb", f)?;
        visit_child_mut(&mut self.pos_emb, "pos_emb", f)?;
        for (i, b) in self.blocks.iter_mut().enumerate() {
            visit_child_mut(b, &format!("blocks.{i}"), f)?;
        }
        visit_child_mut(&mut self.ln_f, "ln_f", f)?;
        if let Some(h) = &mut self.head {
            visit_child_mut(h, "head", f)?;
        }
        Ok(())
    }

    fn set_training(&mut self, training: bool) {
        self.dropout.set_training(training);
        for b in &mut self.blocks {
            b.set_training(training);
        }
    }
}
