//! The CUDA side of `kernels`: the registry of `.cu` sources, the NVRTC compile pipeline that
//! keeps ptxas's report, probes that tell whether NVRTC or a GPU is usable, and the runtime:
//! [`CudaDevice`] (context, stream, per-device module cache, caching memory pool, cuBLAS
//! handle), checked kernel launches ([`launch`]) and the GEMM ([`gemm`]).
//!
//! With the `emulator` feature and `KERNELS_EMULATOR=1`, device 0 is the host emulator
//! ([`emu`], docs/emulator.md): the same kernel sources compiled as C++ and run on the CPU, so
//! the CUDA path is exercised without a GPU. It is not a GPU and never stands in for a GPU check.
//!
//! Nothing here needs CUDA at build time: cudarc loads `libnvrtc` and `libcuda` when first
//! used (feature `dynamic-loading`). Missing libraries are a normal outcome on a CPU machine,
//! so every entry point returns an error value instead of panicking; see [`nvrtc_available`]
//! and [`driver_probe`].
//!
//! Where NVRTC and the headers come from: `cargo xtask test` fetches the pinned PyPI wheels
//! (`nvidia-cuda-nvrtc`, `nvidia-cuda-runtime`), puts their lib folder on `LD_LIBRARY_PATH` and
//! points `CUDA_INCLUDE_DIR` at their headers. A CUDA toolkit at `/usr/local/cuda` works too.

mod blas;
mod compile;
mod device;
pub mod emu;
mod error;
pub mod flag;
pub mod gemm;
pub mod launch;
pub mod pool;
mod probe;
mod ptxas_log;
mod report;
mod sources;

pub use blas::{operand_layout, Blas, GemmOperand, GemmPrecision};
pub use compile::{compile, find_cuda_include, Arch, CompileOptions, Compiled};
pub use device::{CudaDevice, DeviceAlloc, DeviceBuffer, DriverAlloc};
pub use error::CudaError;
pub use launch::{FloatType, KernelRef, Layout};
pub use pool::PoolStats;
pub use probe::{
    cublas_library_present, device_arch, driver_library_present, driver_probe, nvrtc_available, nvrtc_version,
};
// Re-exported so that users of the driver API get the same cudarc version and features.
pub use cudarc;
pub use ptxas_log::{parse_ptxas_log, ptx_entry_sizes, KernelStats};
pub use report::stats_table;
pub use sources::{all_sources, source, KernelSource};
