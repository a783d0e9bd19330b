//! Reductions over axes: `sum mean var max min logsumexp`, each with `keepdim`.
//!
//! The forward moves the reduced axes innermost (a permuted view, copied to contiguous) and
//! reduces rows with `kernels::reduce::cpu`. An empty axis list reduces over all axes.

use super::{check_float, with_float};
use crate::graph::record;
use crate::shape::normalize_axes;
use crate::storage::StorageElement;
use crate::tensor::cuda::{cuda_err, float_type};
use crate::{Error, Result, Shape, Tensor};
use kernels::reduce::cpu as k;

/// Which axes are reduced and the shapes around them.
struct Plan {
    axes: Vec<usize>,
    /// The output shape with reduced axes kept as size 1 (what backward broadcasts from).
    keep_shape: Shape,
    /// The output shape as returned.
    out_shape: Shape,
    /// Elements per reduced row.
    row_len: usize,
}

fn plan(op: &'static str, x: &Tensor, axes: &[isize], keepdim: bool) -> Result<Plan> {
    let axes = if axes.is_empty() {
        (0..x.rank()).collect()
    } else {
        normalize_axes(op, axes, x.rank())?
    };
    let mut keep_shape = Shape::from_slice(x.shape());
    let mut out_shape = Shape::new();
    for (i, &d) in x.shape().iter().enumerate() {
        if axes.contains(&i) {
            keep_shape[i] = 1;
            if keepdim {
                out_shape.push(1);
            }
        } else {
            out_shape.push(d);
        }
    }
    let row_len = axes.iter().map(|&a| x.shape()[a]).product();
    Ok(Plan {
        axes,
        keep_shape,
        out_shape,
        row_len,
    })
}

/// Run `f` on each reduced row; returns the untracked result of shape `plan.out_shape`.
/// When the reduced axes are one consecutive block that is not innermost and `middle` is given,
/// the block is combined row-wise in place instead (see `kernels::reduce::cpu::reduce_middle`).
fn reduce_with<F32, F64>(
    op: &'static str,
    x: &Tensor,
    p: &Plan,
    middle: Option<k::Combine>,
    f32_fn: F32,
    f64_fn: F64,
) -> Result<Tensor>
where
    F32: Fn(&[f32]) -> f32 + Sync,
    F64: Fn(&[f64]) -> f64 + Sync,
{
    check_float(op, x)?;
    if x.cuda_data().is_some() {
        return match op {
            "sum" => sum_cuda(x, p),
            _ => super::reduce_cuda::reduce(op, x, p.axes.as_slice(), &p.out_shape, p.row_len, middle),
        };
    }
    let consecutive = p.axes.windows(2).all(|w| w[1] == w[0] + 1);
    let last = p.axes.last().copied().unwrap_or(0);
    if let (Some(combine), true, true) = (middle, consecutive, last + 1 < x.rank()) {
        let outer: usize = x.shape()[..p.axes[0]].iter().product();
        let inner: usize = x.shape()[last + 1..].iter().product();
        let data = with_float!(op, x.dtype(), T => {
            T::wrap(x.with_slice(|v: &[T]| k::reduce_middle(v, outer, p.row_len, inner, combine))?)
        });
        return Ok(Tensor::from_cpu_data(data, &p.out_shape));
    }
    // Kept axes first, reduced axes last.
    let mut order: Vec<usize> = (0..x.rank()).filter(|a| !p.axes.contains(a)).collect();
    order.extend(&p.axes);
    let moved = crate::graph::no_grad(|| x.detach().permute(&order))?;
    let rows = p.out_shape.iter().product::<usize>();
    let data = match x.dtype() {
        crate::DType::F32 => StorageElement::wrap(moved.with_slice(|v: &[f32]| {
            if p.row_len == 0 {
                vec![f32_fn(&[]); rows]
            } else {
                k::reduce_rows(v, p.row_len, &f32_fn)
            }
        })?),
        _ => StorageElement::wrap(moved.with_slice(|v: &[f64]| {
            if p.row_len == 0 {
                vec![f64_fn(&[]); rows]
            } else {
                k::reduce_rows(v, p.row_len, &f64_fn)
            }
        })?),
    };
    Ok(Tensor::from_cpu_data(data, &p.out_shape))
}

/// Sum on the GPU: reduced axes moved innermost (a permuted view copied contiguous on the
/// device, skipped when they already are), then one row sum per output element.
fn sum_cuda(x: &Tensor, p: &Plan) -> Result<Tensor> {
    let dt = float_type("sum", x)?;
    let mut order: Vec<usize> = (0..x.rank()).filter(|a| !p.axes.contains(a)).collect();
    order.extend(&p.axes);
    let moved = crate::graph::no_grad(|| x.detach().permute(&order)?.contiguous())?;
    let out = Tensor::cuda_empty(&p.out_shape, x.dtype(), x.device())?;
    let rows = out.numel();
    // SAFETY: moved is contiguous with rows * row_len elements; out holds rows.
    unsafe {
        kernels::elementwise::cuda::sum_rows(
            &*moved.cuda_dev()?,
            dt,
            moved.cuda_ptr()?,
            out.cuda_ptr()?,
            rows,
            p.row_len,
        )
    }
    .map_err(cuda_err("sum"))?;
    Ok(out)
}

fn require_nonempty(op: &'static str, x: &Tensor, p: &Plan) -> Result<()> {
    if p.row_len == 0 {
        return Err(Error::EmptyInput {
            op,
            shape: x.0.shape.clone(),
        });
    }
    Ok(())
}

impl Tensor {
    /// Sum over `axes` (all axes if empty), keeping them as size 1 if `keepdim`
    /// (`torch.sum(x, dim, keepdim)`). The sum of nothing is 0.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let p = plan("sum", self, axes, keepdim)?;
        let out = reduce_with("sum", self, &p, Some(k::Combine::Sum), k::sum, k::sum)?;
        let (keep, in_shape) = (p.keep_shape, self.0.shape.clone());
        Ok(record("sum", &[self], out, move |g, _| {
            Ok(vec![Some(
                g.reshape(&keep)?.broadcast_to(&in_shape)?.contiguous()?,
            )])
        }))
    }

    /// Sum of all elements, as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// Mean over `axes`. Undefined (an error) over zero elements.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let p = plan("mean", self, axes, keepdim)?;
        require_nonempty("mean", self, &p)?;
        self.sum(axes, keepdim)?.mul_scalar(1.0 / p.row_len as f64)
    }

    /// Mean of all elements, as a rank-0 tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
    }

    /// Variance over `axes` with `correction` subtracted from the count (0: population
    /// variance, 1: Bessel's unbiased estimate; `torch.var(x, dim, correction=, keepdim=)`).
    /// An error when the count minus the correction is not positive.
    pub fn var(&self, axes: &[isize], keepdim: bool, correction: usize) -> Result<Tensor> {
        let p = plan("var", self, axes, keepdim)?;
        if p.row_len <= correction {
            return Err(Error::InvalidArgument {
                op: "var",
                reason: format!(
                    "{} elements per reduction with correction {correction}",
                    p.row_len
                ),
            });
        }
        let out = if self.cuda_data().is_some() {
            check_float("var", self)?;
            super::reduce_cuda::var(self, &p.axes, &p.out_shape, p.row_len, correction)?
        } else {
            reduce_with(
                "var",
                self,
                &p,
                None,
                |r| k::var(r, correction),
                |r| k::var(r, correction),
            )?
        };
        let x = self.detach();
        let (keep, n) = (p.keep_shape, p.row_len);
        let axes = p.axes.iter().map(|&a| a as isize).collect::<Vec<_>>();
        Ok(record("var", &[self], out, move |g, _| {
            // d var / dx_i = 2 (x_i - mean) / (n - correction)
            let centered = x.sub(&x.mean(&axes, true)?)?;
            let scale = 2.0 / (n - correction) as f64;
            Ok(vec![Some(centered.mul(&g.reshape(&keep)?)?.mul_scalar(scale)?)])
        }))
    }

    /// Maximum over `axes` (`torch.amax`). The gradient is shared equally among tied maxima.
    /// An error over zero elements. NaN propagates.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extremum("max", axes, keepdim)
    }

    /// Minimum over `axes` (`torch.amin`); see [`Tensor::max`].
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extremum("min", axes, keepdim)
    }

    fn extremum(&self, op: &'static str, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let p = plan(op, self, axes, keepdim)?;
        require_nonempty(op, self, &p)?;
        let out = if op == "max" {
            reduce_with(op, self, &p, Some(k::Combine::Max), k::max, k::max)?
        } else {
            reduce_with(op, self, &p, Some(k::Combine::Min), k::min, k::min)?
        };
        let (x, y) = (self.detach(), out.clone());
        let keep = p.keep_shape;
        let axes: Vec<isize> = p.axes.iter().map(|&a| a as isize).collect();
        Ok(record(op, &[self], out, move |g, _| {
            // 1 where x is an extremum, else 0 (a `where` rather than a bool-to-float
            // conversion, so it runs on either device).
            let (one, zero) = (
                Tensor::full(&[], 1.0, x.dtype(), x.device())?,
                Tensor::zeros(&[], x.dtype(), x.device())?,
            );
            let hit = Tensor::where_cond(&x.eq(&y.reshape(&keep)?)?, &one, &zero)?;
            let count = hit.sum(&axes, true)?;
            Ok(vec![Some(hit.mul(&g.reshape(&keep)?.div(&count)?)?)])
        }))
    }

    /// `log Σ exp(x)` over `axes`, computed stably (`torch.logsumexp`). Over all -inf values it
    /// is -inf with zero gradient.
    pub fn logsumexp(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let p = plan("logsumexp", self, axes, keepdim)?;
        let out = reduce_with("logsumexp", self, &p, None, k::logsumexp, k::logsumexp)?;
        let (x, y) = (self.detach(), out.clone());
        let keep = p.keep_shape;
        Ok(record("logsumexp", &[self], out, move |g, _| {
            if x.cuda_data().is_some() {
                let weights = super::reduce_cuda::logsumexp_weights(&x, &y.reshape(&keep)?)?;
                return Ok(vec![Some(weights.mul(&g.reshape(&keep)?)?)]);
            }
            // softmax weights exp(x - lse); where lse = -inf (all -inf row) they are 0, not NaN.
            let weights = with_float!("logsumexp", x.dtype(), T => {
                let lse = y.reshape(&keep)?.broadcast_to(x.shape())?.contiguous()?;
                let w = x.with_slice(|xv: &[T]| {
                    lse.with_slice(|lv: &[T]| {
                        kernels::elementwise::cpu::zip_map(xv, lv, |a: T, l: T| {
                            if l == <T as kernels::Float>::NEG_INFINITY { 0.0 } else { (a - l).exp() }
                        })
                    })
                })??;
                Tensor::from_cpu_data(T::wrap(w), x.shape())
            });
            Ok(vec![Some(weights.mul(&g.reshape(&keep)?)?)])
        }))
    }
}
