//! Layer norm and RMS norm over trailing dims (`torch.nn.functional.layer_norm`, `rms_norm`).
//!
//! The normalized dims are the innermost ones, so a contiguous input already is a `[rows, n]`
//! buffer for `kernels::norm::cpu`. The forward saves the per-row statistics (mean and 1/std, or
//! 1/rms) as small untracked tensors; the backward gives the input gradient and the per-feature
//! weight and bias gradients in one kernel call.

use super::{check_float, check_same, shape_vec, with_float};
use crate::graph::record;
use crate::storage::StorageElement;
use crate::{Error, Result, Shape, Tensor};
use kernels::norm::cpu as k;

/// Validate the arguments shared by both norms; returns the number of normalized elements per
/// row.
fn check_args(
    op: &'static str,
    x: &Tensor,
    normalized_shape: &[usize],
    params: &[(&str, Option<&Tensor>)],
    eps: f64,
) -> Result<usize> {
    check_float(op, x)?;
    if normalized_shape.is_empty() {
        return Err(Error::InvalidArgument {
            op,
            reason: "normalized_shape must name at least one trailing dim".into(),
        });
    }
    if !x.shape().ends_with(normalized_shape) {
        return Err(Error::ShapeMismatch {
            op,
            shapes: shape_vec(&[x.shape(), normalized_shape]),
            reason: "normalized_shape must equal the input's trailing dims".into(),
        });
    }
    for (what, p) in params {
        let Some(p) = p else { continue };
        check_same(op, &[x, p])?;
        if p.shape() != normalized_shape {
            return Err(Error::ShapeMismatch {
                op,
                shapes: shape_vec(&[p.shape(), normalized_shape]),
                reason: format!("{what} must have shape normalized_shape"),
            });
        }
    }
    if !(eps >= 0.0 && eps.is_finite()) {
        return Err(Error::InvalidArgument {
            op,
            reason: format!("eps must be finite and >= 0, got {eps}"),
        });
    }
    let n = normalized_shape.iter().product();
    if n == 0 {
        // A mean over zero elements; PyTorch returns an empty tensor, but a norm over nothing is
        // always a mistake upstream.
        return Err(Error::EmptyInput {
            op,
            shape: x.0.shape.clone(),
        });
    }
    Ok(n)
}

/// The tracked inputs in recording order: `x`, then the parameters that are present.
fn inputs<'a>(x: &'a Tensor, params: &[Option<&'a Tensor>]) -> Vec<&'a Tensor> {
    std::iter::once(x)
        .chain(params.iter().flatten().copied())
        .collect()
}

/// Backward results in recording order: `dx`, then for each present parameter its gradient
/// reshaped to `shape` (each only where `needs` asks).
pub(super) fn grads_in_order(
    needs: &[bool],
    dx: Tensor,
    params: &[(bool, Tensor)],
    shape: &Shape,
) -> Result<Vec<Option<Tensor>>> {
    let mut out = vec![needs[0].then_some(dx)];
    let present = params.iter().filter(|(present, _)| *present);
    for (i, (_, g)) in present.enumerate() {
        out.push(if needs[1 + i] {
            Some(g.reshape(shape)?)
        } else {
            None
        });
    }
    Ok(out)
}

impl Tensor {
    /// Layer normalization over the trailing dims `normalized_shape`: each slice over those dims
    /// is shifted to mean 0 and scaled to variance 1 (biased variance, ε added to it), then
    /// multiplied by `weight` and shifted by `bias` when given (both of shape
    /// `normalized_shape`). `torch.nn.functional.layer_norm(x, normalized_shape, weight, bias,
    /// eps)`; PyTorch's default ε is 1e-5. Gradients flow to the input, weight and bias.
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let n = check_args(
            "layer_norm",
            self,
            normalized_shape,
            &[("weight", weight), ("bias", bias)],
            eps,
        )?;
        if self.cuda_data().is_some() {
            return super::norm_cuda::norm_cuda(false, self, n, normalized_shape, weight, bias, eps);
        }
        let (out, mean, rstd) = with_float!("layer_norm", self.dtype(), T => {
            let w = weight.map(|w| w.to_vec::<T>()).transpose()?;
            let b = bias.map(|b| b.to_vec::<T>()).transpose()?;
            let o = self.with_slice(|v: &[T]| k::layer_norm(v, n, w.as_deref(), b.as_deref(), eps as T))?;
            let rows = [o.mean.len()];
            (
                Tensor::from_cpu_data(T::wrap(o.y), self.shape()),
                Tensor::from_cpu_data(T::wrap(o.mean), &rows),
                Tensor::from_cpu_data(T::wrap(o.rstd), &rows),
            )
        });
        let x = self.detach();
        let w = weight.map(Tensor::detach);
        let has_bias = bias.is_some();
        let shape = Shape::from_slice(normalized_shape);
        let tracked = inputs(self, &[weight, bias]);
        Ok(record("layer_norm", &tracked, out, move |g, needs| {
            let (dx, dw, db) = with_float!("layer_norm", x.dtype(), T => {
                let wv = w.as_ref().map(|w| w.to_vec::<T>()).transpose()?;
                let (m, r) = (mean.to_vec::<T>()?, rstd.to_vec::<T>()?);
                let grads = x.with_slice(|xv: &[T]| {
                    g.with_slice(|gv: &[T]| k::layer_norm_backward(xv, gv, &m, &r, wv.as_deref(), n))
                })??;
                (
                    Tensor::from_cpu_data(T::wrap(grads.dx), x.shape()),
                    Tensor::from_cpu_data(T::wrap(grads.dweight), &[n]),
                    Tensor::from_cpu_data(T::wrap(grads.dbias), &[n]),
                )
            });
            grads_in_order(needs, dx, &[(w.is_some(), dw), (has_bias, db)], &shape)
        }))
    }

    /// RMS normalization over the trailing dims `normalized_shape`:
    /// `x / sqrt(mean(x²) + eps) · weight` (weight of shape `normalized_shape`, optional).
    /// `torch.nn.functional.rms_norm(x, normalized_shape, weight, eps)`; PyTorch's `eps=None`
    /// means the dtype's machine epsilon, here ε is always explicit. Gradients flow to the input
    /// and weight.
    pub fn rms_norm(&self, normalized_shape: &[usize], weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        let n = check_args("rms_norm", self, normalized_shape, &[("weight", weight)], eps)?;
        if self.cuda_data().is_some() {
            return super::norm_cuda::norm_cuda(true, self, n, normalized_shape, weight, None, eps);
        }
        let (out, rstd) = with_float!("rms_norm", self.dtype(), T => {
            let w = weight.map(|w| w.to_vec::<T>()).transpose()?;
            let o = self.with_slice(|v: &[T]| k::rms_norm(v, n, w.as_deref(), eps as T))?;
            let rows = [o.rstd.len()];
            (
                Tensor::from_cpu_data(T::wrap(o.y), self.shape()),
                Tensor::from_cpu_data(T::wrap(o.rstd), &rows),
            )
        });
        let x = self.detach();
        let w = weight.map(Tensor::detach);
        let shape = Shape::from_slice(normalized_shape);
        let tracked = inputs(self, &[weight]);
        Ok(record("rms_norm", &tracked, out, move |g, needs| {
            let (dx, dw) = with_float!("rms_norm", x.dtype(), T => {
                let wv = w.as_ref().map(|w| w.to_vec::<T>()).transpose()?;
                let r = rstd.to_vec::<T>()?;
                let grads = x.with_slice(|xv: &[T]| {
                    g.with_slice(|gv: &[T]| k::rms_norm_backward(xv, gv, &r, wv.as_deref(), n))
                })??;
                (
                    Tensor::from_cpu_data(T::wrap(grads.dx), x.shape()),
                    Tensor::from_cpu_data(T::wrap(grads.dweight), &[n]),
                )
            });
            grads_in_order(needs, dx, &[(w.is_some(), dw)], &shape)
        }))
    }
}

/// [`Tensor::layer_norm`] as a free function, argument for argument
/// `torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps)`.
pub fn layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    x.layer_norm(normalized_shape, weight, bias, eps)
}

/// [`Tensor::rms_norm`] as a free function (`torch.nn.functional.rms_norm`).
pub fn rms_norm(x: &Tensor, normalized_shape: &[usize], weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    x.rms_norm(normalized_shape, weight, eps)
}

#[cfg(test)]
mod tests {
    use crate::{DType, Device, Error, Tensor};

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, Device::Cpu).unwrap()
    }

    #[test]
    fn normalizes_over_the_trailing_dims() {
        let x = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &[2, 2, 2]);
        // Over the last two dims: rows [1..4] and [5..8], each with mean 0 and variance ~1 after.
        let y = x
            .layer_norm(&[2, 2], None, None, 0.0)
            .unwrap()
            .to_vec_f64()
            .unwrap();
        let z = 1.25f64.sqrt();
        let expect = [-1.5 / z, -0.5 / z, 0.5 / z, 1.5 / z];
        for (a, b) in y.iter().zip(expect.iter().chain(&expect)) {
            assert!((a - b).abs() < 1e-15);
        }
        let w = t(&[2.0, 1.0], &[2]);
        let r = x.rms_norm(&[2], Some(&w), 0.0).unwrap().to_vec_f64().unwrap();
        let rms = (2.5f64).sqrt();
        assert!((r[0] - 2.0 / rms).abs() < 1e-15 && (r[1] - 2.0 / rms).abs() < 1e-15);
    }

    #[test]
    fn errors_name_the_op_and_shapes() {
        let x = t(&[0.0; 6], &[2, 3]);
        let e = x.layer_norm(&[2], None, None, 1e-5).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "layer_norm", .. }));
        assert!(e.to_string().contains("[2, 3], [2]"), "{e}");
        let w = t(&[1.0; 2], &[2]);
        assert!(matches!(
            x.rms_norm(&[3], Some(&w), 1e-5),
            Err(Error::ShapeMismatch { op: "rms_norm", .. })
        ));
        assert!(matches!(
            x.layer_norm(&[], None, None, 1e-5),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            x.rms_norm(&[3], None, -1.0),
            Err(Error::InvalidArgument { .. })
        ));
        let w32 = Tensor::ones(&[3], DType::F32, Device::Cpu).unwrap();
        assert!(matches!(
            x.layer_norm(&[3], Some(&w32), None, 1e-5),
            Err(Error::DTypeMismatch { op: "layer_norm", .. })
        ));
        let empty = Tensor::zeros(&[2, 0], DType::F64, Device::Cpu).unwrap();
        assert!(matches!(
            empty.layer_norm(&[0], None, None, 1e-5),
            Err(Error::EmptyInput { .. })
        ));
    }
}
