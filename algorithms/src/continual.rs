//! What the class-incremental demos ([369], [52]) share: a reservoir replay buffer, one SGD
//! step of the masked cross-entropy on a batch with per-row class masks, and the mean of
//! per-seed metrics.

use autograd::{ClassMask, CrossEntropyOptions, Device};
use nn::optim::{Algorithm, Optimizer};
use rand::{Rng, RngExt};

use crate::classifier::Classifier;
use crate::harness::blobs::Blobs;

/// Reservoir sampling (Vitter's algorithm R): after `seen` offers every offered sample is in
/// the buffer with probability `capacity / seen`; the usual buffer of experience replay (ER).
#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    pub capacity: usize,
    pub seen: usize,
    pub data: Blobs,
}

impl ReplayBuffer {
    pub fn new(capacity: usize, dim: usize, classes: usize) -> Self {
        ReplayBuffer {
            capacity,
            seen: 0,
            data: Blobs {
                x: Vec::new(),
                y: Vec::new(),
                dim,
                classes,
            },
        }
    }

    pub fn offer<R: Rng + ?Sized>(&mut self, x: &[f32], y: i64, rng: &mut R) {
        self.seen += 1;
        let d = self.data.dim;
        if self.data.len() < self.capacity {
            self.data.x.extend_from_slice(x);
            self.data.y.push(y);
        } else if self.capacity > 0 {
            let j = rng.random_range(0..self.seen);
            if j < self.capacity {
                self.data.x[j * d..(j + 1) * d].copy_from_slice(x);
                self.data.y[j] = y;
            }
        }
    }

    /// Up to `k` distinct stored samples, uniformly.
    pub fn sample<R: Rng + ?Sized>(&self, k: usize, rng: &mut R) -> Blobs {
        let p = crate::harness::blobs::permutation(self.data.len(), rng);
        self.data.select(&p[..k.min(p.len())])
    }
}

/// One optimizer step on the masked cross-entropy of `batch` (mean over rows). `mask` holds
/// one row per batch row (or one broadcast row); masked logits are replaced by the
/// stop-gradient constant `mask_value`. Returns the loss.
pub fn masked_step<A: Algorithm>(
    model: &Classifier,
    opt: &mut Optimizer<A>,
    batch: &Blobs,
    mask: ClassMask,
    mask_value: f64,
) -> Result<f64, String> {
    let e = |err: autograd::Error| err.to_string();
    let (x, y) = batch.tensors(Device::Cpu)?;
    let logits = model.forward(&x).map_err(e)?;
    let out = logits
        .cross_entropy_with(
            &y,
            &CrossEntropyOptions {
                mask,
                mask_value,
                ..Default::default()
            },
        )
        .map_err(e)?;
    let loss = out.loss.item().map_err(e)?;
    opt.step(&out.loss.backward().map_err(e)?).map_err(e)?;
    Ok(loss)
}

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

/// How many seeds a seed-averaged claim uses: `--seeds` when given (> 1), else 3 (quick) or 5.
pub fn seed_count(quick: bool, seeds: usize) -> usize {
    if seeds > 1 {
        seeds
    } else if quick {
        3
    } else {
        5
    }
}
