//! Losses: softmax cross-entropy with integer class targets (`torch.nn.functional.cross_entropy`)
//! and mean squared error (`mse_loss`), each with PyTorch's `reduction` choices.
//!
//! Cross-entropy is one fused op rather than `log_softmax` then a gather: the forward computes
//! each row's log-sum-exp in one pass over the logits, and the backward is
//! `g · (softmax − onehot)`, recomputed from the saved log-sum-exp, with no [N, C] intermediate
//! kept for the tape.

use super::{check_dtype, check_float, check_same, shape_vec, with_float};
use crate::graph::record;
use crate::storage::StorageElement;
use crate::{DType, Error, Result, Tensor};
use kernels::loss::cpu as k;
use kernels::reduce::cpu::sum;

/// How a loss combines its per-row (cross-entropy) or per-element (MSE) values, as PyTorch's
/// `reduction=` argument: `"none"`, `"mean"` (the default) and `"sum"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Keep every value: the loss has the shape of the targets.
    None,
    /// The mean, as a rank-0 tensor; an error over zero values (PyTorch returns NaN).
    #[default]
    Mean,
    /// The sum, as a rank-0 tensor; 0 over zero values.
    Sum,
}

/// Reduce per-row or per-element losses `v` (shape `shape` for [`Reduction::None`]).
fn reduce_values<T: kernels::Float + StorageElement>(
    v: Vec<T>,
    shape: &[usize],
    reduction: Reduction,
) -> Tensor {
    match reduction {
        Reduction::None => Tensor::from_cpu_data(T::wrap(v), shape),
        Reduction::Sum => Tensor::from_cpu_data(T::wrap(vec![sum(&v)]), &[]),
        // Division rather than multiplication by 1/len: one rounding, as jnp.mean and torch.
        Reduction::Mean => Tensor::from_cpu_data(
            T::wrap(vec![sum(&v) / <T as kernels::Float>::from_f64(v.len() as f64)]),
            &[],
        ),
    }
}

/// The incoming gradient as the kernels take it: one value per row/element for
/// [`Reduction::None`], else one value for all, divided by `count` for a mean.
fn grad_values<T: kernels::Float + StorageElement>(
    g: &Tensor,
    reduction: Reduction,
    count: usize,
) -> Result<Vec<T>> {
    let mut gv = g.to_vec::<T>()?;
    if reduction == Reduction::Mean {
        gv[0] /= <T as kernels::Float>::from_f64(count as f64);
    }
    Ok(gv)
}

fn require_values(op: &'static str, x: &Tensor, count: usize, reduction: Reduction) -> Result<()> {
    if reduction == Reduction::Mean && count == 0 {
        return Err(Error::EmptyInput {
            op,
            shape: x.0.shape.clone(),
        });
    }
    Ok(())
}

impl Tensor {
    /// Softmax cross-entropy of these logits against integer class `targets`
    /// (`torch.nn.functional.cross_entropy(logits, targets, reduction=...)`, `optax`'s
    /// `softmax_cross_entropy_with_integer_labels`): per row `logsumexp(x) − x[target]`.
    ///
    /// Shapes: logits `[N, C]` with i64 targets `[N]`, or logits `[C]` with a rank-0 target.
    /// Every target must lie in `0..C` (else [`Error::IndexOutOfRange`] with the first offender;
    /// PyTorch's `ignore_index`, class weights and label smoothing are not supported).
    /// [`Reduction::None`] returns the `[N]` (or rank-0) per-row losses; `Mean` over zero rows is
    /// [`Error::EmptyInput`] (PyTorch returns NaN). A row whose logits are all -inf has loss +inf
    /// and zero gradient. Gradients flow to the logits only.
    pub fn cross_entropy(&self, targets: &Tensor, reduction: Reduction) -> Result<Tensor> {
        const OP: &str = "cross_entropy";
        check_float(OP, self)?;
        check_dtype(OP, targets, DType::I64)?;
        if targets.device() != self.device() {
            return Err(Error::DeviceMismatch {
                op: OP,
                devices: vec![self.device(), targets.device()],
            });
        }
        let classes = match (self.shape(), targets.shape()) {
            (&[n, c], &[m]) if n == m => c,
            (&[c], &[]) => c,
            _ => {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    shapes: shape_vec(&[self.shape(), targets.shape()]),
                    reason: "expected logits [N, C] with targets [N], or logits [C] with a rank-0 target"
                        .into(),
                })
            }
        };
        let rows = targets.numel();
        if classes == 0 {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!("logits of shape {:?} have no classes", self.shape()),
            });
        }
        require_values(OP, self, rows, reduction)?;
        if self.cuda_data().is_some() {
            return super::loss_cuda::cross_entropy_cuda(self, targets, rows, classes, reduction);
        }
        let bad = targets
            .with_slice(|t: &[i64]| t.iter().copied().find(|&t| t < 0 || t as u64 >= classes as u64))?;
        if let Some(index) = bad {
            return Err(Error::IndexOutOfRange {
                op: OP,
                index,
                size: classes,
            });
        }
        let (out, lse) = with_float!(OP, self.dtype(), T => {
            let o = self.with_slice(|x: &[T]| targets.with_slice(|t: &[i64]| k::cross_entropy(x, t, classes)))??;
            let lse = Tensor::from_cpu_data(T::wrap(o.lse), &[rows]);
            (reduce_values(o.loss, targets.shape(), reduction), lse)
        });
        let (x, t) = (self.detach(), targets.detach());
        Ok(record("cross_entropy", &[self], out, move |g, _| {
            let dx = with_float!(OP, x.dtype(), T => {
                let gv: Vec<T> = grad_values(g, reduction, rows)?;
                let l = lse.to_vec::<T>()?;
                let dx = x.with_slice(|xv: &[T]| {
                    t.with_slice(|tv: &[i64]| k::cross_entropy_backward(xv, tv, &l, &gv, classes))
                })??;
                Tensor::from_cpu_data(T::wrap(dx), x.shape())
            });
            Ok(vec![Some(dx)])
        }))
    }

    /// Mean squared error `(self − target)²`, reduced (`torch.nn.functional.mse_loss(input,
    /// target, reduction=...)`). The shapes must be equal: PyTorch broadcasts with a warning,
    /// which nearly always hides a bug (a `[N]` target against `[N, 1]` predictions), so here it
    /// is an error. `Mean` over zero elements is [`Error::EmptyInput`] (PyTorch: NaN). Gradients
    /// flow to both inputs.
    pub fn mse_loss(&self, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
        const OP: &str = "mse_loss";
        check_same(OP, &[self, target])?;
        check_float(OP, self)?;
        if self.shape() != target.shape() {
            return Err(Error::ShapeMismatch {
                op: OP,
                shapes: shape_vec(&[self.shape(), target.shape()]),
                reason: "input and target must have the same shape (no broadcasting)".into(),
            });
        }
        let count = self.numel();
        require_values(OP, self, count, reduction)?;
        if self.cuda_data().is_some() {
            return super::loss_cuda::mse_loss_cuda(self, target, reduction);
        }
        let out = with_float!(OP, self.dtype(), T => {
            let e = self.with_slice(|p: &[T]| target.with_slice(|t: &[T]| k::squared_error(p, t)))??;
            reduce_values(e, self.shape(), reduction)
        });
        let (p, t) = (self.detach(), target.detach());
        Ok(record("mse_loss", &[self, target], out, move |g, needs| {
            let dp = with_float!(OP, p.dtype(), T => {
                let gv: Vec<T> = grad_values(g, reduction, count)?;
                let d = p.with_slice(|pv: &[T]| t.with_slice(|tv: &[T]| k::squared_error_backward(pv, tv, &gv)))??;
                Tensor::from_cpu_data(T::wrap(d), p.shape())
            });
            let dt = if needs[1] { Some(dp.neg()?) } else { None };
            Ok(vec![needs[0].then_some(dp), dt])
        }))
    }
}

/// [`Tensor::cross_entropy`] as a free function:
/// `autograd::cross_entropy(&logits, &targets, Reduction::Mean)` is
/// `F.cross_entropy(logits, targets, reduction="mean")`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, reduction: Reduction) -> Result<Tensor> {
    logits.cross_entropy(targets, reduction)
}

/// Mean cross-entropy, PyTorch's default reduction: `F.cross_entropy(logits, targets)`.
pub fn cross_entropy_mean(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    logits.cross_entropy(targets, Reduction::Mean)
}

/// [`Tensor::mse_loss`] as a free function (`F.mse_loss(input, target, reduction=...)`).
pub fn mse_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    input.mse_loss(target, reduction)
}

#[cfg(test)]
mod tests {
    use super::Reduction;
    use crate::{DType, Device, Error, Tensor};

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, Device::Cpu).unwrap()
    }

    fn targets(v: &[i64]) -> Tensor {
        Tensor::from_vec(v.to_vec(), &[v.len()], Device::Cpu).unwrap()
    }

    #[test]
    fn cross_entropy_values_and_reductions() {
        let x = t(&[0.5, 1.5, -0.5, 2.0, 0.0, 0.0], &[2, 3]);
        let y = targets(&[1, 0]);
        let lse0 = (0.5f64.exp() + 1.5f64.exp() + (-0.5f64).exp()).ln();
        let lse1 = (2.0f64.exp() + 2.0).ln();
        let rows = [lse0 - 1.5, lse1 - 2.0];
        let none = x.cross_entropy(&y, Reduction::None).unwrap();
        assert_eq!(none.shape(), &[2]);
        for (a, b) in none.to_vec_f64().unwrap().iter().zip(rows) {
            assert!((a - b).abs() < 1e-15);
        }
        let sum = super::cross_entropy(&x, &y, Reduction::Sum)
            .unwrap()
            .item()
            .unwrap();
        assert!((sum - (rows[0] + rows[1])).abs() < 1e-15);
        let mean = super::cross_entropy_mean(&x, &y).unwrap();
        assert_eq!(mean.shape(), &[] as &[usize]);
        assert!((mean.item().unwrap() - sum / 2.0).abs() < 1e-15);
        // 1-D logits with a rank-0 target.
        let one = Tensor::from_vec(vec![0i64], &[], Device::Cpu).unwrap();
        let l = x.narrow(0, 1, 1).unwrap().squeeze(0).unwrap();
        let single = l.cross_entropy(&one, Reduction::None).unwrap();
        assert_eq!(single.shape(), &[] as &[usize]);
        assert!((single.item().unwrap() - rows[1]).abs() < 1e-15);
    }

    #[test]
    fn cross_entropy_errors() {
        let x = t(&[0.0; 6], &[2, 3]);
        let e = x.cross_entropy(&targets(&[1, 3]), Reduction::Mean).unwrap_err();
        assert_eq!(
            e,
            Error::IndexOutOfRange {
                op: "cross_entropy",
                index: 3,
                size: 3
            }
        );
        let e = x.cross_entropy(&targets(&[-1, 0]), Reduction::Sum).unwrap_err();
        assert!(matches!(e, Error::IndexOutOfRange { index: -1, .. }));
        let e = x
            .cross_entropy(&targets(&[0, 1, 2]), Reduction::Mean)
            .unwrap_err();
        assert!(matches!(
            e,
            Error::ShapeMismatch {
                op: "cross_entropy",
                ..
            }
        ));
        assert!(e.to_string().contains("[2, 3], [3]"), "{e}");
        let ft = Tensor::zeros(&[2], DType::F64, Device::Cpu).unwrap();
        assert!(matches!(
            x.cross_entropy(&ft, Reduction::Mean),
            Err(Error::UnsupportedDType { .. })
        ));
        let empty = Tensor::zeros(&[0, 3], DType::F64, Device::Cpu).unwrap();
        let no_targets = targets(&[]);
        assert!(matches!(
            empty.cross_entropy(&no_targets, Reduction::Mean),
            Err(Error::EmptyInput {
                op: "cross_entropy",
                ..
            })
        ));
        assert_eq!(
            empty
                .cross_entropy(&no_targets, Reduction::Sum)
                .unwrap()
                .item()
                .unwrap(),
            0.0
        );
        assert_eq!(
            empty.cross_entropy(&no_targets, Reduction::None).unwrap().shape(),
            &[0]
        );
    }

    #[test]
    fn mse_values_and_errors() {
        let p = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let q = t(&[1.5, 2.0, 1.0, 4.0], &[2, 2]);
        assert_eq!(
            p.mse_loss(&q, Reduction::None).unwrap().to_vec_f64().unwrap(),
            vec![0.25, 0.0, 4.0, 0.0]
        );
        assert_eq!(
            super::mse_loss(&p, &q, Reduction::Sum).unwrap().item().unwrap(),
            4.25
        );
        assert_eq!(
            p.mse_loss(&q, Reduction::Mean).unwrap().item().unwrap(),
            4.25 / 4.0
        );
        let e = p.mse_loss(&t(&[1.0, 2.0], &[2]), Reduction::Mean).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "mse_loss", .. }));
        let z = Tensor::zeros(&[0], DType::F64, Device::Cpu).unwrap();
        assert!(matches!(
            z.mse_loss(&z, Reduction::Mean),
            Err(Error::EmptyInput { .. })
        ));
        assert_eq!(Reduction::default(), Reduction::Mean);
    }
}
