//! Launching: every kernel the Rust side calls is named by a [`KernelRef`] (source file, entry
//! point, parameter kinds), and [`launch`] refuses arguments that do not match its kinds.
//!
//! Why the extra bookkeeping: a CUDA launch trusts its argument list blindly, so a wrong count
//! or a `float` where the kernel takes `long long` reads garbage on the GPU, and no GPU is
//! present where this is developed. With the kinds written down, a test compares every
//! `KernelRef` against the parameter list NVRTC emits in the PTX (`.param .u64`, `.f32`,
//! `.b8 [288]`), on a CPU machine, and a launch compares its arguments against the `KernelRef`.

use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};

use super::device::CudaDevice;
use super::error::CudaError;

/// The element types the CUDA kernels compute in: f32, and bf16 storage with f32 math.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FloatType {
    F32,
    BF16,
}

impl FloatType {
    pub fn size_in_bytes(self) -> usize {
        match self {
            FloatType::F32 => 4,
            FloatType::BF16 => 2,
        }
    }
}

/// The kind of one kernel parameter, as PTX sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A device pointer (`.u64`).
    Ptr,
    /// `long long` (`.u64` in PTX too; kept apart for readable signatures).
    I64,
    F32,
    /// `unsigned int` (`.u32`).
    U32,
    /// `unsigned long long` (`.u64`; kept apart from `I64` so a seed is not read as a size).
    U64,
    /// The [`Layout`] struct by value (`.b8 [288]`).
    Layout,
    /// `int` (`.u32` in PTX).
    I32,
    /// `double` (`.f64`).
    F64,
    /// Any other struct passed by value, of this many bytes (`.b8 [N]`): attention's
    /// `AttnParams`, cross-entropy's `XentParams`, the optimizers' configs.
    Struct(usize),
    /// `index.cu`'s `IndexDims` struct by value (`.b8 [224]`).
    IndexDims,
}

/// One argument value. The `Layout` variant makes every `Arg` 288 bytes; argument lists are a
/// few entries on the stack for one launch, so boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Ptr(u64),
    I64(i64),
    F32(f32),
    U32(u32),
    U64(u64),
    Layout(Layout),
    I32(i32),
    F64(f64),
    Struct(ParamBlock),
    IndexDims(crate::index::launch::IndexDims),
}

/// Most bytes a by-value struct argument may have here (CUDA allows 4 KiB of parameters; the
/// largest struct launched is attention's, ~300 bytes).
pub const MAX_STRUCT_BYTES: usize = 512;

/// The bytes of one by-value struct argument. The driver reads exactly the parameter's size
/// (from the kernel's own parameter table) starting at the address it is given, so passing the
/// address of this zero-padded, 8-aligned block passes the struct.
#[derive(Clone, Copy)]
pub struct ParamBlock {
    bytes: StructBytes,
    len: usize,
}

/// Raw bytes, 8-aligned. `MaybeUninit` because a `#[repr(C)]` struct may end in padding, whose
/// bytes are never initialized: copying them into plain integers would be undefined behaviour.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct StructBytes([std::mem::MaybeUninit<u8>; MAX_STRUCT_BYTES]);

// SAFETY: plain bytes handed to the driver by address, as the kernel's by-value struct.
unsafe impl DeviceRepr for StructBytes {}

impl ParamBlock {
    /// The struct's first byte (the emulator passes the struct by this address, as the driver).
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.bytes.0.as_ptr() as *const u8
    }

    /// The struct's size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl std::fmt::Debug for ParamBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParamBlock({} bytes)", self.len)
    }
}

impl Arg {
    /// `value` passed by value as a struct parameter. `T` must be a `#[repr(C)]` mirror of the
    /// kernel's struct (their layout tests pin each one against the C side). Too large a `T`
    /// is a compile error, not a runtime one.
    pub fn from_struct<T: Copy>(value: &T) -> Arg {
        const { assert!(std::mem::size_of::<T>() <= MAX_STRUCT_BYTES) };
        let mut bytes = StructBytes([std::mem::MaybeUninit::new(0); MAX_STRUCT_BYTES]);
        let len = std::mem::size_of::<T>();
        // SAFETY: `len` bytes fit (asserted above); the destination is MaybeUninit, so copying
        // padding bytes is allowed; source and destination do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                value as *const T as *const std::mem::MaybeUninit<u8>,
                bytes.0.as_mut_ptr(),
                len,
            )
        };
        Arg::Struct(ParamBlock { bytes, len })
    }
}

impl Arg {
    pub fn kind(&self) -> ArgKind {
        match self {
            Arg::Ptr(_) => ArgKind::Ptr,
            Arg::I64(_) => ArgKind::I64,
            Arg::F32(_) => ArgKind::F32,
            Arg::U32(_) => ArgKind::U32,
            Arg::U64(_) => ArgKind::U64,
            Arg::Layout(_) => ArgKind::Layout,
            Arg::I32(_) => ArgKind::I32,
            Arg::F64(_) => ArgKind::F64,
            Arg::Struct(p) => ArgKind::Struct(p.len),
            Arg::IndexDims(_) => ArgKind::IndexDims,
        }
    }
}

/// A kernel the Rust side launches: where it lives and what it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRef {
    pub source: &'static str,
    pub name: &'static str,
    pub params: &'static [ArgKind],
}

/// Most axes a strided kernel handles (`MAX_RANK` in strided.cu). Size-1 axes are dropped
/// before launching, so this bounds only the number of axes longer than 1.
pub const MAX_RANK: usize = 8;

/// Shapes, strides and offsets of up to three operands broadcast to one output shape, passed
/// to the strided kernels by value. Must match `struct Layout` in strided.cu byte for byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub shape: [i64; MAX_RANK],
    pub strides: [[i64; MAX_RANK]; 3],
    pub offsets: [i64; 3],
    pub rank: i32,
    pub pad: i32,
}

// SAFETY: a plain repr(C) struct of integers, the layout strided.cu declares.
unsafe impl DeviceRepr for Layout {}

impl Layout {
    /// The layout for `shape` with each operand's (strides, offset), in elements. Size-1 axes
    /// are dropped (they contribute nothing to any offset); more than [`MAX_RANK`] remaining
    /// axes is an error.
    pub fn new(shape: &[usize], operands: &[(&[usize], usize)]) -> Result<Layout, CudaError> {
        if operands.len() > 3 || operands.iter().any(|(s, _)| s.len() != shape.len()) {
            return Err(CudaError::Driver(format!(
                "Layout: {} operands for a shape of rank {} (at most 3, each of that rank)",
                operands.len(),
                shape.len()
            )));
        }
        let kept: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] != 1).collect();
        if kept.len() > MAX_RANK {
            return Err(CudaError::Driver(format!(
                "strided kernels take at most {MAX_RANK} axes longer than 1; shape {shape:?} has {}",
                kept.len()
            )));
        }
        let mut l = Layout {
            shape: [1; MAX_RANK],
            strides: [[0; MAX_RANK]; 3],
            offsets: [0; 3],
            rank: kept.len() as i32,
            pad: 0,
        };
        for (i, &d) in kept.iter().enumerate() {
            l.shape[i] = shape[d] as i64;
            for (j, (strides, _)) in operands.iter().enumerate() {
                l.strides[j][i] = strides[d] as i64;
            }
        }
        for (j, (_, offset)) in operands.iter().enumerate() {
            l.offsets[j] = *offset as i64;
        }
        Ok(l)
    }
}

/// Threads per block of the 1-D kernels (elementwise.cu and strided.cu assume nothing else,
/// except sum_rows, which needs exactly this).
pub const BLOCK: u32 = 256;

/// A 1-D grid-stride launch over `n` items: enough blocks to cover `n`, capped at 8 waves of
/// the device's SMs (the loops cover the rest), at least 1.
pub fn grid_1d(dev: &CudaDevice, n: usize) -> LaunchConfig {
    let cap = dev.sm_count() as usize * 8;
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, cap.max(1));
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch `kernel` on `dev`'s stream with `args`, after checking them against its parameter
/// kinds. Asynchronous: errors from the kernel itself surface at the next synchronize.
///
/// # Safety
/// Every pointer must be live device memory of `dev` holding every element the kernel touches
/// for these sizes, of the type the kernel expects.
pub unsafe fn launch(
    dev: &CudaDevice,
    kernel: &KernelRef,
    cfg: LaunchConfig,
    args: &[Arg],
) -> Result<(), CudaError> {
    let kinds: Vec<ArgKind> = args.iter().map(Arg::kind).collect();
    if kinds != kernel.params {
        return Err(CudaError::Driver(format!(
            "{}::{} takes {:?} but was given {kinds:?} (a bug in its launcher)",
            kernel.source, kernel.name, kernel.params
        )));
    }
    if dev.is_emulated() {
        // SAFETY: the caller's guarantees, for the emulated device's (host) memory.
        return unsafe { super::emu::launch(kernel, cfg, args) };
    }
    let func = dev.function(kernel.source, kernel.name)?;
    let mut b = dev.stream()?.launch_builder(&func);
    for a in args {
        match a {
            Arg::Ptr(p) => b.arg(p),
            Arg::I64(v) => b.arg(v),
            Arg::F32(v) => b.arg(v),
            Arg::U32(v) => b.arg(v),
            Arg::U64(v) => b.arg(v),
            Arg::Layout(l) => b.arg(l),
            Arg::I32(v) => b.arg(v),
            Arg::F64(v) => b.arg(v),
            Arg::Struct(p) => b.arg(&p.bytes),
            Arg::IndexDims(d) => b.arg(d),
        };
    }
    b.launch(cfg)
        .map(|_| ())
        .map_err(|e| CudaError::Driver(format!("launching {}::{}: {e:?}", kernel.source, kernel.name)))
}

/// The parameter list of each `.entry` in a PTX module, as kinds PTX can tell apart:
/// `u64` (pointer or long long), `f32`, `s32`/`u32`, or `b8[N]` (a struct of N bytes).
pub fn ptx_entry_params(ptx: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = ptx;
    while let Some(pos) = rest.find(".entry ") {
        rest = &rest[pos + ".entry ".len()..];
        let name_end = rest.find('(').unwrap_or(rest.len());
        let name = rest[..name_end].trim().to_string();
        let close = rest.find(')').unwrap_or(rest.len());
        let params = rest[name_end.min(close)..close]
            .split(',')
            .filter(|p| p.contains(".param"))
            .map(|p| {
                let p = p.trim().trim_start_matches('(').trim();
                let words: Vec<&str> = p.split_whitespace().collect();
                // ".param .u64 name" or ".param .align 8 .b8 name[288]"
                if let Some(b8) = words.iter().position(|w| *w == ".b8") {
                    let size = words
                        .get(b8 + 1)
                        .and_then(|w| w.split('[').nth(1))
                        .map(|s| s.trim_end_matches(']'))
                        .unwrap_or("?");
                    format!("b8[{size}]")
                } else {
                    words
                        .get(1)
                        .map_or("?", |w| w.trim_start_matches('.'))
                        .to_string()
                }
            })
            .collect();
        out.push((name, params));
        rest = &rest[close..];
    }
    out
}

/// What PTX shows for a parameter kind.
pub fn ptx_kind(kind: ArgKind) -> String {
    match kind {
        ArgKind::Ptr | ArgKind::I64 | ArgKind::U64 => "u64".to_string(),
        ArgKind::F32 => "f32".to_string(),
        ArgKind::U32 => "u32".to_string(),
        ArgKind::Layout => format!("b8[{}]", std::mem::size_of::<Layout>()),
        ArgKind::I32 => "u32".to_string(),
        ArgKind::F64 => "f64".to_string(),
        ArgKind::Struct(n) => format!("b8[{n}]"),
        ArgKind::IndexDims => format!("b8[{}]", std::mem::size_of::<crate::index::launch::IndexDims>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_cuda_struct_and_drops_unit_axes() {
        assert_eq!(std::mem::size_of::<Layout>(), 8 * 8 + 3 * 8 * 8 + 3 * 8 + 8);
        let l = Layout::new(&[2, 1, 3], &[(&[3, 99, 1], 5), (&[0, 0, 1], 0)]).unwrap();
        assert_eq!(l.rank, 2);
        assert_eq!(&l.shape[..2], &[2, 3]);
        assert_eq!(&l.strides[0][..2], &[3, 1]);
        assert_eq!(&l.strides[1][..2], &[0, 1]);
        assert_eq!(l.offsets, [5, 0, 0]);
        assert!(Layout::new(&[2; 9], &[(&[1; 9], 0)]).is_err());
        assert!(Layout::new(&[2, 2], &[(&[1], 0)]).is_err());
    }

    #[test]
    fn struct_args_carry_their_bytes_and_size() {
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct P {
            a: u64,
            b: f32,
        }
        let arg = Arg::from_struct(&P { a: 7, b: 1.5 });
        assert_eq!(arg.kind(), ArgKind::Struct(16));
        assert_eq!(ptx_kind(arg.kind()), "b8[16]");
        let Arg::Struct(block) = arg else { unreachable!() };
        // SAFETY: the first 12 bytes were copied from initialized fields.
        let first: Vec<u8> = block.bytes.0[..12]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        assert_eq!(&first[..8], &7u64.to_ne_bytes());
        assert_eq!(&first[8..], &1.5f32.to_ne_bytes());
        assert_eq!(ptx_kind(ArgKind::I32), "u32");
        assert_eq!(ptx_kind(ArgKind::F64), "f64");
    }

    #[test]
    fn ptx_params_are_parsed() {
        let ptx = ".visible .entry add_f32(\n\t.param .u64 add_f32_param_0,\n\t.param .f32 p1\n)\n{\n}\n\
                   .visible .entry w(\n\t.param .align 8 .b8 w_param_0[288],\n\t.param .u64 w_param_1\n)\n{}\n\
                   .visible .entry none()\n{}";
        let got = ptx_entry_params(ptx);
        assert_eq!(
            got[0],
            ("add_f32".to_string(), vec!["u64".to_string(), "f32".to_string()])
        );
        assert_eq!(
            got[1],
            ("w".to_string(), vec!["b8[288]".to_string(), "u64".to_string()])
        );
        assert_eq!(got[2], ("none".to_string(), vec![]));
    }
}
