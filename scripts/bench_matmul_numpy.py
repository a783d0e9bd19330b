#!/usr/bin/env python3
"""Times numpy's float32 (or float64) n x n @ n x n matmul and prints GFLOP/s.

Counterpart of `cargo run --release -p kernels --example matmul_gflops`: same FLOP count
(2 n^3), same statistic (median of `runs` timed calls after `warmup` untimed ones), same
input distribution (uniform in [-1, 1)), and the product is written into a preallocated
output (`out=`) as ours is.

Usage: python3 scripts/bench_matmul_numpy.py [n=1024] [runs=20] [warmup=3] [float32|float64]
"""
import sys
import time

import numpy as np


def main() -> None:
    args = sys.argv[1:]
    n = int(args[0]) if len(args) > 0 else 1024
    runs = max(1, int(args[1]) if len(args) > 1 else 20)
    warmup = int(args[2]) if len(args) > 2 else 3
    dtype = np.dtype(args[3] if len(args) > 3 else "float32")

    rng = np.random.default_rng(0)
    a = rng.uniform(-1.0, 1.0, (n, n)).astype(dtype)
    b = rng.uniform(-1.0, 1.0, (n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    for _ in range(warmup):
        np.matmul(a, b, out=c)
    secs = []
    for _ in range(runs):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        secs.append(time.perf_counter() - t)
    secs.sort()
    median = secs[runs // 2]
    flops = 2.0 * n**3
    print(
        f"numpy {dtype} n={n} (numpy {np.__version__}): median {median * 1e3:.3f} ms over "
        f"{runs} runs (min {secs[0] * 1e3:.3f} ms) -> {flops / median / 1e9:.1f} GFLOP/s "
        f"(best {flops / secs[0] / 1e9:.1f})"
    )


if __name__ == "__main__":
    main()
