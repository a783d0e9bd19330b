//! Shared helpers for the cross-crate tests in `tests/tests/`: a small MLP written directly on
//! autograd ops (the `nn` modules arrive with issue 9) and a synthetic two-class data set.

use autograd::{DType, Device, Reduction, Result, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// `x @ wᵀ + b` with `w: [out, in]`, as `torch.nn.Linear`.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.matmul(&w.t()?)?.add(b)
}

/// A multilayer perceptron: Linear → LayerNorm → GELU → ... → Linear.
pub struct Mlp {
    /// `(weight [out, in], bias [out])` per layer, then LayerNorm `(gain, bias)` per hidden layer.
    pub layers: Vec<(Tensor, Tensor)>,
    pub norms: Vec<(Tensor, Tensor)>,
}

impl Mlp {
    /// Kaiming-uniform-like init (bound 1/√fan_in, as PyTorch's Linear default), seeded.
    pub fn new(sizes: &[usize], dtype: DType, seed: u64) -> Result<Mlp> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut layers = Vec::new();
        let mut norms = Vec::new();
        for (i, pair) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let w = Tensor::rand_uniform(&[fan_out, fan_in], -bound, bound, dtype, Device::Cpu, &mut rng)?;
            let b = Tensor::rand_uniform(&[fan_out], -bound, bound, dtype, Device::Cpu, &mut rng)?;
            layers.push((w.set_requires_grad(true), b.set_requires_grad(true)));
            if i + 2 < sizes.len() {
                let g = Tensor::ones(&[fan_out], dtype, Device::Cpu)?.set_requires_grad(true);
                let beta = Tensor::zeros(&[fan_out], dtype, Device::Cpu)?.set_requires_grad(true);
                norms.push((g, beta));
            }
        }
        Ok(Mlp { layers, norms })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = linear(&h, w, b)?;
            if let Some((g, beta)) = self.norms.get(i) {
                let d = h.shape()[h.rank() - 1];
                h = h.layer_norm(&[d], Some(g), Some(beta), 1e-5)?.gelu()?;
            }
        }
        Ok(h)
    }

    pub fn parameters(&self) -> Vec<&Tensor> {
        self.layers
            .iter()
            .chain(&self.norms)
            .flat_map(|(a, b)| [a, b])
            .collect()
    }

    /// One step of plain SGD on the mean cross-entropy; returns the loss.
    pub fn sgd_step(&self, x: &Tensor, y: &Tensor, lr: f64) -> Result<f64> {
        let loss = autograd::cross_entropy(&self.forward(x)?, y, Reduction::Mean)?;
        let grads = loss.backward()?;
        autograd::no_grad(|| -> Result<()> {
            for p in self.parameters() {
                if let Some(g) = grads.get(p) {
                    p.add_scaled_(g, -lr)?;
                }
            }
            Ok(())
        })?;
        loss.item()
    }

    /// Fraction of rows whose arg-max logit is the target.
    pub fn accuracy(&self, x: &Tensor, y: &Tensor) -> Result<f64> {
        let logits = autograd::no_grad(|| self.forward(x))?.to_vec_f64()?;
        let targets = y.to_vec::<i64>()?;
        let classes = logits.len() / targets.len();
        let correct = targets
            .iter()
            .enumerate()
            .filter(|(i, &t)| {
                let row = &logits[i * classes..(i + 1) * classes];
                let best = (0..classes).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
                best as i64 == t
            })
            .count();
        Ok(correct as f64 / targets.len() as f64)
    }
}

/// Two interleaved noisy spirals in 2-D: not linearly separable, so a model must learn a
/// curved boundary. Returns `(x [n, 2], y [n] i64)`.
pub fn two_spirals(n: usize, noise: f64, seed: u64, dtype: DType) -> Result<(Tensor, Tensor)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 2) as i64;
        let t: f64 = rng.random_range(0.25..1.0) * 3.0 * std::f64::consts::PI;
        let r = t / (3.0 * std::f64::consts::PI) * 2.0;
        let angle = t + class as f64 * std::f64::consts::PI;
        xs.push(r * angle.cos() + noise * rng.random_range(-1.0..1.0));
        xs.push(r * angle.sin() + noise * rng.random_range(-1.0..1.0));
        ys.push(class);
    }
    let x = Tensor::from_vec(xs, &[n, 2], Device::Cpu)?.to_dtype(dtype)?;
    let y = Tensor::from_vec(ys, &[n], Device::Cpu)?;
    Ok((x, y))
}
