// norm.cu: layer norm and RMS norm over the rows of a contiguous [rows, n] buffer, forward (with
// saved per-row statistics) and backward (dx per row; dγ, dβ by deterministic two-stage column
// sums). f32 and bf16 storage, f32 statistics. CPU reference: norm/cpu.rs.
//
// What it computes, per row x of length n, with optional weight γ (null = 1) and bias β
// (null = 0), both of length n and of the storage dtype T:
//   layer_norm_fwd_*     μ = Σx·(1/n),  σ² = Σ(x − μ)²·(1/n) (biased),  r = 1/√(σ² + ε),
//                        y = ((x − μ)·r)·γ + β;  saves μ and r per row (f32)
//   layer_norm_bwd_dx_*  ĝ = g·γ,  x̂ = (x − μ)·r,
//                        dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂))
//   layer_norm_bwd_dwdb_partial_* + _finish_*   dγ = Σ_rows g⊙x̂,  dβ = Σ_rows g
//   rms_norm_fwd_*       r = 1/√(Σx²·(1/n) + ε),  y = (x·r)·γ;  saves r per row (f32)
//   rms_norm_bwd_dx_*    dx = r·(ĝ − x·r·mean(ĝ⊙x·r))
//   rms_norm_bwd_dw_partial_* + _finish_*       dγ = Σ_rows g⊙x·r
//
// ABI (sizes long long, buffers contiguous; T = float or __nv_bfloat16 per the suffix; every
// per-row statistic and every partial is f32 whatever T is; outputs never alias inputs):
//   layer_norm_fwd_T(const T* x, const T* weight, const T* bias, T* y, float* mean, float* rstd,
//                    long long rows, long long n, float eps)
//       weight, bias: null for none. mean, rstd: [rows], null to skip saving them (inference).
//   layer_norm_bwd_dx_T(const T* x, const T* g, const float* mean, const float* rstd,
//                       const T* weight, T* dx, long long rows, long long n)
//   layer_norm_bwd_dwdb_partial_T(const T* x, const T* g, const float* mean, const float* rstd,
//                                 float* partial, long long rows, long long n,
//                                 long long rows_per_block)
//       partial: [row_blocks, 2, n] f32 workspace, row_blocks = ceil(rows / rows_per_block) =
//       gridDim.y; partial[b][0][i] = Σ g⊙x̂ and partial[b][1][i] = Σ g over the rows
//       [b·rows_per_block, (b + 1)·rows_per_block). Every element is written (0 for no rows).
//   layer_norm_bwd_dwdb_finish_T(const float* partial, T* dweight, T* dbias,
//                                long long row_blocks, long long n)
//       dweight[i] = Σ_b partial[b][0][i], dbias[i] = Σ_b partial[b][1][i], added in b order.
//   rms_norm_fwd_T(const T* x, const T* weight, T* y, float* rstd, long long rows, long long n,
//                  float eps)
//   rms_norm_bwd_dx_T(const T* x, const T* g, const float* rstd, const T* weight, T* dx,
//                     long long rows, long long n)
//   rms_norm_bwd_dw_partial_T(const T* x, const T* g, const float* rstd, float* partial,
//                             long long rows, long long n, long long rows_per_block)
//       partial: [row_blocks, n] f32.
//   rms_norm_bwd_dw_finish_T(const float* partial, T* dweight, long long row_blocks, long long n)
//
// Launch shape (norm/launch.rs):
//   *_fwd_*, *_bwd_dx_*   the row scheme of reduce.cu: block (32, 8, 1) = a warp per row for
//                         n <= 1024, else (T, 1, 1) = a block per row; grid any x >= 1.
//   *_partial_*           block (32, 8, 1) exactly (the kernel assumes 32 columns x 8 row lanes);
//                         grid (ceil(n / 32), row_blocks, 1); 2 KiB (LN) / 1 KiB (RMS) static
//                         shared memory. A warp reads 32 consecutive columns of one row.
//   *_finish_*            block (256, 1, 1), grid any x >= 1 over the n columns (grid-strided).
//   No dynamic shared memory anywhere.
//
// Bytes and FLOPs per row (s = 4 for f32, 2 for bf16; γ, β stay in cache):
//   layer_norm fwd   reads n·s three times (sum, squared deviations, output; the last two
//                    mostly from L1/L2), writes n·s + 8 B; ~8n FLOPs, 1 sqrt.
//   layer_norm dx    reads 2n·s twice (g, x), writes n·s; ~13n FLOPs.
//   dγ/dβ partial    reads 2n·s + 8 B per row, writes 2n·4 B per row block; ~5n FLOPs per row.
//   rms_norm fwd     reads n·s twice, writes n·s + 4 B; ~4n FLOPs.  dx: ~9n, dγ: ~4n FLOPs.
//   All memory-bound; the minimum traffic is one read of each input and one write.
//
// Numerics:
//   * f32 statistics and accumulation for both dtypes; bf16 outputs are rounded once.
//   * Two-pass variance (mean first, then squared deviations), as the CPU: E[x²] − E[x]² would
//     lose every digit when |μ| ≫ σ. ε inside the root keeps r finite for a constant row.
//   * Each product is written in the CPU's order ((g·(x − μ))·r, and so on); the compiler may
//     still fuse a multiply and an add into an FMA, so parity is to a tolerance.
//   * dγ, dβ: no atomics. Each (column tile, row block) sums its rows in a fixed order and folds
//     its 8 row lanes in order; the finish kernel adds the row blocks in order. The result
//     depends only on (rows, n, rows_per_block): bitwise reproducible run to run.
//   * NaN or ±inf in a row makes that row's output NaN; other rows are unaffected.
//
// Known weaknesses: the forward reads the row 3 times (layer norm) / twice (RMS), and dx twice;
// a Welford single pass or keeping the row in registers would save the re-reads where the row is
// not in cache. The partial kernel reads scalars (128 B per warp for f32, 64 B for bf16).

#include <cuda_bf16.h>

// The shared row machinery (bf16 typedef, loads, warp/block reductions) is in
// kernels/src/cuda/rows.cuh, prepended to this file by kernels/src/cuda/sources.rs.
// γ[i] (or 1 without a weight) for W consecutive columns starting at i; same for β (or 0).
template <int W, typename T>
__device__ __forceinline__ void load_param(const T* p, long long i, float fallback, float* v) {
    if (p) {
        load_w<W>(p + i, v);
    } else {
#pragma unroll
        for (int k = 0; k < W; ++k) v[k] = fallback;
    }
}

struct AddF {
    __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct AddF2 {
    __device__ __forceinline__ float2 operator()(float2 a, float2 b) const {
        return make_float2(a.x + b.x, a.y + b.y);
    }
};

// ---------------------------------------------------------------------------------------------
// Row visitors (functors: NVRTC compiles no device lambdas without --extended-lambda).

template <typename T> struct SumFold {
    const T* x;
    float s;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float v[W];
        load_w<W>(x + i, v);
#pragma unroll
        for (int k = 0; k < W; ++k) s += v[k];
    }
};

// Σ (x − c)² (c = μ for layer norm, 0 for RMS norm).
template <typename T> struct SquareFold {
    const T* x;
    float c, s;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float v[W];
        load_w<W>(x + i, v);
#pragma unroll
        for (int k = 0; k < W; ++k) s += (v[k] - c) * (v[k] - c);
    }
};

// y = ((x − c)·r)·γ + β (c = 0, no β for RMS norm).
template <typename T> struct NormWrite {
    const T *x, *w, *b;
    T* y;
    float c, r;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float v[W], wv[W], bv[W];
        load_w<W>(x + i, v);
        load_param<W>(w, i, 1.0f, wv);
        load_param<W>(b, i, 0.0f, bv);
#pragma unroll
        for (int k = 0; k < W; ++k) {
            float z = (v[k] - c) * r;
            if (w) z *= wv[k];
            if (b) z += bv[k];
            v[k] = z;
        }
        store_w<W>(y + i, v);
    }
};

// (Σ ĝ, Σ ĝ·(x − c)·r) with ĝ = g·γ.
template <typename T> struct GradFold {
    const T *x, *g, *w;
    float c, r;
    float2 s;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float xv[W], gv[W], wv[W];
        load_w<W>(x + i, xv);
        load_w<W>(g + i, gv);
        load_param<W>(w, i, 1.0f, wv);
#pragma unroll
        for (int k = 0; k < W; ++k) {
            const float gh = w ? gv[k] * wv[k] : gv[k];
            s.x += gh;
            s.y += gh * (xv[k] - c) * r;
        }
    }
};

// dx = r·(ĝ − mean_g − x̂·mean_gx), x̂ = (x − c)·r (mean_g = 0, c = 0 for RMS norm).
template <typename T> struct DxWrite {
    const T *x, *g, *w;
    T* dx;
    float c, r, mean_g, mean_gx;
    template <int W> __device__ __forceinline__ void operator()(long long i, Width<W>) {
        float xv[W], gv[W], wv[W];
        load_w<W>(x + i, xv);
        load_w<W>(g + i, gv);
        load_param<W>(w, i, 1.0f, wv);
#pragma unroll
        for (int k = 0; k < W; ++k) {
            const float gh = w ? gv[k] * wv[k] : gv[k];
            const float xhat = (xv[k] - c) * r;
            xv[k] = r * (gh - mean_g - xhat * mean_gx);
        }
        store_w<W>(dx + i, xv);
    }
};

__device__ __forceinline__ bool aligned_all(const void* a, const void* b, const void* c,
                                            const void* d) {
    return aligned16(a) && aligned16(b) && aligned16(c) && aligned16(d);  // null is aligned
}

// ---------------------------------------------------------------------------------------------
// Forward and dx, one team per row. RMS = true: c = 0, no mean, no bias.

template <typename T, bool RMS>
__device__ __forceinline__ void norm_fwd(const T* x, const T* w, const T* b, T* y, float* mean_out,
                                         float* rstd_out, long long rows, long long n, float eps) {
    __shared__ float smem[32];
    const RowTeam t = row_team();
    const float inv_n = 1.0f / (float)n;
    for (long long r = t.first; r < rows; r += t.step) {
        const T* xr = x + r * n;
        const bool vec = aligned_all(xr, y + r * n, w, b);
        float mean = 0.0f;
        if (!RMS) {
            SumFold<T> sum{xr, 0.0f};
            row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, sum);
            mean = team_reduce(sum.s, AddF(), smem) * inv_n;
        }
        SquareFold<T> sq{xr, mean, 0.0f};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, sq);
        const float var = team_reduce(sq.s, AddF(), smem) * inv_n;
        const float rstd = 1.0f / sqrtf(var + eps);
        NormWrite<T> write{xr, w, RMS ? nullptr : b, y + r * n, mean, rstd};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, write);
        if (t.tid == 0) {
            if (mean_out) mean_out[r] = mean;
            if (rstd_out) rstd_out[r] = rstd;
        }
    }
}

template <typename T, bool RMS>
__device__ __forceinline__ void norm_bwd_dx(const T* x, const T* g, const float* mean,
                                            const float* rstd, const T* w, T* dx, long long rows,
                                            long long n) {
    __shared__ float2 smem[32];
    const RowTeam t = row_team();
    const float inv_n = 1.0f / (float)n;
    for (long long r = t.first; r < rows; r += t.step) {
        const long long o = r * n;
        const bool vec = aligned_all(x + o, g + o, dx + o, w);
        const float c = RMS ? 0.0f : mean[r], rs = rstd[r];
        GradFold<T> fold{x + o, g + o, w, c, rs, make_float2(0.0f, 0.0f)};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, fold);
        const float2 s = team_reduce(fold.s, AddF2(), smem);
        DxWrite<T> write{x + o, g + o, w, dx + o, c, rs, RMS ? 0.0f : s.x * inv_n, s.y * inv_n};
        row_loop<Vec<T>::N>(n, vec, t.tid, t.nthr, write);
    }
}

// ---------------------------------------------------------------------------------------------
// dγ (and dβ) in two deterministic stages. Stage 1: block (32, 8) of column tile blockIdx.x and
// row block blockIdx.y; thread (tx, ty) sums column i over rows ty, ty + 8, ... of the block,
// then the 8 lanes are folded in ty order.

template <typename T, bool RMS>
__device__ __forceinline__ void norm_params_partial(const T* x, const T* g, const float* mean,
                                                    const float* rstd, float* partial,
                                                    long long rows, long long n,
                                                    long long rows_per_block) {
    constexpr int K = RMS ? 1 : 2;
    __shared__ float lanes[K][8][32];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long i = (long long)blockIdx.x * 32 + tx;
    const long long row0 = (long long)blockIdx.y * rows_per_block;
    const long long row1 = row0 + rows_per_block < rows ? row0 + rows_per_block : rows;
    float dw = 0.0f, db = 0.0f;
    if (i < n) {
        for (long long r = row0 + ty; r < row1; r += 8) {
            const float gv = to_f32(g[r * n + i]), xv = to_f32(x[r * n + i]);
            if (RMS) {
                dw += gv * xv * rstd[r];
            } else {
                dw += gv * (xv - mean[r]) * rstd[r];
                db += gv;
            }
        }
    }
    lanes[0][ty][tx] = dw;
    if (!RMS) lanes[K - 1][ty][tx] = db;
    __syncthreads();
    if (ty == 0 && i < n) {
        for (int y = 1; y < 8; ++y) {
            dw += lanes[0][y][tx];
            if (!RMS) db += lanes[K - 1][y][tx];
        }
        float* out = partial + (long long)blockIdx.y * K * n;
        out[i] = dw;
        if (!RMS) out[n + i] = db;
    }
}

// Stage 2: one thread per column adds the row blocks' partials in order.
template <typename T, bool RMS>
__device__ __forceinline__ void norm_params_finish(const float* partial, T* dweight, T* dbias,
                                                   long long row_blocks, long long n) {
    constexpr int K = RMS ? 1 : 2;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float dw = 0.0f, db = 0.0f;
        for (long long b = 0; b < row_blocks; ++b) {
            dw += partial[b * K * n + i];
            if (!RMS) db += partial[b * K * n + n + i];
        }
        dweight[i] = from_f32<T>(dw);
        if (!RMS) dbias[i] = from_f32<T>(db);
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points.

extern "C" __global__ void layer_norm_fwd_f32(const float* x, const float* weight, const float* bias, float* y,
                                          float* mean, float* rstd, long long rows, long long n,
                                          float eps) {
    norm_fwd<float, false>(x, weight, bias, y, mean, rstd, rows, n, eps);
}
extern "C" __global__ void layer_norm_bwd_dx_f32(const float* x, const float* g, const float* mean,
                                             const float* rstd, const float* weight, float* dx,
                                             long long rows, long long n) {
    norm_bwd_dx<float, false>(x, g, mean, rstd, weight, dx, rows, n);
}
extern "C" __global__ void layer_norm_bwd_dwdb_partial_f32(const float* x, const float* g, const float* mean,
                                                       const float* rstd, float* partial,
                                                       long long rows, long long n,
                                                       long long rows_per_block) {
    norm_params_partial<float, false>(x, g, mean, rstd, partial, rows, n, rows_per_block);
}
extern "C" __global__ void layer_norm_bwd_dwdb_finish_f32(const float* partial, float* dweight, float* dbias,
                                                      long long row_blocks, long long n) {
    norm_params_finish<float, false>(partial, dweight, dbias, row_blocks, n);
}
extern "C" __global__ void rms_norm_fwd_f32(const float* x, const float* weight, float* y, float* rstd,
                                        long long rows, long long n, float eps) {
    norm_fwd<float, true>(x, weight, nullptr, y, nullptr, rstd, rows, n, eps);
}
extern "C" __global__ void rms_norm_bwd_dx_f32(const float* x, const float* g, const float* rstd,
                                           const float* weight, float* dx, long long rows, long long n) {
    norm_bwd_dx<float, true>(x, g, nullptr, rstd, weight, dx, rows, n);
}
extern "C" __global__ void rms_norm_bwd_dw_partial_f32(const float* x, const float* g, const float* rstd,
                                                   float* partial, long long rows, long long n,
                                                   long long rows_per_block) {
    norm_params_partial<float, true>(x, g, nullptr, rstd, partial, rows, n, rows_per_block);
}
extern "C" __global__ void rms_norm_bwd_dw_finish_f32(const float* partial, float* dweight,
                                                  long long row_blocks, long long n) {
    norm_params_finish<float, true>(partial, dweight, nullptr, row_blocks, n);
}
extern "C" __global__ void layer_norm_fwd_bf16(const bf16* x, const bf16* weight, const bf16* bias, bf16* y,
                                          float* mean, float* rstd, long long rows, long long n,
                                          float eps) {
    norm_fwd<bf16, false>(x, weight, bias, y, mean, rstd, rows, n, eps);
}
extern "C" __global__ void layer_norm_bwd_dx_bf16(const bf16* x, const bf16* g, const float* mean,
                                             const float* rstd, const bf16* weight, bf16* dx,
                                             long long rows, long long n) {
    norm_bwd_dx<bf16, false>(x, g, mean, rstd, weight, dx, rows, n);
}
extern "C" __global__ void layer_norm_bwd_dwdb_partial_bf16(const bf16* x, const bf16* g, const float* mean,
                                                       const float* rstd, float* partial,
                                                       long long rows, long long n,
                                                       long long rows_per_block) {
    norm_params_partial<bf16, false>(x, g, mean, rstd, partial, rows, n, rows_per_block);
}
extern "C" __global__ void layer_norm_bwd_dwdb_finish_bf16(const float* partial, bf16* dweight, bf16* dbias,
                                                      long long row_blocks, long long n) {
    norm_params_finish<bf16, false>(partial, dweight, dbias, row_blocks, n);
}
extern "C" __global__ void rms_norm_fwd_bf16(const bf16* x, const bf16* weight, bf16* y, float* rstd,
                                        long long rows, long long n, float eps) {
    norm_fwd<bf16, true>(x, weight, nullptr, y, nullptr, rstd, rows, n, eps);
}
extern "C" __global__ void rms_norm_bwd_dx_bf16(const bf16* x, const bf16* g, const float* rstd,
                                           const bf16* weight, bf16* dx, long long rows, long long n) {
    norm_bwd_dx<bf16, true>(x, g, nullptr, rstd, weight, dx, rows, n);
}
extern "C" __global__ void rms_norm_bwd_dw_partial_bf16(const bf16* x, const bf16* g, const float* rstd,
                                                   float* partial, long long rows, long long n,
                                                   long long rows_per_block) {
    norm_params_partial<bf16, true>(x, g, nullptr, rstd, partial, rows, n, rows_per_block);
}
extern "C" __global__ void rms_norm_bwd_dw_finish_bf16(const float* partial, bf16* dweight,
                                                  long long row_blocks, long long n) {
    norm_params_finish<bf16, true>(partial, dweight, nullptr, row_blocks, n);
}
