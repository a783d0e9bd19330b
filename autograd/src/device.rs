//! Where a tensor lives. Every tensor carries one; ops require their inputs to agree.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// The CUDA device with this ordinal. Where there is no such GPU (or no driver), creating
    /// a tensor here is a `DeviceUnavailable` error carrying the probe's reason, never a panic.
    Cuda(usize),
}

impl Device {
    /// The best device available to this process: CUDA device 0 when it can be opened,
    /// otherwise the CPU.
    pub fn best_available() -> Device {
        match kernels::cuda::CudaDevice::get(0) {
            Ok(_) => Device::Cuda(0),
            Err(_) => Device::Cpu,
        }
    }

    /// Why `Device::Cuda(0)` cannot be used, or `None` when it can. For tests that skip.
    pub fn cuda_unavailable_reason() -> Option<String> {
        kernels::cuda::CudaDevice::get(0).err().map(|e| e.to_string())
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
