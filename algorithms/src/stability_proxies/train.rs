//! One run of the proxy: a tiny decoder LM trained on an H2 Markov source at one learning rate,
//! with or without qk-layernorm and z-loss, recording what [28] watches.

use crate::harness::tokens::{MarkovConfig, MarkovSource};
use autograd::{no_grad, DType, Device, Error, Result, Tensor};
use nn::modules::{DecoderLm, LmConfig, Module, NormKind};
use nn::optim::{AdamW, Optimizer, WeightDecay};
use nn::schedule::Schedule;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Model, data and training sizes shared by every run of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    pub vocab: usize,
    pub seq: usize,
    pub batch: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub steps: usize,
    /// Fraction of the steps spent in linear warmup (then cosine to 0).
    pub warmup_frac: f64,
    /// Held-out batches the final loss is averaged over.
    pub eval_batches: usize,
    /// Branching and Zipf exponent of the Markov source.
    pub branching: usize,
    pub zipf: f64,
}

impl ProxyConfig {
    pub fn quick() -> Self {
        ProxyConfig {
            vocab: 64,
            seq: 16,
            batch: 16,
            d_model: 32,
            n_layers: 2,
            n_heads: 2,
            steps: 80,
            warmup_frac: 0.1,
            eval_batches: 4,
            branching: 4,
            zipf: 1.1,
        }
    }

    pub fn full() -> Self {
        ProxyConfig {
            vocab: 128,
            seq: 32,
            batch: 32,
            d_model: 64,
            n_layers: 2,
            n_heads: 4,
            steps: 400,
            ..Self::quick()
        }
    }

    pub fn source(&self, seed: u64) -> MarkovSource {
        let cfg = MarkovConfig {
            vocab: self.vocab,
            branching: self.branching,
            zipf: Some(self.zipf),
            sharpness: 1.0,
        };
        MarkovSource::new(cfg, seed)
    }
}

/// One run's setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunSetting {
    pub lr: f64,
    pub qk_norm: bool,
    /// z-loss coefficient (1e-4 in [28]) or 0.
    pub z_loss: f64,
}

/// What one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    pub setting: RunSetting,
    /// Held-out cross-entropy (nats) at initialization and at the end (the end is `+inf` after
    /// a divergence).
    pub initial_loss: f64,
    pub final_loss: f64,
    /// Training loss per step.
    pub train_loss: Vec<f64>,
    /// Largest attention logit over layers, heads and batch, per step.
    pub max_logit: Vec<f64>,
    /// Mean log Z of the output softmax per step.
    pub mean_log_z: Vec<f64>,
    /// With qk-layernorm: per step, `sqrt(d_head)·max|g_q|·max|g_k|` maximized over layers, an
    /// upper bound on every logit (each normalized head vector has norm at most
    /// `sqrt(d_head)·max|g|`, and the logit is their dot product over `sqrt(d_head)`).
    pub logit_bound: Vec<f64>,
    /// The step at which the loss became non-finite, if it did.
    pub diverged_at: Option<usize>,
}

fn max_of(t: &Tensor) -> Result<f64> {
    Ok(t.to_vec_f64()?.into_iter().fold(f64::NEG_INFINITY, f64::max))
}

fn max_abs(t: &Tensor) -> Result<f64> {
    Ok(t.to_vec_f64()?.into_iter().fold(0.0, |m, v| m.max(v.abs())))
}

fn ids(v: Vec<i64>, b: usize, t: usize) -> Result<Tensor> {
    Tensor::from_vec(v, &[b, t], Device::Cpu)
}

/// Held-out cross-entropy (no z-loss) over `batches` fixed batches.
fn eval_loss(lm: &DecoderLm, data: &[(Tensor, Tensor)]) -> Result<f64> {
    no_grad(|| {
        let mut total = 0.0;
        for (x, y) in data {
            total += DecoderLm::loss(&lm.forward(x)?.logits, y, 0.0)?.loss.item()?;
        }
        Ok(total / data.len() as f64)
    })
}

/// The model of a sweep (parameters from `seed`, the same for every setting but qk-LN's gains).
pub fn build_model(cfg: &ProxyConfig, qk_norm: bool, seed: u64) -> Result<DecoderLm> {
    let lm_cfg = LmConfig {
        d_model: cfg.d_model,
        n_layers: cfg.n_layers,
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_heads,
        d_ff: 4 * cfg.d_model,
        qk_norm,
        norm: NormKind::LayerNormNoBias,
        ..LmConfig::tiny(cfg.vocab, cfg.seq)
    };
    DecoderLm::new(lm_cfg, DType::F32, &mut StdRng::seed_from_u64(seed))
}

/// Trains one setting: AdamW (β = (0.9, 0.95), ε = 1e-8, independent decay 1e-4), global-norm
/// clip 1, linear warmup then cosine to 0, as [28]'s setup. The batches come from `seed`, so
/// every setting of a sweep sees the same data.
pub fn train_run(
    cfg: &ProxyConfig,
    source: &MarkovSource,
    setting: RunSetting,
    seed: u64,
) -> Result<RunResult> {
    let lm = build_model(cfg, setting.qk_norm, seed)?;
    let (decay, no_decay) = lm.param_groups();
    let hyper = AdamW {
        lr: setting.lr,
        betas: (0.9, 0.95),
        eps: 1e-8,
        weight_decay: 1e-4,
        decay_mode: WeightDecay::Independent,
        bias_correction: true,
    };
    let mut opt = Optimizer::new(decay, hyper.clone())?;
    opt.add_group(
        no_decay,
        AdamW {
            weight_decay: 0.0,
            ..hyper
        },
    )?;
    let total = cfg.steps as u64;
    opt.set_schedule(Some(Schedule::Cosine {
        warmup: ((cfg.warmup_frac * cfg.steps as f64).round() as u64).max(1),
        total,
        final_value: 0.0,
    }))?;
    opt.set_clip_grad_norm(Some(1.0))?;

    let mut data_rng = StdRng::seed_from_u64(seed ^ 0xDA7A);
    let mut eval_rng = StdRng::seed_from_u64(seed ^ 0xE7A1);
    let eval: Vec<(Tensor, Tensor)> = (0..cfg.eval_batches)
        .map(|_| {
            let (x, y) = source.lm_batch(cfg.batch, cfg.seq, &mut eval_rng);
            Ok((ids(x, cfg.batch, cfg.seq)?, ids(y, cfg.batch, cfg.seq)?))
        })
        .collect::<Result<_>>()?;
    let initial_loss = eval_loss(&lm, &eval)?;
    let hd = (cfg.d_model / cfg.n_heads) as f64;
    let mut r = RunResult {
        setting,
        initial_loss,
        final_loss: f64::INFINITY,
        train_loss: Vec::new(),
        max_logit: Vec::new(),
        mean_log_z: Vec::new(),
        logit_bound: Vec::new(),
        diverged_at: None,
    };
    for step in 0..cfg.steps {
        if setting.qk_norm {
            let mut bound: f64 = 0.0;
            for b in &lm.blocks {
                let (q, k) = (b.attn.q_norm.as_ref(), b.attn.k_norm.as_ref());
                let (q, k) = q.zip(k).ok_or_else(|| Error::InvalidArgument {
                    op: "stability_proxies",
                    reason: "qk_norm set but the block has no q/k norms".into(),
                })?;
                bound = bound.max(hd.sqrt() * max_abs(&q.weight)? * max_abs(&k.weight)?);
            }
            r.logit_bound.push(bound);
        }
        let (x, y) = source.lm_batch(cfg.batch, cfg.seq, &mut data_rng);
        let out = lm.forward(&ids(x, cfg.batch, cfg.seq)?)?;
        let xent = DecoderLm::loss(&out.logits, &ids(y, cfg.batch, cfg.seq)?, setting.z_loss)?;
        let loss = xent.loss.item()?;
        let mut m = f64::NEG_INFINITY;
        for t in &out.max_logits {
            m = m.max(max_of(t)?);
        }
        r.max_logit.push(m);
        r.mean_log_z.push(xent.lse.mean_all()?.item()?);
        r.train_loss.push(loss);
        if !loss.is_finite() {
            r.diverged_at = Some(step);
            return Ok(r);
        }
        opt.step(&xent.loss.backward()?)?;
    }
    r.final_loss = eval_loss(&lm, &eval)?;
    if !r.final_loss.is_finite() {
        r.diverged_at = Some(cfg.steps);
    }
    Ok(r)
}

/// [28]'s LR sensitivity: `E_η[min(ℓ(η), ℓ₀) − ℓ*]` over the sweep's learning rates, with ℓ₀ the
/// initial loss and ℓ* the best final loss of the sweep. A diverged run counts as ℓ₀.
pub fn lr_sensitivity(final_losses: &[f64], initial_loss: f64) -> f64 {
    let capped: Vec<f64> = final_losses
        .iter()
        .map(|&l| {
            if l.is_finite() {
                l.min(initial_loss)
            } else {
                initial_loss
            }
        })
        .collect();
    let best = capped.iter().copied().fold(f64::INFINITY, f64::min);
    capped.iter().map(|l| l - best).sum::<f64>() / capped.len().max(1) as f64
}
