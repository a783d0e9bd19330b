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

// The shared row machinery (bf16 typedef, loads, warp/block reductions) is in
// kernels/src/cuda/rows.cuh, prepended to this file by kernels/src/cuda/sources.rs.
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
