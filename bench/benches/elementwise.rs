//! Elementwise and reduction ops through the tensor API, on the CPU and (when one can be
//! opened) CUDA device 0: what a training step actually pays per op (dispatch, allocation of
//! the output, the loop). Throughput is reported in bytes moved (inputs read + output
//! written), so criterion prints GB/s comparable with the machine's copy bandwidth.
//!
//! Each tensor is 16 MiB; the inputs rotate over 4 sets (about 200 MiB for a binary op), more
//! than this machine's 105 MiB last-level cache, so no call reads inputs the previous left hot.
//! Timing goes through `iter_custom` with a device synchronize before the clock is read.

use autograd::{DType, Device, Tensor};
use bench::crit::{devices, time_iters};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::SeedableRng;

const N: usize = 1 << 22; // 4M f32 = 16 MiB per tensor.
const SETS: usize = 4;

struct Inputs {
    a: Tensor,
    b: Tensor,
    m: Tensor,
    row: Tensor,
}

fn inputs(device: Device, seed: u64) -> Inputs {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut t = |shape: &[usize]| {
        Tensor::randn(shape, DType::F32, Device::Cpu, &mut rng)
            .and_then(|t| t.to_device(device))
            .unwrap()
    };
    let (a, b, row) = (t(&[N]), t(&[N]), t(&[1024]));
    let m = a.reshape(&[N / 1024, 1024]).unwrap();
    Inputs { a, b, m, row }
}

type Op = fn(&Inputs) -> autograd::Result<Tensor>;

fn bench_elementwise(c: &mut Criterion) {
    let bytes = (N * 4) as u64;
    let ops: [(&str, u64, Op); 9] = [
        ("add", 3, |x| x.a.add(&x.b)),
        ("mul", 3, |x| x.a.mul(&x.b)),
        ("add_broadcast_row", 2, |x| x.m.add(&x.row)),
        ("exp", 2, |x| x.a.exp()),
        ("gelu", 2, |x| x.a.gelu()),
        ("mul_scalar", 2, |x| x.a.mul_scalar(1.5)),
        ("sum_last_axis", 1, |x| x.m.sum(&[-1], false)),
        ("sum_first_axis", 1, |x| x.m.sum(&[0], false)),
        ("max_last_axis", 1, |x| x.m.max(&[-1], false)),
    ];
    for device in devices() {
        let sets: Vec<Inputs> = (0..SETS as u64).map(|s| inputs(device, s)).collect();
        let mut g = c.benchmark_group(format!("elementwise_f32_4M_{device}"));
        g.sample_size(20);
        for (name, tensors, op) in ops {
            g.throughput(Throughput::Bytes(tensors * bytes));
            g.bench_function(name, |bench| {
                bench.iter_custom(|iters| time_iters(device, iters, |i| drop(op(&sets[i % SETS]).unwrap())))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_elementwise);
criterion_main!(benches);
