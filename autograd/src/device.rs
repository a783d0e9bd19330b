//! Where a tensor lives. Every tensor carries one; ops require their inputs to agree.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// The CUDA device with this ordinal. The CUDA backend arrives with issue 3; until then
    /// creating a tensor here is a `DeviceUnavailable` error, never a panic.
    Cuda(usize),
}

impl Device {
    /// The best device available to this process. CPU until the CUDA backend lands.
    pub fn best_available() -> Device {
        Device::Cpu
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
