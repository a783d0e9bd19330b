//! The tensor side of the CUDA backend: finding a device, allocating outputs, moving data
//! between host and device, and the strided copies every CUDA op leans on.
//!
//! Ops dispatch on `x.device()`: the CPU branch reads slices as before, the CUDA branch takes
//! device addresses from [`Tensor::cuda_data`] and launches a kernel from
//! `kernels::elementwise::cuda` or `kernels::cuda::gemm` into an output from
//! [`Tensor::cuda_empty`]. Ops with no CUDA kernel fail with `NotImplementedOnDevice`.

use super::Tensor;
use crate::storage::{CpuData, CudaData, Storage};
use crate::{DType, Device, Error, Result, Shape};
use kernels::cuda::{CudaDevice, CudaError, FloatType, Layout};
use std::sync::Arc;

/// The registry's device for `device`, or `DeviceUnavailable` with the probe's reason.
pub(crate) fn cuda_device(device: Device) -> Result<Arc<CudaDevice>> {
    let Device::Cuda(i) = device else {
        return Err(Error::InvalidArgument {
            op: "cuda_device",
            reason: "not a CUDA device".into(),
        });
    };
    CudaDevice::get(i).map_err(|e| Error::DeviceUnavailable {
        device,
        reason: e.to_string(),
    })
}

/// A kernel or driver failure during `op`, as an error value.
pub(crate) fn cuda_err(op: &'static str) -> impl Fn(CudaError) -> Error {
    move |e| Error::InvalidArgument {
        op,
        reason: format!("CUDA: {e}"),
    }
}

/// The kernel element type of a dtype the CUDA ops compute in. Only f32 computes at the tensor
/// level (bf16 is storage, as on the CPU; the bf16 kernels are reached through `kernels`).
pub(crate) fn float_type(op: &'static str, t: &Tensor) -> Result<FloatType> {
    match t.dtype() {
        DType::F32 => Ok(FloatType::F32),
        DType::F64 => Err(Error::NotImplementedOnDevice {
            op,
            device: t.device(),
        }),
        other => Err(Error::UnsupportedDType {
            op,
            dtype: other,
            expected: "f32 (on CUDA)",
        }),
    }
}

/// Move CPU data to `device` as a new contiguous tensor.
pub(crate) fn upload(data: &CpuData, shape: &[usize], device: Device) -> Result<Tensor> {
    let dev = cuda_device(device)?;
    let buf = match data {
        CpuData::F32(v) => dev.upload(v),
        CpuData::F64(v) => dev.upload(v),
        CpuData::BF16(v) => dev.upload(v),
        CpuData::F16(v) => dev.upload(v),
        CpuData::I64(v) => dev.upload(v),
        CpuData::Bool(v) => dev.upload(v),
    }
    .map_err(cuda_err("to_device"))?;
    let cuda = CudaData {
        buf,
        dev,
        dtype: data.dtype(),
        len: data.len(),
    };
    Ok(Tensor::from_storage(
        Storage::new_cuda(cuda),
        shape,
        data.dtype(),
        device,
    ))
}

impl Tensor {
    /// The device buffer and device, for CUDA tensors.
    pub(crate) fn cuda_data(&self) -> Option<&CudaData> {
        self.0.storage.cuda()
    }

    /// Device address of this tensor's first element (its offset applied).
    pub(crate) fn cuda_ptr(&self) -> Result<u64> {
        let c = self.cuda_data().ok_or(Error::InvalidArgument {
            op: "cuda_ptr",
            reason: "the tensor is not on a CUDA device (a bug in the caller)".into(),
        })?;
        Ok(c.ptr_at(self.0.offset))
    }

    /// The device handle of a CUDA tensor.
    pub(crate) fn cuda_dev(&self) -> Result<Arc<CudaDevice>> {
        match self.cuda_data() {
            Some(c) => Ok(c.dev.clone()),
            None => cuda_device(self.device()),
        }
    }

    /// A new contiguous, uninitialized (poisoned in tests) CUDA tensor.
    pub(crate) fn cuda_empty(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        let dev = cuda_device(device)?;
        let len: usize = shape.iter().product();
        let buf = dev
            .alloc(len * dtype.size_in_bytes())
            .map_err(cuda_err("alloc"))?;
        let cuda = CudaData { buf, dev, dtype, len };
        Ok(Tensor::from_storage(
            Storage::new_cuda(cuda),
            shape,
            dtype,
            device,
        ))
    }

    /// A contiguous copy in new device memory, whatever this CUDA tensor's layout.
    pub(crate) fn cuda_contiguous_copy(&self) -> Result<Tensor> {
        let out = Tensor::cuda_empty(self.shape(), self.dtype(), self.device())?;
        out.cuda_copy_from(self)?;
        Ok(out)
    }

    /// Write `src`'s elements (any layout, same shape, dtype and device) into this tensor's
    /// view, with the strided-copy kernel.
    pub(crate) fn cuda_copy_from(&self, src: &Tensor) -> Result<()> {
        let dev = self.cuda_dev()?;
        let layout = Layout::new(self.shape(), &[(src.strides(), 0), (self.strides(), 0)])
            .map_err(cuda_err("copy"))?;
        // SAFETY: both views lie inside their storages (a tensor's invariant); the offsets are
        // applied to the base addresses.
        unsafe {
            kernels::elementwise::cuda::copy_strided(
                &dev,
                self.dtype().size_in_bytes(),
                &layout,
                src.cuda_ptr()?,
                self.cuda_ptr()?,
                self.numel(),
            )
        }
        .map_err(cuda_err("copy"))
    }

    /// This CUDA tensor's elements on the host, in row-major order.
    pub(crate) fn cuda_download(&self) -> Result<CpuData> {
        let t = if self.is_contiguous() {
            self.clone()
        } else {
            self.cuda_contiguous_copy()?
        };
        let c = t.cuda_data().ok_or(Error::InvalidArgument {
            op: "to_device",
            reason: "not a CUDA tensor".into(),
        })?;
        let n = t.numel();
        let at = t.0.offset * t.dtype().size_in_bytes();
        macro_rules! get {
            ($variant:ident, $T:ty) => {{
                let mut v = vec![<$T>::default(); n];
                c.dev
                    .copy_to_host(&c.buf, at, &mut v)
                    .map_err(cuda_err("to_device"))?;
                CpuData::$variant(v)
            }};
        }
        Ok(match t.dtype() {
            DType::F32 => get!(F32, f32),
            DType::F64 => get!(F64, f64),
            DType::BF16 => get!(BF16, half::bf16),
            DType::F16 => get!(F16, half::f16),
            DType::I64 => get!(I64, i64),
            DType::Bool => get!(Bool, u8),
        })
    }

    /// A tensor owning `storage`, contiguous with `shape`.
    pub(crate) fn from_storage(storage: Storage, shape: &[usize], dtype: DType, device: Device) -> Tensor {
        Tensor(Arc::new(super::Inner {
            storage: Arc::new(storage),
            strides: Shape::from_vec(kernels::strided::contiguous_strides(shape)),
            shape: Shape::from_slice(shape),
            offset: 0,
            dtype,
            device,
            var: None,
        }))
    }
}

impl Tensor {
    /// The device and the address of the first element of a contiguous CUDA tensor, for
    /// kernels outside this crate that update tensors in place (the fused optimizer steps of
    /// `nn`). Writing through the address bypasses the tape, as `with_data_mut` does on the
    /// CPU; the caller must keep the tensor alive until its launches are issued.
    pub fn cuda_raw_parts(&self) -> Result<(Arc<CudaDevice>, u64)> {
        if !self.is_contiguous() {
            return Err(Error::InvalidArgument {
                op: "cuda_raw_parts",
                reason: format!("needs a contiguous tensor (shape {:?})", self.shape()),
            });
        }
        Ok((self.cuda_dev()?, self.cuda_ptr()?))
    }
}
