//! The small classifier the H1 demos share ([157], [400], [369], [52]): a two-layer ReLU MLP
//! `fc2(relu(fc1(x)))` on `nn::modules::Linear`, plus evaluation done in f64 on its logits.

use autograd::{no_grad, Tensor};
use nn::modules::{Linear, Module};
use rand::SeedableRng;

use crate::harness::blobs::Blobs;

/// `dim → hidden → classes`, PyTorch's default Linear initialization.
#[derive(Clone, Debug)]
pub struct Classifier {
    pub fc1: Linear,
    pub fc2: Linear,
}

fn err(e: autograd::Error) -> String {
    e.to_string()
}

impl Classifier {
    pub fn new(dim: usize, hidden: usize, classes: usize, seed: u64) -> Result<Self, String> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Ok(Classifier {
            fc1: Linear::new(dim, hidden, true, autograd::DType::F32, &mut rng).map_err(err)?,
            fc2: Linear::new(hidden, classes, true, autograd::DType::F32, &mut rng).map_err(err)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> autograd::Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }

    /// Every parameter: fc1.weight, fc1.bias, fc2.weight, fc2.bias.
    pub fn parameters(&self) -> Vec<Tensor> {
        let mut p = self.fc1.parameters();
        p.extend(self.fc2.parameters());
        p
    }

    /// The weight matrices only (the usual weight-decay group).
    pub fn weights(&self) -> Vec<Tensor> {
        vec![self.fc1.weight.clone(), self.fc2.weight.clone()]
    }

    /// The output layer's `classes` logits per sample, row-major, in f64.
    pub fn logits(&self, data: &Blobs) -> Result<Vec<f64>, String> {
        let (x, _) = data.tensors(autograd::Device::Cpu)?;
        no_grad(|| self.forward(&x))
            .and_then(|t| t.to_vec_f64())
            .map_err(err)
    }

    /// The biases (the group usually left undecayed).
    pub fn biases(&self) -> Vec<Tensor> {
        [&self.fc1.bias, &self.fc2.bias]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Largest |parameter| over every parameter.
    pub fn max_abs(&self) -> Result<f64, String> {
        let mut m = 0.0f64;
        for p in self.parameters() {
            for v in p.to_vec_f64().map_err(err)? {
                m = m.max(v.abs());
            }
        }
        Ok(m)
    }
}

/// What [`evaluate`] measures over a set of samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Eval {
    /// argmax over the allowed classes equals the label.
    pub accuracy: f64,
    /// Mean softmax probability (over the allowed classes) of the true class.
    pub confidence: f64,
    /// Mean cross-entropy over the allowed classes.
    pub loss: f64,
    pub samples: usize,
}

/// Accuracy, true-class confidence and loss with the softmax restricted to `allowed` (all
/// classes when `None`). Samples whose label is not allowed count as wrong with confidence 0.
pub fn evaluate(model: &Classifier, data: &Blobs, allowed: Option<&[usize]>) -> Result<Eval, String> {
    if data.is_empty() {
        return Ok(Eval::default());
    }
    let logits = model.logits(data)?;
    let c = data.classes;
    let ok = |k: usize| allowed.is_none_or(|a| a.contains(&k));
    let (mut correct, mut conf, mut loss) = (0usize, 0.0, 0.0);
    for (row, &y) in logits.chunks(c).zip(&data.y) {
        let max = (0..c)
            .filter(|&k| ok(k))
            .map(|k| row[k])
            .fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = (0..c).filter(|&k| ok(k)).map(|k| (row[k] - max).exp()).sum();
        let best = (0..c)
            .filter(|&k| ok(k))
            .fold((usize::MAX, f64::NEG_INFINITY), |b, k| {
                if row[k] > b.1 {
                    (k, row[k])
                } else {
                    b
                }
            });
        let y = y as usize;
        if best.0 == y {
            correct += 1;
        }
        if ok(y) {
            let p = (row[y] - max).exp() / z;
            conf += p;
            loss += -(p.max(1e-300)).ln();
        } else {
            loss += f64::INFINITY;
        }
    }
    let n = data.len() as f64;
    Ok(Eval {
        accuracy: correct as f64 / n,
        confidence: conf / n,
        loss: loss / n,
        samples: data.len(),
    })
}
