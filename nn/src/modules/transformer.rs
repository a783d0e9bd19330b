//! `TransformerBlock` in the Pre-LN and Post-LN arrangements, and [`Arrangement`], which places
//! them in a stack (Pre-LN, Post-LN, or Mix-LN).
//!
//! * Pre-LN: `h = x + Attn(LN₁(x))`, `y = h + MLP(LN₂(h))`.
//! * Post-LN (the original transformer): `h = LN₁(x + Attn(x))`, `y = LN₂(h + MLP(h))`.
//! * Mix-LN (Li et al., "Mix-LN: Unleashing the Power of Deeper Layers by Combining Pre-LN and
//!   Post-LN", 2024; catalog [176]): Post-LN in the first `⌊αL⌋` layers of `L`, Pre-LN in the rest;
//!   the paper's default is α = 0.25 (METHODS.md marks that value "verify"; see
//!   [`Arrangement::MixLn`]).

use super::{
    visit_child, visit_child_mut, AttentionConfig, Dropout, Mlp, Module, MultiHeadAttention, Norm, NormKind,
};
use autograd::{AttentionMask, DType, Error, Result, Tensor};
use rand::Rng;

/// Where each block of a stack normalizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrangement {
    PreLn,
    PostLn,
    /// Post-LN for layers `l < ⌊alpha·L⌋`, Pre-LN after ([176]; the paper uses alpha = 0.25).
    MixLn {
        alpha: f64,
    },
}

impl Arrangement {
    /// Whether layer `layer` (0-based) of `n_layers` is a Post-LN block.
    pub fn is_post_ln(&self, layer: usize, n_layers: usize) -> bool {
        match *self {
            Arrangement::PreLn => false,
            Arrangement::PostLn => true,
            Arrangement::MixLn { alpha } => layer < (alpha * n_layers as f64).floor() as usize,
        }
    }
}

/// Shape and options of one block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockConfig {
    pub attn: AttentionConfig,
    /// Hidden size of the MLP (usually 4·d_model).
    pub d_ff: usize,
    pub norm: NormKind,
    pub post_ln: bool,
    /// Dropout on the attention and MLP outputs before the residual add.
    pub dropout: f64,
    /// Seed of this block's dropout stream.
    pub seed: u64,
    pub mlp_bias: bool,
}

/// What [`TransformerBlock::forward`] returns.
#[derive(Clone, Debug)]
pub struct BlockOutput {
    /// `[B, T, d_model]`.
    pub out: Tensor,
    /// The attention's max logit per (batch, head), `[B, H]`.
    pub max_logit: Tensor,
}

#[derive(Clone, Debug)]
pub struct TransformerBlock {
    pub config: BlockConfig,
    pub ln1: Norm,
    pub attn: MultiHeadAttention,
    pub ln2: Norm,
    pub mlp: Mlp,
    pub dropout: Dropout,
}

impl TransformerBlock {
    pub fn new<R: Rng + ?Sized>(config: BlockConfig, dtype: DType, rng: &mut R) -> Result<Self> {
        let d = config.attn.d_model;
        if config.d_ff == 0 {
            return Err(Error::InvalidArgument {
                op: "TransformerBlock",
                reason: "d_ff must be > 0".into(),
            });
        }
        let a = &config.attn;
        Ok(TransformerBlock {
            ln1: Norm::new(config.norm, d, dtype)?,
            attn: MultiHeadAttention::new(config.attn, dtype, rng)?,
            ln2: Norm::new(config.norm, d, dtype)?,
            mlp: Mlp::normal(
                d,
                config.d_ff,
                d,
                config.mlp_bias,
                a.init_std,
                a.out_std,
                dtype,
                rng,
            )?,
            dropout: Dropout::new(config.dropout, config.seed)?,
            config,
        })
    }

    pub fn forward(&self, x: &Tensor, mask: &AttentionMask) -> Result<BlockOutput> {
        if self.config.post_ln {
            let a = self.attn.forward(x, mask)?;
            let h = self.ln1.forward(&x.add(&self.dropout.forward(&a.out)?)?)?;
            let m = self.mlp.forward(&h)?;
            let out = self.ln2.forward(&h.add(&self.dropout.forward(&m)?)?)?;
            Ok(BlockOutput {
                out,
                max_logit: a.max_logit,
            })
        } else {
            let a = self.attn.forward(&self.ln1.forward(x)?, mask)?;
            let h = x.add(&self.dropout.forward(&a.out)?)?;
            let m = self.mlp.forward(&self.ln2.forward(&h)?)?;
            let out = h.add(&self.dropout.forward(&m)?)?;
            Ok(BlockOutput {
                out,
                max_logit: a.max_logit,
            })
        }
    }
}

impl Module for TransformerBlock {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child(&self.ln1, "ln1", f);
        visit_child(&self.attn, "attn", f);
        visit_child(&self.ln2, "ln2", f);
        visit_child(&self.mlp, "mlp", f);
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        visit_child_mut(&mut self.ln1, "ln1", f)?;
        visit_child_mut(&mut self.attn, "attn", f)?;
        visit_child_mut(&mut self.ln2, "ln2", f)?;
        visit_child_mut(&mut self.mlp, "mlp", f)
    }

    fn set_training(&mut self, training: bool) {
        self.dropout.set_training(training);
    }
}
