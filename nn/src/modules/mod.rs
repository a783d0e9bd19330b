//! Modules: layers that own named parameters (`torch.nn.Module`).
//!
//! A [`Module`] lists its parameters under dotted names (`blocks.0.attn.q_proj.weight`), switches
//! between training and evaluation (dropout), moves to a device, and saves or loads its parameters
//! as safetensors ([`save_parameters`], [`load_parameters`]). Parameters are gradient leaves that
//! the module keeps for its whole life; the optimizer updates them in place, so handing
//! `model.parameters()` to [`crate::optim::Optimizer::new`] is all the wiring there is:
//!
//! ```
//! # use autograd::{DType, Device, Tensor};
//! # use nn::modules::{Linear, Module};
//! # use nn::optim::{AdamW, Optimizer};
//! # use rand::SeedableRng;
//! # fn main() -> autograd::Result<()> {
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let layer = Linear::new(3, 2, true, DType::F32, &mut rng)?;
//! let mut opt = Optimizer::new(layer.parameters(), AdamW::default())?;
//! let x = Tensor::ones(&[4, 3], DType::F32, Device::Cpu)?;
//! let grads = layer.forward(&x)?.pow_scalar(2.0)?.mean_all()?.backward()?;
//! opt.step(&grads)?;
//! # Ok(()) }
//! ```
//!
//! `forward` is an inherent method of each module rather than a trait method, because the
//! modules take different inputs (features, token ids, a mask); the trait holds what every
//! module shares. [`Module::param_groups`] splits parameters into the usual "decay" (matrices)
//! and "no decay" (biases, norm gains, embeddings optional) groups.

mod attention;
mod dropout;
pub mod init;
mod linear;
mod lm;
mod mlp;
mod norm;
mod serialize;
mod transformer;

pub use attention::{blocked_mask, AttentionConfig, AttentionResult, MultiHeadAttention};
pub use dropout::Dropout;
pub use linear::{Embedding, Linear};
pub use lm::{DecoderLm, LmConfig, LmOutput};
pub use mlp::Mlp;
pub use norm::{LayerNorm, Norm, NormKind, RmsNorm};
pub use serialize::{load_file, load_parameters, save_file, save_parameters};
pub use transformer::{Arrangement, BlockConfig, BlockOutput, TransformerBlock};

use autograd::{Device, Error, Result, Tensor};

/// What every module has: named parameters, a training flag, a device.
pub trait Module {
    /// Calls `f(name, parameter)` for every parameter, children included, names dotted from
    /// this module (`"0.weight"`, `"attn.q_proj.weight"`), in a fixed order.
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor));

    /// The same walk with the handles replaceable (for [`Module::to`]); stops at the first error.
    fn visit_parameters_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()>;

    /// Sets training (`true`) or evaluation mode here and in every child. Modules without
    /// mode-dependent behaviour keep the default, which does nothing.
    fn set_training(&mut self, _training: bool) {}

    /// Every parameter, in the order of [`Module::named_parameters`].
    fn parameters(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        self.visit_parameters(&mut |_, p| out.push(p.clone()));
        out
    }

    /// `(dotted name, parameter)` pairs (`torch.nn.Module.named_parameters`).
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_parameters(&mut |n, p| out.push((n.to_string(), p.clone())));
        out
    }

    /// Total number of scalar parameters.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit_parameters(&mut |_, p| n += p.numel());
        n
    }

    /// Training mode (dropout active), as `torch.nn.Module.train()`.
    fn train(&mut self) {
        self.set_training(true);
    }

    /// Evaluation mode (dropout is the identity), as `torch.nn.Module.eval()`.
    fn eval(&mut self) {
        self.set_training(false);
    }

    /// Moves every parameter to `device` (`torch.nn.Module.to(device)`). The moved parameters
    /// are new gradient leaves, so build optimizers after moving.
    fn to(&mut self, device: Device) -> Result<()> {
        self.visit_parameters_mut(&mut |_, p| {
            if p.device() != device {
                *p = p.detach().to_device(device)?.set_requires_grad(true);
            }
            Ok(())
        })
    }

    /// Two optimizer groups: `(decay, no_decay)`. Parameters of rank >= 2 (weight matrices,
    /// embeddings) decay; vectors (biases, norm gains) do not, the usual transformer recipe.
    fn param_groups(&self) -> (Vec<Tensor>, Vec<Tensor>) {
        let (mut decay, mut no_decay) = (Vec::new(), Vec::new());
        self.visit_parameters(&mut |_, p| {
            if p.rank() >= 2 {
                decay.push(p.clone())
            } else {
                no_decay.push(p.clone())
            }
        });
        (decay, no_decay)
    }
}

/// `prefix.name`, or `name` at the top.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Visits a child module's parameters under `prefix`.
pub(crate) fn visit_child(child: &dyn Module, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
    child.visit_parameters(&mut |n, p| f(&join(prefix, n), p));
}

/// Mutable counterpart of [`visit_child`].
pub(crate) fn visit_child_mut(
    child: &mut dyn Module,
    prefix: &str,
    f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>,
) -> Result<()> {
    child.visit_parameters_mut(&mut |n, p| f(&join(prefix, n), p))
}

/// A fresh gradient leaf holding `values`: how modules create their parameters.
pub(crate) fn leaf(t: Tensor) -> Tensor {
    t.detach().set_requires_grad(true)
}

/// The error for an input whose trailing dimension does not match the module.
pub(crate) fn feature_mismatch(module: &'static str, x: &Tensor, expected: usize, what: &str) -> Error {
    Error::ShapeMismatch {
        op: module,
        shapes: vec![autograd::Shape::from_slice(x.shape())],
        reason: format!("input's last dimension must be {what} = {expected}"),
    }
}

/// Checks that `x` has rank >= 1 and last dimension `expected`.
pub(crate) fn check_features(module: &'static str, x: &Tensor, expected: usize, what: &str) -> Result<()> {
    match x.shape().last() {
        Some(&d) if d == expected => Ok(()),
        _ => Err(feature_mismatch(module, x, expected, what)),
    }
}
