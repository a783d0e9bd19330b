//! CPU GEMM throughput: `C = A @ B` on square row-major matrices, through
//! `kernels::matmul::gemm` (so the run-time kernel choice, blocking and threading are included).
//!
//! Criterion has no FLOP unit, so the throughput is declared as `Elements(2 n^3)`: read its
//! "elem/s" as FLOP/s (e.g. "150 Gelem/s" is 150 GFLOP/s).
//!
//! ```text
//! cargo bench -p bench --bench matmul
//! ```
//! Kept short (10 samples, ~2 s per size); `kernels/examples/matmul_gflops.rs` is the tool for
//! the numpy comparison in `docs/cpu-matmul.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::matmul::{gemm, kernel_name, GemmScalar, MatRef};
use std::hint::black_box;
use std::time::Duration;

/// Deterministic inputs in [-1, 1).
fn inputs<T>(n: usize, from: fn(f64) -> T) -> Vec<T> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n * n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            from((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect()
}

fn bench_square<T: GemmScalar>(c: &mut Criterion, sizes: &[usize], from: fn(f64) -> T) {
    let name = format!("gemm_{}", std::any::type_name::<T>());
    let mut group = c.benchmark_group(&name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    eprintln!("{name}: micro-kernel \"{}\"", kernel_name::<T>());
    for &n in sizes {
        let a = inputs(n, from);
        let b = inputs(n, from);
        let mut out = vec![T::ZERO; n * n];
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bencher, &n| {
            let (av, bv) = (MatRef::row_major(&a, n, n), MatRef::row_major(&b, n, n));
            bencher.iter(|| gemm(black_box(av), black_box(bv), &mut out, false).unwrap());
        });
    }
    group.finish();
}

fn matmul(c: &mut Criterion) {
    bench_square::<f32>(c, &[128, 512, 1024], |x| x as f32);
    bench_square::<f64>(c, &[512], |x| x);
}

criterion_group!(benches, matmul);
criterion_main!(benches);
