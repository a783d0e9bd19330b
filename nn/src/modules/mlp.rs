//! `Mlp`: the transformer's position-wise feed-forward network.

use super::{visit_child, visit_child_mut, Linear, Module};
use autograd::{DType, Result, Tensor};
use rand::Rng;

/// `fc2(gelu(fc1(x)))` with exact (erf) GELU, `dim -> hidden -> dim` (or `out_dim`).
#[derive(Clone, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    /// PyTorch's default `Linear` initialization.
    pub fn new<R: Rng + ?Sized>(
        dim: usize,
        hidden: usize,
        out_dim: usize,
        bias: bool,
        dtype: DType,
        rng: &mut R,
    ) -> Result<Self> {
        Ok(Mlp {
            fc1: Linear::new(dim, hidden, bias, dtype, rng)?,
            fc2: Linear::new(hidden, out_dim, bias, dtype, rng)?,
        })
    }

    /// Weights `N(0, std²)` (the output layer `N(0, out_std²)`), zero biases.
    #[allow(clippy::too_many_arguments)]
    pub fn normal<R: Rng + ?Sized>(
        dim: usize,
        hidden: usize,
        out_dim: usize,
        bias: bool,
        std: f64,
        out_std: f64,
        dtype: DType,
        rng: &mut R,
    ) -> Result<Self> {
        Ok(Mlp {
            fc1: Linear::normal(dim, hidden, bias, std, dtype, rng)?,
            fc2: Linear::normal(hidden, out_dim, bias, out_std, dtype, rng)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.gelu()?)
    }
}

impl Module for Mlp {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child(&self.fc1, "fc1", f);
        visit_child(&self.fc2, "fc2", f);
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        visit_child_mut(&mut self.fc1, "fc1", f)?;
        visit_child_mut(&mut self.fc2, "fc2", f)
    }
}
