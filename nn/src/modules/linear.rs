//! `Linear` and `Embedding`.

use super::{check_features, init, leaf, Module};
use autograd::{DType, Error, Result, Shape, Tensor};
use rand::Rng;

/// `y = x Wᵀ + b` over the last dimension (`torch.nn.Linear`); `weight` is `[out, in]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// PyTorch's default initialization: weight and bias `U(±1/sqrt(in_features))`.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        bias: bool,
        dtype: DType,
        rng: &mut R,
    ) -> Result<Self> {
        let bound = 1.0 / (in_features.max(1) as f64).sqrt();
        let weight = init::uniform(&[out_features, in_features], -bound, bound, dtype, rng)?;
        let bias = if bias {
            Some(init::uniform(&[out_features], -bound, bound, dtype, rng)?)
        } else {
            None
        };
        Self::from_parameters(weight, bias)
    }

    /// Weight `N(0, std²)` and zero bias: the GPT-2 style initialization the transformer uses.
    pub fn normal<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        bias: bool,
        std: f64,
        dtype: DType,
        rng: &mut R,
    ) -> Result<Self> {
        let weight = init::normal(&[out_features, in_features], 0.0, std, dtype, rng)?;
        let bias = if bias {
            Some(init::zeros(&[out_features], dtype)?)
        } else {
            None
        };
        Self::from_parameters(weight, bias)
    }

    /// A layer holding these values (as fresh leaves); `weight` `[out, in]`, `bias` `[out]`.
    pub fn from_parameters(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let ok = weight.rank() == 2 && bias.as_ref().is_none_or(|b| b.shape() == [weight.shape()[0]]);
        if !ok {
            let mut shapes = vec![Shape::from_slice(weight.shape())];
            shapes.extend(bias.iter().map(|b| Shape::from_slice(b.shape())));
            return Err(Error::ShapeMismatch {
                op: "Linear",
                shapes,
                reason: "weight must be [out, in] and bias [out]".into(),
            });
        }
        Ok(Linear {
            weight: leaf(weight),
            bias: bias.map(leaf),
        })
    }

    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }

    /// `x` is `[..., in]`; the result `[..., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_features("Linear", x, self.in_features(), "in_features")?;
        let y = x.matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }
}

impl Module for Linear {
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

/// A lookup table of `num_embeddings` rows of size `dim` (`torch.nn.Embedding`).
#[derive(Clone, Debug)]
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    /// Rows `N(0, std²)` (PyTorch's default is std = 1; transformers use about 0.02).
    pub fn new<R: Rng + ?Sized>(
        num_embeddings: usize,
        dim: usize,
        std: f64,
        dtype: DType,
        rng: &mut R,
    ) -> Result<Self> {
        Ok(Embedding {
            weight: leaf(init::normal(&[num_embeddings, dim], 0.0, std, dtype, rng)?),
        })
    }

    pub fn num_embeddings(&self) -> usize {
        self.weight.shape()[0]
    }

    pub fn dim(&self) -> usize {
        self.weight.shape()[1]
    }

    /// `ids` (i64, any shape) to `[..ids.shape, dim]`. An id outside `0..num_embeddings` is an
    /// error naming the module, the id, its position and the table's size.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        if ids.dtype() != DType::I64 {
            return Err(Error::UnsupportedDType {
                op: "Embedding",
                dtype: ids.dtype(),
                expected: "i64 token ids",
            });
        }
        let n = self.num_embeddings();
        let values = ids.to_vec::<i64>()?;
        if let Some((pos, &id)) = values
            .iter()
            .enumerate()
            .find(|(_, &id)| id < 0 || id as usize >= n)
        {
            return Err(Error::InvalidArgument {
                op: "Embedding",
                reason: format!(
                    "token id {id} at flat position {pos} of ids shape {:?} is outside 0..{n} \
                     (weight shape {:?})",
                    ids.shape(),
                    self.weight.shape()
                ),
            });
        }
        autograd::embedding(ids, &self.weight)
    }
}

impl Module for Embedding {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
    }

    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        f("weight", &mut self.weight)
    }
}
