//! `LayerNorm`, `RmsNorm`, and [`Norm`], either one chosen by [`NormKind`].

use super::{check_features, init, leaf, Module};
use autograd::{DType, Result, Tensor};

/// Layer normalization over the last dimension with a gain and an optional bias
/// (`torch.nn.LayerNorm(dim, eps, bias=...)`); gain 1 and bias 0 at creation.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(dim: usize, bias: bool, eps: f64, dtype: DType) -> Result<Self> {
        Ok(LayerNorm {
            weight: leaf(init::ones(&[dim], dtype)?),
            bias: if bias {
                Some(leaf(init::zeros(&[dim], dtype)?))
            } else {
                None
            },
            eps,
        })
    }

    pub fn dim(&self) -> usize {
        self.weight.shape()[0]
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_features("LayerNorm", x, self.dim(), "normalized dim")?;
        x.layer_norm(&[self.dim()], Some(&self.weight), self.bias.as_ref(), self.eps)
    }
}

impl Module for LayerNorm {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
        if let Some(b) = &self.bias {
            f("bias", b);
        }
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        f("weight", &mut self.weight)?;
        if let Some(b) = &mut self.bias {
            f("bias", b)?;
        }
        Ok(())
    }
}

/// RMS normalization over the last dimension with a gain (`torch.nn.RMSNorm(dim, eps)`).
#[derive(Clone, Debug)]
pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn new(dim: usize, eps: f64, dtype: DType) -> Result<Self> {
        Ok(RmsNorm {
            weight: leaf(init::ones(&[dim], dtype)?),
            eps,
        })
    }

    pub fn dim(&self) -> usize {
        self.weight.shape()[0]
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_features("RMSNorm", x, self.dim(), "normalized dim")?;
        x.rms_norm(&[self.dim()], Some(&self.weight), self.eps)
    }
}

impl Module for RmsNorm {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        f("weight", &mut self.weight)
    }
}

/// Which normalization a transformer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NormKind {
    /// LayerNorm with gain and bias, ε = 1e-5.
    #[default]
    LayerNorm,
    /// LayerNorm with a gain and no bias, ε = 1e-5 (the bias-free models of [28]).
    LayerNormNoBias,
    /// RMSNorm, ε = 1e-6.
    RmsNorm,
}

/// A LayerNorm or an RMSNorm, chosen at construction.
#[derive(Clone, Debug)]
pub enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
}

impl Norm {
    pub fn new(kind: NormKind, dim: usize, dtype: DType) -> Result<Self> {
        Ok(match kind {
            NormKind::LayerNorm => Norm::Layer(LayerNorm::new(dim, true, 1e-5, dtype)?),
            NormKind::LayerNormNoBias => Norm::Layer(LayerNorm::new(dim, false, 1e-5, dtype)?),
            NormKind::RmsNorm => Norm::Rms(RmsNorm::new(dim, 1e-6, dtype)?),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer(n) => n.forward(x),
            Norm::Rms(n) => n.forward(x),
        }
    }

    fn inner(&self) -> &dyn Module {
        match self {
            Norm::Layer(n) => n,
            Norm::Rms(n) => n,
        }
    }
}

impl Module for Norm {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        self.inner().visit_parameters(f)
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        match self {
            Norm::Layer(n) => n.visit_parameters_mut(f),
            Norm::Rms(n) => n.visit_parameters_mut(f),
        }
    }
}
