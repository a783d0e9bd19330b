//! Times `kernels::matmul::gemm` on square matrices and prints GFLOP/s the same way as
//! `scripts/bench_matmul_numpy.py` does for numpy: FLOPs = 2 n^3, median of `runs` timed calls
//! after `warmup` untimed ones, inputs uniform in [-1, 1).
//!
//! ```text
//! cargo run --release -p kernels --example matmul_gflops -- [n] [runs] [warmup] [f32|f64]
//! ```
//! Defaults: n = 1024, runs = 20, warmup = 3, f32. `RAYON_NUM_THREADS=1` times one core;
//! `KERNELS_GEMM_KERNEL=avx2` (or `portable`) times a fallback micro-kernel.

use kernels::matmul::{gemm, kernel_name, GemmScalar, MatRef};
use std::time::Instant;

fn run<T: GemmScalar>(n: usize, runs: usize, warmup: usize, from: fn(f64) -> T) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        from((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
    };
    let a: Vec<T> = (0..n * n).map(|_| rand()).collect();
    let b: Vec<T> = (0..n * n).map(|_| rand()).collect();
    let mut c = vec![T::ZERO; n * n];
    let (av, bv) = (MatRef::row_major(&a, n, n), MatRef::row_major(&b, n, n));
    for _ in 0..warmup {
        gemm(av, bv, &mut c, false).unwrap();
    }
    let mut secs: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            gemm(av, bv, &mut c, false).unwrap();
            t.elapsed().as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    let median = secs[runs / 2];
    let flops = 2.0 * (n as f64).powi(3);
    println!(
        "ours  {} n={n} threads={} kernel=\"{}\": median {:.3} ms over {runs} runs \
         (min {:.3} ms) -> {:.1} GFLOP/s (best {:.1})",
        std::any::type_name::<T>(),
        rayon::current_num_threads(),
        kernel_name::<T>(),
        median * 1e3,
        secs[0] * 1e3,
        flops / median / 1e9,
        flops / secs[0] / 1e9,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().expect("a number"));
    let (n, runs, warmup) = (num(0, 1024), num(1, 20).max(1), num(2, 3));
    match args.get(3).map_or("f32", String::as_str) {
        "f64" => run::<f64>(n, runs, warmup, |x| x),
        _ => run::<f32>(n, runs, warmup, |x| x as f32),
    }
}
