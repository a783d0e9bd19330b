//! Tensor storage: one allocation shared by a tensor and all its views, with interior
//! mutability for the few in-place ops (gradient accumulation, optimizer updates).
//!
//! Every storage is counted in [`crate::memory`] while it lives, which is how the memory tests
//! show that training steps return to their baseline.

use crate::{memory, DType, Device, Element, Error, Result};
use half::{bf16, f16};
use kernels::cuda::{CudaDevice, DeviceBuffer};
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The buffer behind a CPU tensor, one variant per dtype.
#[derive(Clone, Debug)]
pub enum CpuData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
    I64(Vec<i64>),
    Bool(Vec<u8>),
}

impl CpuData {
    pub fn dtype(&self) -> DType {
        match self {
            CpuData::F32(_) => DType::F32,
            CpuData::F64(_) => DType::F64,
            CpuData::BF16(_) => DType::BF16,
            CpuData::F16(_) => DType::F16,
            CpuData::I64(_) => DType::I64,
            CpuData::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuData::F32(v) => v.len(),
            CpuData::F64(v) => v.len(),
            CpuData::BF16(v) => v.len(),
            CpuData::F16(v) => v.len(),
            CpuData::I64(v) => v.len(),
            CpuData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Moving typed vectors in and out of [`CpuData`].
pub trait StorageElement: Element {
    fn wrap(v: Vec<Self>) -> CpuData;
    fn slice(d: &CpuData) -> Option<&[Self]>;
    fn slice_mut(d: &mut CpuData) -> Option<&mut [Self]>;
}

macro_rules! storage_element {
    ($t:ty, $variant:ident) => {
        impl StorageElement for $t {
            fn wrap(v: Vec<Self>) -> CpuData {
                CpuData::$variant(v)
            }
            fn slice(d: &CpuData) -> Option<&[Self]> {
                match d {
                    CpuData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(d: &mut CpuData) -> Option<&mut [Self]> {
                match d {
                    CpuData::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
storage_element!(f32, F32);
storage_element!(f64, F64);
storage_element!(bf16, BF16);
storage_element!(f16, F16);
storage_element!(i64, I64);
storage_element!(u8, Bool);

/// The bytes behind a CUDA tensor: a pooled device buffer (returned to the device's pool when
/// the storage drops), its dtype and element count, and the device that owns it.
pub struct CudaData {
    pub buf: DeviceBuffer,
    pub dev: Arc<CudaDevice>,
    pub dtype: DType,
    pub len: usize,
}

impl CudaData {
    /// Device address of element `offset`.
    pub fn ptr_at(&self, offset: usize) -> u64 {
        self.buf.ptr() + (offset * self.dtype.size_in_bytes()) as u64
    }
}

impl fmt::Debug for CudaData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CudaData({:?}, {} x {})", self.dev, self.len, self.dtype)
    }
}

/// Where a storage's bytes are.
#[derive(Debug)]
enum Backing {
    Cpu(RwLock<CpuData>),
    /// Device memory needs no lock here: every access is a kernel on the device's one stream,
    /// which orders them, and in-place writes are refused on tracked tensors as on the CPU.
    Cuda(CudaData),
}

/// One counted allocation.
#[derive(Debug)]
pub struct Storage {
    backing: Backing,
    bytes: usize,
}

impl Storage {
    pub fn new(data: CpuData) -> Storage {
        let bytes = data.len() * data.dtype().size_in_bytes();
        memory::on_alloc(bytes);
        Storage {
            backing: Backing::Cpu(RwLock::new(data)),
            bytes,
        }
    }

    pub fn new_cuda(data: CudaData) -> Storage {
        let bytes = data.len * data.dtype.size_in_bytes();
        memory::on_alloc(bytes);
        Storage {
            backing: Backing::Cuda(data),
            bytes,
        }
    }

    /// The device buffer, for CUDA storages.
    pub fn cuda(&self) -> Option<&CudaData> {
        match &self.backing {
            Backing::Cuda(c) => Some(c),
            Backing::Cpu(_) => None,
        }
    }

    /// The CPU data. A CUDA storage is an error, never a silent copy: ops without a CUDA
    /// kernel end up here and report it.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, CpuData>> {
        match &self.backing {
            // A poisoned lock means a panic happened mid-write in another thread; the data is
            // still a valid buffer of the same length, so keep going rather than propagate it.
            Backing::Cpu(lock) => Ok(lock.read().unwrap_or_else(|e| e.into_inner())),
            Backing::Cuda(c) => Err(not_on_device(c)),
        }
    }

    pub fn write(&self) -> Result<RwLockWriteGuard<'_, CpuData>> {
        match &self.backing {
            Backing::Cpu(lock) => Ok(lock.write().unwrap_or_else(|e| e.into_inner())),
            Backing::Cuda(c) => Err(not_on_device(c)),
        }
    }
}

fn not_on_device(c: &CudaData) -> Error {
    Error::NotImplementedOnDevice {
        op: "this op",
        device: Device::Cuda(c.dev.ordinal()),
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        memory::on_free(self.bytes);
    }
}
