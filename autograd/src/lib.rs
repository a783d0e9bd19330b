//! Tensors and tape-based reverse-mode automatic differentiation.
//!
//! * [`Tensor`]: a handle to shared storage with a strided layout, a [`DType`] and a [`Device`].
//!   Cloning is cheap; views share storage. Every op returns a [`Result`] whose error names the
//!   op and the shapes, dtypes or devices it was given.
//! * The tape ([`graph`]): ops on tensors that require gradient record their backward;
//!   [`Tensor::backward`] returns the leaves' [`Gradients`]; [`no_grad`] records nothing.
//! * [`gradcheck`]: central finite differences in f64, used on every differentiable op.
//! * The ops live in [`ops`], one file per family, each forward with its backward beside it; the
//!   arithmetic underneath is in the `kernels` crate.
//!
//! ```
//! use autograd::{DType, Device, Tensor};
//! use rand::SeedableRng;
//!
//! # fn main() -> autograd::Result<()> {
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let w = Tensor::randn(&[3, 2], DType::F32, Device::Cpu, &mut rng)?.set_requires_grad(true);
//! let x = Tensor::randn(&[4, 3], DType::F32, Device::Cpu, &mut rng)?;
//! let loss = x.matmul(&w)?.gelu()?.pow_scalar(2.0)?.mean_all()?;
//! let grads = loss.backward()?; // gradients of the leaves, keyed by tensor
//! let dw = grads.get(&w).unwrap(); // same shape as w
//! assert_eq!(dw.shape(), &[3, 2]);
//! # Ok(())
//! # }
//! ```
//!
//! PyTorch names are used where one exists (`matmul`, `log_softmax`, `masked_fill`, ...), and
//! each op's documentation names its PyTorch equivalent and any difference.

pub mod device;
pub mod dtype;
pub mod error;
pub mod gradcheck;
pub mod graph;
pub mod memory;
pub mod ops;
pub mod shape;
pub mod storage;
pub mod tensor;

pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use graph::{is_grad_enabled, no_grad, Gradients, NoGradGuard, TensorId};
pub use ops::attention::{attention, AttentionMask, AttentionOutput};
pub use ops::dropout::dropout_mask;
pub use ops::index::embedding;
pub use ops::loss::{cross_entropy, cross_entropy_mean, mse_loss, Reduction};
pub use ops::masked_xent::{
    class_mask, cross_entropy_with, masked_log_softmax, masked_softmax, ClassMask, ClassRange,
    CrossEntropyOptions, CrossEntropyOutput,
};
pub use ops::norm::{layer_norm, rms_norm};
pub use ops::softmax::{log_softmax, softmax};
pub use shape::Shape;
pub use tensor::Tensor;
