//! The one-word error flag of `loss.cu` and `index.cu`: the host sets it to `u64::MAX`, a
//! kernel that meets a bad index or target does `atomicMin(flag, position)`, and the host reads
//! back the smallest bad position (the CPU's "first offender").

use super::device::{CudaDevice, DeviceBuffer};
use super::error::CudaError;

/// The value a flag holds when no kernel wrote to it.
pub const NO_ERROR: u64 = u64::MAX;

/// A device word holding [`NO_ERROR`] until a kernel flags a position.
pub struct ErrorFlag {
    buf: DeviceBuffer,
}

impl ErrorFlag {
    /// A fresh flag (one 8-byte upload).
    pub fn new(dev: &CudaDevice) -> Result<ErrorFlag, CudaError> {
        Ok(ErrorFlag {
            buf: dev.upload(&[NO_ERROR])?,
        })
    }

    /// The device address to pass as the kernels' `error` argument.
    pub fn ptr(&self) -> u64 {
        self.buf.ptr()
    }

    /// The smallest flagged position, if any. Waits for the work queued before it (a host
    /// round trip: the price of reporting a bad index as an error value).
    pub fn read(&self, dev: &CudaDevice) -> Result<Option<u64>, CudaError> {
        let mut v = [0u64];
        dev.copy_to_host(&self.buf, 0, &mut v)?;
        Ok((v[0] != NO_ERROR).then_some(v[0]))
    }
}
