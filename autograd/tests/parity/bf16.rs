//! bf16 kernels (bf16 storage, f32 math) against the CPU formulas. Tensors compute in f32 and
//! f64 only, so these call the kernels directly through `kernels`.
//!
//! Tolerance 1e-2 relative: bf16 keeps 8 significant bits, so one rounding is up to 2^-9
//! (2e-3) relative, and where the GPU's f32 result and the CPU's differ by an ulp across a
//! rounding boundary the two bf16 results differ by one bf16 ulp, 2^-8 (4e-3). 1e-2 allows two
//! such ulps; anything a wrong formula or an unwritten element produces is far larger.

use super::common::*;
use half::bf16;
use kernels::cuda::{CudaDevice, FloatType, GemmOperand, GemmPrecision};
use kernels::elementwise::{cuda as ew, UnaryOp};

const BF16_RTOL: f64 = 1e-2;
const BF16_ATOL: f64 = 1e-2;

fn device() -> Option<std::sync::Arc<CudaDevice>> {
    cuda_or_skip("bf16 kernels")?;
    CudaDevice::get(0).ok()
}

fn inputs(n: usize, positive: bool, seed: u64) -> Vec<bf16> {
    let t = random(
        &[n],
        if positive {
            Domain::Positive
        } else {
            Domain::Normal
        },
        &mut rng(seed),
    );
    t.to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(bf16::from_f32)
        .collect()
}

fn download(dev: &CudaDevice, buf: &kernels::cuda::DeviceBuffer, n: usize) -> Vec<f64> {
    let mut out = vec![bf16::ZERO; n];
    dev.copy_to_host(buf, 0, &mut out).expect("download");
    out.iter().map(|v| v.to_f64()).collect()
}

#[test]
fn bf16_unary_forward_and_backward() {
    let Some(dev) = device() else { return };
    for op in UnaryOp::ALL {
        let positive = matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt);
        for n in [1, 31, 33, 1000, 4097] {
            let x = inputs(n, positive, n as u64);
            let g = inputs(n, false, n as u64 + 1);
            let xd = dev.upload(&x).unwrap();
            let gd = dev.upload(&g).unwrap();
            let y = dev.alloc(n * 2).unwrap();
            let dx = dev.alloc(n * 2).unwrap();
            // SAFETY: every buffer holds n bf16 values.
            unsafe { ew::unary(&dev, op, FloatType::BF16, xd.ptr(), y.ptr(), n) }.unwrap();
            let y_cpu: Vec<bf16> = x.iter().map(|v| bf16::from_f32(op.forward(v.to_f32()))).collect();
            // The backward reads x or y like autograd does; the saved values are bf16 too.
            let reads_y = matches!(
                op,
                UnaryOp::Exp | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Tanh | UnaryOp::Sigmoid
            );
            let saved = if reads_y { &y_cpu } else { &x };
            let sd = dev.upload(saved).unwrap();
            unsafe { ew::unary_backward(&dev, op, FloatType::BF16, sd.ptr(), gd.ptr(), dx.ptr(), n) }
                .unwrap();
            let dx_cpu: Vec<f64> = saved
                .iter()
                .zip(&g)
                .map(|(s, g)| bf16::from_f32(g.to_f32() * op.derivative(s.to_f32(), s.to_f32())).to_f64())
                .collect();
            let y_cpu: Vec<f64> = y_cpu.iter().map(|v| v.to_f64()).collect();
            assert_close(
                &format!("{} bf16 n={n}", op.name()),
                &y_cpu,
                &download(&dev, &y, n),
                BF16_RTOL,
                BF16_ATOL,
            );
            assert_close(
                &format!("{} bf16 backward n={n}", op.name()),
                &dx_cpu,
                &download(&dev, &dx, n),
                BF16_RTOL,
                BF16_ATOL,
            );
        }
    }
}

#[test]
fn bf16_binary_and_sum_rows() {
    let Some(dev) = device() else { return };
    for n in [1, 33, 4097] {
        let (a, b) = (inputs(n, true, 1), inputs(n, true, 2));
        let (ad, bd, out) = (
            dev.upload(&a).unwrap(),
            dev.upload(&b).unwrap(),
            dev.alloc(n * 2).unwrap(),
        );
        for (kind, f) in [
            (ew::BinaryKind::Add, (|x, y| x + y) as fn(f32, f32) -> f32),
            (ew::BinaryKind::Mul, |x, y| x * y),
            (ew::BinaryKind::Div, |x, y| x / y),
            (ew::BinaryKind::Pow, f32::powf),
        ] {
            unsafe { ew::binary(&dev, kind, FloatType::BF16, ad.ptr(), bd.ptr(), out.ptr(), n) }.unwrap();
            let cpu: Vec<f64> = a
                .iter()
                .zip(&b)
                .map(|(x, y)| bf16::from_f32(f(x.to_f32(), y.to_f32())).to_f64())
                .collect();
            assert_close(
                &format!("{kind:?} bf16 n={n}"),
                &cpu,
                &download(&dev, &out, n),
                BF16_RTOL,
                BF16_ATOL,
            );
        }
        // One row: f32 accumulation, rounded once.
        let sum = dev.alloc(2).unwrap();
        unsafe { ew::sum_rows(&dev, FloatType::BF16, ad.ptr(), sum.ptr(), 1, n) }.unwrap();
        let cpu = a.iter().map(|v| v.to_f64()).sum::<f64>();
        assert_close(
            &format!("sum_rows bf16 n={n}"),
            &[cpu],
            &download(&dev, &sum, 1),
            BF16_RTOL,
            BF16_ATOL,
        );
    }
}

#[test]
fn bf16_matmul_cublas_and_tiled() {
    let Some(dev) = device() else { return };
    let (m, n, k) = (31, 33, 100);
    let (a, b) = (inputs(m * k, false, 5), inputs(k * n, false, 6));
    let (ad, bd) = (dev.upload(&a).unwrap(), dev.upload(&b).unwrap());
    let mut cpu = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            cpu[i * n + j] = (0..k)
                .map(|p| a[i * k + p].to_f64() * b[p * n + j].to_f64())
                .sum();
        }
    }
    let op = |ptr, rs| GemmOperand {
        ptr,
        row_stride: rs,
        col_stride: 1,
        batch_stride: 0,
    };
    for tiled in [false, true] {
        let c = dev.alloc(m * n * 2).unwrap();
        unsafe {
            if tiled {
                kernels::cuda::gemm::matmul_tiled(
                    &dev,
                    FloatType::BF16,
                    m,
                    n,
                    k,
                    1,
                    op(ad.ptr(), k),
                    op(bd.ptr(), n),
                    c.ptr(),
                )
            } else {
                kernels::cuda::gemm::matmul(
                    &dev,
                    FloatType::BF16,
                    GemmPrecision::F32,
                    m,
                    n,
                    k,
                    1,
                    op(ad.ptr(), k),
                    op(bd.ptr(), n),
                    c.ptr(),
                )
                .map(|_| ())
            }
        }
        .unwrap();
        // Sums of 100 products of size ~3: absolute error dominated by the final bf16 rounding
        // of values up to ~30, so the absolute floor is 1e-2 of that scale.
        assert_close(
            &format!("matmul bf16 tiled={tiled}"),
            &cpu,
            &download(&dev, &c, m * n),
            BF16_RTOL,
            0.3,
        );
    }
}
