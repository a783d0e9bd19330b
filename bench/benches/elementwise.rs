//! Elementwise and reduction ops through the tensor API on the CPU: what a training step
//! actually pays per op (dispatch, allocation of the output, the loop). Throughput is reported
//! in bytes moved (inputs read + output written), so criterion prints GB/s comparable with the
//! machine's copy bandwidth.

use autograd::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::SeedableRng;

const N: usize = 1 << 22; // 4M f32 = 16 MiB per tensor: larger than the last-level cache.

fn bench_elementwise(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let a = Tensor::randn(&[N], DType::F32, Device::Cpu, &mut rng).unwrap();
    let b = Tensor::randn(&[N], DType::F32, Device::Cpu, &mut rng).unwrap();
    let m = a.reshape(&[N / 1024, 1024]).unwrap();
    let row = Tensor::randn(&[1024], DType::F32, Device::Cpu, &mut rng).unwrap();
    let bytes = (N * 4) as u64;

    let mut g = c.benchmark_group("elementwise_f32_4M");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(3 * bytes));
    g.bench_function("add", |bench| bench.iter(|| a.add(&b).unwrap()));
    g.bench_function("mul", |bench| bench.iter(|| a.mul(&b).unwrap()));
    g.bench_function("add_broadcast_row", |bench| bench.iter(|| m.add(&row).unwrap()));
    g.throughput(Throughput::Bytes(2 * bytes));
    g.bench_function("exp", |bench| bench.iter(|| a.exp().unwrap()));
    g.bench_function("gelu", |bench| bench.iter(|| a.gelu().unwrap()));
    g.bench_function("mul_scalar", |bench| bench.iter(|| a.mul_scalar(1.5).unwrap()));
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("sum_last_axis", |bench| {
        bench.iter(|| m.sum(&[-1], false).unwrap())
    });
    g.bench_function("sum_first_axis", |bench| {
        bench.iter(|| m.sum(&[0], false).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_elementwise);
criterion_main!(benches);
