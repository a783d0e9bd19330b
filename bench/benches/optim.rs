//! Optimizer steps on the CPU: the reference kernels of `kernels::optim::cpu` on one tensor of
//! 1M and 16M parameters (f32 parameters and state unless named bf16). Throughput is the bytes
//! each step must move per parameter (the counts in `optim.cu`'s header: AdamW 28 B, Lion 20 B,
//! SGD with momentum 20 B, AdamW with bf16 parameters 22 B), so criterion's GB/s compares
//! directly with `copy`, a plain memcpy of 16M f32 (8 B per element: read + write) measured in
//! the same run. Inputs are random normals (never zeros), and the 16M case (448 MB for AdamW)
//! is far beyond the last-level cache. The steps run in place, so each iteration updates the
//! previous iteration's result: values drift, cost does not.
//!
//! With a GPU, `optim_cuda` times the `optim.cu` launches (one tensor of 1M to 256M
//! parameters; AdamW f32 and bf16, Lion, SGD Nesterov) with the same byte counts against a
//! device-to-device copy of 1 GiB in the same run; Lion / AdamW is the ratio of their times.
//! Without a GPU that group prints why and is skipped.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::optim::cpu::{self, RngOffsets};
use kernels::optim::{AdamWConfig, Bf16, Kappa, LionConfig, SgdConfig};
use rand::SeedableRng;

fn normals(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let t = autograd::Tensor::randn(&[n], autograd::DType::F32, autograd::Device::Cpu, &mut rng).unwrap();
    t.to_vec::<f32>().unwrap()
}

fn bench_optim(c: &mut Criterion) {
    let mut g = c.benchmark_group("optim_cpu");
    g.sample_size(10);
    let big = 1 << 24;
    let src = normals(big, 9);
    let mut dst = vec![0.0f32; big];
    g.throughput(Throughput::Bytes(8 * big as u64));
    g.bench_function("copy/16M", |b| b.iter(|| dst.copy_from_slice(&src)));
    for (label, n) in [("1M", 1usize << 20), ("16M", 1 << 24)] {
        let grad = normals(n, 1);
        let mut p = normals(n, 2);
        let mut m: Vec<f32> = normals(n, 3).iter().map(|x| 0.1 * x).collect();
        let mut v: Vec<f32> = normals(n, 4).iter().map(|x| x * x).collect();
        let rng = RngOffsets::default();
        let adamw = AdamWConfig::<f32>::new(1e-3, 0.9, 0.999, 1e-8, 10, true, 1e-5, 0.0);
        g.throughput(Throughput::Bytes(28 * n as u64));
        g.bench_with_input(BenchmarkId::new("adamw_f32", label), &n, |b, _| {
            b.iter(|| cpu::adamw(&adamw, &mut p, &grad, &mut m, &mut v, rng))
        });
        let lion = LionConfig::<f32>::new(1e-4, 0.9, 0.99, 1e-5, Kappa::L1);
        g.throughput(Throughput::Bytes(20 * n as u64));
        g.bench_with_input(BenchmarkId::new("lion_f32", label), &n, |b, _| {
            b.iter(|| cpu::lion(&lion, &mut p, &grad, &mut m, 0.0, rng))
        });
        let sgd = SgdConfig::<f32>::new(1e-3, 0.9, 0.0, true, false, 0.0, 0.0);
        g.bench_with_input(BenchmarkId::new("sgd_nesterov_f32", label), &n, |b, _| {
            b.iter(|| cpu::sgd(&sgd, &mut p, &grad, &mut m, rng))
        });
        let mut p16: Vec<Bf16> = p.iter().map(|&x| Bf16::from_f32_nearest(x)).collect();
        let g16: Vec<Bf16> = grad.iter().map(|&x| Bf16::from_f32_nearest(x)).collect();
        g.throughput(Throughput::Bytes(22 * n as u64));
        g.bench_with_input(BenchmarkId::new("adamw_bf16", label), &n, |b, _| {
            b.iter(|| cpu::adamw(&adamw, &mut p16, &g16, &mut m, &mut v, rng))
        });
        let sr = adamw.with_stochastic_rounding(5);
        g.bench_with_input(BenchmarkId::new("adamw_bf16_stochastic", label), &n, |b, _| {
            b.iter(|| cpu::adamw(&sr, &mut p16, &g16, &mut m, &mut v, rng))
        });
    }
    g.finish();
}

fn bench_cuda(c: &mut Criterion) {
    use kernels::cuda::FloatType;
    use kernels::optim::cuda::{self as launch, GroupTables};
    use kernels::optim::launch::OptimTensor;
    let Some(dev) = bench::gpu::device("optim") else {
        return;
    };
    let mut g = c.benchmark_group("optim_cuda");
    g.sample_size(10);
    let bytes = 1usize << 30;
    let (src, dst) = (dev.alloc(bytes).unwrap(), dev.alloc(bytes).unwrap());
    g.throughput(Throughput::Bytes(2 * bytes as u64));
    g.bench_function("device_copy/1GiB", |b| {
        b.iter(|| bench::gpu::copy(&dev, &src, &dst, bytes))
    });
    drop((src, dst));
    for (label, n) in [
        ("1M", 1usize << 20),
        ("16M", 1 << 24),
        ("64M", 1 << 26),
        ("256M", 1 << 28),
    ] {
        let host = normals(n, 1);
        for (dt, dname) in [(FloatType::F32, "f32"), (FloatType::BF16, "bf16")] {
            let p = bench::gpu::upload(&dev, &host, dt);
            let grad = bench::gpu::upload(&dev, &host, dt);
            let m = bench::gpu::upload(&dev, &host, FloatType::F32);
            let v = bench::gpu::upload(&dev, &host, FloatType::F32);
            let tensor = |state1: u64| OptimTensor {
                param: p.ptr(),
                grad: grad.ptr(),
                state0: m.ptr(),
                state1,
                numel: n as i64,
                ..OptimTensor::default()
            };
            let two = GroupTables::upload(&dev, &[tensor(v.ptr())]).unwrap();
            let one = GroupTables::upload(&dev, &[tensor(0)]).unwrap();
            let s = dt.size_in_bytes() as u64;
            let adamw = AdamWConfig::<f32>::new(1e-3, 0.9, 0.999, 1e-8, 10, true, 1e-5, 0.0);
            g.throughput(Throughput::Bytes((3 * s + 16) * n as u64)); // 28 B f32, 22 B bf16
            g.bench_with_input(BenchmarkId::new(format!("adamw_{dname}"), label), &n, |b, _| {
                b.iter(|| {
                    // SAFETY: every buffer holds n elements of its type.
                    unsafe { launch::adamw(&dev, dt, &adamw, &two, 0) }.unwrap();
                    dev.synchronize().unwrap();
                })
            });
            if dt == FloatType::BF16 {
                continue;
            }
            let lion = LionConfig::<f32>::new(1e-4, 0.9, 0.99, 1e-5, Kappa::L1);
            g.throughput(Throughput::Bytes(20 * n as u64));
            g.bench_with_input(BenchmarkId::new("lion_f32", label), &n, |b, _| {
                b.iter(|| {
                    // SAFETY: as above.
                    unsafe { launch::lion(&dev, dt, &lion, &one, 0) }.unwrap();
                    dev.synchronize().unwrap();
                })
            });
            let sgd = SgdConfig::<f32>::new(1e-3, 0.9, 0.0, true, false, 0.0, 0.0);
            g.bench_with_input(BenchmarkId::new("sgd_nesterov_f32", label), &n, |b, _| {
                b.iter(|| {
                    // SAFETY: as above.
                    unsafe { launch::sgd(&dev, dt, &sgd, &one, 0) }.unwrap();
                    dev.synchronize().unwrap();
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_optim, bench_cuda);
criterion_main!(benches);
