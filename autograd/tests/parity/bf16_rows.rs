//! bf16 kernels of the row families (bf16 storage, f32 math) through `kernels`, against f32
//! CPU formulas on the same bf16 inputs: reductions, softmax (forward and backward), layer and
//! RMS norm forward, cross-entropy and squared error, index_select, and dropout / its mask /
//! uniform draws (these three bit-exact).
//!
//! Tolerance 1e-2 relative (as bf16.rs: two bf16 ulps), with an absolute floor of 1e-2 of the
//! output's largest magnitude for values that cancel toward 0 (a softmax gradient, a centred
//! norm output), where one bf16 rounding of the inputs already moves the result by that much.

use super::common::*;
use half::bf16;
use kernels::cuda::{CudaDevice, DeviceBuffer, FloatType};
use std::sync::Arc;

const BF16_RTOL: f64 = 1e-2;
const BF16_FLOOR: f64 = 1e-2;
const BF: FloatType = FloatType::BF16;

fn device() -> Option<Arc<CudaDevice>> {
    cuda_or_skip("bf16 row kernels")?;
    CudaDevice::get(0).ok()
}

fn inputs(n: usize, seed: u64) -> Vec<bf16> {
    random(&[n], Domain::Normal, &mut rng(seed))
        .to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(bf16::from_f32)
        .collect()
}

fn f32s(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

fn down_bf16(dev: &CudaDevice, buf: &DeviceBuffer, n: usize) -> Vec<f64> {
    let mut out = vec![bf16::ZERO; n];
    dev.copy_to_host(buf, 0, &mut out).expect("download");
    out.iter().map(|v| v.to_f64()).collect()
}

fn down_f32(dev: &CudaDevice, buf: &DeviceBuffer, n: usize) -> Vec<f64> {
    let mut out = vec![0f32; n];
    dev.copy_to_host(buf, 0, &mut out).expect("download");
    out.iter().map(|&v| v as f64).collect()
}

fn close(what: &str, cpu: &[f32], gpu: &[f64]) {
    let cpu: Vec<f64> = cpu.iter().map(|&v| bf16::from_f32(v).to_f64()).collect();
    let scale = cpu
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(what, &cpu, gpu, BF16_RTOL, BF16_FLOOR * scale);
}

/// `[rows, n]` shapes in warp and block mode.
const SHAPES: [(usize, usize); 4] = [(1, 1), (3, 33), (9, 1000), (2, 4097)];

#[test]
fn bf16_reductions_and_softmax() {
    use kernels::reduce::cuda::{rows as reduce_rows, RowReduce};
    let Some(dev) = device() else { return };
    for (rows, n) in SHAPES {
        let x = inputs(rows * n, (rows * n) as u64);
        let xf = f32s(&x);
        let xd = dev.upload(&x).unwrap();
        let out = dev.alloc(rows * 2).unwrap();
        let row = |r: usize| &xf[r * n..(r + 1) * n];
        for op in [
            RowReduce::Sum,
            RowReduce::Max,
            RowReduce::Min,
            RowReduce::LogSumExp,
            RowReduce::Var { correction: 0 },
        ] {
            let cpu: Vec<f32> = (0..rows)
                .map(|r| match op {
                    RowReduce::Sum => kernels::reduce::cpu::sum(row(r)),
                    RowReduce::Max => kernels::reduce::cpu::max(row(r)),
                    RowReduce::Min => kernels::reduce::cpu::min(row(r)),
                    RowReduce::LogSumExp => kernels::reduce::cpu::logsumexp(row(r)),
                    RowReduce::Var { .. } => kernels::reduce::cpu::var(row(r), 0),
                })
                .collect();
            // SAFETY: x holds rows·n bf16, out rows.
            unsafe { reduce_rows(&dev, op, BF, xd.ptr(), out.ptr(), rows, n) }.unwrap();
            close(
                &format!("{op:?} bf16 [{rows}, {n}]"),
                &cpu,
                &down_bf16(&dev, &out, rows),
            );
        }
        let g = inputs(rows * n, 99);
        let gd = dev.upload(&g).unwrap();
        let (y, dx) = (dev.alloc(rows * n * 2).unwrap(), dev.alloc(rows * n * 2).unwrap());
        for log in [false, true] {
            let y_cpu = if log {
                kernels::softmax::cpu::log_softmax(&xf, n)
            } else {
                kernels::softmax::cpu::softmax(&xf, n)
            };
            unsafe { kernels::softmax::cuda::forward(&dev, log, BF, xd.ptr(), y.ptr(), rows, n) }.unwrap();
            let y_gpu = down_bf16(&dev, &y, rows * n);
            close(&format!("softmax log={log} bf16 [{rows}, {n}]"), &y_cpu, &y_gpu);
            // The backward from the GPU's own bf16 y, as autograd would feed it.
            let y_bf: Vec<f32> = y_gpu.iter().map(|&v| v as f32).collect();
            let dx_cpu = if log {
                kernels::softmax::cpu::log_softmax_backward(&y_bf, &f32s(&g), n)
            } else {
                kernels::softmax::cpu::softmax_backward(&y_bf, &f32s(&g), n)
            };
            unsafe { kernels::softmax::cuda::backward(&dev, log, BF, y.ptr(), gd.ptr(), dx.ptr(), rows, n) }
                .unwrap();
            close(
                &format!("softmax backward log={log} bf16 [{rows}, {n}]"),
                &dx_cpu,
                &down_bf16(&dev, &dx, rows * n),
            );
        }
    }
}

#[test]
fn bf16_norms_losses_index_select() {
    use kernels::norm::cuda::NormBuffers;
    let Some(dev) = device() else { return };
    for (rows, n) in SHAPES {
        let x = inputs(rows * n, 7 + n as u64);
        let w = inputs(n, 8);
        let (xf, wf) = (f32s(&x), f32s(&w));
        let (xd, wd) = (dev.upload(&x).unwrap(), dev.upload(&w).unwrap());
        let y = dev.alloc(rows * n * 2).unwrap();
        let (mean, rstd) = (dev.alloc(rows * 4).unwrap(), dev.alloc(rows * 4).unwrap());
        for rms in [false, true] {
            let b = NormBuffers {
                x: xd.ptr(),
                weight: wd.ptr(),
                bias: 0,
                mean: if rms { 0 } else { mean.ptr() },
                rstd: rstd.ptr(),
            };
            unsafe { kernels::norm::cuda::forward(&dev, rms, BF, b, y.ptr(), rows, n, 1e-5) }.unwrap();
            let cpu = if rms {
                kernels::norm::cpu::rms_norm(&xf, n, Some(&wf), 1e-5).y
            } else {
                kernels::norm::cpu::layer_norm(&xf, n, Some(&wf), None, 1e-5).y
            };
            close(
                &format!("norm rms={rms} bf16 [{rows}, {n}]"),
                &cpu,
                &down_bf16(&dev, &y, rows * n),
            );
        }
        // Cross-entropy on bf16 logits: f32 loss per row.
        let targets: Vec<i64> = (0..rows).map(|r| ((r * 7919) % n) as i64).collect();
        let td = dev.upload(&targets).unwrap();
        let (loss, lse) = (dev.alloc(rows * 4).unwrap(), dev.alloc(rows * 4).unwrap());
        unsafe {
            kernels::loss::cuda::cross_entropy_forward(
                &dev,
                BF,
                xd.ptr(),
                td.ptr(),
                loss.ptr(),
                lse.ptr(),
                rows,
                n,
                0,
            )
        }
        .unwrap();
        let cpu = kernels::loss::cpu::cross_entropy(&xf, &targets, n).loss;
        close(
            &format!("cross_entropy bf16 [{rows}, {n}]"),
            &cpu,
            &down_f32(&dev, &loss, rows),
        );
        // Squared error of x against itself shifted by a row.
        let total = rows * n;
        let t = inputs(total, 11);
        let tdv = dev.upload(&t).unwrap();
        let e = dev.alloc(total * 2).unwrap();
        unsafe { kernels::loss::cuda::squared_error_forward(&dev, BF, xd.ptr(), tdv.ptr(), e.ptr(), total) }
            .unwrap();
        let cpu = kernels::loss::cpu::squared_error(&xf, &f32s(&t));
        close(
            &format!("squared_error bf16 {total}"),
            &cpu,
            &down_bf16(&dev, &e, total),
        );
        // index_select copies bits: exact.
        let idx: Vec<i64> = (0..5).map(|j| ((j * 31) % rows) as i64).collect();
        let idd = dev.upload(&idx).unwrap();
        let out = dev.alloc(5 * n * 2).unwrap();
        let d = kernels::index::cuda::SelectDims {
            outer: 1,
            size: rows,
            inner: n,
            nidx: 5,
        };
        unsafe { kernels::index::cuda::index_select(&dev, BF, xd.ptr(), idd.ptr(), out.ptr(), d, 0) }
            .unwrap();
        let cpu: Vec<f64> = idx
            .iter()
            .flat_map(|&i| x[i as usize * n..(i as usize + 1) * n].iter().map(|v| v.to_f64()))
            .collect();
        assert_eq!(
            cpu,
            down_bf16(&dev, &out, 5 * n),
            "index_select bf16 [{rows}, {n}]"
        );
    }
}

/// Dropout's mask, its bf16 and f32 outputs and the uniform draws are integer functions of
/// (seed, offset, i): equal bit for bit to the CPU reference.
#[test]
fn dropout_mask_bf16_and_uniform_are_bit_exact() {
    use kernels::random::{cuda as kd, dropout as cpu, launch::DropoutArgs, philox};
    let Some(dev) = device() else { return };
    for n in [1, 3, 31, 33, 1000, 4097, 70_001] {
        for (p, seed, offset) in [(0.1, 5u64, 0u64), (0.5, u64::MAX, 3), (0.9, 1, u64::MAX - 1)] {
            let mask = dev.alloc(n).unwrap();
            unsafe { kd::dropout_mask(&dev, mask.ptr(), n, seed, offset, p) }.unwrap();
            let mut got = vec![0u8; n];
            dev.copy_to_host(&mask, 0, &mut got).unwrap();
            assert_eq!(got, cpu::keep_mask(seed, offset, p, n), "mask n={n} p={p}");
            let x = inputs(n, n as u64);
            let xd = dev.upload(&x).unwrap();
            let y = dev.alloc(n * 2).unwrap();
            unsafe { kd::dropout(&dev, BF, xd.ptr(), y.ptr(), n, seed, offset, p) }.unwrap();
            let scale = DropoutArgs::new(p).scale_bf16;
            let expect: Vec<f64> = x
                .iter()
                .zip(cpu::keep_mask(seed, offset, p, n))
                .map(|(v, k)| {
                    if k == 1 {
                        bf16::from_f32(v.to_f32() * scale).to_f64()
                    } else {
                        0.0
                    }
                })
                .collect();
            assert_eq!(down_bf16(&dev, &y, n), expect, "dropout bf16 n={n} p={p}");
        }
        let u = dev.alloc(n * 4).unwrap();
        unsafe { kd::uniform_f32(&dev, u.ptr(), n, 9, 4) }.unwrap();
        let mut expect = vec![0f32; n];
        philox::fill_uniform_f32(9, 4, &mut expect);
        let mut got = vec![0f32; n];
        dev.copy_to_host(&u, 0, &mut got).unwrap();
        assert_eq!(got, expect, "uniform n={n}");
    }
}
