//! Reading tensor data out, converting dtypes, moving devices, and the few in-place writes.

use super::Tensor;
use crate::storage::{CpuData, StorageElement};
use crate::{graph, DType, Device, Error, Result};
use half::{bf16, f16};
use kernels::elementwise::cast::{cast_bits, CastType};
use kernels::elementwise::cast_cuda;
use kernels::strided::copy_to_contiguous;

/// Apply `$body` to the typed vector/slice inside a `CpuData`, whatever its dtype.
macro_rules! map_cpu_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            CpuData::F32($v) => $body,
            CpuData::F64($v) => $body,
            CpuData::BF16($v) => $body,
            CpuData::F16($v) => $body,
            CpuData::I64($v) => $body,
            CpuData::Bool($v) => $body,
        }
    };
}

impl Tensor {
    /// Run `f` on this tensor's elements as one contiguous row-major slice, copying first only
    /// when the tensor is a non-contiguous view. Errors if `T` is not the tensor's dtype.
    pub(crate) fn with_slice<T: StorageElement, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        let guard = self.0.storage.read()?;
        let all = T::slice(&guard).ok_or(Error::DTypeMismatch {
            op: "read",
            dtypes: vec![self.dtype(), T::DTYPE],
        })?;
        if self.is_contiguous() {
            Ok(f(&all[self.0.offset..self.0.offset + self.numel()]))
        } else {
            let copy = copy_to_contiguous(all, &self.0.shape, &self.0.strides, self.0.offset);
            drop(guard);
            Ok(f(&copy))
        }
    }

    /// Read this tensor's elements as one row-major slice (copied first only if it is a
    /// non-contiguous view). For kernels outside this crate, such as the fused optimizer steps.
    /// Errors if `T` is not the tensor's dtype or the tensor is not on the CPU.
    pub fn with_data<T: StorageElement, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "with_data",
                dtypes: vec![self.dtype(), T::DTYPE],
            });
        }
        self.with_slice(f)
    }

    /// Write this tensor's elements in place through one row-major slice (every handle sharing
    /// the storage sees the change). For in-place kernels outside this crate, such as optimizer
    /// steps. The tensor must be contiguous, and not require gradient unless called under
    /// `no_grad` (the graph may have saved the old values).
    pub fn with_data_mut<T: StorageElement, R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R> {
        graph::ensure_untracked("with_data_mut", &[self])?;
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "with_data_mut",
                dtypes: vec![self.dtype(), T::DTYPE],
            });
        }
        if !self.is_contiguous() {
            return Err(Error::InvalidArgument {
                op: "with_data_mut",
                reason: format!(
                    "needs a contiguous tensor (shape {:?}, strides {:?})",
                    self.shape(),
                    self.strides()
                ),
            });
        }
        let mut guard = self.0.storage.write()?;
        let Some(all) = T::slice_mut(&mut guard) else {
            return Err(Error::DTypeMismatch {
                op: "with_data_mut",
                dtypes: vec![self.dtype(), T::DTYPE],
            });
        };
        Ok(f(&mut all[self.0.offset..self.0.offset + self.numel()]))
    }

    /// The raw storage slice and this tensor's layout, for kernels that walk strides themselves.
    pub(crate) fn with_strided<T: StorageElement, R>(
        &self,
        f: impl FnOnce(kernels::elementwise::cpu::Operand<T>) -> R,
    ) -> Result<R> {
        let guard = self.0.storage.read()?;
        let all = T::slice(&guard).ok_or(Error::DTypeMismatch {
            op: "read",
            dtypes: vec![self.dtype(), T::DTYPE],
        })?;
        Ok(f(kernels::elementwise::cpu::Operand {
            data: all,
            strides: &self.0.strides,
            offset: self.0.offset,
        }))
    }

    /// The elements in row-major order. `T` must be the tensor's dtype (`u8` for bool).
    pub fn to_vec<T: StorageElement>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "to_vec",
                dtypes: vec![self.dtype(), T::DTYPE],
            });
        }
        if self.cuda_data().is_some() {
            let data = self.cuda_download()?;
            return T::slice(&data).map(<[T]>::to_vec).ok_or(Error::DTypeMismatch {
                op: "to_vec",
                dtypes: vec![self.dtype(), T::DTYPE],
            });
        }
        self.with_slice(|s: &[T]| s.to_vec())
    }

    /// The elements converted to f64, whatever the dtype.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        if self.cuda_data().is_some() {
            let data = self.cuda_download()?;
            return Ok(map_cpu_data!(&data, v => v.iter().map(|x| crate::Element::to_f64(*x)).collect()));
        }
        let t = self.contiguous()?;
        let guard = t.0.storage.read()?;
        let range = t.0.offset..t.0.offset + t.numel();
        Ok(map_cpu_data!(&*guard, v => v[range].iter().map(|x| crate::Element::to_f64(*x)).collect()))
    }

    /// The single element of a one-element tensor, as f64 (`torch.Tensor.item`).
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::InvalidArgument {
                op: "item",
                reason: format!("needs exactly one element, shape is {:?}", self.shape()),
            });
        }
        Ok(self.to_vec_f64()?[0])
    }

    /// A contiguous tensor with the same values. Returns `self` when already contiguous. Keeps
    /// the graph identity: the values and shape are the same, so gradients are the same.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        if self.cuda_data().is_some() {
            return Ok(self.cuda_contiguous_copy()?.with_var(self.0.var.clone()));
        }
        let guard = self.0.storage.read()?;
        let (shape, strides, off) = (&self.0.shape, &self.0.strides, self.0.offset);
        let data =
            map_cpu_data!(&*guard, v => StorageElement::wrap(copy_to_contiguous(v, shape, strides, off)));
        drop(guard);
        Ok(Tensor::from_cpu_data(data, shape).with_var(self.0.var.clone()))
    }

    /// Convert to another dtype (`torch.Tensor.to(dtype)`). f32 <-> f64 is differentiable (the
    /// gradient is converted back to the input's dtype); converting a tensor that requires
    /// gradient to a storage-only or integer dtype is an error.
    ///
    /// Every pair of dtypes converts, on the CPU and on CUDA, with the same bits on both: floats
    /// round once to nearest even (subnormals kept, overflow to ±inf, NaN kept as NaN), floats
    /// become integers by truncation with saturation (NaN -> 0), anything becomes bool by
    /// `!= 0`. The contract and its edge cases are in `kernels::elementwise::cast`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let differentiable = self.dtype().is_compute_float() && dtype.is_compute_float();
        if !differentiable {
            graph::ensure_untracked("to_dtype", &[self])?;
        }
        let out = if self.cuda_data().is_some() {
            self.cuda_cast(dtype)?
        } else {
            self.cpu_cast(dtype)?
        };
        if !differentiable {
            return Ok(out);
        }
        let from = self.dtype();
        Ok(graph::record("to_dtype", &[self], out, move |g, _| {
            Ok(vec![Some(g.to_dtype(from)?)])
        }))
    }

    /// The CPU conversion: the reference `cast_bits`, element by element, on a row-major copy.
    fn cpu_cast(&self, dtype: DType) -> Result<Tensor> {
        fn convert<S: RawBits, D: RawBits>(src: &[S], from: CastType, to: CastType) -> Vec<D> {
            src.iter()
                .map(|&x| D::from_raw(cast_bits(from, to, x.raw())))
                .collect()
        }
        let (from, to) = (cast_type(self.dtype()), cast_type(dtype));
        let t = self.contiguous()?;
        let guard = t.0.storage.read()?;
        let range = t.0.offset..t.0.offset + t.numel();
        let data = map_cpu_data!(&*guard, v => {
            let src = &v[range];
            match dtype {
                DType::F32 => CpuData::F32(convert(src, from, to)),
                DType::F64 => CpuData::F64(convert(src, from, to)),
                DType::BF16 => CpuData::BF16(convert(src, from, to)),
                DType::F16 => CpuData::F16(convert(src, from, to)),
                DType::I64 => CpuData::I64(convert(src, from, to)),
                DType::Bool => CpuData::Bool(convert(src, from, to)),
            }
        });
        Ok(Tensor::from_cpu_data(data, self.shape()))
    }

    /// The CUDA conversion: cast.cu, reading a view through its strides, writing a new
    /// contiguous tensor.
    fn cuda_cast(&self, dtype: DType) -> Result<Tensor> {
        let (from, to) = (cast_type(self.dtype()), cast_type(dtype));
        let dev = self.cuda_dev()?;
        let out = Tensor::cuda_empty(self.shape(), dtype, self.device())?;
        let n = self.numel();
        let err = super::cuda::cuda_err("to_dtype");
        // SAFETY: `self` is a view inside its storage (a tensor's invariant), read from its
        // first element through its strides; `out` is new and holds n elements of `dtype`.
        unsafe {
            if self.is_contiguous() {
                cast_cuda::cast(&dev, from, to, self.cuda_ptr()?, out.cuda_ptr()?, n)
            } else {
                let layout =
                    kernels::cuda::Layout::new(self.shape(), &[(self.strides(), 0)]).map_err(&err)?;
                cast_cuda::cast_strided(&dev, from, to, &layout, self.cuda_ptr()?, out.cuda_ptr()?, n)
            }
        }
        .map_err(err)?;
        Ok(out)
    }

    /// Move to `device` (`torch.Tensor.to(device)`): a contiguous copy on the other device, or
    /// the same tensor when it is already there. Not recorded on the tape: move leaves first,
    /// then mark them (`x.to_device(d)?.set_requires_grad(true)`); moving a tensor that
    /// requires gradient is a `NoBackward` error rather than a silently cut graph.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        graph::ensure_untracked("to_device", &[self])?;
        let data = match self.device() {
            Device::Cpu => {
                let t = self.contiguous()?;
                let guard = t.0.storage.read()?;
                let range = t.0.offset..t.0.offset + t.numel();
                map_cpu_data!(&*guard, v => StorageElement::wrap(v[range].to_vec()))
            }
            Device::Cuda(_) => self.cuda_download()?,
        };
        match device {
            Device::Cpu => Ok(Tensor::from_cpu_data(data, self.shape())),
            Device::Cuda(_) => super::cuda::upload(&data, self.shape(), device),
        }
    }

    /// Overwrite this tensor's elements with `src`'s (same shape and dtype), in place
    /// (`torch.Tensor.copy_`). Every handle sharing the storage sees the change. Not allowed on
    /// tensors that require gradient: the graph may have saved the old values.
    pub fn copy_(&self, src: &Tensor) -> Result<()> {
        self.check_in_place("copy_", src)?;
        if self.cuda_data().is_some() {
            // Reading a view of the same storage while writing it would race inside the kernel.
            let src = if src.shares_storage_with(self) {
                src.cuda_contiguous_copy()?
            } else {
                src.clone()
            };
            return self.cuda_copy_from(&src);
        }
        let values = src.contiguous()?;
        let src_guard;
        let src_data: CpuData;
        // Copying a tensor onto itself (or an overlapping view) must read before writing.
        let src_ref = if values.shares_storage_with(self) {
            src_data = values.0.storage.read()?.clone();
            &src_data
        } else {
            src_guard = values.0.storage.read()?;
            &*src_guard
        };
        let mut guard = self.0.storage.write()?;
        let (shape, strides, off) = (self.0.shape.clone(), self.0.strides.clone(), self.0.offset);
        let n = self.numel();
        let so = values.0.offset;
        match (&mut *guard, src_ref) {
            (CpuData::F32(d), CpuData::F32(s)) => scatter(&s[so..so + n], d, &shape, &strides, off),
            (CpuData::F64(d), CpuData::F64(s)) => scatter(&s[so..so + n], d, &shape, &strides, off),
            (CpuData::BF16(d), CpuData::BF16(s)) => scatter(&s[so..so + n], d, &shape, &strides, off),
            (CpuData::F16(d), CpuData::F16(s)) => scatter(&s[so..so + n], d, &shape, &strides, off),
            (CpuData::I64(d), CpuData::I64(s)) => scatter(&s[so..so + n], d, &shape, &strides, off),
            (CpuData::Bool(d), CpuData::Bool(s)) => scatter(&s[so..so + n], d, &shape, &strides, off),
            _ => unreachable!("check_in_place compared dtypes"),
        }
        Ok(())
    }

    /// `self += alpha * other` in place (same shape, dtype f32/f64). The building block of
    /// plain SGD and of gradient accumulation.
    pub fn add_scaled_(&self, other: &Tensor, alpha: f64) -> Result<()> {
        self.check_in_place("add_scaled_", other)?;
        let other = if other.shares_storage_with(self) {
            other.deep_copy()?
        } else {
            other.contiguous()?
        };
        let this = if self.is_contiguous() {
            self.clone()
        } else {
            return self.copy_(&self.add(&other.mul_scalar(alpha)?)?);
        };
        if let Some(c) = this.cuda_data() {
            let dt = super::cuda::float_type("add_scaled_", self)?;
            // SAFETY: both contiguous with numel elements from their offsets.
            return unsafe {
                kernels::elementwise::cuda::axpy(
                    &c.dev,
                    dt,
                    this.cuda_ptr()?,
                    other.cuda_ptr()?,
                    this.numel(),
                    alpha as f32,
                )
            }
            .map_err(super::cuda::cuda_err("add_scaled_"));
        }
        let src = other.0.storage.read()?;
        let mut dst = this.0.storage.write()?;
        let (d0, s0, n) = (this.0.offset, other.0.offset, this.numel());
        match (&mut *dst, &*src) {
            (CpuData::F32(d), CpuData::F32(s)) => {
                let a = alpha as f32;
                kernels::elementwise::cpu::zip_apply(&mut d[d0..d0 + n], &s[s0..s0 + n], |x, y| x + a * y)
            }
            (CpuData::F64(d), CpuData::F64(s)) => {
                kernels::elementwise::cpu::zip_apply(&mut d[d0..d0 + n], &s[s0..s0 + n], |x, y| x + alpha * y)
            }
            _ => {
                return Err(Error::UnsupportedDType {
                    op: "add_scaled_",
                    dtype: self.dtype(),
                    expected: "f32 or f64",
                })
            }
        }
        Ok(())
    }

    /// A copy in new storage, untracked.
    pub(crate) fn deep_copy(&self) -> Result<Tensor> {
        if self.cuda_data().is_some() {
            return self.cuda_contiguous_copy();
        }
        let guard = self.0.storage.read()?;
        let (shape, strides, off) = (&self.0.shape, &self.0.strides, self.0.offset);
        let data =
            map_cpu_data!(&*guard, v => StorageElement::wrap(copy_to_contiguous(v, shape, strides, off)));
        Ok(Tensor::from_cpu_data(data, shape))
    }

    fn check_in_place(&self, op: &'static str, src: &Tensor) -> Result<()> {
        graph::ensure_untracked(op, &[self])?;
        if src.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op,
                shapes: vec![self.0.shape.clone(), src.0.shape.clone()],
                reason: "in-place ops need equal shapes".into(),
            });
        }
        if src.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                dtypes: vec![self.dtype(), src.dtype()],
            });
        }
        if self.0.strides.contains(&0) && self.numel() > 1 {
            return Err(Error::InvalidArgument {
                op,
                reason: "cannot write into an expanded view (several elements share memory)".into(),
            });
        }
        Ok(())
    }
}

fn scatter<T: Copy>(src: &[T], dst: &mut [T], shape: &[usize], strides: &[usize], offset: usize) {
    kernels::strided::copy_from_contiguous(src, dst, shape, strides, offset);
}

/// The conversion contract's name for a dtype.
fn cast_type(d: DType) -> CastType {
    match d {
        DType::F32 => CastType::F32,
        DType::F64 => CastType::F64,
        DType::BF16 => CastType::BF16,
        DType::F16 => CastType::F16,
        DType::I64 => CastType::I64,
        DType::Bool => CastType::Bool,
    }
}

/// An element's bits in the low bytes of a u64, as `cast_bits` takes and gives them.
trait RawBits: Copy {
    fn raw(self) -> u64;
    fn from_raw(bits: u64) -> Self;
}

macro_rules! raw_bits {
    ($t:ty, |$x:ident| $raw:expr, |$b:ident| $from:expr) => {
        impl RawBits for $t {
            fn raw(self) -> u64 {
                let $x = self;
                $raw
            }
            fn from_raw($b: u64) -> Self {
                $from
            }
        }
    };
}
raw_bits!(f32, |x| x.to_bits() as u64, |b| f32::from_bits(b as u32));
raw_bits!(f64, |x| x.to_bits(), |b| f64::from_bits(b));
raw_bits!(bf16, |x| x.to_bits() as u64, |b| bf16::from_bits(b as u16));
raw_bits!(f16, |x| x.to_bits() as u64, |b| f16::from_bits(b as u16));
raw_bits!(i64, |x| x as u64, |b| b as i64);
raw_bits!(u8, |x| x as u64, |b| b as u8);
