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

// The shared row machinery (bf16 typedef, loads, warp/block reductions) is in
// kernels/src/cuda/rows.cuh, prepended to this file by kernels/src/cuda/sources.rs.
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
