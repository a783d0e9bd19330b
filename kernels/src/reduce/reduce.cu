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

typedef __nv_bfloat16 bf16;

// ---------------------------------------------------------------------------------------------
// Shared row machinery (each .cu file is its own NVRTC program, so the few helpers it needs are
// repeated in reduce.cu, softmax.cu, norm.cu and loss.cu; keep the copies identical).

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ float pos_inf() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float qnan() { return __int_as_float(0x7fffffff); }

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) { return __float2bfloat16_rn(v); }

// Elements of T in one 16-byte vector: 4 x f32, 8 x bf16.
template <typename T> struct Vec { static constexpr int N = 16 / (int)sizeof(T); };
template <int W> struct Width { static constexpr int value = W; };

union Bf16x8 {
    uint4 raw;
    __nv_bfloat162 pair[4];
};

// W consecutive elements at p as floats: W == 1, or one 16-byte vector (p 16-byte aligned).
template <int W> __device__ __forceinline__ void load_w(const float* p, float* v) {
    if constexpr (W == 4) {
        const float4 q = *reinterpret_cast<const float4*>(p);
        v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
    } else {
#pragma unroll
        for (int k = 0; k < W; ++k) v[k] = p[k];
    }
}
template <int W> __device__ __forceinline__ void load_w(const bf16* p, float* v) {
    if constexpr (W == 8) {
        Bf16x8 u;
        u.raw = *reinterpret_cast<const uint4*>(p);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const float2 f = __bfloat1622float2(u.pair[k]);
            v[2 * k] = f.x; v[2 * k + 1] = f.y;
        }
    } else {
#pragma unroll
        for (int k = 0; k < W; ++k) v[k] = __bfloat162float(p[k]);
    }
}
template <int W> __device__ __forceinline__ void store_w(float* p, const float* v) {
    if constexpr (W == 4) {
        *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
#pragma unroll
        for (int k = 0; k < W; ++k) p[k] = v[k];
    }
}
template <int W> __device__ __forceinline__ void store_w(bf16* p, const float* v) {
    if constexpr (W == 8) {
        Bf16x8 u;
#pragma unroll
        for (int k = 0; k < 4; ++k) u.pair[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
        *reinterpret_cast<uint4*>(p) = u.raw;
    } else {
#pragma unroll
        for (int k = 0; k < W; ++k) p[k] = __float2bfloat16_rn(v[k]);
    }
}

// Who works on which row. Warp mode (blockDim.x == 32): each warp owns a row, blockDim.y warps
// per block. Block mode (blockDim.x a multiple of 32 above 32, blockDim.y == 1): the whole block
// owns a row. Either way rows are visited in a grid-stride loop, so any grid size is correct.
struct RowTeam {
    long long first, step;
    int tid, nthr;
};
__device__ __forceinline__ RowTeam row_team() {
    if (blockDim.x == 32) {
        return {(long long)blockIdx.x * blockDim.y + threadIdx.y, (long long)gridDim.x * blockDim.y,
                (int)threadIdx.x, 32};
    }
    return {(long long)blockIdx.x, (long long)gridDim.x, (int)threadIdx.x, (int)blockDim.x};
}

// Visit a row of n elements shared by `nthr` threads: f(i, Width<W>()) handles elements
// [i, i + W). With `vec` (every pointer the caller reads or writes at this row is 16-byte
// aligned), whole 16-byte vectors first, then the n % VEC tail one element at a time; thread t
// takes vectors t, t + nthr, ... so a warp's accesses are contiguous.
template <int VEC, typename F>
__device__ __forceinline__ void row_loop(long long n, bool vec, int tid, int nthr, F&& f) {
    long long done = 0;
    if (vec) {
        const long long nv = n / VEC * VEC;
        for (long long i = (long long)tid * VEC; i < nv; i += (long long)nthr * VEC) f(i, Width<VEC>());
        done = nv;
    }
    for (long long i = done + tid; i < n; i += nthr) f(i, Width<1>());
}

__device__ __forceinline__ float shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ float2 shfl_xor(float2 v, int o) {
    return make_float2(__shfl_xor_sync(0xffffffffu, v.x, o), __shfl_xor_sync(0xffffffffu, v.y, o));
}

// Combine one value per thread over the row's team; every thread of the team gets the result.
// Warp: xor butterfly. Block: butterfly per warp, one partial per warp in `smem` (32 entries),
// then every thread folds the partials in warp order, so the result is the same on every
// thread and every run. All threads of the team must call it (the row loop is team-uniform).
template <typename S, typename C>
__device__ __forceinline__ S team_reduce(S s, C combine, S* smem) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s = combine(s, shfl_xor(s, o));
    if (blockDim.x == 32) return s;
    __syncthreads();  // the previous call's readers are done with smem
    if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = s;
    __syncthreads();
    s = smem[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); ++w) s = combine(s, smem[w]);
    return s;
}

// NaN-propagating max/min with the CPU's rule (`if v > m || v.is_nan() { m = v }`).
__device__ __forceinline__ float max_nan(float m, float v) { return (v > m || v != v) ? v : m; }
__device__ __forceinline__ float min_nan(float m, float v) { return (v < m || v != v) ? v : m; }

// exp(a - b), but exactly 1 when a == b: keeps inf - inf out of the online log-sum-exp.
__device__ __forceinline__ float exp_diff(float a, float b) { return expf(a == b ? 0.0f : a - b); }

// Online log-sum-exp state: m = NaN-propagating running max, s = sum of exp(v - m).
// Empty state (-inf, 0). Merging (m1, s1), (m2, s2): m = max, s = s1 e^(m1 - m) + s2 e^(m2 - m).
__device__ __forceinline__ float2 lse_merge(float2 a, float2 b) {
    const float m = max_nan(a.x, b.x);
    return make_float2(m, a.y * exp_diff(a.x, m) + b.y * exp_diff(b.x, m));
}
struct LseMerge {
    __device__ __forceinline__ float2 operator()(float2 a, float2 b) const { return lse_merge(a, b); }
};
// Fold W values into the state with one rescale: max of the chunk first, then one exp each.
template <int W> __device__ __forceinline__ float2 lse_add(float2 st, const float* v) {
    float cm = v[0];
#pragma unroll
    for (int k = 1; k < W; ++k) cm = max_nan(cm, v[k]);
    const float m = max_nan(st.x, cm);
    float s = st.y * exp_diff(st.x, m);
#pragma unroll
    for (int k = 0; k < W; ++k) s += exp_diff(v[k], m);
    return make_float2(m, s);
}

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
