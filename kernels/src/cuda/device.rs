//! One [`CudaDevice`] per ordinal: its context and stream, its architecture, the modules
//! compiled for it, its memory pool and its cuBLAS handle.
//!
//! Devices come from a process-wide registry ([`CudaDevice::get`]), so every tensor on
//! `cuda:0` shares one stream, one pool and one module cache. A failed probe is remembered too:
//! a machine without a GPU answers every later request with the same reason, at no cost.
//!
//! Everything is issued on the device's one stream. That is what makes the pool's reuse safe
//! and lets ops run back to back without events; host copies synchronize the stream.
//!
//! A device has one of two backends: the CUDA driver, or (feature `emulator` and
//! `KERNELS_EMULATOR=1`) the host emulator of [`super::emu`], which executes the same kernel
//! sources on the CPU so the CUDA path runs in CI. The emulated device is NOT a GPU. Memory,
//! copies and launches work on both; the driver handles (`context`, `stream`, `function`,
//! `module`, `blas`) are errors on the emulator.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{result as dr, sys as dsys, CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;

use super::blas::Blas;
use super::compile::{compile, Arch, CompileOptions};
use super::emu::{self, HostAlloc};
use super::error::CudaError;
use super::pool::{CachingPool, PoolBuffer, PoolStats, RawAllocator};
use super::sources::source;

/// `cuMemAlloc` / `cuMemFree` for one context, as the pool's raw allocator.
pub struct DriverAlloc {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
}

fn driver_err(what: &str) -> impl Fn(dr::DriverError) -> CudaError + '_ {
    move |e| CudaError::Driver(format!("{what}: {e:?}"))
}

impl RawAllocator for DriverAlloc {
    fn alloc(&self, bytes: usize) -> Result<u64, CudaError> {
        self.ctx
            .bind_to_thread()
            .map_err(driver_err("binding the context"))?;
        // SAFETY: a plain allocation; the memory is uninitialized bytes, which is all a byte
        // buffer promises.
        unsafe { dr::malloc_sync(bytes) }.map_err(driver_err("cuMemAlloc"))
    }

    fn free(&self, ptr: u64, _bytes: usize) -> Result<(), CudaError> {
        self.ctx
            .bind_to_thread()
            .map_err(driver_err("binding the context"))?;
        // SAFETY: the pool frees each address once, after synchronize() (no pending work).
        unsafe { dr::free_sync(ptr) }.map_err(driver_err("cuMemFree"))
    }

    fn synchronize(&self) -> Result<(), CudaError> {
        self.stream
            .synchronize()
            .map_err(driver_err("synchronizing the stream"))
    }
}

/// The pool's raw allocator: the driver's, or host memory for the emulated device.
pub enum DeviceAlloc {
    Driver(DriverAlloc),
    Host(HostAlloc),
}

impl RawAllocator for DeviceAlloc {
    fn alloc(&self, bytes: usize) -> Result<u64, CudaError> {
        match self {
            DeviceAlloc::Driver(d) => d.alloc(bytes),
            DeviceAlloc::Host(h) => h.alloc(bytes),
        }
    }

    fn free(&self, ptr: u64, bytes: usize) -> Result<(), CudaError> {
        match self {
            DeviceAlloc::Driver(d) => d.free(ptr, bytes),
            DeviceAlloc::Host(h) => h.free(ptr, bytes),
        }
    }

    fn synchronize(&self) -> Result<(), CudaError> {
        match self {
            DeviceAlloc::Driver(d) => d.synchronize(),
            DeviceAlloc::Host(h) => h.synchronize(),
        }
    }
}

/// A device byte buffer from the pool.
pub type DeviceBuffer = PoolBuffer<DeviceAlloc>;

/// What a driver-backed device holds beyond the common fields.
struct DriverState {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Loaded modules by source file name, compiled on first use.
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    /// Functions by (source, kernel), so a launch costs one hash lookup.
    functions: Mutex<HashMap<(&'static str, &'static str), CudaFunction>>,
    blas: OnceLock<Result<Arc<Blas>, CudaError>>,
}

enum Backend {
    /// Boxed: the handles and caches are large, and a device is created once.
    Driver(Box<DriverState>),
    /// The host emulator: memory is host memory, launches run on the CPU (see [`super::emu`]).
    Emulated,
}

/// One GPU (or the host emulator standing in for one), ready to run this crate's kernels.
pub struct CudaDevice {
    ordinal: usize,
    arch: Arch,
    name: String,
    sm_count: u32,
    pool: Arc<CachingPool<DeviceAlloc>>,
    backend: Backend,
}

type Registry = Mutex<HashMap<usize, Result<Arc<CudaDevice>, CudaError>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

impl CudaDevice {
    /// The device with this ordinal, created (and probed) on first request. Never panics: with
    /// no driver or no such device the error says why.
    ///
    /// With the `emulator` feature and `KERNELS_EMULATOR=1`, device 0 is the host emulator and
    /// there is no other device.
    pub fn get(ordinal: usize) -> Result<Arc<CudaDevice>, CudaError> {
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = reg.get(&ordinal) {
            return known.clone();
        }
        if emu::requested() {
            let made = CudaDevice::create_emulated(ordinal);
            reg.insert(ordinal, made.clone());
            return made;
        }
        let made = catch_unwind(|| CudaDevice::create(ordinal)).unwrap_or_else(|_| {
            Err(CudaError::Driver(format!(
                "cudarc panicked while opening device {ordinal}"
            )))
        });
        reg.insert(ordinal, made.clone());
        made
    }

    /// How many CUDA devices the driver sees (0 without a driver; 1, the emulator, when it is
    /// requested).
    pub fn count() -> usize {
        if emu::requested() {
            return 1;
        }
        if super::probe::driver_library_present().is_err() {
            return 0;
        }
        catch_unwind(CudaContext::device_count)
            .ok()
            .and_then(Result::ok)
            .map_or(0, |n| n.max(0) as usize)
    }

    fn create(ordinal: usize) -> Result<Arc<CudaDevice>, CudaError> {
        super::probe::driver_library_present()?;
        let ctx = CudaContext::new(ordinal).map_err(|e| {
            CudaError::Driver(format!("creating a context on device {ordinal} failed: {e:?}"))
        })?;
        let arch = super::probe::device_arch(&ctx)?;
        let stream = ctx.new_stream().map_err(driver_err("creating a stream"))?;
        let name = ctx.name().unwrap_or_else(|_| format!("cuda:{ordinal}"));
        let sm_count = ctx
            .attribute(dsys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_or(1, |n| n.max(1) as u32);
        let pool = CachingPool::new(DeviceAlloc::Driver(DriverAlloc {
            ctx: ctx.clone(),
            stream: stream.clone(),
        }));
        Ok(Arc::new(CudaDevice {
            ordinal,
            arch,
            name,
            sm_count,
            pool,
            backend: Backend::Driver(Box::new(DriverState {
                ctx,
                stream,
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                blas: OnceLock::new(),
            })),
        }))
    }

    /// The host emulator as device 0 (it reports sm_80, the oldest architecture the kernels
    /// target, and a few SMs; see [`emu::SM_COUNT`]).
    fn create_emulated(ordinal: usize) -> Result<Arc<CudaDevice>, CudaError> {
        if ordinal != 0 {
            return Err(CudaError::Driver(format!(
                "device {ordinal}: the host emulator ({}=1) provides device 0 only",
                emu::ENV_VAR
            )));
        }
        Ok(Arc::new(CudaDevice {
            ordinal,
            arch: Arch::Sm80,
            name: emu::DEVICE_NAME.to_string(),
            sm_count: emu::SM_COUNT,
            pool: CachingPool::new(DeviceAlloc::Host(HostAlloc)),
            backend: Backend::Emulated,
        }))
    }

    /// Whether this is the host emulator rather than a GPU. Timings taken on it mean nothing.
    pub fn is_emulated(&self) -> bool {
        matches!(self.backend, Backend::Emulated)
    }

    fn driver(&self, what: &str) -> Result<&DriverState, CudaError> {
        match &self.backend {
            Backend::Driver(d) => Ok(d.as_ref()),
            Backend::Emulated => Err(CudaError::Emulator(format!(
                "{what} needs the CUDA driver; the host emulator has none"
            ))),
        }
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// The driver context; an error on the emulator.
    pub fn context(&self) -> Result<&Arc<CudaContext>, CudaError> {
        Ok(&self.driver("a CUDA context")?.ctx)
    }

    /// The device's stream; an error on the emulator.
    pub fn stream(&self) -> Result<&Arc<CudaStream>, CudaError> {
        Ok(&self.driver("a CUDA stream")?.stream)
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Return every cached (free) buffer to the driver.
    pub fn trim_pool(&self) -> Result<(), CudaError> {
        self.pool.trim()
    }

    /// Wait until everything issued on this device has finished.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        match &self.backend {
            Backend::Driver(d) => d
                .stream
                .synchronize()
                .map_err(driver_err("synchronizing the stream")),
            // Emulated launches and copies finish before they return.
            Backend::Emulated => Ok(()),
        }
    }

    /// `bytes` bytes of uninitialized device memory from the pool (filled with the pool's
    /// poison byte when poisoning is on, so that unwritten elements show in tests).
    pub fn alloc(&self, bytes: usize) -> Result<DeviceBuffer, CudaError> {
        let buf = self.pool.alloc(bytes)?;
        if let (Some(byte), true) = (self.pool.poison(), bytes > 0) {
            self.memset(&buf, byte)?;
        }
        Ok(buf)
    }

    /// Every byte of `buf` set to `byte` (stream-ordered).
    pub fn memset(&self, buf: &DeviceBuffer, byte: u8) -> Result<(), CudaError> {
        let d = match &self.backend {
            Backend::Driver(d) => d,
            Backend::Emulated => {
                // SAFETY: an emulated buffer is live host memory of at least len() bytes.
                unsafe { std::ptr::write_bytes(buf.ptr() as *mut u8, byte, buf.len()) };
                return Ok(());
            }
        };
        d.ctx
            .bind_to_thread()
            .map_err(driver_err("binding the context"))?;
        // SAFETY: `buf` is a live allocation of at least len() bytes, used on this stream.
        unsafe { dr::memset_d8_async(buf.ptr(), byte, buf.len(), d.stream.cu_stream()) }
            .map_err(driver_err("cuMemsetD8Async"))
    }

    /// A new buffer holding `data`'s bytes. Returns after the copy is done, so `data` may go.
    pub fn upload<T: Copy>(&self, data: &[T]) -> Result<DeviceBuffer, CudaError> {
        let buf = self.pool.alloc(std::mem::size_of_val(data))?;
        self.copy_to_device(data, &buf, 0)?;
        Ok(buf)
    }

    /// Copy `data` into `dst` starting at byte `offset`; synchronous with respect to the host.
    pub fn copy_to_device<T: Copy>(
        &self,
        data: &[T],
        dst: &DeviceBuffer,
        offset: usize,
    ) -> Result<(), CudaError> {
        let bytes = std::mem::size_of_val(data);
        check_range(dst, offset, bytes)?;
        if bytes == 0 {
            return Ok(());
        }
        let d = match &self.backend {
            Backend::Driver(d) => d,
            Backend::Emulated => {
                // SAFETY: the range was checked; an emulated buffer is host memory that cannot
                // overlap the borrowed `data`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        data.as_ptr() as *const u8,
                        (dst.ptr() + offset as u64) as *mut u8,
                        bytes,
                    )
                };
                return Ok(());
            }
        };
        d.ctx
            .bind_to_thread()
            .map_err(driver_err("binding the context"))?;
        // SAFETY: the range was checked; `data` stays borrowed until the synchronize below,
        // so the (possibly asynchronous) copy never reads freed host memory.
        unsafe { dr::memcpy_htod_async(dst.ptr() + offset as u64, data, d.stream.cu_stream()) }
            .map_err(driver_err("cuMemcpyHtoDAsync"))?;
        self.synchronize()
    }

    /// Copy `out.len()` elements from `src` at byte `offset` into `out`; waits for pending work.
    pub fn copy_to_host<T: Copy>(
        &self,
        src: &DeviceBuffer,
        offset: usize,
        out: &mut [T],
    ) -> Result<(), CudaError> {
        let bytes = std::mem::size_of_val(out);
        check_range(src, offset, bytes)?;
        if bytes == 0 {
            return Ok(());
        }
        let d = match &self.backend {
            Backend::Driver(d) => d,
            Backend::Emulated => {
                // SAFETY: the range was checked; `out` is a distinct, exclusively borrowed host
                // slice. Any bit pattern is a valid `T` for the plain number types the callers use.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        (src.ptr() + offset as u64) as *const u8,
                        out.as_mut_ptr() as *mut u8,
                        bytes,
                    )
                };
                return Ok(());
            }
        };
        d.ctx
            .bind_to_thread()
            .map_err(driver_err("binding the context"))?;
        // SAFETY: the range was checked; `out` is borrowed until the synchronize below. Any
        // bit pattern is a valid `T` for the plain number types the callers use.
        unsafe { dr::memcpy_dtoh_async(out, src.ptr() + offset as u64, d.stream.cu_stream()) }
            .map_err(driver_err("cuMemcpyDtoHAsync"))?;
        self.synchronize()
    }

    /// Stream-ordered device-to-device copy of `bytes` bytes.
    pub fn copy_device(
        &self,
        src: &DeviceBuffer,
        src_offset: usize,
        dst: &DeviceBuffer,
        dst_offset: usize,
        bytes: usize,
    ) -> Result<(), CudaError> {
        check_range(src, src_offset, bytes)?;
        check_range(dst, dst_offset, bytes)?;
        if bytes == 0 {
            return Ok(());
        }
        let d = match &self.backend {
            Backend::Driver(d) => d,
            Backend::Emulated => {
                // SAFETY: both ranges were checked and both buffers are live host memory; they
                // may be the same buffer, so this is a memmove.
                unsafe {
                    std::ptr::copy(
                        (src.ptr() + src_offset as u64) as *const u8,
                        (dst.ptr() + dst_offset as u64) as *mut u8,
                        bytes,
                    )
                };
                return Ok(());
            }
        };
        d.ctx
            .bind_to_thread()
            .map_err(driver_err("binding the context"))?;
        // SAFETY: both ranges were checked and both buffers are live.
        unsafe {
            dr::memcpy_dtod_async(
                dst.ptr() + dst_offset as u64,
                src.ptr() + src_offset as u64,
                bytes,
                d.stream.cu_stream(),
            )
        }
        .map_err(driver_err("cuMemcpyDtoDAsync"))
    }

    /// The kernel `kernel` of the registered source `source`, compiling and loading the source
    /// for this device's architecture on first use. Driver only (the emulator launches by name).
    pub fn function(
        &self,
        source_name: &'static str,
        kernel: &'static str,
    ) -> Result<CudaFunction, CudaError> {
        let d = self.driver("loading a CUDA function")?;
        let key = (source_name, kernel);
        if let Some(f) = lock(&d.functions).get(&key) {
            return Ok(f.clone());
        }
        let module = self.module(source_name)?;
        let f = module.load_function(kernel).map_err(|e| {
            CudaError::Driver(format!(
                "{source_name} has no kernel {kernel:?} (loaded for {}): {e:?}",
                self.arch
            ))
        })?;
        lock(&d.functions).insert(key, f.clone());
        Ok(f)
    }

    /// The loaded module for `source_name`. Compiled with NVRTC for this device's real
    /// architecture and loaded as a cubin (no driver JIT); if NVRTC produced no cubin (it does
    /// for every real architecture, so this is a safety net) the PTX is loaded instead. Driver
    /// only.
    pub fn module(&self, source_name: &'static str) -> Result<Arc<CudaModule>, CudaError> {
        let d = self.driver("loading a CUDA module")?;
        // Held across the compile so two threads do not compile the same source twice.
        let mut modules = lock(&d.modules);
        if let Some(m) = modules.get(source_name) {
            return Ok(m.clone());
        }
        let src = source(source_name).ok_or_else(|| CudaError::Nvrtc {
            call: "module lookup",
            detail: format!("no registered kernel source named {source_name:?}"),
        })?;
        let compiled = compile(src, self.arch, &CompileOptions::default())?;
        let image = if compiled.cubin.is_empty() {
            Ptx::from_src(compiled.ptx)
        } else {
            Ptx::from_binary(compiled.cubin)
        };
        let module = d
            .ctx
            .load_module(image)
            .map_err(driver_err("loading the compiled module"))?;
        modules.insert(source_name, module.clone());
        Ok(module)
    }

    /// The device's cuBLAS handle, created on first use. An error (not a panic) where libcublas
    /// is missing, and on the emulator; callers then fall back to the tiled reference kernel.
    pub fn blas(&self) -> Result<Arc<Blas>, CudaError> {
        let d = self.driver("cuBLAS")?;
        d.blas
            .get_or_init(|| {
                catch_unwind(AssertUnwindSafe(|| Blas::new(&d.ctx, &d.stream)))
                    .unwrap_or_else(|_| Err(CudaError::Driver("cuBLAS panicked while loading".into())))
                    .map(Arc::new)
            })
            .clone()
    }
}

/// The maps are plain caches, valid after a panic elsewhere.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_range(buf: &DeviceBuffer, offset: usize, bytes: usize) -> Result<(), CudaError> {
    if offset.checked_add(bytes).is_none_or(|end| end > buf.len()) {
        return Err(CudaError::Driver(format!(
            "copy of {bytes} bytes at offset {offset} is outside a {}-byte buffer",
            buf.len()
        )));
    }
    Ok(())
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaDevice(cuda:{}, {}, {})",
            self.ordinal, self.name, self.arch
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a GPU, asking for a device is an error with a reason, every time, and no panic.
    #[test]
    fn get_never_panics() {
        match CudaDevice::get(0) {
            Ok(dev) => assert_eq!(dev.ordinal(), 0),
            Err(e) => {
                assert!(!e.to_string().is_empty());
                assert_eq!(CudaDevice::get(0).err(), Some(e), "the failure is remembered");
            }
        }
        // A device that cannot exist is an error even on a GPU machine.
        assert!(CudaDevice::get(4096).is_err());
        let _ = CudaDevice::count();
    }
}
