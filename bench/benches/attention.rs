//! CPU attention: the tiled online-softmax kernel against the materialized reference, forward
//! and backward, plus the unfused autograd composition (matmul, softmax, matmul) for the forward.
//! On a machine with a GPU, also the FlashAttention grid on the CUDA kernels (`attention_cuda`):
//! batch·seqlen = 16k, heads·D = 2048, seqlen 512 to 16k, D 64 and 128, causal and not, bf16
//! and f32, forward and backward. Without a GPU that group prints why and is skipped.
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
            // The reference is O(N²) plain loops: timed at the small size only, so the CPU part
            // stays quick.
            if n <= 256 {
                group.bench_function(id("reference_fwd"), |b| {
                    b.iter(|| reference::forward(black_box(&p)).unwrap())
                });
            }
            let f = tiled::forward(&p).unwrap();
            group.throughput(Throughput::Elements(nominal_flops(&shape, causal, true) as u64));
            group.bench_function(id("tiled_bwd"), |b| {
                b.iter(|| tiled::backward(black_box(&p), &f.out, &f.lse, &dout, false).unwrap())
            });
            if n <= 256 {
                group.bench_function(id("reference_bwd"), |b| {
                    b.iter(|| reference::backward(black_box(&p), &dout, false).unwrap())
                });
            }
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

/// The FlashAttention grid on the GPU kernels, through `kernels::attention::cuda` (bf16 has no
/// tensor-level dtype, so both dtypes are launched directly). Each timed iteration is one
/// launch sequence and a synchronize. max_logit is not reset between iterations: the kernels'
/// atomicMax costs the same whatever it holds, and the values are not read.
fn bench_cuda(c: &mut Criterion) {
    use kernels::attention::cuda as attn;
    use kernels::attention::launch::{AttnDtype, AttnParams};
    use kernels::cuda::FloatType;
    let Some(dev) = bench::gpu::device("attention") else {
        return;
    };
    let mut group = c.benchmark_group("attention_cuda");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    for (dtype, ft) in [
        (AttnDtype::Bf16, FloatType::BF16),
        (AttnDtype::F32, FloatType::F32),
    ] {
        for d in [64, 128] {
            for n in [512, 1024, 2048, 4096, 8192, 16384] {
                let shape = AttnShape {
                    batch: 16384 / n,
                    heads: 2048 / d,
                    kv_heads: 2048 / d,
                    q_len: n,
                    kv_len: n,
                    head_dim: d,
                };
                let up = |seed| bench::gpu::upload(&dev, &values(shape.q_elems(), seed), ft);
                let (q, k, v, dout) = (up(1), up(2), up(3), up(4));
                let out = bench::gpu::alloc(&dev, shape.q_elems(), ft);
                let (dq, dk, dv) = (
                    bench::gpu::alloc(&dev, shape.q_elems(), ft),
                    bench::gpu::alloc(&dev, shape.q_elems(), ft),
                    bench::gpu::alloc(&dev, shape.q_elems(), ft),
                );
                let lse = bench::gpu::alloc(&dev, shape.rows(), FloatType::F32);
                let delta = bench::gpu::alloc(&dev, shape.rows(), FloatType::F32);
                let max_logit = dev
                    .upload(&vec![f32::NEG_INFINITY; shape.batch * shape.heads])
                    .unwrap();
                let st = [(shape.heads * n * d) as i64, (n * d) as i64, d as i64];
                for causal in [false, true] {
                    let p = AttnParams {
                        q: q.ptr(),
                        k: k.ptr(),
                        v: v.ptr(),
                        out: out.ptr(),
                        lse: lse.ptr(),
                        max_logit: max_logit.ptr(),
                        dout: dout.ptr(),
                        dq: dq.ptr(),
                        dk: dk.ptr(),
                        dv: dv.ptr(),
                        delta: delta.ptr(),
                        q_stride: st,
                        k_stride: st,
                        v_stride: st,
                        o_stride: st,
                        batch: shape.batch as i32,
                        heads: shape.heads as i32,
                        kv_heads: shape.kv_heads as i32,
                        q_len: n as i32,
                        kv_len: n as i32,
                        head_dim: d as i32,
                        causal: causal as i32,
                        scale: default_scale::<f32>(d),
                        ..AttnParams::default()
                    };
                    let tag = format!("{}_d{d}_{}", dtype.name(), if causal { "causal" } else { "full" });
                    group.throughput(Throughput::Elements(nominal_flops(&shape, causal, false) as u64));
                    group.bench_function(BenchmarkId::new(format!("fwd_{tag}"), n), |b| {
                        b.iter(|| {
                            // SAFETY: every buffer above is sized for `shape`.
                            unsafe { attn::forward(&dev, dtype, &shape, &p) }.unwrap();
                            dev.synchronize().unwrap();
                        })
                    });
                    group.throughput(Throughput::Elements(nominal_flops(&shape, causal, true) as u64));
                    group.bench_function(BenchmarkId::new(format!("bwd_{tag}"), n), |b| {
                        b.iter(|| {
                            // SAFETY: as above; out and lse hold the last forward's results.
                            unsafe { attn::backward(&dev, dtype, &shape, &p) }.unwrap();
                            dev.synchronize().unwrap();
                        })
                    });
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_kernels, bench_autograd, bench_cuda);
criterion_main!(benches);
