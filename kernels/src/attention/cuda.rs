//! Launchers for `attention_fwd.cu` and `attention_bwd.cu`: a filled [`AttnParams`] in, the
//! launches [`launch`](super::launch) plans out. Every kernel used here is listed by
//! [`all_kernels`], which `kernels/tests/nvrtc.rs` checks against the compiled PTX
//! (entry names and the by-value parameter block's size).
//!
//! What the caller owes (the autograd op does all of it):
//! * `params.max_logit` filled with -inf before [`forward`] (the kernels `atomicMax` into it);
//! * `params.dbias`, when not null, a zero-filled contiguous f32 `[B, H, nq, nk]` buffer (the
//!   kernel stores dS only for the pairs of the tiles it visits; skipped tiles stay 0);
//! * `params.lse` and `params.delta` contiguous `[B, H, nq]` f32; `params.dq/dk/dv` laid out
//!   with the strides of q, k and v (the kernels write gradients with the input's strides);
//! * device buffers that hold everything the strides reach.
//!
//! What is checked here: head dim, head counts and grid limits (through `launch`), and the
//! 16-byte row alignment the kernels' vector loads need; a violation is an error, not a fault.

use super::launch::{self as plan, AttnDtype, AttnParams, Kernel, LaunchConfig, HEAD_DIMS};
use super::AttnShape;
use crate::cuda::launch::{launch, Arg, ArgKind, KernelRef};
use crate::cuda::{CudaDevice, CudaError};

/// Both files take one argument: the parameter block by value.
const PARAMS: &[ArgKind] = &[ArgKind::Struct(std::mem::size_of::<AttnParams>())];

/// The source file of `kernel`.
fn source_of(kernel: Kernel) -> &'static str {
    match kernel {
        Kernel::Forward => "attention_fwd.cu",
        Kernel::BackwardDkDv | Kernel::BackwardDq | Kernel::BackwardDqBias => "attention_bwd.cu",
    }
}

/// Entry names as `&'static str` (a `KernelRef` keeps them), in the order of `HEAD_DIMS`.
fn names(kernel: Kernel, dtype: AttnDtype) -> [&'static str; 3] {
    match (kernel, dtype) {
        (Kernel::Forward, AttnDtype::F32) => [
            "attention_fwd_f32_d32",
            "attention_fwd_f32_d64",
            "attention_fwd_f32_d128",
        ],
        (Kernel::Forward, AttnDtype::Bf16) => [
            "attention_fwd_bf16_d32",
            "attention_fwd_bf16_d64",
            "attention_fwd_bf16_d128",
        ],
        (Kernel::BackwardDkDv, AttnDtype::F32) => [
            "attention_bwd_dkdv_f32_d32",
            "attention_bwd_dkdv_f32_d64",
            "attention_bwd_dkdv_f32_d128",
        ],
        (Kernel::BackwardDkDv, AttnDtype::Bf16) => [
            "attention_bwd_dkdv_bf16_d32",
            "attention_bwd_dkdv_bf16_d64",
            "attention_bwd_dkdv_bf16_d128",
        ],
        (Kernel::BackwardDq, AttnDtype::F32) => [
            "attention_bwd_dq_f32_d32",
            "attention_bwd_dq_f32_d64",
            "attention_bwd_dq_f32_d128",
        ],
        (Kernel::BackwardDq, AttnDtype::Bf16) => [
            "attention_bwd_dq_bf16_d32",
            "attention_bwd_dq_bf16_d64",
            "attention_bwd_dq_bf16_d128",
        ],
        (Kernel::BackwardDqBias, AttnDtype::F32) => [
            "attention_bwd_dq_dbias_f32_d32",
            "attention_bwd_dq_dbias_f32_d64",
            "attention_bwd_dq_dbias_f32_d128",
        ],
        (Kernel::BackwardDqBias, AttnDtype::Bf16) => [
            "attention_bwd_dq_dbias_bf16_d32",
            "attention_bwd_dq_dbias_bf16_d64",
            "attention_bwd_dq_dbias_bf16_d128",
        ],
    }
}

fn delta_name(dtype: AttnDtype) -> &'static str {
    match dtype {
        AttnDtype::F32 => "attention_bwd_delta_f32",
        AttnDtype::Bf16 => "attention_bwd_delta_bf16",
    }
}

fn kref(source: &'static str, name: &'static str) -> KernelRef {
    KernelRef {
        source,
        name,
        params: PARAMS,
    }
}

/// Every attention kernel the launchers can start: per dtype, 4 kernels x 3 head dims and the
/// delta kernel (26 in all; equal to `launch::entries`, which a test checks).
pub fn all_kernels() -> Vec<KernelRef> {
    let mut all = Vec::new();
    for dtype in [AttnDtype::F32, AttnDtype::Bf16] {
        for kernel in Kernel::ALL {
            all.extend(names(kernel, dtype).map(|n| kref(source_of(kernel), n)));
        }
        all.push(kref("attention_bwd.cu", delta_name(dtype)));
    }
    all
}

fn error(what: impl std::fmt::Display) -> CudaError {
    CudaError::Driver(format!("attention: {what}"))
}

/// The `KernelRef` a planned launch names (the plan builds names as strings).
fn kernel_for(config: &LaunchConfig) -> Result<KernelRef, CudaError> {
    all_kernels()
        .into_iter()
        .find(|k| k.name == config.entry)
        .ok_or_else(|| error(format!("no launcher knows the entry {}", config.entry)))
}

/// Row alignment of one q/k/v-shaped operand (a null pointer is absent and passes).
fn check_rows(dtype: AttnDtype, what: &str, ptr: u64, strides: [i64; 3]) -> Result<(), CudaError> {
    if ptr == 0 || plan::rows_aligned(dtype, ptr, strides) {
        return Ok(());
    }
    Err(error(format!(
        "{what} rows are not 16-byte aligned (address {ptr:#x}, strides {strides:?} elements of {} \
         bytes): the kernels load rows in 16-byte pieces; pass a contiguous copy",
        dtype.size()
    )))
}

fn run(dev: &CudaDevice, configs: Vec<LaunchConfig>, p: &AttnParams) -> Result<(), CudaError> {
    for c in configs {
        let kernel = kernel_for(&c)?;
        let cfg = cudarc::driver::LaunchConfig {
            grid_dim: c.grid,
            block_dim: c.block,
            shared_mem_bytes: c.shared_bytes,
        };
        // SAFETY: the caller vouches for the buffers (see the functions below); the argument
        // list is the one parameter block every attention entry takes.
        unsafe { launch(dev, &kernel, cfg, &[Arg::from_struct(p)]) }?;
    }
    Ok(())
}

/// Checks common to both directions: the shape agrees with the parameter block, and the head
/// dim has an instance.
fn check_params(shape: &AttnShape, p: &AttnParams) -> Result<(), CudaError> {
    let fields = [
        (p.batch, shape.batch),
        (p.heads, shape.heads),
        (p.kv_heads, shape.kv_heads),
        (p.q_len, shape.q_len),
        (p.kv_len, shape.kv_len),
        (p.head_dim, shape.head_dim),
    ];
    if fields.iter().any(|&(a, b)| a < 0 || a as usize != b) {
        return Err(error(format!(
            "the parameter block disagrees with the shape {shape:?} (a bug in the caller)"
        )));
    }
    if !HEAD_DIMS.contains(&shape.head_dim) {
        return Err(error(plan::LaunchError::HeadDim(shape.head_dim)));
    }
    Ok(())
}

/// The forward: `out`, `lse` and `max_logit` from q, k, v and the masks in `p`.
///
/// # Safety
/// Every non-null pointer in `p` is live device memory of `dev` holding what the strides and
/// `shape` reach, of `dtype` (q, k, v, out, bias), u8 (mask), i32 (key lengths, each <= nk)
/// or f32 (lse `[B, H, nq]`, max_logit `[B, H]` pre-filled with -inf).
pub unsafe fn forward(
    dev: &CudaDevice,
    dtype: AttnDtype,
    shape: &AttnShape,
    p: &AttnParams,
) -> Result<(), CudaError> {
    check_params(shape, p)?;
    for (what, ptr, strides) in [
        ("q", p.q, p.q_stride),
        ("k", p.k, p.k_stride),
        ("v", p.v, p.v_stride),
        ("out", p.out, p.o_stride),
    ] {
        check_rows(dtype, what, ptr, strides)?;
    }
    run(dev, plan::forward_launches(dtype, shape).map_err(error)?, p)
}

/// The backward: delta, then dK/dV, then dQ. With `p.dbias` set, the dQ kernel also stores dS
/// (the gradient of the logits, which is the bias's gradient before summing over its broadcast
/// dimensions) per (b, h, i, j) into it; with it null, the plain dQ kernel runs.
///
/// # Safety
/// As [`forward`], plus: `out` and `lse` are the forward's for these inputs, `dout` has out's
/// strides, `delta` is f32 `[B, H, nq]`, dq/dk/dv have the strides of q/k/v, and `dbias` is null
/// or a zero-filled f32 `[B, H, nq, nk]` contiguous buffer.
pub unsafe fn backward(
    dev: &CudaDevice,
    dtype: AttnDtype,
    shape: &AttnShape,
    p: &AttnParams,
) -> Result<(), CudaError> {
    check_params(shape, p)?;
    for (what, ptr, strides) in [
        ("q", p.q, p.q_stride),
        ("k", p.k, p.k_stride),
        ("v", p.v, p.v_stride),
        ("out", p.out, p.o_stride),
        ("dout", p.dout, p.o_stride),
        ("dq", p.dq, p.q_stride),
        ("dk", p.dk, p.k_stride),
        ("dv", p.dv, p.v_stride),
    ] {
        check_rows(dtype, what, ptr, strides)?;
    }
    run(
        dev,
        plan::backward_launches(dtype, shape, p.dbias != 0).map_err(error)?,
        p,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The launchers know exactly the entries the plan can name, each from its own file.
    #[test]
    fn kernel_list_equals_the_planned_entries() {
        let mut ours: Vec<(&str, String)> = all_kernels()
            .iter()
            .map(|k| (k.source, k.name.to_string()))
            .collect();
        let mut planned = plan::entries();
        ours.sort();
        planned.sort();
        assert_eq!(ours, planned);
        let shape = AttnShape {
            batch: 2,
            heads: 4,
            kv_heads: 2,
            q_len: 17,
            kv_len: 65,
            head_dim: 64,
        };
        for dtype in [AttnDtype::F32, AttnDtype::Bf16] {
            let all = plan::forward_launches(dtype, &shape)
                .unwrap()
                .into_iter()
                .chain(plan::backward_launches(dtype, &shape, false).unwrap())
                .chain(plan::backward_launches(dtype, &shape, true).unwrap());
            for c in all {
                assert!(kernel_for(&c).is_ok(), "{}", c.entry);
            }
        }
    }

    #[test]
    fn params_block_is_one_struct_argument() {
        assert_eq!(PARAMS, &[ArgKind::Struct(std::mem::size_of::<AttnParams>())]);
        assert_eq!(std::mem::size_of::<AttnParams>() % 8, 0);
    }
}
