// softmax.cu: softmax and log-softmax over the rows of a contiguous [rows, n] buffer, forward and
// backward, f32 and bf16. CPU reference: softmax/cpu.rs (same formulas, same edge cases).
//
// What it computes, per row x of length n, m = max_j x_j (NaN if any x_j is NaN):
//   softmax_fwd_*       y_i  = exp(x_i − m) / Σ_j exp(x_j − m)
//   log_softmax_fwd_*   y_i  = (x_i − m) − ln Σ_j exp(x_j − m)
//   softmax_bwd_*       dx_i = y_i · (g_i − Σ_j g_j·y_j)
//   log_softmax_bwd_*   dx_i = g_i − exp(y_i) · Σ_j g_j
//   (the backward passes read only the forward output y, never x).
//
// ABI (sizes long long, buffers contiguous [rows, n], outputs never alias inputs):
//   softmax_fwd_{f32,bf16}(const T* x, T* y, long long rows, long long n)
//   log_softmax_fwd_{f32,bf16}(const T* x, T* y, long long rows, long long n)
//   softmax_bwd_{f32,bf16}(const T* y, const T* g, T* dx, long long rows, long long n)
//   log_softmax_bwd_{f32,bf16}(const T* y, const T* g, T* dx, long long rows, long long n)
//
// Launch shape: the row scheme of reduce.cu (reduce/launch.rs `rows`, also re-exported as
//   softmax/launch.rs `rows`): block (32, 8, 1) = a warp per row for n <= 1024, else block
//   (T, 1, 1), T in [128, 1024] = a block per row. Grid: any x >= 1 (rows are grid-strided).
//   Static shared memory only (256 B); no dynamic shared memory.
//
// Bytes and FLOPs per row (s = 4 for f32, 2 for bf16):
//   forward   reads n·s for the statistics (max and sum in ONE online pass), then reads the row
//             again to write it: 2n·s read (the second mostly from L1/L2 while the row is hot),
//             n·s written. Minimum traffic is n·s + n·s. ~5n FLOPs and 2n exp (one in the
//             online sum, one for the output; log_softmax: n exp + 1 log).
//   backward  reads 2n·s (y, g) twice (the second from cache), writes n·s; ~4n FLOPs
//             (log_softmax: + n exp).
//   All memory-bound.
//
// Numerics:
//   * f32 accumulation for both dtypes; bf16 results are the f32 result rounded once.
//   * The max and the sum come from one pass with an online max (lse_merge / lse_add): each new
//     maximum rescales the running sum by exp(m_old − m_new), so every exponent is <= 0 and
//     nothing overflows. The sum thus differs from the CPU's two-pass sum by a few ulps.
//   * A row that is entirely -inf gives softmax 0 and log_softmax -inf everywhere, and both
//     backward passes give exactly 0 for it (log_softmax_bwd tests max_j y_j == -inf, as the
//     CPU; softmax_bwd gets 0 from y = 0). Never NaN.
//   * A NaN anywhere in a row makes the whole output row NaN; a +inf entry (m = +inf) gives NaN
//     for the whole row, as the CPU (inf − inf).
//   * Division, exp and log are the accurate (non fast-math) versions; the output divides by the
//     sum rather than multiplying by its reciprocal, as the CPU.
//   * Deterministic: fixed reduction tree for a given launch shape.
//
// Known weaknesses: the forward and backward read the row twice (a row that fits in registers
// could be kept there); a few very long rows use only a few SMs (one block per row).

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
// Row visitors (functors: NVRTC compiles no device lambdas without --extended-lambda).

template <typename T> struct LseFold {
    const T* x;
    float2 st;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float v[W];
        load_w<W>(x + i, v);
        st = lse_add<W>(st, v);
    }
};

// y = exp(x − m) / s (softmax) or (x − m) − log_s (log_softmax); `fill` for rows whose max is
// not finite. `ok` is uniform over the row, so the branch never diverges.
template <typename T, bool LOG> struct SoftmaxWrite {
    const T* x;
    T* y;
    float m, s, log_s, fill;
    bool ok;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float v[W];
        load_w<W>(x + i, v);
#pragma unroll
        for (int k = 0; k < W; ++k) {
            if (LOG) v[k] = ok ? (v[k] - m) - log_s : fill;
            else v[k] = ok ? expf(v[k] - m) / s : fill;
        }
        store_w<W>(y + i, v);
    }
};

template <typename T> struct DotFold {
    const T *y, *g;
    float dot;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float a[W], b[W];
        load_w<W>(y + i, a);
        load_w<W>(g + i, b);
#pragma unroll
        for (int k = 0; k < W; ++k) dot += a[k] * b[k];
    }
};

template <typename T> struct SoftmaxBwdWrite {
    const T *y, *g;
    T* dx;
    float dot;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float a[W], b[W];
        load_w<W>(y + i, a);
        load_w<W>(g + i, b);
#pragma unroll
        for (int k = 0; k < W; ++k) a[k] = a[k] * (b[k] - dot);
        store_w<W>(dx + i, a);
    }
};

// (max_j y_j, Σ_j g_j) in one pass.
template <typename T> struct MaxSumFold {
    const T *y, *g;
    float2 st;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float a[W], b[W];
        load_w<W>(y + i, a);
        load_w<W>(g + i, b);
#pragma unroll
        for (int k = 0; k < W; ++k) {
            st.x = max_nan(st.x, a[k]);
            st.y += b[k];
        }
    }
};
struct MaxSumMerge {
    __device__ __forceinline__ float2 operator()(float2 a, float2 b) const {
        return make_float2(max_nan(a.x, b.x), a.y + b.y);
    }
};
struct AddF {
    __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};

template <typename T> struct LogSoftmaxBwdWrite {
    const T *y, *g;
    T* dx;
    float total;
    bool masked;  // the whole row is -inf: constant output, zero gradient
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float a[W], b[W];
        load_w<W>(y + i, a);
        load_w<W>(g + i, b);
#pragma unroll
        for (int k = 0; k < W; ++k) a[k] = masked ? 0.0f : b[k] - expf(a[k]) * total;
        store_w<W>(dx + i, a);
    }
};

// ---------------------------------------------------------------------------------------------
// The kernels, once per dtype.

template <typename T, bool LOG>
__device__ __forceinline__ void softmax_fwd(const T* x, T* y, long long rows, long long n) {
    __shared__ float2 smem[32];
    const RowTeam t = row_team();
    for (long long r = t.first; r < rows; r += t.step) {
        LseFold<T> fold{x + r * n, make_float2(neg_inf(), 0.0f)};
        const bool vec = aligned16(x + r * n) && aligned16(y + r * n);
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, fold);
        const float2 st = team_reduce(fold.st, LseMerge(), smem);
        // m = -inf: fully masked row (0 / -inf); m = +inf or NaN: NaN, as the CPU.
        const float fill = st.x == neg_inf() ? (LOG ? neg_inf() : 0.0f) : qnan();
        SoftmaxWrite<T, LOG> write{x + r * n, y + r * n, st.x, st.y, logf(st.y), fill,
                                   is_finite(st.x)};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, write);
    }
}

template <typename T>
__device__ __forceinline__ void softmax_bwd(const T* y, const T* g, T* dx, long long rows,
                                            long long n) {
    __shared__ float smem[32];
    const RowTeam t = row_team();
    for (long long r = t.first; r < rows; r += t.step) {
        const long long o = r * n;
        const bool vec = aligned16(y + o) && aligned16(g + o) && aligned16(dx + o);
        DotFold<T> fold{y + o, g + o, 0.0f};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, fold);
        SoftmaxBwdWrite<T> write{y + o, g + o, dx + o, team_reduce(fold.dot, AddF(), smem)};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, write);
    }
}

template <typename T>
__device__ __forceinline__ void log_softmax_bwd(const T* y, const T* g, T* dx, long long rows,
                                                long long n) {
    __shared__ float2 smem[32];
    const RowTeam t = row_team();
    for (long long r = t.first; r < rows; r += t.step) {
        const long long o = r * n;
        const bool vec = aligned16(y + o) && aligned16(g + o) && aligned16(dx + o);
        MaxSumFold<T> fold{y + o, g + o, make_float2(neg_inf(), 0.0f)};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, fold);
        const float2 st = team_reduce(fold.st, MaxSumMerge(), smem);
        LogSoftmaxBwdWrite<T> write{y + o, g + o, dx + o, st.y, st.x == neg_inf()};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, write);
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points.

extern "C" __global__ void softmax_fwd_f32(const float* x, float* y, long long rows, long long n) {
    softmax_fwd<float, false>(x, y, rows, n);
}
extern "C" __global__ void softmax_fwd_bf16(const bf16* x, bf16* y, long long rows, long long n) {
    softmax_fwd<bf16, false>(x, y, rows, n);
}
extern "C" __global__ void log_softmax_fwd_f32(const float* x, float* y, long long rows, long long n) {
    softmax_fwd<float, true>(x, y, rows, n);
}
extern "C" __global__ void log_softmax_fwd_bf16(const bf16* x, bf16* y, long long rows, long long n) {
    softmax_fwd<bf16, true>(x, y, rows, n);
}
extern "C" __global__ void softmax_bwd_f32(const float* y, const float* g, float* dx, long long rows,
                                           long long n) {
    softmax_bwd<float>(y, g, dx, rows, n);
}
extern "C" __global__ void softmax_bwd_bf16(const bf16* y, const bf16* g, bf16* dx, long long rows,
                                            long long n) {
    softmax_bwd<bf16>(y, g, dx, rows, n);
}
extern "C" __global__ void log_softmax_bwd_f32(const float* y, const float* g, float* dx,
                                               long long rows, long long n) {
    log_softmax_bwd<float>(y, g, dx, rows, n);
}
extern "C" __global__ void log_softmax_bwd_bf16(const bf16* y, const bf16* g, bf16* dx,
                                                long long rows, long long n) {
    log_softmax_bwd<bf16>(y, g, dx, rows, n);
}
