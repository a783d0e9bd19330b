//! The Rust side of the host emulator (feature `emulator`; docs/emulator.md): with
//! `KERNELS_EMULATOR=1` at run time, CUDA device 0 is the CPU executing this crate's `.cu`
//! sources compiled as C++ (kernels/emu, kernels/build.rs). It exists so the launchers and the
//! kernels' indexing, reductions, masks and barriers run in CI without a GPU. It is NOT a GPU:
//! timings mean nothing and memory-model races are not modelled faithfully.
//!
//! Device memory is host memory from [`HostAlloc`] (256-byte aligned, like `cuMemAlloc`), so a
//! device address is a host address; launches run to completion before [`launch`] returns.

use std::alloc::{alloc, dealloc, Layout as AllocLayout};

use super::error::CudaError;
use super::launch::{Arg, KernelRef};
use super::pool::RawAllocator;

/// The environment variable that turns the emulator on (with the `emulator` feature).
pub const ENV_VAR: &str = "KERNELS_EMULATOR";

/// The emulated device's name, as [`super::CudaDevice::name`] reports it.
pub const DEVICE_NAME: &str = "host emulator (not a GPU)";

/// SMs the emulated device reports: small, so grid-stride launches (capped at 8 waves of SMs)
/// loop several times and that path is exercised on modest sizes.
pub const SM_COUNT: u32 = 4;

/// Whether this process runs CUDA work on the emulator: built with the feature and
/// `KERNELS_EMULATOR=1`. Without either, nothing about the CUDA path changes.
pub fn requested() -> bool {
    cfg!(feature = "emulator") && std::env::var(ENV_VAR).is_ok_and(|v| v.trim() == "1")
}

/// Alignment of every emulated device allocation (the driver's `cuMemAlloc` gives 256 bytes).
const ALIGN: usize = 256;

/// Host memory standing in for device memory.
pub struct HostAlloc;

impl RawAllocator for HostAlloc {
    fn alloc(&self, bytes: usize) -> Result<u64, CudaError> {
        let layout = AllocLayout::from_size_align(bytes.max(1), ALIGN)
            .map_err(|e| CudaError::Emulator(format!("allocating {bytes} bytes: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc(layout) };
        if p.is_null() {
            return Err(CudaError::Emulator(format!(
                "out of host memory allocating {bytes} bytes"
            )));
        }
        Ok(p as u64)
    }

    fn free(&self, ptr: u64, bytes: usize) -> Result<(), CudaError> {
        let layout = AllocLayout::from_size_align(bytes.max(1), ALIGN)
            .map_err(|e| CudaError::Emulator(format!("freeing {bytes} bytes: {e}")))?;
        // SAFETY: the pool frees each address once, with the size it allocated it with.
        unsafe { dealloc(ptr as *mut u8, layout) };
        Ok(())
    }
}

/// Bytes of one argument as the kernel receives it.
#[cfg_attr(not(feature = "emulator"), allow(dead_code))]
fn arg_bytes(a: &Arg) -> (*mut std::ffi::c_void, usize) {
    fn of<T>(v: &T) -> (*mut std::ffi::c_void, usize) {
        (v as *const T as *mut std::ffi::c_void, std::mem::size_of::<T>())
    }
    match a {
        Arg::Ptr(v) => of(v),
        Arg::I64(v) => of(v),
        Arg::F32(v) => of(v),
        Arg::U32(v) => of(v),
        Arg::U64(v) => of(v),
        Arg::Layout(v) => of(v),
        Arg::I32(v) => of(v),
        Arg::F64(v) => of(v),
        Arg::Struct(p) => (p.as_ptr() as *mut std::ffi::c_void, p.len()),
        Arg::IndexDims(v) => of(v),
    }
}

#[cfg(feature = "emulator")]
mod ffi {
    use std::ffi::{c_char, c_int, c_void};
    extern "C" {
        pub fn kernels_emu_launch(
            source: *const c_char,
            kernel: *const c_char,
            grid: *const u32,
            block: *const u32,
            dynamic_smem: usize,
            args: *mut *mut c_void,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn kernels_emu_kernel_params(
            source: *const c_char,
            kernel: *const c_char,
            sizes: *mut u32,
            max: usize,
        ) -> c_int;
    }
}

/// Run `kernel` over the grid of `cfg` on the emulator with `args` (already checked against the
/// kernel's kinds), after checking each argument's size against the parameter the C++ kernel
/// declares. Returns when every block has run.
///
/// # Safety
/// As [`super::launch::launch`]: every pointer must be live (host) memory of the emulated
/// device holding every element the kernel touches.
#[cfg(feature = "emulator")]
pub unsafe fn launch(
    kernel: &KernelRef,
    cfg: cudarc::driver::LaunchConfig,
    args: &[Arg],
) -> Result<(), CudaError> {
    use std::ffi::CString;
    let what = || format!("{}::{}", kernel.source, kernel.name);
    let c = |s: &str| CString::new(s).map_err(|_| CudaError::Emulator(format!("{}: NUL in a name", what())));
    let (source, name) = (c(kernel.source)?, c(kernel.name)?);
    let mut sizes = [0u32; 64];
    // SAFETY: valid C strings; at most sizes.len() entries are written.
    let n = unsafe {
        ffi::kernels_emu_kernel_params(source.as_ptr(), name.as_ptr(), sizes.as_mut_ptr(), sizes.len())
    };
    if n < 0 {
        return Err(CudaError::Emulator(format!(
            "{}: no such kernel was compiled into the emulator",
            what()
        )));
    }
    let (mut ptrs, given): (Vec<_>, Vec<_>) = args.iter().map(arg_bytes).unzip();
    let declared: Vec<usize> = sizes[..(n as usize).min(sizes.len())]
        .iter()
        .map(|&s| s as usize)
        .collect();
    if declared != given {
        return Err(CudaError::Emulator(format!(
            "{}: the launcher passes arguments of {given:?} bytes but the kernel declares parameters of \
             {declared:?} bytes (a bug in its launcher or in a struct's Rust mirror)",
            what()
        )));
    }
    let grid = [cfg.grid_dim.0, cfg.grid_dim.1, cfg.grid_dim.2];
    let block = [cfg.block_dim.0, cfg.block_dim.1, cfg.block_dim.2];
    let mut err = vec![0u8; 1024];
    // SAFETY: `ptrs` points at each argument's bytes, alive for this call (the emulator copies
    // them into each thread's parameters and keeps nothing after returning); the caller vouches
    // for the memory the kernel touches.
    let rc = unsafe {
        ffi::kernels_emu_launch(
            source.as_ptr(),
            name.as_ptr(),
            grid.as_ptr(),
            block.as_ptr(),
            cfg.shared_mem_bytes as usize,
            ptrs.as_mut_ptr(),
            err.as_mut_ptr() as *mut std::ffi::c_char,
            err.len(),
        )
    };
    if rc != 0 {
        let len = err.iter().position(|&b| b == 0).unwrap_or(err.len());
        return Err(CudaError::Emulator(
            String::from_utf8_lossy(&err[..len]).into_owned(),
        ));
    }
    Ok(())
}

/// Without the feature there is no emulated device to launch on; [`requested`] is false, so
/// this is never reached through [`super::CudaDevice`].
///
/// # Safety
/// Nothing is run.
#[cfg(not(feature = "emulator"))]
pub unsafe fn launch(
    kernel: &KernelRef,
    _cfg: cudarc::driver::LaunchConfig,
    _args: &[Arg],
) -> Result<(), CudaError> {
    Err(CudaError::Emulator(format!(
        "{}::{}: kernels was built without the `emulator` feature",
        kernel.source, kernel.name
    )))
}
