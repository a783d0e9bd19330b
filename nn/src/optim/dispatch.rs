//! From tensors to the typed slices the CPU kernels take: the parameter's and gradient's
//! storage types, and the state buffers in the compute type, borrowed through
//! `Tensor::with_data` / `with_data_mut` (so no copy is made of contiguous tensors).

use autograd::storage::StorageElement;
use autograd::{DType, Device, Error, Result, Tensor};
use half::bf16;
use kernels::optim::{Bf16, Elem};

/// A tensor element type and the kernel type it is viewed as.
pub(crate) trait Stored: StorageElement {
    type K: Elem;
    fn kernel(s: &[Self]) -> &[Self::K];
    fn kernel_mut(s: &mut [Self]) -> &mut [Self::K];
}

impl Stored for f32 {
    type K = f32;
    fn kernel(s: &[f32]) -> &[f32] {
        s
    }
    fn kernel_mut(s: &mut [f32]) -> &mut [f32] {
        s
    }
}

impl Stored for f64 {
    type K = f64;
    fn kernel(s: &[f64]) -> &[f64] {
        s
    }
    fn kernel_mut(s: &mut [f64]) -> &mut [f64] {
        s
    }
}

impl Stored for bf16 {
    type K = Bf16;
    fn kernel(s: &[bf16]) -> &[Bf16] {
        Bf16::from_bits_slice(bytemuck::cast_slice(s))
    }
    fn kernel_mut(s: &mut [bf16]) -> &mut [Bf16] {
        Bf16::from_bits_slice_mut(bytemuck::cast_slice_mut(s))
    }
}

/// One kernel call on one tensor, generic over the storage and compute types. `state` holds
/// the optimizer's buffers for this tensor, in the order of `Algorithm::state_names`.
pub(crate) trait Kernel {
    fn run<P: Elem, G: Elem<Math = P::Math>>(
        &self,
        p: &mut [P],
        g: &[G],
        state: &mut [&mut [P::Math]],
    ) -> f64;
}

/// The dtype optimizer state is kept in for a parameter of `dtype`: f64 for f64, else f32.
pub(crate) fn state_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// Parameter dtypes the kernels update, and the gradient dtypes each accepts.
pub(crate) fn grad_dtype_ok(param: DType, grad: DType) -> bool {
    matches!(
        (param, grad),
        (DType::F32, DType::F32)
            | (DType::F64, DType::F64)
            | (DType::BF16, DType::BF16)
            | (DType::BF16, DType::F32)
    )
}

pub(crate) fn check_param(op: &'static str, p: &Tensor) -> Result<()> {
    if !matches!(p.dtype(), DType::F32 | DType::F64 | DType::BF16) {
        return Err(Error::UnsupportedDType {
            op,
            dtype: p.dtype(),
            expected: "f32, f64 or bf16 parameters",
        });
    }
    if p.device() != Device::Cpu && p.dtype() == DType::F64 {
        // optim.cu computes in f32 (f32 or bf16 parameters); see `super::cuda`.
        return Err(Error::NotImplementedOnDevice {
            op,
            device: p.device(),
        });
    }
    if !p.is_contiguous() {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "parameters are updated in place and must be contiguous (shape {:?})",
                p.shape()
            ),
        });
    }
    Ok(())
}

/// Runs `k` on one tensor. Callers have checked dtypes (`grad_dtype_ok`) and shapes.
pub(crate) fn run<K: Kernel>(k: &K, param: &Tensor, grad: &Tensor, state: &[Tensor]) -> Result<f64> {
    match (param.dtype(), grad.dtype()) {
        (DType::F32, DType::F32) => typed::<f32, f32, K>(k, param, grad, state),
        (DType::F64, DType::F64) => typed::<f64, f64, K>(k, param, grad, state),
        (DType::BF16, DType::BF16) => typed::<bf16, bf16, K>(k, param, grad, state),
        (DType::BF16, DType::F32) => typed::<bf16, f32, K>(k, param, grad, state),
        (p, g) => Err(Error::DTypeMismatch {
            op: "optimizer step",
            dtypes: vec![p, g],
        }),
    }
}

fn typed<SP: Stored, SG: Stored, K: Kernel>(
    k: &K,
    param: &Tensor,
    grad: &Tensor,
    state: &[Tensor],
) -> Result<f64>
where
    SG::K: Elem<Math = <SP::K as Elem>::Math>,
    <SP::K as Elem>::Math: StorageElement,
{
    type M<SP> = <<SP as Stored>::K as Elem>::Math;
    grad.with_data(|g: &[SG]| {
        let g = SG::kernel(g);
        param.with_data_mut(|p: &mut [SP]| {
            let p = SP::kernel_mut(p);
            match state {
                [] => Ok(k.run(p, g, &mut [])),
                [a] => a.with_data_mut(|a: &mut [M<SP>]| k.run(p, g, &mut [a])),
                [a, b] => a.with_data_mut(|a: &mut [M<SP>]| {
                    b.with_data_mut(|b: &mut [M<SP>]| k.run(p, g, &mut [a, b]))
                })?,
                _ => unreachable!("optimizers keep at most two buffers per parameter"),
            }
        })?
    })?
}

/// Σ g² of one gradient in f64 (the global-norm clip).
pub(crate) fn grad_sumsq(grad: &Tensor) -> Result<f64> {
    if grad.device() != Device::Cpu {
        // On CUDA through the tensor ops, which compute in f32: a bf16 gradient is widened on
        // the device first (exact). The sum is f32 on the device, widened here; the fused sumsq
        // kernels are not launched.
        let g32 = match grad.dtype() {
            DType::F32 => grad.clone(),
            DType::BF16 => grad.to_dtype(DType::F32)?,
            d => {
                return Err(Error::UnsupportedDType {
                    op: "clip_grad_norm",
                    dtype: d,
                    expected: "f32 or bf16 gradients on CUDA",
                })
            }
        };
        let s = g32.mul(&g32)?.sum_all()?;
        return Ok(s.to_vec_f64()?[0]);
    }
    match grad.dtype() {
        DType::F32 => grad.with_data(|g: &[f32]| kernels::optim::cpu::grad_sumsq(g)),
        DType::F64 => grad.with_data(|g: &[f64]| kernels::optim::cpu::grad_sumsq(g)),
        DType::BF16 => grad.with_data(|g: &[bf16]| kernels::optim::cpu::grad_sumsq(bf16::kernel(g))),
        d => Err(Error::UnsupportedDType {
            op: "clip_grad_norm",
            dtype: d,
            expected: "f32, f64 or bf16 gradients",
        }),
    }
}
