// loss.cu: softmax cross-entropy over [rows, classes] logits with i64 class targets (forward and
// fused backward), and elementwise squared error (forward and backward). f32 and bf16 logits /
// predictions. CPU reference: loss/cpu.rs.
//
// What it computes, per row x of C logits with target t (r in [0, rows)):
//   cross_entropy_fwd_*   lse_r = ln Σ_j exp(x_j)  (one online pass),  loss_r = lse_r − x_t
//   cross_entropy_bwd_*   dx_j = g_r·exp(x_j − lse_r) − [j = t]·g_r      (softmax − onehot)
// and per element i:
//   squared_error_fwd_*   e_i = (p_i − t_i)²
//   squared_error_bwd_*   dp_i = 2·(p_i − t_i)·g_i     (the gradient for t is −dp)
//
// ABI (sizes long long, buffers contiguous, outputs never alias inputs):
//   cross_entropy_fwd_T(const T* logits, const long long* targets, float* loss, float* lse,
//                       long long rows, long long classes, unsigned long long* error)
//       logits [rows, classes] of T; targets [rows] i64; loss, lse [rows] f32 for both dtypes.
//   cross_entropy_bwd_T(const T* logits, const long long* targets, const float* lse,
//                       const float* g, long long g_stride, T* dx, long long rows,
//                       long long classes, unsigned long long* error)
//       g: f32, g_r = g[r · g_stride]: g_stride = 1 for one upstream gradient per row (no
//       reduction), 0 for one value for all rows (sum/mean, already divided by the count).
//       dx [rows, classes] of T.
//   squared_error_fwd_T(const T* p, const T* t, T* out, long long n)
//   squared_error_bwd_T(const T* p, const T* t, const T* g, long long g_stride, T* dp,
//                       long long n)
//       g of T; g_i = g[i · g_stride] (g_stride 1: per element, 0: one value for all).
//   error: optional (null to skip) single u64 that the host sets to u64::MAX (all ones) before
//       the launch. A target outside [0, classes) never indexes the logits: the kernel does
//       atomicMin(error, r), so afterwards error holds the SMALLEST bad row (the CPU's "first"
//       offending target), and that row's loss (forward) or whole dx row (backward) is NaN.
//
// Launch shape (loss/launch.rs):
//   cross_entropy_*   the row scheme of reduce.cu: block (32, 8, 1) = a warp per row for
//                     classes <= 1024, else (T, 1, 1) = a block per row (T in [128, 1024]);
//                     grid any x >= 1 (grid-strided). Static shared memory 256 B (forward).
//   squared_error_*   1-D grid-stride, block 256, grid any x >= 1; 16-byte vectors when every
//                     pointer is 16-byte aligned, scalar otherwise.
//
// Bytes and FLOPs (s = 4 for f32, 2 for bf16):
//   cross_entropy fwd   reads C·s + 8 B per row (logits once: online max and sum), writes 8 B;
//                       ~4C FLOPs, C exp, 1 log.
//   cross_entropy bwd   reads C·s + 16 B per row, writes C·s; ~2C FLOPs, C exp.
//   squared_error       fwd reads 2s, writes s per element, 2 FLOPs; bwd reads 3s (2s with a
//                       shared g), writes s, 3 FLOPs. Everything here is memory-bound.
//
// Numerics:
//   * f32 accumulation for both dtypes; bf16 outputs are the f32 results rounded once.
//   * lse is the online log-sum-exp (Milakov & Gimelshein): a running max m and a sum of
//     exp(x − m) rescaled by exp(m_old − m_new); partial states merge through lse_merge, so each
//     exponent is <= 0 and nothing overflows. The CPU's serial version adds in another order:
//     parity to a tolerance.
//   * A row of all -inf logits: lse = -inf, loss = +inf (not NaN), dx = 0 for the whole row.
//     A -inf target logit in a finite row: loss +inf, finite dx (softmax − onehot).
//   * NaN in a row: lse and loss NaN. +inf logits: lse = +inf (the CPU gives NaN when two or more
//     logits of a row are +inf, an artifact of its serial inf − inf); loss = +inf − x_t.
//   * dx: g_r·exp(x − lse), then g_r subtracted at the target, exactly the CPU's order.
//   * squared error: (p − t)·(p − t) and (2·(p − t))·g, the CPU's order.
//
// Known weaknesses: the backward reads the logits once more than the fused minimum (it is a
// separate kernel so that the forward stays usable for evaluation; a fused fwd+bwd kernel for
// training would write dx in the forward's second pass).

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

__device__ __forceinline__ void flag_error(unsigned long long* error, long long position) {
    if (error) atomicMin(error, (unsigned long long)position);
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy (functors: NVRTC compiles no device lambdas without --extended-lambda).

template <typename T> struct LseFold {
    const T* x;
    float2 st;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float v[W];
        load_w<W>(x + i, v);
        st = lse_add<W>(st, v);
    }
};

// dx_j = g·exp(x_j − lse), minus g at the target; `fill` (0 or NaN) for a whole row instead.
template <typename T> struct CeBwdWrite {
    const T* x;
    T* dx;
    float lse, g, fill;
    long long target;
    bool use_fill;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float v[W];
        load_w<W>(x + i, v);
#pragma unroll
        for (int k = 0; k < W; ++k) {
            float d = g * expf(v[k] - lse);
            if (i + k == target) d -= g;
            v[k] = use_fill ? fill : d;
        }
        store_w<W>(dx + i, v);
    }
};

template <typename T>
__device__ __forceinline__ void cross_entropy_fwd(const T* logits, const long long* targets,
                                                  float* loss, float* lse, long long rows,
                                                  long long classes, unsigned long long* error) {
    __shared__ float2 smem[32];
    const RowTeam t = row_team();
    for (long long r = t.first; r < rows; r += t.step) {
        const T* x = logits + r * classes;
        LseFold<T> fold{x, make_float2(neg_inf(), 0.0f)};
        row_loop<Vec<T>::N>(classes, aligned16(x), t.tid, t.nthr, fold);
        const float2 st = team_reduce(fold.st, LseMerge(), smem);
        if (t.tid == 0) {
            // Not finite: -inf (all -inf), +inf or NaN, which is also the true value.
            const float l = is_finite(st.x) ? st.x + logf(st.y) : st.x;
            const long long c = targets[r];
            float value;
            if (c < 0 || c >= classes) {
                flag_error(error, r);
                value = qnan();
            } else {
                value = l == neg_inf() ? pos_inf() : l - to_f32(x[c]);
            }
            lse[r] = l;
            loss[r] = value;
        }
    }
}

template <typename T>
__device__ __forceinline__ void cross_entropy_bwd(const T* logits, const long long* targets,
                                                  const float* lse, const float* g,
                                                  long long g_stride, T* dx, long long rows,
                                                  long long classes, unsigned long long* error) {
    const RowTeam t = row_team();
    for (long long r = t.first; r < rows; r += t.step) {
        const long long o = r * classes, c = targets[r];
        const bool bad = c < 0 || c >= classes;
        if (bad && t.tid == 0) flag_error(error, r);
        const float l = lse[r];
        // All -inf row: the loss is +inf whatever the logits, so the gradient is 0.
        CeBwdWrite<T> write{logits + o, dx + o, l, g[r * g_stride], bad ? qnan() : 0.0f, c,
                            bad || l == neg_inf()};
        row_loop<Vec<T>::N>(classes, aligned16(logits + o) && aligned16(dx + o), t.tid, t.nthr,
                            write);
    }
}

// ---------------------------------------------------------------------------------------------
// Squared error: elementwise, the whole grid is one team over the n elements.

template <typename T> struct SqErrFwd {
    const T *p, *t;
    T* out;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float a[W], b[W];
        load_w<W>(p + i, a);
        load_w<W>(t + i, b);
#pragma unroll
        for (int k = 0; k < W; ++k) a[k] = (a[k] - b[k]) * (a[k] - b[k]);
        store_w<W>(out + i, a);
    }
};

template <typename T> struct SqErrBwd {
    const T *p, *t, *g;
    T* dp;
    bool shared_g;  // g_stride == 0: one g for all
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float a[W], b[W], gv[W];
        load_w<W>(p + i, a);
        load_w<W>(t + i, b);
        if (shared_g) {
            const float g0 = to_f32(g[0]);
#pragma unroll
            for (int k = 0; k < W; ++k) gv[k] = g0;
        } else {
            load_w<W>(g + i, gv);
        }
#pragma unroll
        for (int k = 0; k < W; ++k) a[k] = (2.0f * (a[k] - b[k])) * gv[k];
        store_w<W>(dp + i, a);
    }
};

__device__ __forceinline__ int grid_tid() { return blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int grid_threads() { return gridDim.x * blockDim.x; }

// ---------------------------------------------------------------------------------------------
// Entry points.

extern "C" __global__ void cross_entropy_fwd_f32(const float* logits, const long long* targets, float* loss,
                                             float* lse, long long rows, long long classes,
                                             unsigned long long* error) {
    cross_entropy_fwd<float>(logits, targets, loss, lse, rows, classes, error);
}
extern "C" __global__ void cross_entropy_bwd_f32(const float* logits, const long long* targets,
                                             const float* lse, const float* g, long long g_stride,
                                             float* dx, long long rows, long long classes,
                                             unsigned long long* error) {
    cross_entropy_bwd<float>(logits, targets, lse, g, g_stride, dx, rows, classes, error);
}
extern "C" __global__ void squared_error_fwd_f32(const float* p, const float* t, float* out, long long n) {
    SqErrFwd<float> f{p, t, out};
    row_loop<Vec<float>::N>(n, aligned16(p) && aligned16(t) && aligned16(out), grid_tid(), grid_threads(), f);
}
extern "C" __global__ void squared_error_bwd_f32(const float* p, const float* t, const float* g, long long g_stride,
                                             float* dp, long long n) {
    SqErrBwd<float> f{p, t, g, dp, g_stride == 0};
    const bool vec = aligned16(p) && aligned16(t) && aligned16(dp) && (g_stride == 0 || aligned16(g));
    row_loop<Vec<float>::N>(n, vec, grid_tid(), grid_threads(), f);
}
extern "C" __global__ void cross_entropy_fwd_bf16(const bf16* logits, const long long* targets, float* loss,
                                             float* lse, long long rows, long long classes,
                                             unsigned long long* error) {
    cross_entropy_fwd<bf16>(logits, targets, loss, lse, rows, classes, error);
}
extern "C" __global__ void cross_entropy_bwd_bf16(const bf16* logits, const long long* targets,
                                             const float* lse, const float* g, long long g_stride,
                                             bf16* dx, long long rows, long long classes,
                                             unsigned long long* error) {
    cross_entropy_bwd<bf16>(logits, targets, lse, g, g_stride, dx, rows, classes, error);
}
extern "C" __global__ void squared_error_fwd_bf16(const bf16* p, const bf16* t, bf16* out, long long n) {
    SqErrFwd<bf16> f{p, t, out};
    row_loop<Vec<bf16>::N>(n, aligned16(p) && aligned16(t) && aligned16(out), grid_tid(), grid_threads(), f);
}
extern "C" __global__ void squared_error_bwd_bf16(const bf16* p, const bf16* t, const bf16* g, long long g_stride,
                                             bf16* dp, long long n) {
    SqErrBwd<bf16> f{p, t, g, dp, g_stride == 0};
    const bool vec = aligned16(p) && aligned16(t) && aligned16(dp) && (g_stride == 0 || aligned16(g));
    row_loop<Vec<bf16>::N>(n, vec, grid_tid(), grid_threads(), f);
}
