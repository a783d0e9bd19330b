//! Launchers for elementwise.cu and strided.cu: raw device addresses and sizes in, one kernel
//! launch out. Every kernel used here is listed by [`all_kernels`], which the NVRTC test checks
//! against the compiled PTX (names and parameter kinds).
//!
//! All functions are `unsafe`: the addresses must be live device memory of `dev` holding `n`
//! elements of the named dtype (or whatever the layout reaches); sizes are not checked here,
//! the tensor layer does that.

use super::UnaryOp;
use crate::cuda::launch::{grid_1d, launch, Arg, ArgKind, KernelRef, Layout, BLOCK};
use crate::cuda::{CudaDevice, CudaError, FloatType};
use cudarc::driver::LaunchConfig;

use ArgKind::{Layout as L, Ptr as P, F32 as F, I64 as I};

const UNARY: &[ArgKind] = &[P, P, I];
const BINARY: &[ArgKind] = &[P, P, P, I];
const SCALAR: &[ArgKind] = &[P, P, I, F];
const RANGE: &[ArgKind] = &[P, P, I, F, F];
const AXPY: &[ArgKind] = &[P, P, I, F];
const BCAST: &[ArgKind] = &[L, P, P, P, I];
const WHERE: &[ArgKind] = &[L, P, P, P, P, I];
const COPY: &[ArgKind] = &[L, P, P, I];
const ROWS: &[ArgKind] = &[P, P, I, I];

/// `[f32 kernel, bf16 kernel]` of one op in one source.
macro_rules! pair {
    ($src:literal, $base:literal, $params:expr) => {
        [
            KernelRef {
                source: $src,
                name: concat!($base, "_f32"),
                params: $params,
            },
            KernelRef {
                source: $src,
                name: concat!($base, "_bf16"),
                params: $params,
            },
        ]
    };
}

fn pick(pair: [KernelRef; 2], dt: FloatType) -> KernelRef {
    match dt {
        FloatType::F32 => pair[0],
        FloatType::BF16 => pair[1],
    }
}

fn unary_pair(op: UnaryOp) -> [KernelRef; 2] {
    match op {
        UnaryOp::Neg => pair!("elementwise.cu", "neg", UNARY),
        UnaryOp::Exp => pair!("elementwise.cu", "exp", UNARY),
        UnaryOp::Log => pair!("elementwise.cu", "log", UNARY),
        UnaryOp::Sqrt => pair!("elementwise.cu", "sqrt", UNARY),
        UnaryOp::Rsqrt => pair!("elementwise.cu", "rsqrt", UNARY),
        UnaryOp::Abs => pair!("elementwise.cu", "abs", UNARY),
        UnaryOp::Sign => pair!("elementwise.cu", "sign", UNARY),
        UnaryOp::Tanh => pair!("elementwise.cu", "tanh", UNARY),
        UnaryOp::Sigmoid => pair!("elementwise.cu", "sigmoid", UNARY),
        UnaryOp::Relu => pair!("elementwise.cu", "relu", UNARY),
        UnaryOp::GeluErf => pair!("elementwise.cu", "gelu", UNARY),
        UnaryOp::GeluTanh => pair!("elementwise.cu", "gelu_tanh", UNARY),
        UnaryOp::Silu => pair!("elementwise.cu", "silu", UNARY),
        UnaryOp::Softplus => pair!("elementwise.cu", "softplus", UNARY),
        UnaryOp::Erf => pair!("elementwise.cu", "erf", UNARY),
    }
}

fn unary_bwd_pair(op: UnaryOp) -> [KernelRef; 2] {
    match op {
        UnaryOp::Neg => pair!("elementwise.cu", "neg_bwd", BINARY),
        UnaryOp::Exp => pair!("elementwise.cu", "exp_bwd", BINARY),
        UnaryOp::Log => pair!("elementwise.cu", "log_bwd", BINARY),
        UnaryOp::Sqrt => pair!("elementwise.cu", "sqrt_bwd", BINARY),
        UnaryOp::Rsqrt => pair!("elementwise.cu", "rsqrt_bwd", BINARY),
        UnaryOp::Abs => pair!("elementwise.cu", "abs_bwd", BINARY),
        UnaryOp::Sign => pair!("elementwise.cu", "sign_bwd", BINARY),
        UnaryOp::Tanh => pair!("elementwise.cu", "tanh_bwd", BINARY),
        UnaryOp::Sigmoid => pair!("elementwise.cu", "sigmoid_bwd", BINARY),
        UnaryOp::Relu => pair!("elementwise.cu", "relu_bwd", BINARY),
        UnaryOp::GeluErf => pair!("elementwise.cu", "gelu_bwd", BINARY),
        UnaryOp::GeluTanh => pair!("elementwise.cu", "gelu_tanh_bwd", BINARY),
        UnaryOp::Silu => pair!("elementwise.cu", "silu_bwd", BINARY),
        UnaryOp::Softplus => pair!("elementwise.cu", "softplus_bwd", BINARY),
        UnaryOp::Erf => pair!("elementwise.cu", "erf_bwd", BINARY),
    }
}

/// Binary arithmetic, both for the contiguous kernels (`add_f32`) and the broadcast ones
/// (`bcast_add_f32`). `Pow` exists only in broadcast form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

fn binary_pair(op: BinaryKind) -> Option<[KernelRef; 2]> {
    Some(match op {
        BinaryKind::Add => pair!("elementwise.cu", "add", BINARY),
        BinaryKind::Sub => pair!("elementwise.cu", "sub", BINARY),
        BinaryKind::Mul => pair!("elementwise.cu", "mul", BINARY),
        BinaryKind::Div => pair!("elementwise.cu", "div", BINARY),
        BinaryKind::Pow => return None,
    })
}

fn bcast_pair(op: BinaryKind) -> [KernelRef; 2] {
    match op {
        BinaryKind::Add => pair!("strided.cu", "bcast_add", BCAST),
        BinaryKind::Sub => pair!("strided.cu", "bcast_sub", BCAST),
        BinaryKind::Mul => pair!("strided.cu", "bcast_mul", BCAST),
        BinaryKind::Div => pair!("strided.cu", "bcast_div", BCAST),
        BinaryKind::Pow => pair!("strided.cu", "bcast_pow", BCAST),
    }
}

/// Comparisons, output one byte (0 or 1) per element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareKind {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn compare_pair(op: CompareKind) -> [KernelRef; 2] {
    match op {
        CompareKind::Eq => pair!("strided.cu", "bcast_eq", BCAST),
        CompareKind::Ne => pair!("strided.cu", "bcast_ne", BCAST),
        CompareKind::Lt => pair!("strided.cu", "bcast_lt", BCAST),
        CompareKind::Le => pair!("strided.cu", "bcast_le", BCAST),
        CompareKind::Gt => pair!("strided.cu", "bcast_gt", BCAST),
        CompareKind::Ge => pair!("strided.cu", "bcast_ge", BCAST),
    }
}

/// Tensor-scalar maps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScalarKind {
    Add(f32),
    Mul(f32),
    Pow(f32),
    Clamp(f32, f32),
    /// 1 where `lo <= x <= hi`, else 0: clamp's backward mask.
    ClampMask(f32, f32),
}

fn scalar_pair(op: ScalarKind) -> ([KernelRef; 2], Vec<Arg>) {
    match op {
        ScalarKind::Add(s) => (pair!("elementwise.cu", "add_scalar", SCALAR), vec![Arg::F32(s)]),
        ScalarKind::Mul(s) => (pair!("elementwise.cu", "mul_scalar", SCALAR), vec![Arg::F32(s)]),
        ScalarKind::Pow(p) => (pair!("elementwise.cu", "pow_scalar", SCALAR), vec![Arg::F32(p)]),
        ScalarKind::Clamp(lo, hi) => (
            pair!("elementwise.cu", "clamp", RANGE),
            vec![Arg::F32(lo), Arg::F32(hi)],
        ),
        ScalarKind::ClampMask(lo, hi) => (
            pair!("elementwise.cu", "clamp_mask", RANGE),
            vec![Arg::F32(lo), Arg::F32(hi)],
        ),
    }
}

const AXPY_PAIR: [KernelRef; 2] = pair!("elementwise.cu", "axpy", AXPY);
const WHERE_PAIR: [KernelRef; 2] = pair!("strided.cu", "where", WHERE);
const SUM_ROWS_PAIR: [KernelRef; 2] = pair!("strided.cu", "sum_rows", ROWS);
const COPY_KERNELS: [KernelRef; 4] = [
    KernelRef {
        source: "strided.cu",
        name: "copy_strided_b1",
        params: COPY,
    },
    KernelRef {
        source: "strided.cu",
        name: "copy_strided_b2",
        params: COPY,
    },
    KernelRef {
        source: "strided.cu",
        name: "copy_strided_b4",
        params: COPY,
    },
    KernelRef {
        source: "strided.cu",
        name: "copy_strided_b8",
        params: COPY,
    },
];

/// Every kernel these launchers can launch.
pub fn all_kernels() -> Vec<KernelRef> {
    let mut all = Vec::new();
    for op in UnaryOp::ALL {
        all.extend(unary_pair(op));
        all.extend(unary_bwd_pair(op));
    }
    for op in [
        BinaryKind::Add,
        BinaryKind::Sub,
        BinaryKind::Mul,
        BinaryKind::Div,
        BinaryKind::Pow,
    ] {
        all.extend(binary_pair(op).into_iter().flatten());
        all.extend(bcast_pair(op));
    }
    use CompareKind::*;
    for op in [Eq, Ne, Lt, Le, Gt, Ge] {
        all.extend(compare_pair(op));
    }
    for op in [
        ScalarKind::Add(0.0),
        ScalarKind::Mul(0.0),
        ScalarKind::Pow(0.0),
        ScalarKind::Clamp(0.0, 0.0),
        ScalarKind::ClampMask(0.0, 0.0),
    ] {
        all.extend(scalar_pair(op).0);
    }
    all.extend(AXPY_PAIR);
    all.extend(WHERE_PAIR);
    all.extend(SUM_ROWS_PAIR);
    all.extend(COPY_KERNELS);
    all
}

fn n_arg(n: usize) -> Arg {
    Arg::I64(n as i64)
}

/// `out = f(x)` over `n` contiguous elements.
///
/// # Safety
/// See the module documentation.
pub unsafe fn unary(
    dev: &CudaDevice,
    op: UnaryOp,
    dt: FloatType,
    x: u64,
    out: u64,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [Arg::Ptr(x), Arg::Ptr(out), n_arg(n)];
    launch(dev, &pick(unary_pair(op), dt), grid_1d(dev, n), &args)
}

/// `dx = g · f'(saved)` where `saved` is x or y = f(x), whichever the derivative reads.
///
/// # Safety
/// See the module documentation.
pub unsafe fn unary_backward(
    dev: &CudaDevice,
    op: UnaryOp,
    dt: FloatType,
    saved: u64,
    g: u64,
    dx: u64,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [Arg::Ptr(saved), Arg::Ptr(g), Arg::Ptr(dx), n_arg(n)];
    launch(dev, &pick(unary_bwd_pair(op), dt), grid_1d(dev, n), &args)
}

/// `out = a op b` over `n` contiguous elements of each (no broadcasting). `Pow` goes through
/// the broadcast kernel with a trivial layout.
///
/// # Safety
/// See the module documentation.
pub unsafe fn binary(
    dev: &CudaDevice,
    op: BinaryKind,
    dt: FloatType,
    a: u64,
    b: u64,
    out: u64,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    match binary_pair(op) {
        Some(pair) => {
            let args = [Arg::Ptr(a), Arg::Ptr(b), Arg::Ptr(out), n_arg(n)];
            launch(dev, &pick(pair, dt), grid_1d(dev, n), &args)
        }
        None => {
            let layout = Layout::new(&[n], &[(&[1], 0), (&[1], 0)])?;
            broadcast(dev, op, dt, &layout, a, b, out, n)
        }
    }
}

/// `out[i] = a[.] op b[.]` over a broadcast layout (operand 0 = a, 1 = b); `out` contiguous.
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn broadcast(
    dev: &CudaDevice,
    op: BinaryKind,
    dt: FloatType,
    layout: &Layout,
    a: u64,
    b: u64,
    out: u64,
    n: usize,
) -> Result<(), CudaError> {
    launch_layout2(dev, &pick(bcast_pair(op), dt), layout, a, b, out, n)
}

/// Comparison over a broadcast layout into a contiguous byte mask.
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn compare(
    dev: &CudaDevice,
    op: CompareKind,
    dt: FloatType,
    layout: &Layout,
    a: u64,
    b: u64,
    out: u64,
    n: usize,
) -> Result<(), CudaError> {
    launch_layout2(dev, &pick(compare_pair(op), dt), layout, a, b, out, n)
}

/// One launch of a two-operand kernel over a broadcast layout: `(layout, a, b, out, n)`, the
/// signature shared by the broadcast arithmetic and comparison kernels.
///
/// # Safety
/// See the module documentation.
unsafe fn launch_layout2(
    dev: &CudaDevice,
    kernel: &KernelRef,
    layout: &Layout,
    a: u64,
    b: u64,
    out: u64,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [
        Arg::Layout(*layout),
        Arg::Ptr(a),
        Arg::Ptr(b),
        Arg::Ptr(out),
        n_arg(n),
    ];
    launch(dev, kernel, grid_1d(dev, n), &args)
}

/// `out = cond ? a : b` over a broadcast layout (operands cond, a, b); `out` contiguous.
///
/// # Safety
/// See the module documentation.
#[allow(clippy::too_many_arguments)]
pub unsafe fn select(
    dev: &CudaDevice,
    dt: FloatType,
    layout: &Layout,
    cond: u64,
    a: u64,
    b: u64,
    out: u64,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [
        Arg::Layout(*layout),
        Arg::Ptr(cond),
        Arg::Ptr(a),
        Arg::Ptr(b),
        Arg::Ptr(out),
        n_arg(n),
    ];
    launch(dev, &pick(WHERE_PAIR, dt), grid_1d(dev, n), &args)
}

/// A tensor-scalar map over `n` contiguous elements.
///
/// # Safety
/// See the module documentation.
pub unsafe fn scalar(
    dev: &CudaDevice,
    op: ScalarKind,
    dt: FloatType,
    x: u64,
    out: u64,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let (pair, extra) = scalar_pair(op);
    let mut args = vec![Arg::Ptr(x), Arg::Ptr(out), n_arg(n)];
    args.extend(extra);
    launch(dev, &pick(pair, dt), grid_1d(dev, n), &args)
}

/// `y += alpha · x` in place over `n` contiguous elements.
///
/// # Safety
/// See the module documentation.
pub unsafe fn axpy(
    dev: &CudaDevice,
    dt: FloatType,
    y: u64,
    x: u64,
    n: usize,
    alpha: f32,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let args = [Arg::Ptr(y), Arg::Ptr(x), n_arg(n), Arg::F32(alpha)];
    launch(dev, &pick(AXPY_PAIR, dt), grid_1d(dev, n), &args)
}

/// `dst[view 1] = src[view 0]` for `n` elements of `elem_bytes` (1, 2, 4 or 8) bytes each.
///
/// # Safety
/// See the module documentation.
pub unsafe fn copy_strided(
    dev: &CudaDevice,
    elem_bytes: usize,
    layout: &Layout,
    src: u64,
    dst: u64,
    n: usize,
) -> Result<(), CudaError> {
    if n == 0 {
        return Ok(());
    }
    let kernel = match elem_bytes {
        1 => COPY_KERNELS[0],
        2 => COPY_KERNELS[1],
        4 => COPY_KERNELS[2],
        8 => COPY_KERNELS[3],
        other => {
            return Err(CudaError::Driver(format!(
                "copy_strided: no kernel for {other}-byte elements"
            )))
        }
    };
    let args = [Arg::Layout(*layout), Arg::Ptr(src), Arg::Ptr(dst), n_arg(n)];
    launch(dev, &kernel, grid_1d(dev, n), &args)
}

/// `out[r] = Σ_j x[r·row_len + j]` for `rows` contiguous rows, f32 accumulation.
///
/// # Safety
/// See the module documentation.
pub unsafe fn sum_rows(
    dev: &CudaDevice,
    dt: FloatType,
    x: u64,
    out: u64,
    rows: usize,
    row_len: usize,
) -> Result<(), CudaError> {
    if rows == 0 {
        return Ok(());
    }
    let cfg = LaunchConfig {
        grid_dim: (rows.clamp(1, 65_535) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let args = [Arg::Ptr(x), Arg::Ptr(out), n_arg(rows), n_arg(row_len)];
    launch(dev, &pick(SUM_ROWS_PAIR, dt), cfg, &args)
}
