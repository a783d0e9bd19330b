//! The tensor handle: shared storage, a strided layout, dtype, device, and (when it takes part
//! in differentiation) its place in the graph.
//!
//! Cloning a `Tensor` is cheap (one reference count). Views (`reshape` of a contiguous tensor,
//! `permute`, `narrow`, `expand`, `detach`) share storage; ops produce new contiguous storage.

mod create;
pub(crate) mod cuda;
mod data;

use crate::graph::Var;
use crate::storage::{CpuData, Storage};
use crate::{DType, Device, Shape};
use std::fmt;
use std::sync::Arc;

#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) storage: Arc<Storage>,
    pub(crate) shape: Shape,
    /// Element strides; 0 on broadcast (expanded) dimensions.
    pub(crate) strides: Shape,
    pub(crate) offset: usize,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    /// `Some` when this tensor requires gradient: a leaf, or the output of a recorded op.
    pub(crate) var: Option<Var>,
}

impl Tensor {
    /// A new contiguous tensor owning `data`. The caller guarantees `data.len() == numel(shape)`.
    pub(crate) fn from_cpu_data(data: CpuData, shape: &[usize]) -> Tensor {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        let dtype = data.dtype();
        Tensor(Arc::new(Inner {
            storage: Arc::new(Storage::new(data)),
            strides: Shape::from_vec(kernels::strided::contiguous_strides(shape)),
            shape: Shape::from_slice(shape),
            offset: 0,
            dtype,
            device: Device::Cpu,
            var: None,
        }))
    }

    /// A view of the same storage with another layout. The view is untracked; ops that return
    /// views record their own backward.
    pub(crate) fn view_with(&self, shape: Shape, strides: Shape, offset: usize) -> Tensor {
        Tensor(Arc::new(Inner {
            storage: self.0.storage.clone(),
            shape,
            strides,
            offset,
            dtype: self.0.dtype,
            device: self.0.device,
            var: None,
        }))
    }

    /// The same tensor with graph identity `var`.
    pub(crate) fn with_var(&self, var: Option<Var>) -> Tensor {
        Tensor(Arc::new(Inner {
            storage: self.0.storage.clone(),
            shape: self.0.shape.clone(),
            strides: self.0.strides.clone(),
            offset: self.0.offset,
            dtype: self.0.dtype,
            device: self.0.device,
            var,
        }))
    }

    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// Size of axis `axis` (negative counts from the end).
    pub fn size(&self, axis: isize) -> crate::Result<usize> {
        let a = crate::shape::normalize_axis("size", axis, self.rank())?;
        Ok(self.0.shape[a])
    }

    pub fn strides(&self) -> &[usize] {
        &self.0.strides
    }

    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.0.shape.iter().product()
    }

    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    pub fn device(&self) -> Device {
        self.0.device
    }

    /// Whether the elements are laid out row-major with no gaps (so the storage slice
    /// `offset..offset + numel` is the tensor).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.0.shape.iter().zip(self.0.strides.iter()).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// Whether gradients will be computed for this tensor (a leaf marked with
    /// `set_requires_grad(true)`, or an op output depending on one).
    pub fn requires_grad(&self) -> bool {
        self.0.var.is_some()
    }

    /// This tensor as a fresh gradient leaf (`true`) or as an untracked constant (`false`).
    /// Returns a new handle sharing storage, as `torch.Tensor.requires_grad_` would mark it.
    pub fn set_requires_grad(&self, requires: bool) -> Tensor {
        let var = if requires { Some(Var::leaf()) } else { None };
        self.with_var(var)
    }

    /// The same values, cut from the graph: no gradient flows back through the result
    /// (`torch.Tensor.detach`, JAX's `stop_gradient`). Shares storage.
    pub fn detach(&self) -> Tensor {
        self.with_var(None)
    }

    /// Alias of [`Tensor::detach`] under JAX's name.
    pub fn stop_gradient(&self) -> Tensor {
        self.detach()
    }

    /// A stable identity for gradient lookup; `None` for untracked tensors.
    pub fn grad_id(&self) -> Option<crate::graph::TensorId> {
        self.0.var.as_ref().map(|v| v.id)
    }

    /// Whether two handles share one storage allocation.
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor[{:?}, {}, {}",
            self.shape(),
            self.dtype(),
            self.device()
        )?;
        if self.requires_grad() {
            write!(f, ", requires_grad")?;
        }
        if self.numel() <= 16 {
            if let Ok(v) = self.to_vec_f64() {
                write!(f, ", {v:?}")?;
            }
        }
        write!(f, "]")
    }
}
