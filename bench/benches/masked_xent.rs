//! The fused masked cross-entropy on the CPU (`kernels::masked_xent::cpu`), forward and
//! backward, f32 and bf16 logits, no mask / a range mask / a dense mask, against the machine's
//! copy bandwidth measured in the same run (a 512 MiB `copy_from_slice`).
//!
//! Throughput is the bytes the op must move (`launch::forward_bytes_per_row` /
//! `backward_bytes_per_row` × rows: logits read, gradient written, the mask's share and the
//! per-row values), so criterion's GB/s compares directly with the copy's (read + write).
//! On a CPU this op is bound by `exp`, not memory: see docs/masked-xent.md for the figures.
//!
//! `cargo bench -p bench --bench masked_xent`; a subset with e.g. `-- 4096x32768`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kernels::masked_xent::cpu::{cross_entropy_backward, cross_entropy_forward, Bf16};
use kernels::masked_xent::launch::{backward_bytes_per_row, forward_bytes_per_row};
use kernels::masked_xent::{ClassMask, XentOptions, XentRows};
use std::hint::black_box;

/// Deterministic logits in about [-4, 4), not zeros (exp of zeros is not a fair timing).
fn logits(n: usize) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0
        })
        .collect()
}

fn bench_copy(c: &mut Criterion) {
    let n = 128 << 20; // 512 MiB of f32, far beyond the last-level cache
    let src = logits(n);
    let mut dst = vec![0.0f32; n];
    let mut g = c.benchmark_group("copy");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(2 * 4 * n as u64));
    g.bench_function("512MiB", |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    g.finish();
}

fn bench_xent(c: &mut Criterion) {
    for (rows, classes) in [(4096usize, 32_768usize), (64, 262_144)] {
        let x = logits(rows * classes);
        let xb: Vec<Bf16> = x.iter().map(|&v| Bf16::from_f32(v)).collect();
        let targets: Vec<i64> = (0..rows as i64)
            .map(|r| (r * 7919) % (classes as i64 / 2))
            .collect();
        let opts = XentOptions::default();
        let dense: Vec<bool> = (0..classes).map(|c| c % 3 != 0 || c < classes / 2).collect();
        let masks = [
            ("none", ClassMask::All),
            ("range", ClassMask::ranges(&[(0, classes / 2 + classes / 4)])),
            (
                "dense-per-row",
                ClassMask::dense(&dense.repeat(rows), rows, classes),
            ),
        ];
        let mut g = c.benchmark_group(format!("masked_xent_{rows}x{classes}"));
        g.sample_size(10);
        for (name, mask) in &masks {
            let fwd = (rows * forward_bytes_per_row(classes, 4, mask)) as u64;
            g.throughput(Throughput::Bytes(fwd));
            g.bench_function(format!("fwd_f32_{name}"), |b| {
                b.iter(|| cross_entropy_forward::<f32, f32>(black_box(&x), &targets, classes, mask, &opts))
            });
        }
        let mask = &masks[1].1;
        g.throughput(Throughput::Bytes(
            (rows * forward_bytes_per_row(classes, 2, mask)) as u64,
        ));
        g.bench_function("fwd_bf16_range", |b| {
            b.iter(|| cross_entropy_forward::<Bf16, f32>(black_box(&xb), &targets, classes, mask, &opts))
        });
        let f: XentRows<f32> = cross_entropy_forward(&x, &targets, classes, mask, &opts);
        g.throughput(Throughput::Bytes(
            (rows * backward_bytes_per_row(classes, 4, mask)) as u64,
        ));
        g.bench_function("bwd_f32_range", |b| {
            b.iter(|| cross_entropy_backward(black_box(&x), &targets, classes, mask, &f.lse, &f.coef, &[1.0]))
        });
        g.finish();
    }
}

criterion_group!(benches, bench_copy, bench_xent);
criterion_main!(benches);
