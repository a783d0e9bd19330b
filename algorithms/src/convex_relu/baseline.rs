//! The non-convex baseline: the same two-layer ReLU network, same width and the same weight
//! decay, `ℓ(relu(X U) α, y) + (β/2)(‖U‖² + ‖α‖²)`, trained by full-batch Adam from several
//! random initializations, with gradients from the framework's autograd tape. The convex
//! optimum is a lower bound for every run; the question the report answers is how close the
//! best run gets.

use autograd::{DType, Device, Tensor};
use rand::SeedableRng;

use super::{recover::Network, Dataset, Loss};

#[derive(Clone, Debug)]
pub struct BaselineOptions {
    pub loss: Loss,
    pub beta: f64,
    pub width: usize,
    pub runs: usize,
    pub steps: usize,
    /// Adam's step size, decayed by a cosine to 1% over the run so the last iterates settle.
    pub lr: f64,
    pub seed: u64,
    pub log_every: usize,
}

impl Default for BaselineOptions {
    fn default() -> Self {
        BaselineOptions {
            loss: Loss::Squared,
            beta: 1e-2,
            width: 8,
            runs: 5,
            steps: 3000,
            lr: 2e-2,
            seed: 0,
            log_every: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct BaselineRun {
    pub seed: u64,
    /// The regularized objective at the end of the run (computed exactly, in f64).
    pub objective: f64,
    pub network: Network,
}

/// One Adam-trained network per run, seeds `seed, seed + 1, …`.
pub fn train_baseline(ds: &Dataset, opt: &BaselineOptions) -> Result<Vec<BaselineRun>, String> {
    opt.loss.check_targets(&ds.y)?;
    if opt.width == 0 || opt.runs == 0 {
        return Err("the baseline needs width >= 1 and runs >= 1".into());
    }
    (0..opt.runs as u64)
        .map(|r| train_one(ds, opt, opt.seed + r).map_err(|e| e.to_string()))
        .collect()
}

fn train_one(ds: &Dataset, opt: &BaselineOptions, seed: u64) -> autograd::Result<BaselineRun> {
    let (n, d, m) = (ds.n, ds.d, opt.width);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // PyTorch's Linear default scale (uniform ±1/√fan_in) for both layers.
    let b1 = 1.0 / (d as f64).sqrt();
    let b2 = 1.0 / (m as f64).sqrt();
    let u =
        Tensor::rand_uniform(&[d, m], -b1, b1, DType::F64, Device::Cpu, &mut rng)?.set_requires_grad(true);
    let a = Tensor::rand_uniform(&[m], -b2, b2, DType::F64, Device::Cpu, &mut rng)?.set_requires_grad(true);
    let x = Tensor::from_vec(ds.x.clone(), &[n, d], Device::Cpu)?;
    let y = Tensor::from_vec(ds.y.clone(), &[n], Device::Cpu)?;
    let params = [&u, &a];
    let mut m1: Vec<Vec<f64>> = vec![vec![0.0; d * m], vec![0.0; m]];
    let mut m2 = m1.clone();
    let (beta1, beta2, eps) = (0.9, 0.999, 1e-8);
    for step in 1..=opt.steps {
        let pred = x.matmul(&u)?.relu()?.matmul(&a)?;
        let data_loss = match opt.loss {
            Loss::Squared => pred.sub(&y)?.pow_scalar(2.0)?.sum_all()?.mul_scalar(0.5)?,
            Loss::Logistic => pred.mul(&y)?.neg()?.softplus()?.sum_all()?,
        };
        let reg = u
            .pow_scalar(2.0)?
            .sum_all()?
            .add(&a.pow_scalar(2.0)?.sum_all()?)?;
        let loss = data_loss.add(&reg.mul_scalar(0.5 * opt.beta)?)?;
        let grads = loss.backward()?;
        let progress = (step - 1) as f64 / opt.steps.max(1) as f64;
        let lr = opt.lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        let (c1, c2) = (1.0 - beta1_pow(beta1, step), 1.0 - beta1_pow(beta2, step));
        autograd::no_grad(|| -> autograd::Result<()> {
            for (pi, p) in params.iter().enumerate() {
                let Some(g) = grads.get(p) else { continue };
                let g = g.to_vec_f64()?;
                let (mm, vv) = (&mut m1[pi], &mut m2[pi]);
                p.with_data_mut::<f64, _>(|w| {
                    for e in 0..w.len() {
                        mm[e] = beta1 * mm[e] + (1.0 - beta1) * g[e];
                        vv[e] = beta2 * vv[e] + (1.0 - beta2) * g[e] * g[e];
                        w[e] -= lr * (mm[e] / c1) / ((vv[e] / c2).sqrt() + eps);
                    }
                })?;
            }
            Ok(())
        })?;
        if opt.log_every > 0 && step % opt.log_every == 0 {
            eprintln!(
                "baseline: seed {seed} step {step:>6}  objective {:.8e}",
                loss.item()?
            );
        }
    }
    // The network in the recover module's layout (neurons as rows), objective in f64.
    let uv = u.to_vec_f64()?;
    let mut rows = vec![0.0; m * d];
    for j in 0..m {
        for i in 0..d {
            rows[j * d + i] = uv[i * m + j];
        }
    }
    let network = Network {
        u: rows,
        alpha: a.to_vec_f64()?,
        d,
    };
    let objective = network.objective(ds, opt.loss, opt.beta);
    Ok(BaselineRun {
        seed,
        objective,
        network,
    })
}

fn beta1_pow(b: f64, t: usize) -> f64 {
    b.powi(t as i32)
}
