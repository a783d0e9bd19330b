//! Shared helpers for the criterion benchmarks in `benches/`, and the roofline report behind
//! `cargo xtask bench` ([`report`], run by the `bench-report` binary).

pub mod crit;
pub mod report;
pub mod gpu {
    //! What the CUDA halves of the benches share: finding a GPU (a bench without one prints
    //! why and skips its CUDA groups), uploading f32 data as f32 or bf16, and the device copy
    //! whose bandwidth the memory-bound kernels are compared with.

    use kernels::cuda::{CudaDevice, DeviceBuffer, FloatType};
    use std::sync::Arc;

    /// CUDA device 0, or `None` after printing why the CUDA benches are skipped.
    pub fn device(bench: &str) -> Option<Arc<CudaDevice>> {
        match CudaDevice::get(0) {
            // The host emulator (kernels feature `emulator`) runs the kernels on the CPU, one
            // fiber per CUDA thread: nothing it takes says anything about a GPU.
            Ok(dev) if dev.is_emulated() => {
                eprintln!("{bench}: CUDA benches SKIPPED (host emulator: timings meaningless)");
                None
            }
            Ok(dev) => Some(dev),
            Err(why) => {
                eprintln!("{bench}: CUDA benches SKIPPED (no GPU): {why}");
                None
            }
        }
    }

    /// `values` on the device as `dt` (bf16 by truncating the f32 bits: bench data only).
    pub fn upload(dev: &CudaDevice, values: &[f32], dt: FloatType) -> DeviceBuffer {
        match dt {
            FloatType::F32 => dev.upload(values),
            FloatType::BF16 => {
                let bits: Vec<u16> = values.iter().map(|v| (v.to_bits() >> 16) as u16).collect();
                dev.upload(&bits)
            }
        }
        .expect("upload")
    }

    /// An uninitialized device buffer of `n` elements of `dt`.
    pub fn alloc(dev: &CudaDevice, n: usize, dt: FloatType) -> DeviceBuffer {
        dev.alloc(n * dt.size_in_bytes()).expect("device memory")
    }

    /// One device-to-device copy of `bytes` bytes, waited for: the ceiling a memory-bound
    /// kernel is compared with (it reads and writes `bytes` each).
    pub fn copy(dev: &CudaDevice, src: &DeviceBuffer, dst: &DeviceBuffer, bytes: usize) {
        dev.copy_device(src, 0, dst, 0, bytes).expect("copy");
        dev.synchronize().expect("synchronize");
    }
}
