//! The SAITS network: two DMSA blocks and the attention-weighted combination.

use autograd::{AttentionMask, DType, Device, Result, Tensor};
use nn::modules::{blocked_mask, AttentionConfig, LayerNorm, Linear, Mlp, Module, MultiHeadAttention};
use rand::Rng;

/// Sizes and the ablation switch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SaitsConfig {
    pub steps: usize,
    pub features: usize,
    pub d_model: usize,
    pub n_heads: usize,
    /// Encoder layers per DMSA block.
    pub n_layers: usize,
    pub d_ff: usize,
    /// The diagonal mask (DMSA); `false` is the unmasked-attention ablation.
    pub diagonal: bool,
}

/// A Pre-LN encoder layer: `h = x + Attn(LN(x))`, `y = h + FFN(LN(h))`.
#[derive(Clone, Debug)]
pub struct EncoderLayer {
    pub ln1: LayerNorm,
    pub attn: MultiHeadAttention,
    pub ln2: LayerNorm,
    pub ffn: Mlp,
}

impl EncoderLayer {
    fn new<R: Rng + ?Sized>(c: &SaitsConfig, rng: &mut R) -> Result<Self> {
        let attn = AttentionConfig {
            init_std: 0.1,
            out_std: 0.1,
            ..AttentionConfig::new(c.d_model, c.n_heads)
        };
        Ok(EncoderLayer {
            ln1: LayerNorm::new(c.d_model, true, 1e-5, DType::F32)?,
            attn: MultiHeadAttention::new(attn, DType::F32, rng)?,
            ln2: LayerNorm::new(c.d_model, true, 1e-5, DType::F32)?,
            ffn: Mlp::new(c.d_model, c.d_ff, c.d_model, true, DType::F32, rng)?,
        })
    }

    /// With `want_probs`, attention runs through the materialized graph and returns the
    /// head-averaged probabilities `[B, T, T]` (SAITS's Â); otherwise through the fused op.
    fn forward(&self, x: &Tensor, diagonal: bool, want_probs: bool) -> Result<(Tensor, Option<Tensor>)> {
        let h_in = self.ln1.forward(x)?;
        let a = if want_probs {
            let blocked = if diagonal {
                Some(blocked_mask(x.shape()[1], false, true, x.device())?)
            } else {
                None
            };
            self.attn.forward_unfused(&h_in, blocked.as_ref())?
        } else {
            let mask = if diagonal {
                AttentionMask::diagonal()
            } else {
                AttentionMask::none()
            };
            self.attn.forward(&h_in, &mask)?
        };
        let h = x.add(&a.out)?;
        Ok((h.add(&self.ffn.forward(&self.ln2.forward(&h)?)?)?, a.mean_probs))
    }
}

impl Module for EncoderLayer {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        self.ln1.visit_parameters(&mut |n, p| f(&format!("ln1.{n}"), p));
        self.attn.visit_parameters(&mut |n, p| f(&format!("attn.{n}"), p));
        self.ln2.visit_parameters(&mut |n, p| f(&format!("ln2.{n}"), p));
        self.ffn.visit_parameters(&mut |n, p| f(&format!("ffn.{n}"), p));
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        self.ln1
            .visit_parameters_mut(&mut |n, p| f(&format!("ln1.{n}"), p))?;
        self.attn
            .visit_parameters_mut(&mut |n, p| f(&format!("attn.{n}"), p))?;
        self.ln2
            .visit_parameters_mut(&mut |n, p| f(&format!("ln2.{n}"), p))?;
        self.ffn
            .visit_parameters_mut(&mut |n, p| f(&format!("ffn.{n}"), p))
    }
}

/// The three estimates and the final imputation.
#[derive(Clone, Debug)]
pub struct SaitsOutput {
    pub x1: Tensor,
    pub x2: Tensor,
    pub x3: Tensor,
    /// `M ⊙ X + (1 − M) ⊙ X̃₃`.
    pub imputed: Tensor,
    /// Â: the last DMSA layer's head-averaged attention, `[B, T, T]`.
    pub attn: Tensor,
    /// η, `[B, T, F]`.
    pub eta: Tensor,
}

#[derive(Clone, Debug)]
pub struct Saits {
    pub config: SaitsConfig,
    pub embed1: Linear,
    pub block1: Vec<EncoderLayer>,
    pub out1: Linear,
    pub embed2: Linear,
    pub block2: Vec<EncoderLayer>,
    pub out2a: Linear,
    pub out2b: Linear,
    pub combine: Linear,
    /// Fixed sinusoidal position encoding `[T, d_model]` (not a parameter).
    pub pos: Tensor,
}

fn sinusoid(t: usize, d: usize) -> Result<Tensor> {
    let v: Vec<f32> = (0..t * d)
        .map(|i| {
            let (pos, j) = ((i / d) as f64, i % d);
            let angle = pos / 10000f64.powf((2 * (j / 2)) as f64 / d as f64);
            (if j % 2 == 0 { angle.sin() } else { angle.cos() }) as f32
        })
        .collect();
    Tensor::from_vec(v, &[t, d], Device::Cpu)
}

impl Saits {
    pub fn new<R: Rng + ?Sized>(config: SaitsConfig, rng: &mut R) -> Result<Self> {
        let (f, d, t) = (config.features, config.d_model, config.steps);
        let layers = |rng: &mut R| {
            (0..config.n_layers)
                .map(|_| EncoderLayer::new(&config, rng))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Saits {
            embed1: Linear::new(2 * f, d, true, DType::F32, rng)?,
            block1: layers(rng)?,
            out1: Linear::new(d, f, true, DType::F32, rng)?,
            embed2: Linear::new(2 * f, d, true, DType::F32, rng)?,
            block2: layers(rng)?,
            out2a: Linear::new(d, d, true, DType::F32, rng)?,
            out2b: Linear::new(d, f, true, DType::F32, rng)?,
            combine: Linear::new(f + t, f, true, DType::F32, rng)?,
            pos: sinusoid(t, d)?,
            config,
        })
    }

    /// `x` `[B, T, F]` with unreadable entries zeroed, `m` the readable mask (1/0, same shape).
    pub fn forward(&self, x: &Tensor, m: &Tensor) -> Result<SaitsOutput> {
        let diag = self.config.diagonal;
        let one_minus_m = m.neg()?.add_scalar(1.0)?;
        // Block 1: X̃₁ from [X ∥ M].
        let mut h = self.embed1.forward(&Tensor::cat(&[x, m], -1)?)?.add(&self.pos)?;
        for l in &self.block1 {
            h = l.forward(&h, diag, false)?.0;
        }
        let x1 = self.out1.forward(&h)?;
        // Block 2 reads X' = M ⊙ X + (1 − M) ⊙ X̃₁.
        let x_prime = m.mul(x)?.add(&one_minus_m.mul(&x1)?)?;
        let mut h = self
            .embed2
            .forward(&Tensor::cat(&[&x_prime, m], -1)?)?
            .add(&self.pos)?;
        let mut attn = None;
        let n = self.block2.len();
        for (i, l) in self.block2.iter().enumerate() {
            let (out, probs) = l.forward(&h, diag, i + 1 == n)?;
            h = out;
            attn = probs.or(attn);
        }
        let x2 = self.out2b.forward(&self.out2a.forward(&h)?.relu()?)?;
        // Combination: η = sigmoid(W [M ∥ Â] + b) weights X̃₁ (as the reference code does).
        let attn = attn.ok_or_else(|| autograd::Error::InvalidArgument {
            op: "Saits",
            reason: "the second DMSA block needs at least one layer".into(),
        })?;
        let eta = self.combine.forward(&Tensor::cat(&[m, &attn], -1)?)?.sigmoid()?;
        let x3 = eta.mul(&x1)?.add(&eta.neg()?.add_scalar(1.0)?.mul(&x2)?)?;
        let imputed = m.mul(x)?.add(&one_minus_m.mul(&x3)?)?;
        Ok(SaitsOutput {
            x1,
            x2,
            x3,
            imputed,
            attn,
            eta,
        })
    }
}

impl Module for Saits {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        let mut child =
            |name: &str, m: &dyn Module| m.visit_parameters(&mut |n, p| f(&format!("{name}.{n}"), p));
        child("embed1", &self.embed1);
        for (i, l) in self.block1.iter().enumerate() {
            child(&format!("block1.{i}"), l);
        }
        child("out1", &self.out1);
        child("embed2", &self.embed2);
        for (i, l) in self.block2.iter().enumerate() {
            child(&format!("block2.{i}"), l);
        }
        child("out2a", &self.out2a);
        child("out2b", &self.out2b);
        child("combine", &self.combine);
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        let mut child =
            |name: &str, m: &mut dyn Module| m.visit_parameters_mut(&mut |n, p| f(&format!("{name}.{n}"), p));
        child("embed1", &mut self.embed1)?;
        for (i, l) in self.block1.iter_mut().enumerate() {
            child(&format!("block1.{i}"), l)?;
        }
        child("out1", &mut self.out1)?;
        child("embed2", &mut self.embed2)?;
        for (i, l) in self.block2.iter_mut().enumerate() {
            child(&format!("block2.{i}"), l)?;
        }
        child("out2a", &mut self.out2a)?;
        child("out2b", &mut self.out2b)?;
        child("combine", &mut self.combine)
    }
}
