//! Shape and layout ops: views (`reshape` of contiguous input, `permute`, `transpose`, `narrow`,
//! `expand`, `squeeze`, `unsqueeze`) that share storage, and copies (`cat`, `stack`).

use super::{check_same, shape_vec};
use crate::graph::record;
use crate::shape::{normalize_axis, numel};
use crate::{Error, Result, Shape, Tensor};
use kernels::strided::contiguous_strides;

impl Tensor {
    /// The same elements in row-major order with a new shape (`torch.reshape`). One dimension
    /// may be `-1` (inferred). A view when the input is contiguous, a copy otherwise.
    pub fn reshape_infer(&self, shape: &[isize]) -> Result<Tensor> {
        let known: usize = shape.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
        let inferred = shape.iter().filter(|&&d| d < 0).count();
        let bad = || Error::ShapeMismatch {
            op: "reshape",
            shapes: vec![self.0.shape.clone()],
            reason: format!("cannot reshape to {shape:?}"),
        };
        if inferred > 1 || shape.iter().any(|&d| d < -1) {
            return Err(bad());
        }
        let dims: Vec<usize> = if inferred == 1 {
            if known == 0 || !self.numel().is_multiple_of(known) {
                return Err(bad());
            }
            shape
                .iter()
                .map(|&d| if d < 0 { self.numel() / known } else { d as usize })
                .collect()
        } else {
            shape.iter().map(|&d| d as usize).collect()
        };
        self.reshape(&dims)
    }

    /// Reshape to exactly `shape` (same element count).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                shapes: shape_vec(&[self.shape(), shape]),
                reason: format!("element counts differ ({} vs {})", self.numel(), numel(shape)),
            });
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let src = self.contiguous()?;
        let out = src.view_with(
            shape.into(),
            Shape::from_vec(contiguous_strides(shape)),
            src.0.offset,
        );
        let in_shape = self.0.shape.clone();
        Ok(record("reshape", &[self], out, move |g, _| {
            Ok(vec![Some(g.reshape(&in_shape)?)])
        }))
    }

    /// All elements as one dimension.
    pub fn flatten(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])
    }

    /// Reorder the axes (`torch.permute`): output axis i is input axis `axes[i]`. A view.
    pub fn permute(&self, axes: &[usize]) -> Result<Tensor> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        for &a in axes {
            if a >= rank || seen[a] {
                return Err(Error::BadAxis {
                    op: "permute",
                    axis: a as isize,
                    rank,
                });
            }
            seen[a] = true;
        }
        if axes.len() != rank {
            return Err(Error::InvalidArgument {
                op: "permute",
                reason: format!("{} axes given for a tensor of rank {rank}", axes.len()),
            });
        }
        let shape: Shape = axes.iter().map(|&a| self.0.shape[a]).collect();
        let strides: Shape = axes.iter().map(|&a| self.0.strides[a]).collect();
        let out = self.view_with(shape, strides, self.0.offset);
        let mut inverse = vec![0; rank];
        for (i, &a) in axes.iter().enumerate() {
            inverse[a] = i;
        }
        Ok(record("permute", &[self], out, move |g, _| {
            Ok(vec![Some(g.permute(&inverse)?)])
        }))
    }

    /// Swap two axes (`torch.transpose`). A view.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let rank = self.rank();
        let (a, b) = (
            normalize_axis("transpose", a, rank)?,
            normalize_axis("transpose", b, rank)?,
        );
        let mut axes: Vec<usize> = (0..rank).collect();
        axes.swap(a, b);
        self.permute(&axes)
    }

    /// Transpose of the last two axes (`.mT`).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::InvalidArgument {
                op: "t",
                reason: format!("needs rank >= 2, got {:?}", self.shape()),
            });
        }
        self.transpose(-2, -1)
    }

    /// Elements `start..start + len` along `axis` (`torch.narrow`). A view.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = normalize_axis("narrow", axis, self.rank())?;
        let size = self.0.shape[a];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::InvalidArgument {
                op: "narrow",
                reason: format!(
                    "range {start}..{} exceeds axis {a} of shape {:?}",
                    start.saturating_add(len),
                    self.shape()
                ),
            });
        }
        let mut shape = self.0.shape.clone();
        shape[a] = len;
        let out = self.view_with(
            shape,
            self.0.strides.clone(),
            self.0.offset + start * self.0.strides[a],
        );
        let in_shape = self.0.shape.clone();
        Ok(record("narrow", &[self], out, move |g, _| {
            // The gradient is g placed at start..start+len along the axis, zeros elsewhere.
            let full = Tensor::zeros(&in_shape, g.dtype(), g.device())?;
            full.narrow(a as isize, start, len)?.copy_(g)?;
            Ok(vec![Some(full)])
        }))
    }

    /// Broadcast to `shape` without copying (`torch.expand` / `broadcast_to`): size-1 axes
    /// repeat, new leading axes are added.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        let target = crate::shape::broadcast_shapes("broadcast_to", self.shape(), shape)?;
        if target.as_slice() != shape {
            return Err(Error::ShapeMismatch {
                op: "broadcast_to",
                shapes: shape_vec(&[self.shape(), shape]),
                reason: "the input does not broadcast to the target".into(),
            });
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let strides = super::broadcast_strides(self, shape);
        let out = self.view_with(shape.into(), strides, self.0.offset);
        let in_shape = self.0.shape.clone();
        Ok(record("broadcast_to", &[self], out, move |g, _| {
            Ok(vec![Some(super::sum_to_shape(g, &in_shape)?)])
        }))
    }

    /// Alias of [`Tensor::broadcast_to`] under PyTorch's name.
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        self.broadcast_to(shape)
    }

    /// Insert a size-1 axis at `axis` (`-1` appends).
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        // Valid axes are -(rank+1)..=rank; the error reports the input's own rank.
        let a = normalize_axis("unsqueeze", axis, self.rank() + 1).map_err(|_| Error::BadAxis {
            op: "unsqueeze",
            axis,
            rank: self.rank(),
        })?;
        let mut shape = self.0.shape.clone();
        shape.insert(a, 1);
        self.reshape(&shape)
    }

    /// Remove the size-1 axis `axis`.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let a = normalize_axis("squeeze", axis, self.rank())?;
        if self.0.shape[a] != 1 {
            return Err(Error::InvalidArgument {
                op: "squeeze",
                reason: format!(
                    "axis {a} of shape {:?} has size {}, not 1",
                    self.shape(),
                    self.0.shape[a]
                ),
            });
        }
        let mut shape = self.0.shape.clone();
        shape.remove(a);
        self.reshape(&shape)
    }

    /// Concatenate along `axis` (`torch.cat`). All inputs share rank, dtype and device, and
    /// agree on every other axis.
    pub fn cat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        let Some(first) = tensors.first() else {
            return Err(Error::InvalidArgument {
                op: "cat",
                reason: "needs at least one tensor".into(),
            });
        };
        check_same("cat", tensors)?;
        let a = normalize_axis("cat", axis, first.rank())?;
        for t in tensors {
            let agree = t.rank() == first.rank()
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(i, (x, y))| i == a || x == y);
            if !agree {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    shapes: tensors.iter().map(|t| t.0.shape.clone()).collect(),
                    reason: format!("shapes must agree except along axis {a}"),
                });
            }
        }
        let mut shape = first.0.shape.clone();
        shape[a] = tensors.iter().map(|t| t.shape()[a]).sum();
        let out = Tensor::zeros(&shape, first.dtype(), first.device())?;
        let mut start = 0;
        let mut sizes = Vec::with_capacity(tensors.len());
        for t in tensors {
            let len = t.shape()[a];
            out.narrow(a as isize, start, len)?.copy_(&t.detach())?;
            sizes.push(len);
            start += len;
        }
        Ok(record("cat", tensors, out, move |g, needs| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(sizes.len());
            for (&len, &need) in sizes.iter().zip(needs) {
                grads.push(if need {
                    Some(g.narrow(a as isize, start, len)?.contiguous()?)
                } else {
                    None
                });
                start += len;
            }
            Ok(grads)
        }))
    }

    /// Stack equal-shaped tensors along a new axis (`torch.stack`).
    pub fn stack(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        let Some(first) = tensors.first() else {
            return Err(Error::InvalidArgument {
                op: "stack",
                reason: "needs at least one tensor".into(),
            });
        };
        if tensors.iter().any(|t| t.shape() != first.shape()) {
            return Err(Error::ShapeMismatch {
                op: "stack",
                shapes: tensors.iter().map(|t| t.0.shape.clone()).collect(),
                reason: "all inputs must have the same shape".into(),
            });
        }
        let a = normalize_axis("stack", axis, first.rank() + 1).map_err(|_| Error::BadAxis {
            op: "stack",
            axis,
            rank: first.rank(),
        })?;
        let expanded: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.unsqueeze(a as isize))
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = expanded.iter().collect();
        Tensor::cat(&refs, a as isize)
    }
}
