//! Row-wise ops through the tensor API on a 4096 × 1024 f32 activation: softmax, log_softmax,
//! layer norm and RMS norm, forward and forward + backward (the backward is what a training
//! step also pays), on the CPU and CUDA device 0 when present. Throughput is the forward's
//! minimum bytes (`kernels::{softmax, norm}::cost`), so criterion's GB/s compares with a copy.
//!
//! Inputs rotate over 4 sets (4 × 16 MiB plus outputs, beyond the 105 MiB last-level cache of
//! this machine) and are standard normals; `iter_custom` synchronizes the device.

use autograd::{DType, Device, Tensor};
use bench::crit::{devices, time_iters};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kernels::{norm::cost as nc, softmax::cost as sc};
use rand::SeedableRng;

const ROWS: usize = 4096;
const COLS: usize = 1024;
const SETS: usize = 4;

type Op = fn(&[Tensor; 3]) -> autograd::Result<Tensor>;

fn inputs(device: Device, seed: u64) -> [Tensor; 3] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut t = |shape: &[usize]| {
        Tensor::randn(shape, DType::F32, Device::Cpu, &mut rng)
            .and_then(|t| t.to_device(device))
            .unwrap()
            .set_requires_grad(true)
    };
    [t(&[ROWS, COLS]), t(&[COLS]), t(&[COLS])]
}

fn bench_rowwise(c: &mut Criterion) {
    let ops: [(&str, f64, Op); 4] = [
        ("softmax", sc::forward_bytes(ROWS, COLS, 4), |x| x[0].softmax(-1)),
        ("log_softmax", sc::forward_bytes(ROWS, COLS, 4), |x| {
            x[0].log_softmax(-1)
        }),
        ("layer_norm", nc::layer_norm_bytes(ROWS, COLS, 4, true), |x| {
            x[0].layer_norm(&[COLS], Some(&x[1]), Some(&x[2]), 1e-5)
        }),
        ("rms_norm", nc::rms_norm_bytes(ROWS, COLS, 4, true), |x| {
            x[0].rms_norm(&[COLS], Some(&x[1]), 1e-6)
        }),
    ];
    for device in devices() {
        let sets: Vec<[Tensor; 3]> = (0..SETS as u64).map(|s| inputs(device, s)).collect();
        let seeds: Vec<Tensor> = sets
            .iter()
            .map(|x| x[0].detach().mul_scalar(0.5).unwrap())
            .collect();
        let mut g = c.benchmark_group(format!("rowwise_f32_{ROWS}x{COLS}_{device}"));
        g.sample_size(20);
        for (name, bytes, op) in ops {
            g.throughput(Throughput::Bytes(bytes as u64));
            g.bench_function(format!("{name}_fwd"), |b| {
                b.iter_custom(|iters| {
                    time_iters(device, iters, |i| {
                        autograd::no_grad(|| drop(op(&sets[i % SETS]).unwrap()));
                    })
                })
            });
            g.bench_function(format!("{name}_fwd_bwd"), |b| {
                b.iter_custom(|iters| {
                    time_iters(device, iters, |i| {
                        let y = op(&sets[i % SETS]).unwrap();
                        drop(y.backward_with(&seeds[i % SETS]).unwrap());
                    })
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_rowwise);
criterion_main!(benches);
