//! The convex-ReLU primitives of `kernels::cvx` on the CPU (the inner loops the ADMM and FISTA
//! solvers of `algorithms::convex_relu` spend their time in; `convex_relu.rs` times the solvers
//! end to end against cvxpy). n = 4096 samples, d = 64 features, p = 256 patterns, f64, a
//! ~50%-dense pattern mask. Criterion has no FLOP unit: throughput is `Elements(2·n·d·p)`, so
//! read "Gelem/s" as GFLOP/s (`kernels::cvx::cost::flops`). The working set (2 MiB of X and
//! 1 MiB of mask) fits in cache on purpose: the solvers call these on the same X every
//! iteration. CPU only: no CUDA entry point is public yet.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kernels::cvx::{self, cost, CvxShape};
use std::hint::black_box;

fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn bench_cvx(c: &mut Criterion) {
    let s = CvxShape {
        n: 4096,
        d: 64,
        p: 256,
    };
    let (x, v, r, z) = (
        values(s.n * s.d, 1),
        values(s.p * s.d, 2),
        values(s.n, 3),
        values(s.p * s.n, 4),
    );
    let mask: Vec<u8> = values(s.p * s.n, 5).iter().map(|&u| u8::from(u > 0.0)).collect();
    let mut g = c.benchmark_group("cvx_f64_n4096_d64_p256");
    g.sample_size(20);
    g.throughput(Throughput::Elements(cost::flops(s) as u64));
    let mut out_n = vec![0.0; s.n];
    let mut out_pd = vec![0.0; s.p * s.d];
    let mut out_pn = vec![0.0; s.p * s.n];
    g.bench_function("masked_forward", |b| {
        b.iter(|| cvx::masked_forward(black_box(&x), &mask, &v, s, &mut out_n).unwrap())
    });
    g.bench_function("masked_backward", |b| {
        b.iter(|| cvx::masked_backward(black_box(&x), &mask, &r, s, &mut out_pd).unwrap())
    });
    g.bench_function("sign_forward", |b| {
        b.iter(|| cvx::sign_forward(black_box(&x), &mask, &v, s, &mut out_pn).unwrap())
    });
    g.bench_function("sign_backward", |b| {
        b.iter(|| cvx::sign_backward(black_box(&x), &mask, &z, s, &mut out_pd).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_cvx);
criterion_main!(benches);
