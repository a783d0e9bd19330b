//! Finite-difference gradient checking in f64.
//!
//! For `y = f(x₁, …, xₙ)` the analytic vector-Jacobian product `Jᵀr` (one backward pass with a
//! fixed pseudo-random seed `r` of `y`'s shape, so every output element matters) is compared with
//! the central difference `(⟨f(x + h·eᵢ), r⟩ − ⟨f(x − h·eᵢ), r⟩) / 2h` for every element of every
//! f64 input. Inputs of other dtypes (indices, masks) are passed through unchanged.
//!
//! Tolerances: with h = 1e-6 in f64, the central difference has truncation error O(h²·|f'''|)
//! ≈ 1e-12 and rounding error ≈ 1e-16·|⟨y, r⟩|/h ≈ 1e-10·|⟨y, r⟩|, so agreement to
//! `atol + rtol·max(|analytic|, |numeric|)` with rtol = 1e-5 and atol = 1e-7 leaves two to three
//! orders of margin while still catching any wrong term in a derivative.

use crate::{no_grad, DType, Error, Result, Tensor};
use rand::{RngExt, SeedableRng};

#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    pub eps: f64,
    pub rtol: f64,
    pub atol: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            rtol: 1e-5,
            atol: 1e-7,
        }
    }
}

/// What a passing check covered.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// The ops `f` recorded (each once), for coverage accounting.
    pub ops: Vec<&'static str>,
    /// Number of input elements whose derivative was compared.
    pub elements: usize,
    pub max_abs_error: f64,
}

/// Check `f`'s gradient at `inputs`; returns an error naming the first disagreeing element.
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    opts: GradcheckOptions,
) -> Result<GradcheckReport> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            if t.dtype() == DType::F64 {
                t.detach().set_requires_grad(true)
            } else {
                t.clone()
            }
        })
        .collect();
    if !leaves.iter().any(|t| t.requires_grad()) {
        return Err(Error::InvalidArgument {
            op: "gradcheck",
            reason: "no f64 input to check".into(),
        });
    }
    let y = f(&leaves)?;
    if y.dtype() != DType::F64 {
        return Err(Error::UnsupportedDType {
            op: "gradcheck",
            dtype: y.dtype(),
            expected: "an f64 output",
        });
    }
    let ops = y.graph_ops();
    // Seed values in ±[0.5, 1.5): no element of y is weighted near zero.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let seed_values: Vec<f64> = (0..y.numel())
        .map(|_| {
            let m: f64 = rng.random_range(0.5..1.5);
            if rng.random_bool(0.5) {
                m
            } else {
                -m
            }
        })
        .collect();
    let seed = Tensor::from_vec(seed_values.clone(), y.shape(), y.device())?;
    let grads = if y.requires_grad() {
        Some(y.backward_with(&seed)?)
    } else {
        None
    };
    drop(y);

    let project = |xs: &[Tensor]| -> Result<f64> {
        let v = no_grad(|| f(xs))?.to_vec::<f64>()?;
        Ok(v.iter().zip(&seed_values).map(|(a, b)| a * b).sum())
    };
    let mut elements = 0;
    let mut max_abs_error: f64 = 0.0;
    for (i, leaf) in leaves.iter().enumerate() {
        if !leaf.requires_grad() {
            continue;
        }
        let analytic = match grads.as_ref().and_then(|g| g.get(leaf)) {
            Some(g) => g.to_vec::<f64>()?,
            // No path from the output to this input: its gradient is zero.
            None => vec![0.0; leaf.numel()],
        };
        let base = leaf.to_vec::<f64>()?;
        for j in 0..base.len() {
            let mut shifted: Vec<Tensor> = leaves.iter().map(|t| t.detach()).collect();
            let mut plus = base.clone();
            plus[j] += opts.eps;
            shifted[i] = Tensor::from_vec(plus, leaf.shape(), leaf.device())?;
            let fp = project(&shifted)?;
            let mut minus = base.clone();
            minus[j] -= opts.eps;
            shifted[i] = Tensor::from_vec(minus, leaf.shape(), leaf.device())?;
            let fm = project(&shifted)?;
            let numeric = (fp - fm) / (2.0 * opts.eps);
            let err = (analytic[j] - numeric).abs();
            max_abs_error = max_abs_error.max(err);
            let bound = opts.atol + opts.rtol * analytic[j].abs().max(numeric.abs());
            if err.is_nan() || err > bound {
                return Err(Error::InvalidArgument {
                    op: "gradcheck",
                    reason: format!(
                        "ops {ops:?}: input {i} (shape {:?}) element {j}: analytic {} vs numeric {numeric} \
                         (error {err:.3e} > bound {bound:.3e})",
                        leaf.shape(),
                        analytic[j]
                    ),
                });
            }
            elements += 1;
        }
    }
    Ok(GradcheckReport {
        ops,
        elements,
        max_abs_error,
    })
}
