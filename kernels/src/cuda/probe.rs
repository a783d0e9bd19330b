//! Is NVRTC usable? Is there a GPU? Both answers may be "no" on a perfectly normal machine, so
//! these never panic: they return the reason, which tests print when they skip.
//!
//! cudarc (with `dynamic-loading`) panics when a library it needs cannot be opened, the first
//! time any function of that library is called. So each probe first asks cudarc's
//! `is_culib_present()`, which only tries to open the library, and still wraps the calls that
//! follow in `catch_unwind` in case a symbol is missing from an older library.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use cudarc::driver::CudaContext;
use cudarc::nvrtc::sys as nvrtc_sys;

use super::compile::{compile_raw, Arch};
use super::error::CudaError;

/// `Ok` when NVRTC loads and can compile a trivial kernel. The answer is computed once per
/// process: the dynamic loader reads `LD_LIBRARY_PATH` at start-up, so it cannot change later.
pub fn nvrtc_available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(probe_nvrtc).clone()
}

/// NVRTC's (major, minor) version, e.g. (13, 0).
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    if !library_present(|| unsafe { nvrtc_sys::is_culib_present() }) {
        return Err(nvrtc_missing());
    }
    let call = catch_unwind(|| {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid out-pointers; the library is present (checked above).
        let code = unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) };
        (code, major, minor)
    });
    match call {
        Ok((nvrtc_sys::nvrtcResult::NVRTC_SUCCESS, major, minor)) => Ok((major, minor)),
        Ok((code, _, _)) => Err(format!("nvrtcVersion returned {code:?}")),
        Err(_) => Err("libnvrtc loaded but nvrtcVersion could not be called".to_string()),
    }
}

fn probe_nvrtc() -> Result<(), String> {
    let (major, minor) = nvrtc_version()?;
    // libnvrtc opens its builtins library only when it first compiles, so loading libnvrtc
    // proves little: compile something. A virtual architecture keeps it quick (no ptxas).
    let src = "extern \"C\" __global__ void probe(float* x) { x[0] = 1.0f; }";
    let args = ["--gpu-architecture=compute_80".to_string()];
    let out = catch_unwind(|| compile_raw("probe.cu", src, &args))
        .map_err(|_| format!("libnvrtc {major}.{minor} panicked on a trivial compile"))?
        .map_err(|e| format!("libnvrtc {major}.{minor}: {e}"))?;
    if out.ok {
        return Ok(());
    }
    let hint = if out.log.contains("libnvrtc-builtins") {
        " (libnvrtc-builtins.so must sit in a folder on LD_LIBRARY_PATH, normally beside libnvrtc)"
    } else {
        ""
    };
    Err(format!(
        "libnvrtc {major}.{minor} loads but cannot compile a trivial kernel{hint}: {}",
        out.log.trim()
    ))
}

fn nvrtc_missing() -> String {
    "libnvrtc (libnvrtc.so.13 or another name cudarc tries) is not on the library path. Run \
     `cargo xtask test`, which fetches the pinned PyPI wheel nvidia-cuda-nvrtc and sets \
     LD_LIBRARY_PATH, or put a folder holding libnvrtc.so.13 and libnvrtc-builtins.so.13.0 on \
     LD_LIBRARY_PATH"
        .to_string()
}

/// `is_culib_present` only tries `dlopen`; it should not panic, but a panic here must still
/// mean "absent", never a crash.
fn library_present(check: impl FnOnce() -> bool) -> bool {
    catch_unwind(AssertUnwindSafe(check)).unwrap_or(false)
}

/// A context on device 0, or why there is none. No GPU is a normal outcome (the CPU backend
/// serves); callers skip GPU work with the returned reason.
pub fn driver_probe() -> Result<Arc<CudaContext>, CudaError> {
    driver_library_present()?;
    // Without the check above, CudaContext::new panics when libcuda is missing (DESIGN.md).
    match catch_unwind(|| CudaContext::new(0)) {
        Ok(Ok(ctx)) => Ok(ctx),
        Ok(Err(e)) => Err(CudaError::Driver(format!(
            "the driver is installed but creating a context on device 0 failed: {e:?}"
        ))),
        Err(_) => Err(CudaError::Driver(
            "cudarc panicked while creating a context on device 0".to_string(),
        )),
    }
}

/// `Ok` when libcuda can be opened. Every driver call must be preceded by this check: with
/// `dynamic-loading`, cudarc panics on the first call into a library it cannot open.
pub fn driver_library_present() -> Result<(), CudaError> {
    // SAFETY: only tries to dlopen libcuda; no CUDA call is made.
    if library_present(|| unsafe { cudarc::driver::sys::is_culib_present() }) {
        Ok(())
    } else {
        Err(CudaError::Driver(
            "libcuda (the NVIDIA driver library) was not found: this machine has no GPU driver".to_string(),
        ))
    }
}

/// `Ok` when libcublas can be opened (checked before creating a handle, for the same reason).
pub fn cublas_library_present() -> Result<(), CudaError> {
    // SAFETY: only tries to dlopen libcublas.
    if library_present(|| unsafe { cudarc::cublas::sys::is_culib_present() }) {
        Ok(())
    } else {
        Err(CudaError::Driver(
            "libcublas was not found on the library path (LD_LIBRARY_PATH or ldconfig)".to_string(),
        ))
    }
}

/// The architecture of the context's device, to compile for exactly it.
pub fn device_arch(ctx: &CudaContext) -> Result<Arch, CudaError> {
    let (major, minor) = ctx
        .compute_capability()
        .map_err(|e| CudaError::Driver(format!("reading the compute capability: {e:?}")))?;
    Ok(Arch::from_capability(major as u32, minor as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the machine has, the probes answer instead of panicking.
    #[test]
    fn probes_never_panic() {
        let nvrtc = nvrtc_available();
        let driver = driver_probe().map(|_| ());
        if let Err(why) = &nvrtc {
            assert!(!why.is_empty());
        }
        if let Err(why) = &driver {
            assert!(!why.to_string().is_empty());
        }
        assert_eq!(nvrtc, nvrtc_available(), "the NVRTC probe is cached");
    }
}
