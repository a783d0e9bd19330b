//! The machine's ceilings, measured in the same run as the kernels: a large copy for bandwidth
//! (one thread and all threads on the CPU; a device-to-device copy on a GPU) and a large f32
//! GEMM for compute (our best CPU GEMM, `kernels::matmul::gemm`; cuBLAS on a GPU, plus a bf16
//! GEMM for the tensor-core figure). A copy counts read + write (STREAM's convention), so the
//! rows' "bytes moved", which also count reads and writes, compare with it directly.
//!
//! Two choices keep the roof a roof, so that no kernel shows more than 100% of it:
//! * A ceiling's rate is taken at its **fastest** run (STREAM reports best rates too): a ceiling
//!   says what the machine can do, and on a shared machine the median says what it did while
//!   others were busy. The kernels' rows keep the median.
//! * On a CPU, a plain copy under-reports bandwidth: its destination lines are read before they
//!   are written (write-allocate), traffic the "read + write" count leaves out, while in-place
//!   updates such as an optimizer step pay no such read. So the CPU also measures a read-only
//!   sum and an in-place update `a += s·b`, and the roof is the best of the bandwidth ceilings.

use std::time::Duration;

use autograd::Device;
use kernels::matmul::{gemm, MatRef};
use serde::Serialize;

use super::cases::Scale;
use super::timing::{measure, Plan, Timing};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Bytes per second.
    Bandwidth,
    /// FLOPs per second.
    Compute,
}

#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    pub name: String,
    pub kind: Kind,
    /// Bytes/s or FLOP/s at the fastest run.
    pub rate: f64,
    pub timing: Timing,
    /// Whether the roofline (and the rows' fraction of it) uses this ceiling.
    pub roof: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Ceilings {
    pub measured: Vec<Ceiling>,
    /// `(ceiling, why it was not measured)`.
    pub skipped: Vec<(String, String)>,
}

impl Ceilings {
    fn roof(&self, kind: Kind) -> Option<f64> {
        self.measured
            .iter()
            .filter(|c| c.kind == kind && c.roof)
            .map(|c| c.rate)
            .reduce(f64::max)
    }

    /// Whether `c` is the ceiling the roofline draws (the best eligible one of its kind).
    pub fn is_roof(&self, c: &Ceiling) -> bool {
        c.roof && self.roof(c.kind) == Some(c.rate)
    }

    /// The roofline's bandwidth, bytes/s.
    pub fn bandwidth(&self) -> Option<f64> {
        self.roof(Kind::Bandwidth)
    }

    /// The roofline's compute peak, FLOP/s.
    pub fn compute(&self) -> Option<f64> {
        self.roof(Kind::Compute)
    }

    /// The attainable rate at `intensity` FLOP/byte: min(bandwidth·I, peak).
    pub fn attainable(&self, intensity: f64) -> Option<f64> {
        Some((self.bandwidth()? * intensity).min(self.compute()?))
    }

    fn push(&mut self, name: &str, kind: Kind, work: f64, roof: bool, timing: Result<Timing, String>) {
        match timing {
            Ok(timing) => self.measured.push(Ceiling {
                name: name.into(),
                kind,
                rate: work / timing.min_s,
                timing,
                roof,
            }),
            Err(e) => self.skipped.push((name.into(), e)),
        }
    }
}

fn plan(scale: Scale) -> Plan {
    Plan {
        warmup_runs: 2,
        min_runs: scale.pick(10, 5, 2),
        max_runs: 50,
        budget: Duration::from_millis(scale.pick(2000, 400, 0)),
    }
}

/// Sum with 16 independent accumulators, so the loop is bound by loads, not by the latency of
/// one chain of dependent adds (which would cap it at one element per add latency).
fn sum_lanes(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Nonzero values (a copy or GEMM of zeros can be special-cased by hardware or libraries).
fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| 1.0 + (i % 1021) as f32 * 1e-3).collect()
}

pub fn measure_cpu(scale: Scale, threads: usize) -> Ceilings {
    let mut c = Ceilings::default();
    let plan = plan(scale);
    let n = scale.pick(64 << 20, 32 << 20, 1 << 18); // f32 elements: 256 / 128 MiB / 1 MiB
    let src = ramp(n);
    let mut dst = vec![0.0f32; n];
    let bytes = 2.0 * 4.0 * n as f64;
    let one = measure(&plan, Device::Cpu, |_| {
        dst.copy_from_slice(std::hint::black_box(&src));
        Ok(())
    });
    c.push("copy, 1 thread", Kind::Bandwidth, bytes, true, one);
    if threads > 1 {
        let chunk = n.div_ceil(threads);
        let all = measure(&plan, Device::Cpu, |_| {
            std::thread::scope(|s| {
                for (d, src) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                    s.spawn(move || d.copy_from_slice(src));
                }
            });
            Ok(())
        });
        c.push(
            &format!("copy, {threads} threads"),
            Kind::Bandwidth,
            bytes,
            true,
            all,
        );
    }
    // Read-only: every thread sums its chunk (4 bytes per element).
    let chunk = n.div_ceil(threads.max(1));
    let read = measure(&plan, Device::Cpu, |_| {
        let total: f32 = std::thread::scope(|s| {
            let parts: Vec<_> = src.chunks(chunk).map(|c| s.spawn(move || sum_lanes(c))).collect();
            parts.into_iter().map(|p| p.join().unwrap_or(0.0)).sum()
        });
        std::hint::black_box(total);
        Ok(())
    });
    c.push(
        &format!("read (sum), {threads} thread(s)"),
        Kind::Bandwidth,
        4.0 * n as f64,
        true,
        read,
    );
    // In place: a += s·b reads a and b and writes a (12 bytes per element, no write-allocate).
    let update = measure(&plan, Device::Cpu, |_| {
        std::thread::scope(|s| {
            for (a, b) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || a.iter_mut().zip(b).for_each(|(a, &b)| *a += 1e-7 * b));
            }
        });
        Ok(())
    });
    c.push(
        &format!("update in place a += s·b, {threads} thread(s)"),
        Kind::Bandwidth,
        12.0 * n as f64,
        true,
        update,
    );
    drop((src, dst));
    let m = scale.pick(2048, 1024, 64);
    let (a, b) = (ramp(m * m), ramp(m * m));
    let mut out = vec![0.0f32; m * m];
    let t = measure(&plan, Device::Cpu, |_| {
        let (a, b) = (MatRef::row_major(&a, m, m), MatRef::row_major(&b, m, m));
        gemm(a, b, &mut out, false).map_err(|e| e.to_string())
    });
    let name = format!("f32 GEMM {m}³ ({})", kernels::matmul::kernel_name::<f32>());
    c.push(
        &name,
        Kind::Compute,
        kernels::matmul::cost::flops(m, m, m, 1),
        true,
        t,
    );
    c
}

/// The GPU's ceilings: device copy, cuBLAS f32 and bf16 GEMM.
pub fn measure_cuda(scale: Scale, ordinal: usize) -> Ceilings {
    let mut c = Ceilings::default();
    let dev = match kernels::cuda::CudaDevice::get(ordinal) {
        Ok(d) if d.is_emulated() => {
            c.skipped.push((
                "cuda ceilings".into(),
                "host emulator: timings meaningless".into(),
            ));
            return c;
        }
        Ok(d) => d,
        Err(e) => {
            c.skipped.push(("cuda ceilings".into(), e.to_string()));
            return c;
        }
    };
    let plan = plan(scale);
    let device = Device::Cuda(ordinal);
    let n = scale.pick(256 << 20, 64 << 20, 1 << 20); // f32 elements: 1 GiB / 256 MiB / 4 MiB
    let copy = (|| {
        let src = dev.upload(&ramp(n)).map_err(|e| e.to_string())?;
        let dst = dev.alloc(4 * n).map_err(|e| e.to_string())?;
        measure(&plan, device, |_| {
            dev.copy_device(&src, 0, &dst, 0, 4 * n)
                .map_err(|e| e.to_string())
        })
    })();
    c.push("device copy", Kind::Bandwidth, 8.0 * n as f64, true, copy);
    let m = scale.pick(8192, 4096, 256);
    for (dtype, name, roof) in [
        (kernels::cuda::FloatType::F32, "cuBLAS f32 GEMM", true),
        (kernels::cuda::FloatType::BF16, "cuBLAS bf16 GEMM", false),
    ] {
        let t = cublas_gemm(&dev, &plan, device, dtype, m);
        c.push(
            &format!("{name} {m}³"),
            Kind::Compute,
            kernels::matmul::cost::flops(m, m, m, 1),
            roof,
            t,
        );
    }
    c
}

fn cublas_gemm(
    dev: &kernels::cuda::CudaDevice,
    plan: &Plan,
    device: Device,
    dtype: kernels::cuda::FloatType,
    m: usize,
) -> Result<Timing, String> {
    use kernels::cuda::{FloatType, GemmOperand, GemmPrecision};
    let e = |e: kernels::cuda::CudaError| e.to_string();
    let values = ramp(m * m);
    let upload = |v: &[f32]| match dtype {
        FloatType::F32 => dev.upload(v),
        // bf16 = the top half of the f32 bits (truncation is fine for timing data).
        FloatType::BF16 => dev.upload(&v.iter().map(|x| (x.to_bits() >> 16) as u16).collect::<Vec<_>>()),
    };
    let (a, b) = (upload(&values).map_err(e)?, upload(&values).map_err(e)?);
    let c = dev.alloc(m * m * dtype.size_in_bytes()).map_err(e)?;
    let blas = dev.blas().map_err(e)?;
    let op = |ptr| GemmOperand {
        ptr,
        row_stride: m,
        col_stride: 1,
        batch_stride: 0,
    };
    measure(plan, device, |_| {
        // SAFETY: a, b and c are live buffers of this device holding m × m elements of dtype.
        let done = unsafe {
            blas.gemm(
                dtype,
                GemmPrecision::F32,
                m,
                m,
                m,
                1,
                op(a.ptr()),
                op(b.ptr()),
                c.ptr(),
            )
        };
        match done.map_err(e)? {
            true => Ok(()),
            false => Err("cuBLAS rejected the layout".into()),
        }
    })
}
