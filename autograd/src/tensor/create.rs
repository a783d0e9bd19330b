//! Creating tensors.

use super::Tensor;
use crate::storage::{CpuData, StorageElement};
use crate::{DType, Device, Error, Result};
use half::{bf16, f16};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, StandardUniform};

/// Fail early (before any work) for a CUDA device that cannot be opened, with the probe's
/// reason.
fn check_device(device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda(_) => super::cuda::cuda_device(device).map(|_| ()),
    }
}

/// A new contiguous tensor holding `data`, on `device` (built on the host, then copied over).
fn place(data: CpuData, shape: &[usize], device: Device) -> Result<Tensor> {
    match device {
        Device::Cpu => Ok(Tensor::from_cpu_data(data, shape)),
        Device::Cuda(_) => super::cuda::upload(&data, shape, device),
    }
}

fn filled(value: f64, n: usize, dtype: DType) -> CpuData {
    match dtype {
        DType::F32 => CpuData::F32(vec![value as f32; n]),
        DType::F64 => CpuData::F64(vec![value; n]),
        DType::BF16 => CpuData::BF16(vec![bf16::from_f64(value); n]),
        DType::F16 => CpuData::F16(vec![f16::from_f64(value); n]),
        DType::I64 => CpuData::I64(vec![value as i64; n]),
        DType::Bool => CpuData::Bool(vec![(value != 0.0) as u8; n]),
    }
}

/// Build a `CpuData` of `dtype` from f64 values (used by the random and range constructors).
pub(crate) fn from_f64s(values: Vec<f64>, dtype: DType) -> CpuData {
    match dtype {
        DType::F64 => CpuData::F64(values),
        DType::F32 => CpuData::F32(values.into_iter().map(|v| v as f32).collect()),
        DType::BF16 => CpuData::BF16(values.into_iter().map(bf16::from_f64).collect()),
        DType::F16 => CpuData::F16(values.into_iter().map(f16::from_f64).collect()),
        DType::I64 => CpuData::I64(values.into_iter().map(|v| v as i64).collect()),
        DType::Bool => CpuData::Bool(values.into_iter().map(|v| (v != 0.0) as u8).collect()),
    }
}

impl Tensor {
    /// A tensor owning `data` with `shape` (row-major). `torch.tensor(data).reshape(shape)`.
    pub fn from_vec<T: StorageElement>(data: Vec<T>, shape: &[usize], device: Device) -> Result<Tensor> {
        check_device(device)?;
        if data.len() != shape.iter().product::<usize>() {
            return Err(Error::DataLength {
                op: "from_vec",
                len: data.len(),
                shape: shape.into(),
            });
        }
        place(T::wrap(data), shape, device)
    }

    /// A rank-0 tensor.
    pub fn scalar(value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(&[], value, dtype, device)
    }

    pub fn full(shape: &[usize], value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        check_device(device)?;
        place(filled(value, shape.iter().product(), dtype), shape, device)
    }

    pub fn zeros(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype, device)
    }

    pub fn ones(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype, device)
    }

    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape(), self.dtype(), self.device())
    }

    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape(), self.dtype(), self.device())
    }

    pub fn full_like(&self, value: f64) -> Result<Tensor> {
        Tensor::full(self.shape(), value, self.dtype(), self.device())
    }

    /// `start, start + step, ...` up to but excluding `end` (`torch.arange`).
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType, device: Device) -> Result<Tensor> {
        check_device(device)?;
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::InvalidArgument {
                op: "arange",
                reason: format!(
                    "needs finite start/end and a non-zero finite step, got {start}..{end} by {step}"
                ),
            });
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let values: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        place(from_f64s(values, dtype), &[n], device)
    }

    /// Uniform samples in `[0, 1)` from the caller's RNG (seed it for reproducibility).
    pub fn rand<R: Rng + ?Sized>(
        shape: &[usize],
        dtype: DType,
        device: Device,
        rng: &mut R,
    ) -> Result<Tensor> {
        Tensor::sample(shape, dtype, device, rng, StandardUniform, "rand")
    }

    /// Standard normal samples from the caller's RNG.
    pub fn randn<R: Rng + ?Sized>(
        shape: &[usize],
        dtype: DType,
        device: Device,
        rng: &mut R,
    ) -> Result<Tensor> {
        Tensor::sample(shape, dtype, device, rng, StandardNormal, "randn")
    }

    /// Uniform samples in `[low, high)`.
    pub fn rand_uniform<R: Rng + ?Sized>(
        shape: &[usize],
        low: f64,
        high: f64,
        dtype: DType,
        device: Device,
        rng: &mut R,
    ) -> Result<Tensor> {
        let dist = rand_distr::Uniform::new(low, high).map_err(|e| Error::InvalidArgument {
            op: "rand_uniform",
            reason: format!("{low}..{high}: {e}"),
        })?;
        Tensor::sample(shape, dtype, device, rng, dist, "rand_uniform")
    }

    fn sample<R: Rng + ?Sized, D: Distribution<f64>>(
        shape: &[usize],
        dtype: DType,
        device: Device,
        rng: &mut R,
        dist: D,
        op: &'static str,
    ) -> Result<Tensor> {
        check_device(device)?;
        if !dtype.is_float() {
            return Err(Error::UnsupportedDType {
                op,
                dtype,
                expected: "a float dtype",
            });
        }
        let n: usize = shape.iter().product();
        let values: Vec<f64> = (0..n).map(|_| dist.sample(rng)).collect();
        place(from_f64s(values, dtype), shape, device)
    }
}
