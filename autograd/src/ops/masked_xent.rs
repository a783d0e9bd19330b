//! Masked softmax / log-softmax and the fused, masked cross-entropy
//! (`kernels::masked_xent`; METHODS.md [369], [52], [28], [408]).
//!
//! A [`ClassMask`] says which classes take part in each row; a masked logit is replaced by the
//! stop-gradient constant `mask_value` (m). With m = -inf masked classes get probability 0;
//! with a finite m each adds e^m to the partition function. Either way their gradient is
//! exactly 0.0. The formulas, and how label smoothing, ignore_index, z-loss and the focal
//! weight combine, are in the documentation of `kernels::masked_xent`; the short version is on
//! [`CrossEntropyOptions`].
//!
//! `cross_entropy_with` is one recorded op: the forward streams each row once (chunked online
//! log-sum-exp) and saves per row only lse and three coefficients; the backward writes
//! dlogits directly from them, recomputing the probabilities.

use super::loss::Reduction;
use super::softmax::{axis_last, from_rows, to_rows};
use super::{check_dtype, shape_vec, with_float};
use crate::graph::record;
use crate::shape::normalize_axis;
use crate::storage::StorageElement;
use crate::{DType, Error, Result, Tensor};
use kernels::masked_xent::{cpu as k, XentOptions};
pub use kernels::masked_xent::{ClassMask, ClassRange};
use kernels::reduce::cpu::sum;

mod cuda;

/// Options of [`Tensor::cross_entropy_with`]. Per row r with target t and A allowed classes:
///
/// `loss_r = (1 − p_t)^γ · (lse − (1 − ε)·z̃_t − ε·mean_{allowed} x) + λ·lse²`
///
/// where z̃ is the masked logits (m in masked places) and lse = ln Σ_c e^{z̃_c}.
/// Label smoothing spreads ε over the allowed classes only (all C when unmasked, as
/// PyTorch); the focal factor multiplies the smoothed cross-entropy, not the z-loss; the z-loss
/// uses the masked lse. Rows whose target is `ignore_index` have loss 0, no gradient, and do
/// not count in a mean.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyOptions {
    /// Which classes take part; [`ClassMask::All`] (the default) masks nothing.
    pub mask: ClassMask,
    /// m, replacing masked logits; -inf (the default) is a hard mask. Must not be NaN or +inf.
    pub mask_value: f64,
    pub reduction: Reduction,
    /// ε in [0, 1).
    pub label_smoothing: f64,
    /// PyTorch's `ignore_index` (PyTorch's default is -100; here the default is none).
    pub ignore_index: Option<i64>,
    /// λ ≥ 0, the z-loss coefficient (1e-4 in [28]).
    pub z_loss: f64,
    /// γ ≥ 0, the focal exponent; 0 is plain cross-entropy.
    pub focal_gamma: f64,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions {
            mask: ClassMask::All,
            mask_value: f64::NEG_INFINITY,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
            ignore_index: None,
            z_loss: 0.0,
            focal_gamma: 0.0,
        }
    }
}

/// What [`Tensor::cross_entropy_with`] returns.
#[derive(Clone, Debug)]
pub struct CrossEntropyOutput {
    /// The reduced loss (rank 0), or the per-row (per-token) losses for [`Reduction::None`].
    pub loss: Tensor,
    /// ln Z of the masked logits per row, shape `[N]` (rank 0 for 1-D logits). A statistic,
    /// not differentiated: use `z_loss` for a loss on it.
    pub lse: Tensor,
}

/// A [`ClassMask::Dense`] from a bool tensor of shape `[N, C]`, or `[C]` for every row;
/// `true` = the class takes part (`jax.nn.softmax`'s `where`; the opposite of `masked_fill`'s
/// mask).
pub fn class_mask(allowed: &Tensor) -> Result<ClassMask> {
    const OP: &str = "class_mask";
    check_dtype(OP, allowed, DType::Bool)?;
    let (rows, classes) = match *allowed.shape() {
        [c] => (1, c),
        [n, c] => (n, c),
        _ => {
            return Err(Error::ShapeMismatch {
                op: OP,
                shapes: shape_vec(&[allowed.shape()]),
                reason: "a class mask is [N, C] or [C]".into(),
            })
        }
    };
    let bytes = allowed.with_slice(|v: &[u8]| v.to_vec())?;
    Ok(ClassMask::Dense {
        allowed: bytes.into(),
        rows,
        classes,
    })
}

/// The logits dtypes these ops take: the compute floats and bf16 (read as stored, computed in
/// f32; see [`Tensor::cross_entropy_with`] for what comes out).
fn check_logits(op: &'static str, x: &Tensor) -> Result<()> {
    match x.dtype() {
        DType::F32 | DType::F64 | DType::BF16 => Ok(()),
        other => Err(Error::UnsupportedDType {
            op,
            dtype: other,
            expected: "f32, f64 or bf16",
        }),
    }
}

/// A bf16 tensor's values as the kernels' own bf16 type, without a copy.
fn as_kernel_bf16(v: &[half::bf16]) -> &[k::Bf16] {
    // SAFETY: `half::bf16` and `kernels::masked_xent::cpu::Bf16` are both `#[repr(transparent)]`
    // over a `u16` (same size, alignment and bit meaning), so the slice reinterprets in place.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<k::Bf16>(), v.len()) }
}

/// f32 values rounded once to bf16 (round to nearest even, as the CUDA kernels' stores).
fn round_to_bf16(v: &[f32]) -> Vec<half::bf16> {
    v.iter()
        .map(|&x| half::bf16::from_bits(k::Bf16::from_f32(x).0))
        .collect()
}

fn bad(op: &'static str, reason: String) -> Error {
    Error::InvalidArgument { op, reason }
}

fn check_mask_value(op: &'static str, m: f64) -> Result<()> {
    if m.is_nan() || m == f64::INFINITY {
        return Err(bad(op, format!("mask value {m} must be finite or -inf")));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Softmax,
    LogSoftmax,
}

fn masked_softmax_op(kind: Kind, x: &Tensor, axis: isize, mask: &ClassMask, m: f64) -> Result<Tensor> {
    let op = match kind {
        Kind::Softmax => "masked_softmax",
        Kind::LogSoftmax => "masked_log_softmax",
    };
    check_logits(op, x)?;
    check_mask_value(op, m)?;
    if x.rank() == 0 {
        normalize_axis(op, axis, 1)?;
        return masked_softmax_op(kind, &x.reshape(&[1])?, 0, mask, m)?.reshape(&[]);
    }
    let a = normalize_axis(op, axis, x.rank())?;
    let n = x.shape()[a];
    let (order, inverse) = axis_last(a, x.rank());
    mask.check(x.numel().checked_div(n).unwrap_or(0), n)
        .map_err(|why| bad(op, format!("{why} (logits {:?}, axis {axis})", x.shape())))?;
    if x.cuda_data().is_some() {
        return cuda::masked_softmax(kind, x, n, order, inverse, mask, m);
    }
    // bf16 on the CPU: the rows widened to f32 (exact), the f32 kernel, the output rounded once
    // to bf16; the backward widens the saved bf16 output and the bf16 gradient the same way and
    // rounds dx once: the arithmetic of the CUDA bf16 kernels.
    let bf16 = x.dtype() == DType::BF16;
    let x_rows = to_rows(&x.detach(), &order)?;
    let x_rows = if bf16 {
        x_rows.to_dtype(DType::F32)?
    } else {
        x_rows
    };
    let y_rows = with_float!(op, x_rows.dtype(), T => {
        let mv = <T as kernels::Float>::from_f64(m);
        let y = x_rows.with_slice(|v: &[T]| match kind {
            Kind::Softmax => k::masked_softmax(v, n, mask, mv),
            Kind::LogSoftmax => k::masked_log_softmax(v, n, mask, mv),
        })?;
        Tensor::from_cpu_data(T::wrap(y), x_rows.shape())
    });
    let y_rows = if bf16 {
        y_rows.to_dtype(DType::BF16)?
    } else {
        y_rows
    };
    let out = from_rows(&y_rows, &inverse)?;
    let mask = mask.clone();
    let backward = move |g: &Tensor, _: &[bool]| -> Result<Vec<Option<Tensor>>> {
        let g_rows = to_rows(&g.detach(), &order)?;
        let (y_w, g_w) = if bf16 {
            (y_rows.to_dtype(DType::F32)?, g_rows.to_dtype(DType::F32)?)
        } else {
            (y_rows.clone(), g_rows)
        };
        let dx_rows = with_float!(op, y_w.dtype(), T => {
            let dx = y_w.with_slice(|y: &[T]| {
                g_w.with_slice(|g: &[T]| match kind {
                    Kind::Softmax => k::masked_softmax_backward(y, g, n, &mask),
                    Kind::LogSoftmax => k::masked_log_softmax_backward(y, g, n, &mask),
                })
            })??;
            Tensor::from_cpu_data(T::wrap(dx), y_w.shape())
        });
        let dx_rows = if bf16 {
            dx_rows.to_dtype(DType::BF16)?
        } else {
            dx_rows
        };
        Ok(vec![Some(from_rows(&dx_rows, &inverse)?)])
    };
    Ok(match kind {
        Kind::Softmax => record("masked_softmax", &[x], out, backward),
        Kind::LogSoftmax => record("masked_log_softmax", &[x], out, backward),
    })
}

/// Checks of the options that do not depend on the data.
fn check_options(op: &'static str, o: &CrossEntropyOptions) -> Result<()> {
    check_mask_value(op, o.mask_value)?;
    if !(0.0..1.0).contains(&o.label_smoothing) {
        return Err(bad(
            op,
            format!("label_smoothing {} is not in [0, 1)", o.label_smoothing),
        ));
    }
    if !(o.z_loss >= 0.0 && o.z_loss.is_finite()) {
        return Err(bad(op, format!("z_loss {} is not a finite value >= 0", o.z_loss)));
    }
    if !(o.focal_gamma >= 0.0 && o.focal_gamma.is_finite()) {
        return Err(bad(
            op,
            format!("focal_gamma {} is not a finite value >= 0", o.focal_gamma),
        ));
    }
    Ok(())
}

/// Targets in range (ignore_index aside) and allowed by the mask; the first offender as an
/// error.
fn check_targets(op: &'static str, t: &[i64], classes: usize, o: &CrossEntropyOptions) -> Result<()> {
    for (r, &target) in t.iter().enumerate() {
        if Some(target) == o.ignore_index {
            continue;
        }
        if target < 0 || target as u64 >= classes as u64 {
            return Err(Error::IndexOutOfRange {
                op,
                index: target,
                size: classes,
            });
        }
        let row = o.mask.row(r);
        if !row.allowed(target as usize) {
            let why = if row.count(classes) == 0 {
                "every class of the row is masked"
            } else {
                "the target's class is masked"
            };
            return Err(bad(
                op,
                format!("row {r}: target class {target} is masked ({why}); unmask it or give the row ignore_index"),
            ));
        }
    }
    Ok(())
}

/// The forward's per-row results as tensors: the loss (reduced or per row), the per-row lse,
/// and the backward's coefficients as `[rows, 3]`; a NaN or +inf at an allowed class (lse NaN
/// or +inf) is an error naming the row.
fn finish_forward<T: kernels::Float + StorageElement>(
    f: kernels::masked_xent::XentRows<T>,
    reduction: Reduction,
    counted: usize,
    target_shape: &[usize],
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "cross_entropy_with";
    if let Some(r) = f.lse.iter().position(|l| l.is_nan() || *l == T::INFINITY) {
        return Err(bad(
            OP,
            format!("row {r} has a NaN or +inf logit at an allowed class"),
        ));
    }
    let loss = match reduction {
        Reduction::None => Tensor::from_cpu_data(T::wrap(f.loss), target_shape),
        Reduction::Sum => Tensor::from_cpu_data(T::wrap(vec![sum(&f.loss)]), &[]),
        Reduction::Mean => {
            // Division, not a multiply by 1/count: as `cross_entropy`, one rounding.
            let mean = if counted == 0 {
                T::ZERO
            } else {
                sum(&f.loss) / <T as kernels::Float>::from_f64(counted as f64)
            };
            Tensor::from_cpu_data(T::wrap(vec![mean]), &[])
        }
    };
    let rows = f.lse.len();
    let lse = Tensor::from_cpu_data(T::wrap(f.lse), target_shape);
    // The coefficients as a [rows, 3] tensor: the backward closure owns them.
    let coef: Vec<T> = f.coef.iter().flat_map(|c| [c.beta, c.off, c.target]).collect();
    Ok((loss, lse, Tensor::from_cpu_data(T::wrap(coef), &[rows, 3])))
}

/// The backward's host inputs: the incoming gradient (divided by the count for a mean), the
/// saved lse and the per-row coefficients, in the compute type `T` of the loss.
#[allow(clippy::type_complexity)]
fn backward_inputs<T: kernels::Float + StorageElement>(
    g: &Tensor,
    lse: &Tensor,
    coef: &Tensor,
    reduction: Reduction,
    counted: usize,
) -> Result<(Vec<T>, Vec<T>, Vec<kernels::masked_xent::RowCoef<T>>)> {
    let mut gv = g.to_vec::<T>()?;
    if reduction == Reduction::Mean {
        gv[0] = if counted == 0 {
            T::ZERO
        } else {
            gv[0] / <T as kernels::Float>::from_f64(counted as f64)
        };
    }
    let c = coef
        .to_vec::<T>()?
        .chunks_exact(3)
        .map(|c| kernels::masked_xent::RowCoef {
            beta: c[0],
            off: c[1],
            target: c[2],
        })
        .collect();
    Ok((gv, lse.to_vec::<T>()?, c))
}

impl Tensor {
    /// Softmax along `axis` with the masked classes' logits replaced by `mask_value`
    /// (`jax.nn.softmax(x, where=allowed)` for m = -inf, up to JAX's 0 fill of masked outputs;
    /// `torch.softmax(x.masked_fill(~allowed, m))` with m detached). Mask rows index the rows of
    /// the tensor with `axis` moved last. Masked gradients are exactly 0. A row with every class
    /// hard-masked gives 0 (PyTorch: NaN); with finite m, the uniform distribution.
    pub fn masked_softmax(&self, axis: isize, mask: &ClassMask, mask_value: f64) -> Result<Tensor> {
        masked_softmax_op(Kind::Softmax, self, axis, mask, mask_value)
    }

    /// Log-softmax with masking, as [`Tensor::masked_softmax`]; a fully hard-masked row gives
    /// -inf with zero gradient.
    pub fn masked_log_softmax(&self, axis: isize, mask: &ClassMask, mask_value: f64) -> Result<Tensor> {
        masked_softmax_op(Kind::LogSoftmax, self, axis, mask, mask_value)
    }

    /// Fused cross-entropy of these logits (`[N, C]`, or `[C]` with a rank-0 target) against
    /// i64 `targets`, with a class mask, label smoothing, ignore_index, z-loss and focal weight
    /// (see [`CrossEntropyOptions`]); returns the loss and the per-row lse. With default options
    /// it equals [`Tensor::cross_entropy`] bit for bit (same kernel code). PyTorch:
    /// `F.cross_entropy(x.masked_fill(~allowed, m), t, reduction=..., label_smoothing=...,
    /// ignore_index=...)` plus `λ·logsumexp(x)²`, when nothing is masked or smoothing is 0.
    ///
    /// Errors (never a silent NaN): a target outside `0..C` that is not `ignore_index`:
    /// [`Error::IndexOutOfRange`]; a target whose class is masked (including every row with
    /// all classes masked), for hard and finite m: [`Error::InvalidArgument`] naming the row
    /// and class; a NaN or +inf logit at an allowed class of any row: `InvalidArgument` naming
    /// the row (masked slots are never read, so they may hold anything); bad options or a mask
    /// that does not fit: `InvalidArgument`; `Mean` over zero rows: [`Error::EmptyInput`].
    /// Documented results: allowed logits all -inf (no mask involved) give loss +inf with zero
    /// gradient, as `cross_entropy`; `Mean` with every row ignored gives 0 (PyTorch: NaN).
    pub fn cross_entropy_with(
        &self,
        targets: &Tensor,
        opts: &CrossEntropyOptions,
    ) -> Result<CrossEntropyOutput> {
        const OP: &str = "cross_entropy_with";
        check_logits(OP, self)?;
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
            return Err(bad(
                OP,
                format!("logits of shape {:?} have no classes", self.shape()),
            ));
        }
        if opts.reduction == Reduction::Mean && rows == 0 {
            return Err(Error::EmptyInput {
                op: OP,
                shape: self.0.shape.clone(),
            });
        }
        check_options(OP, opts)?;
        opts.mask
            .check(rows, classes)
            .map_err(|why| bad(OP, format!("{why} (logits {:?})", self.shape())))?;
        if self.cuda_data().is_some() {
            return cuda::cross_entropy(self, targets, opts, rows, classes);
        }
        let t = targets.with_slice(|t: &[i64]| t.to_vec())?;
        check_targets(OP, &t, classes, opts)?;
        let kopts = XentOptions {
            mask_value: opts.mask_value,
            label_smoothing: opts.label_smoothing,
            ignore_index: opts.ignore_index,
            z_loss: opts.z_loss,
            focal_gamma: opts.focal_gamma,
        };
        let counted = t.iter().filter(|&&v| Some(v) != opts.ignore_index).count();
        let reduction = opts.reduction;
        // bf16 logits are read as stored and computed in f32 (the kernels' `Logit` widening).
        let (loss, lse, coef) = if self.dtype() == DType::BF16 {
            let f = self.with_slice(|x: &[half::bf16]| {
                k::cross_entropy_forward::<k::Bf16, f32>(as_kernel_bf16(x), &t, classes, &opts.mask, &kopts)
            })?;
            finish_forward(f, reduction, counted, targets.shape())?
        } else {
            with_float!(OP, self.dtype(), T => {
                let f = self.with_slice(|x: &[T]| k::cross_entropy_forward(x, &t, classes, &opts.mask, &kopts))?;
                finish_forward(f, reduction, counted, targets.shape())?
            })
        };
        let (x, mask, saved_lse) = (self.detach(), opts.mask.clone(), lse.clone());
        let loss = record("cross_entropy_with", &[self], loss, move |g, _| {
            // The gradient is computed in the loss's dtype (f32 for bf16 logits) and, for bf16
            // logits, rounded once to bf16: dlogits has the logits' dtype.
            let dx = if x.dtype() == DType::BF16 {
                let (gv, l, c) = backward_inputs::<f32>(g, &saved_lse, &coef, reduction, counted)?;
                let dx = x.with_slice(|xv: &[half::bf16]| {
                    k::cross_entropy_backward(as_kernel_bf16(xv), &t, classes, &mask, &l, &c, &gv)
                })?;
                Tensor::from_cpu_data(half::bf16::wrap(round_to_bf16(&dx)), x.shape())
            } else {
                with_float!(OP, x.dtype(), T => {
                    let (gv, l, c) = backward_inputs::<T>(g, &saved_lse, &coef, reduction, counted)?;
                    let dx = x.with_slice(|xv: &[T]| k::cross_entropy_backward(xv, &t, classes, &mask, &l, &c, &gv))?;
                    Tensor::from_cpu_data(T::wrap(dx), x.shape())
                })
            };
            Ok(vec![Some(dx)])
        });
        Ok(CrossEntropyOutput { loss, lse })
    }
}

/// [`Tensor::masked_softmax`] as a free function.
pub fn masked_softmax(x: &Tensor, axis: isize, mask: &ClassMask, mask_value: f64) -> Result<Tensor> {
    x.masked_softmax(axis, mask, mask_value)
}

/// [`Tensor::masked_log_softmax`] as a free function.
pub fn masked_log_softmax(x: &Tensor, axis: isize, mask: &ClassMask, mask_value: f64) -> Result<Tensor> {
    x.masked_log_softmax(axis, mask, mask_value)
}

/// [`Tensor::cross_entropy_with`] as a free function.
pub fn cross_entropy_with(
    logits: &Tensor,
    targets: &Tensor,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyOutput> {
    logits.cross_entropy_with(targets, opts)
}
