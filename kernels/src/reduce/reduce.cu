// reduce.cu: row reductions over a contiguous [rows, n] buffer, and middle-axis reductions over a
// contiguous [outer, r, inner] buffer. f32 and bf16. CPU reference: reduce/cpu.rs.
//
// What it computes, per row x of length n (r in [0, rows)):
//   reduce_sum_*        out[r] = Σ_i x_i
//   reduce_max_*        out[r] = max_i x_i        (-inf for n = 0; NaN if any x_i is NaN)
//   reduce_min_*        out[r] = min_i x_i        (+inf for n = 0; NaN if any x_i is NaN)
//   reduce_logsumexp_*  out[r] = m + ln Σ_i exp(x_i − m),  m = max_i x_i; m itself when m is not
//                       finite (all -inf or n = 0 gives -inf, any +inf gives +inf, NaN gives NaN)
//   reduce_var_*        mean = Σx / n,  out[r] = Σ (x_i − mean)² / max(n − correction, 0)
//                       (two passes, as the CPU: n − correction = 0 gives 0/0 = NaN or +inf)
// and, per (o, i) of [outer, inner]:
//   reduce_middle_{sum,max,min}_*   out[o, i] = ⊕_j x[o, j, i] for j in [0, r); 0 when r = 0
//
// ABI (all sizes long long, all buffers contiguous, out never aliases x):
//   reduce_{sum,max,min,logsumexp}_{f32,bf16}(const T* x, T* out, long long rows, long long n)
//   reduce_var_{f32,bf16}(const T* x, T* out, long long rows, long long n, long long correction)
//   reduce_middle_{sum,max,min}_{f32,bf16}(const T* x, T* out, long long outer, long long r,
//                                         long long inner)
//   out has rows (resp. outer * inner) elements of the input's dtype: bf16 in, bf16 out, every
//   result computed in f32 and rounded once (round to nearest even).
//
// Launch shape (reduce/launch.rs computes it; the kernels read the shape from blockDim):
//   row kernels   warp mode,  block (32, 8, 1): each warp owns a row; for n <= 1024.
//                 block mode, block (T, 1, 1), T in {128, ..., 1024} a multiple of 32: the block
//                 owns a row; for longer rows. Grid: any x >= 1 (rows are grid-strided); launch.rs
//                 uses one team per row up to a cap. Shared memory: static (128 B, 256 B for logsumexp);
//                 no dynamic shared memory.
//   middle        block (32, Y, 1), Y in [1, 32]: threadIdx.x walks 32 consecutive columns i
//                 (coalesced), threadIdx.y splits the r axis (j = y, y + Y, ...), partials are
//                 folded in y order through 4 KiB of static shared memory. Grid: any x >= 1 over
//                 outer * ceil(inner / 32) column tiles (grid-strided).
//
// Bytes and FLOPs (s = 4 for f32, 2 for bf16):
//   row sum/max/min:  reads n·s, writes s per row; n FLOPs.
//   logsumexp:        reads n·s once (online max and sum); n exp + ~3n FLOPs.
//   var:              reads n·s twice (the second read mostly from L1/L2); ~4n FLOPs.
//   middle:           reads outer·r·inner·s, writes outer·inner·s; one FLOP per element read.
//   All memory-bound; compare achieved GB/s with the device-copy ceiling.
//
// Numerics:
//   * f32 accumulation for both dtypes. Row sums are per-thread running sums folded by a fixed
//     shuffle/shared-memory tree: deterministic (same launch shape, same bits), but not the CPU's
//     8-lane order, so parity is to a tolerance. reduce_middle with Y = 1 adds in the CPU's exact
//     order (first element, then j = 1, 2, ...): bit-identical sums for f32.
//   * max/min follow the CPU rule `if v > m || v is NaN { m = v }`, so NaN propagates and the
//     empty row gives ∓inf. logsumexp is one pass with an online max (see lse_merge): exponents
//     are <= 0, nothing overflows; exp(a − b) is taken as 1 when a == b so that +inf entries give
//     +inf, not NaN.
//   * reduce_var's n − correction saturates at 0 as the CPU's usize::saturating_sub.
//   * Rows with n = 0 (which the CPU never forms) give 0, -inf, +inf, -inf and NaN.
//
// Known weaknesses: block mode keeps one block per row, so a handful of very long rows (say 4
// rows of 10^7) use only a few SMs; a split-row two-kernel variant would fix that. reduce_var
// reads the row twice. reduce_middle reads scalars (128 B per warp for f32, 64 B for bf16).

#include <cuda_bf16.h>

// The shared row machinery (bf16 typedef, loads, warp/block reductions) is in
// kernels/src/cuda/rows.cuh, prepended to this file by kernels/src/cuda/sources.rs.
__device__ __forceinline__ bool is_finite(float x) { return fabsf(x) < pos_inf(); }

// ---------------------------------------------------------------------------------------------
// The reductions, once, on f32: identity, fold W loaded values, merge two partials, finish.

struct SumR {
    typedef float S;
    __device__ static S id() { return 0.0f; }
    template <int W> __device__ static S add(S s, const float* v) {
#pragma unroll
        for (int k = 0; k < W; ++k) s += v[k];
        return s;
    }
    __device__ S operator()(S a, S b) const { return a + b; }
    __device__ static float finish(S s) { return s; }
};

struct MaxR {
    typedef float S;
    __device__ static S id() { return neg_inf(); }
    template <int W> __device__ static S add(S s, const float* v) {
#pragma unroll
        for (int k = 0; k < W; ++k) s = max_nan(s, v[k]);
        return s;
    }
    __device__ S operator()(S a, S b) const { return max_nan(a, b); }
    __device__ static float finish(S s) { return s; }
};

struct MinR {
    typedef float S;
    __device__ static S id() { return pos_inf(); }
    template <int W> __device__ static S add(S s, const float* v) {
#pragma unroll
        for (int k = 0; k < W; ++k) s = min_nan(s, v[k]);
        return s;
    }
    __device__ S operator()(S a, S b) const { return min_nan(a, b); }
    __device__ static float finish(S s) { return s; }
};

struct LseR {
    typedef float2 S;
    __device__ static S id() { return make_float2(neg_inf(), 0.0f); }
    template <int W> __device__ static S add(S s, const float* v) { return lse_add<W>(s, v); }
    __device__ S operator()(S a, S b) const { return lse_merge(a, b); }
    // Not finite: -inf (all -inf), +inf or NaN, which is also the true value.
    __device__ static float finish(S s) { return is_finite(s.x) ? s.x + logf(s.y) : s.x; }
};

// Row visitors for row_loop (NVRTC compiles no lambdas in device code without
// --extended-lambda, so the loop bodies are small functors).
template <typename R, typename T> struct FoldRow {
    const T* row;
    typename R::S s;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float v[W];
        load_w<W>(row + i, v);
        s = R::template add<W>(s, v);
    }
};
template <typename T> struct SquaredDeviations {
    const T* row;
    float mean, ss;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float v[W];
        load_w<W>(row + i, v);
#pragma unroll
        for (int k = 0; k < W; ++k) ss += (v[k] - mean) * (v[k] - mean);
    }
};

// One team per row: fold the row, reduce over the team, one thread writes.
template <typename R, typename T>
__device__ __forceinline__ void rows_kernel(const T* x, T* out, long long rows, long long n) {
    __shared__ typename R::S smem[32];
    const RowTeam t = row_team();
    for (long long r = t.first; r < rows; r += t.step) {
        FoldRow<R, T> f{x + r * n, R::id()};
        row_loop<Vec<T>::N>(n, aligned16(f.row), t.tid, t.nthr, f);
        const typename R::S s = team_reduce(f.s, R(), smem);
        if (t.tid == 0) out[r] = from_f32<T>(R::finish(s));
    }
}

template <typename T>
__device__ __forceinline__ void var_kernel(const T* x, T* out, long long rows, long long n,
                                           long long correction) {
    __shared__ float smem[32];
    const RowTeam t = row_team();
    const long long dof = n > correction ? n - correction : 0;
    for (long long r = t.first; r < rows; r += t.step) {
        const T* row = x + r * n;
        const bool vec = aligned16(row);
        FoldRow<SumR, T> sum{row, 0.0f};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, sum);
        SquaredDeviations<T> dev{row, team_reduce(sum.s, SumR(), smem) / (float)n, 0.0f};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, dev);
        const float ss = team_reduce(dev.ss, SumR(), smem);
        if (t.tid == 0) out[r] = from_f32<T>(ss / (float)dof);
    }
}

// Middle axis: out[o, i] = ⊕_j x[o, j, i]. Thread (tx, ty) of tile (o, c) folds column
// i = 32c + tx over j = ty, ty + Y, ... starting from its first element, as the CPU does; the Y
// partials are folded in y order by the ty = 0 thread.
template <typename R, typename T>
__device__ __forceinline__ void middle_kernel(const T* x, T* out, long long outer, long long r,
                                              long long inner) {
    __shared__ float part[32][32];
    const long long col_tiles = (inner + 31) / 32;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (long long tile = blockIdx.x; tile < outer * col_tiles; tile += gridDim.x) {
        const long long o = tile / col_tiles;
        const long long i = (tile - o * col_tiles) * 32 + tx;
        float acc = 0.0f;
        if (i < inner && ty < r) {
            const T* col = x + o * r * inner + i;
            acc = to_f32(col[ty * inner]);
            for (long long j = ty + blockDim.y; j < r; j += blockDim.y) {
                const float v = to_f32(col[j * inner]);
                acc = R::template add<1>(acc, &v);
            }
        }
        __syncthreads();  // the previous tile's readers are done with part
        part[ty][tx] = acc;
        __syncthreads();
        if (ty == 0 && i < inner) {
            const long long used = r < (long long)blockDim.y ? r : (long long)blockDim.y;
            for (int y = 1; y < (int)used; ++y) acc = R()(acc, part[y][tx]);
            out[o * inner + i] = from_f32<T>(acc);  // r = 0: acc stayed 0, as the CPU
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points.

extern "C" __global__ void reduce_sum_f32(const float* x, float* out, long long rows, long long n) {
    rows_kernel<SumR, float>(x, out, rows, n);
}

extern "C" __global__ void reduce_sum_bf16(const bf16* x, bf16* out, long long rows, long long n) {
    rows_kernel<SumR, bf16>(x, out, rows, n);
}

extern "C" __global__ void reduce_max_f32(const float* x, float* out, long long rows, long long n) {
    rows_kernel<MaxR, float>(x, out, rows, n);
}

extern "C" __global__ void reduce_max_bf16(const bf16* x, bf16* out, long long rows, long long n) {
    rows_kernel<MaxR, bf16>(x, out, rows, n);
}

extern "C" __global__ void reduce_min_f32(const float* x, float* out, long long rows, long long n) {
    rows_kernel<MinR, float>(x, out, rows, n);
}

extern "C" __global__ void reduce_min_bf16(const bf16* x, bf16* out, long long rows, long long n) {
    rows_kernel<MinR, bf16>(x, out, rows, n);
}

extern "C" __global__ void reduce_logsumexp_f32(const float* x, float* out, long long rows, long long n) {
    rows_kernel<LseR, float>(x, out, rows, n);
}

extern "C" __global__ void reduce_logsumexp_bf16(const bf16* x, bf16* out, long long rows, long long n) {
    rows_kernel<LseR, bf16>(x, out, rows, n);
}

extern "C" __global__ void reduce_var_f32(const float* x, float* out, long long rows, long long n,
                                   long long correction) {
    var_kernel<float>(x, out, rows, n, correction);
}

extern "C" __global__ void reduce_var_bf16(const bf16* x, bf16* out, long long rows, long long n,
                                    long long correction) {
    var_kernel<bf16>(x, out, rows, n, correction);
}

extern "C" __global__ void reduce_middle_sum_f32(const float* x, float* out, long long outer,
                                                long long r, long long inner) {
    middle_kernel<SumR, float>(x, out, outer, r, inner);
}

extern "C" __global__ void reduce_middle_sum_bf16(const bf16* x, bf16* out, long long outer,
                                                long long r, long long inner) {
    middle_kernel<SumR, bf16>(x, out, outer, r, inner);
}

extern "C" __global__ void reduce_middle_max_f32(const float* x, float* out, long long outer,
                                                long long r, long long inner) {
    middle_kernel<MaxR, float>(x, out, outer, r, inner);
}

extern "C" __global__ void reduce_middle_max_bf16(const bf16* x, bf16* out, long long outer,
                                                long long r, long long inner) {
    middle_kernel<MaxR, bf16>(x, out, outer, r, inner);
}

extern "C" __global__ void reduce_middle_min_f32(const float* x, float* out, long long outer,
                                                long long r, long long inner) {
    middle_kernel<MinR, float>(x, out, outer, r, inner);
}

extern "C" __global__ void reduce_middle_min_bf16(const bf16* x, bf16* out, long long outer,
                                                long long r, long long inner) {
    middle_kernel<MinR, bf16>(x, out, outer, r, inner);
}
