//! CPU attention: the tiled online-softmax kernel against the materialized reference, forward
//! and backward, plus the unfused autograd composition (matmul, softmax, matmul) for the forward.
//!
//! Criterion has no FLOP unit: throughput is declared as `Elements(flops)`, so read "Gelem/s" as
//! GFLOP/s. FLOPs follow the FlashAttention convention (`kernels::attention::launch::nominal_flops`):
//! `4·B·H·N²·D` forward, halved for causal, and 2.5x that backward, whatever the kernel really does
//! (the reference computes every masked logit; the tiled kernel skips masked tiles).
//!
//! ```text
//! cargo bench -p bench --bench attention
//! ```
//! Kept short (10 samples, ~2 s each); docs/attention.md has the figures and the machine.

use autograd::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::attention::launch::nominal_flops;
use kernels::attention::{default_scale, reference, tiled, AttnShape, Mask, Problem};
use rand::SeedableRng;
use std::hint::black_box;
use std::time::Duration;

/// Deterministic inputs in [-1, 1) (never zeros).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

const HEADS: usize = 4;
const D: usize = 64;

fn bench_kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention_f32_cpu");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for n in [256, 1024] {
        let shape = AttnShape {
            batch: 1,
            heads: HEADS,
            kv_heads: HEADS,
            q_len: n,
            kv_len: n,
            head_dim: D,
        };
        let (q, k, v) = (
            values(shape.q_elems(), 1),
            values(shape.kv_elems(), 2),
            values(shape.kv_elems(), 3),
        );
        let dout = values(shape.q_elems(), 4);
        for causal in [false, true] {
            let p = Problem {
                shape,
                q: &q,
                k: &k,
                v: &v,
                mask: if causal { Mask::causal() } else { Mask::NONE },
                bias: None,
                scale: default_scale(D),
            };
            let tag = if causal { "causal" } else { "full" };
            let id = |what: &str| BenchmarkId::new(format!("{what}_{tag}"), n);
            group.throughput(Throughput::Elements(nominal_flops(&shape, causal, false) as u64));
            group.bench_function(id("tiled_fwd"), |b| {
                b.iter(|| tiled::forward(black_box(&p)).unwrap())
            });
            group.bench_function(id("reference_fwd"), |b| {
                b.iter(|| reference::forward(black_box(&p)).unwrap())
            });
            let f = tiled::forward(&p).unwrap();
            group.throughput(Throughput::Elements(nominal_flops(&shape, causal, true) as u64));
            group.bench_function(id("tiled_bwd"), |b| {
                b.iter(|| tiled::backward(black_box(&p), &f.out, &f.lse, &dout, false).unwrap())
            });
            group.bench_function(id("reference_bwd"), |b| {
                b.iter(|| reference::backward(black_box(&p), &dout, false).unwrap())
            });
        }
    }
    group.finish();
}

/// The same forward through autograd: the fused op, and the unfused matmul/softmax/matmul.
fn bench_autograd(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention_f32_autograd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let n = 1024;
    let shape = AttnShape {
        batch: 1,
        heads: HEADS,
        kv_heads: HEADS,
        q_len: n,
        kv_len: n,
        head_dim: D,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut t = || Tensor::randn(&[1, HEADS, n, D], DType::F32, Device::Cpu, &mut rng).unwrap();
    let (q, k, v) = (t(), t(), t());
    group.throughput(Throughput::Elements(nominal_flops(&shape, false, false) as u64));
    group.bench_function(BenchmarkId::new("fused_fwd_full", n), |b| {
        b.iter(|| autograd::attention(&q, &k, &v, &autograd::AttentionMask::none(), None).unwrap())
    });
    let kt = k.transpose(-2, -1).unwrap();
    group.bench_function(BenchmarkId::new("unfused_fwd_full", n), |b| {
        b.iter(|| {
            q.matmul(&kt)
                .unwrap()
                .mul_scalar(1.0 / (D as f64).sqrt())
                .unwrap()
                .softmax(-1)
                .unwrap()
                .matmul(&v)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_kernels, bench_autograd);
criterion_main!(benches);
