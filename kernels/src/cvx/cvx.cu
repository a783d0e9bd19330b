// cvx.cu: the primitives of convex two-layer ReLU training (cvx.relu), f32 and f64.
//
// What it computes (layouts as in kernels/src/cvx/mod.rs: x is n x d, mask and the slacks are
// p x n pattern-major, v is p x d, one group per row; m[i,k] = mask[i*n + k] in {0, 1}):
//   cvx_masked_fwd_*   out[k]    = sum_i m[i,k] * dot(x_k, v_i)            (sum_i D_i X v_i)
//   cvx_masked_bwd_*   out[i,:]  = sum_k m[i,k] * r[k] * x_k               (X^T D_i r, all i)
//   cvx_sign_fwd_*     out[i,k]  = (2 m[i,k] - 1) * dot(x_k, v_i)          ((2D_i - I) X v_i)
//   cvx_sign_bwd_*     out[i,:]  = sum_k (2 m[i,k] - 1) * z[i,k] * x_k     (its adjoint)
//   cvx_admm_slack_*   g = (2D_i - I) X u_i;  s <- max(0, g + nu);  nu <- nu + g - s;
//                      ds = s_new - s_old;  r = g - s_new                 (fused slack step)
//   cvx_group_prox_*   v_i <- max(0, 1 - t / ||v_i||) v_i                 (group soft-threshold)
//   cvx_admm_group_*   w = u_i + lambda_i;  v_i <- prox(w);  lambda_i <- w - v_i;
//                      dv = v_new - v_old;  r = u_i - v_new               (fused group step)
//   cvx_project_nonneg_*  s <- s < 0 ? 0 : s
// The CPU references (kernels/src/cvx/cpu.rs) compute the same functions on the same layouts.
//
// Launch shapes:
//   fwd, sign_fwd, admm_slack: block = CVX_ROWS (128) threads, one sample row per thread;
//     grid = any size >= 1 (the row loop is grid-stride, in whole blocks so __syncthreads is
//     uniform). V is staged through shared memory in tiles of CVX_TP patterns x CVX_TD features,
//     and each thread keeps CVX_TP dot products in registers: a GEMM X V^T whose epilogue applies
//     the patterns (a masked row sum for fwd, a sign and the slack update for the others).
//   bwd, sign_bwd: block = 256 threads (8 warps); grid = (p, ceil(d / 32)). Block (i, c) owns
//     pattern i and features [32c, 32c + 32): lane = feature, warp w sums rows k = w, w+8, ...,
//     then the 8 partial sums are added in a fixed order through shared memory. No atomics, so
//     the result is deterministic run to run.
//   group_prox, admm_group: one warp per group, block = 256 threads (8 groups), grid = any size
//     (grid-stride over groups); the norm is a warp-shuffle reduction.
//   project_nonneg: 1-D grid-stride, block = 256.
//
// Bytes and FLOPs (S = sizeof(T)):
//   fwd:        reads n*d*S (x) + n*p (mask) + p*d*S per block (v), writes n*S; 2*n*p*d FLOPs.
//   bwd:        reads n*d*S per pattern (x, L2-resident for small n*d) + n*p + n*S; writes p*d*S;
//               2*n*p*d FLOPs.
//   sign_fwd:   as fwd, but writes p*n*S.  sign_bwd: as bwd plus p*n*S for z.
//   admm_slack: as sign_fwd, plus reads s, nu and writes s, nu, ds, r (6*p*n*S); 2*n*p*d + 4*p*n.
//   group ops:  read/write a few times p*d*S; ~3*p*d FLOPs. All of these are memory- or
//               latency-bound for the small d of convex ReLU training (d <= ~100): the figure to
//               compare is achieved GB/s.
//
// Numerics:
//   * Accumulation is in T (f32 or f64); the solvers use f64 for the ADMM residuals to reach
//     1e-8. A masked-out (sample, pattern) pair contributes an exact 0 (it is skipped or
//     multiplied by 0 on a finite product), as in the CPU reference.
//   * The prox scale is max(0, 1 - t/||w||) computed as (||w|| <= t) ? 0 : 1 - t/||w||, so a
//     zero group gives 0, never 0/0. The projection is written s < 0 ? 0 : s so a NaN stays a NaN.
//   * The sums run in a different order from the CPU loops (tiles, warp trees), so results
//     agree to rounding, not bit for bit.
//   * NVRTC has no <math.h>; nothing here needs INFINITY.

#define CVX_ROWS 128
#define CVX_TP 16
#define CVX_TD 32

// ---------------------------------------------------------------------------------------------
// Row-per-thread products: acc[ii] = dot(x_k, v_{p0+ii}) for one tile of CVX_TP patterns.

template <typename T>
__device__ __forceinline__ void tile_dots(const T* x, const T* v, long long k, bool live, int d,
                                          int p, int p0, T (&vs)[CVX_TP][CVX_TD + 1],
                                          T (&acc)[CVX_TP]) {
#pragma unroll
    for (int ii = 0; ii < CVX_TP; ++ii) acc[ii] = T(0);
    for (int d0 = 0; d0 < d; d0 += CVX_TD) {
        __syncthreads();
        for (int t = threadIdx.x; t < CVX_TP * CVX_TD; t += blockDim.x) {
            const int ii = t / CVX_TD, jj = t % CVX_TD;
            vs[ii][jj] = (p0 + ii < p && d0 + jj < d) ? v[(long long)(p0 + ii) * d + d0 + jj] : T(0);
        }
        __syncthreads();
        if (live) {
            const int dn = min(CVX_TD, d - d0);
            for (int jj = 0; jj < dn; ++jj) {
                const T xv = x[k * d + d0 + jj];
#pragma unroll
                for (int ii = 0; ii < CVX_TP; ++ii) acc[ii] += xv * vs[ii][jj];
            }
        }
    }
}

template <typename T>
__device__ __forceinline__ void masked_fwd(const T* x, const unsigned char* mask, const T* v, T* out,
                                           int n, int d, int p) {
    __shared__ T vs[CVX_TP][CVX_TD + 1];
    for (long long row0 = (long long)blockIdx.x * blockDim.x; row0 < n;
         row0 += (long long)gridDim.x * blockDim.x) {
        const long long k = row0 + threadIdx.x;
        const bool live = k < n;
        T total = T(0);
        for (int p0 = 0; p0 < p; p0 += CVX_TP) {
            T acc[CVX_TP];
            tile_dots(x, v, k, live, d, p, p0, vs, acc);
            if (live) {
#pragma unroll
                for (int ii = 0; ii < CVX_TP; ++ii)
                    if (p0 + ii < p && mask[(long long)(p0 + ii) * n + k]) total += acc[ii];
            }
        }
        if (live) out[k] = total;
    }
}

// Epilogue of the sign products: 0 stores g, 1 does the fused ADMM slack step.
template <typename T, int SLACK>
__device__ __forceinline__ void sign_fwd(const T* x, const unsigned char* mask, const T* v, T* out,
                                         T* nu, T* ds, T* r, int n, int d, int p) {
    __shared__ T vs[CVX_TP][CVX_TD + 1];
    for (long long row0 = (long long)blockIdx.x * blockDim.x; row0 < n;
         row0 += (long long)gridDim.x * blockDim.x) {
        const long long k = row0 + threadIdx.x;
        const bool live = k < n;
        for (int p0 = 0; p0 < p; p0 += CVX_TP) {
            T acc[CVX_TP];
            tile_dots(x, v, k, live, d, p, p0, vs, acc);
            if (!live) continue;
#pragma unroll
            for (int ii = 0; ii < CVX_TP; ++ii) {
                if (p0 + ii >= p) continue;
                const long long e = (long long)(p0 + ii) * n + k;  // consecutive k: coalesced
                const T g = mask[e] ? acc[ii] : -acc[ii];
                if (SLACK) {
                    const T w = g + nu[e];
                    const T sn = w < T(0) ? T(0) : w;
                    ds[e] = sn - out[e];
                    out[e] = sn;
                    nu[e] = w - sn;
                    r[e] = g - sn;
                } else {
                    out[e] = g;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pattern-per-block adjoints. SIGN = 0: coefficient m[i,k] * r[k]; SIGN = 1: (2m - 1) * z[i,k].

template <typename T, int SIGN>
__device__ __forceinline__ void masked_bwd(const T* x, const unsigned char* mask, const T* coef,
                                           T* out, int n, int d, int p) {
    __shared__ T part[8][32];
    const int i = blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int j = blockIdx.y * 32 + lane;
    if (i >= p) return;  // uniform per block
    T acc = T(0);
    if (j < d) {
        for (long long k = warp; k < n; k += 8) {
            const long long e = (long long)i * n + k;
            T c;
            if (SIGN) {
                c = mask[e] ? coef[e] : -coef[e];
            } else {
                c = mask[e] ? coef[k] : T(0);
            }
            acc += c * x[k * d + j];
        }
    }
    part[warp][lane] = acc;
    __syncthreads();
    if (warp == 0 && j < d) {
        T s = part[0][lane];
#pragma unroll
        for (int w = 1; w < 8; ++w) s += part[w][lane];
        out[(long long)i * d + j] = s;
    }
}

// ---------------------------------------------------------------------------------------------
// Group steps, one warp per group.

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__device__ __forceinline__ T shrink(T norm, T t) {
    return norm <= t ? T(0) : T(1) - t / norm;
}

template <typename T>
__device__ __forceinline__ void group_prox(T* v, int groups, int d, T t) {
    const int lane = threadIdx.x & 31;
    const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
    for (long long g = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); g < groups;
         g += warps) {
        T* vg = v + g * d;
        T sq = T(0);
        for (int j = lane; j < d; j += 32) sq += vg[j] * vg[j];
        const T c = shrink(sqrt(warp_sum(sq)), t);
        for (int j = lane; j < d; j += 32) vg[j] *= c;
    }
}

template <typename T>
__device__ __forceinline__ void admm_group(const T* u, T* lambda, T* v, T* dv, T* r, int groups,
                                           int d, T t) {
    const int lane = threadIdx.x & 31;
    const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
    for (long long g = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); g < groups;
         g += warps) {
        const long long o = g * d;
        T sq = T(0);
        for (int j = lane; j < d; j += 32) {
            const T w = u[o + j] + lambda[o + j];
            sq += w * w;
        }
        const T c = shrink(sqrt(warp_sum(sq)), t);
        for (int j = lane; j < d; j += 32) {
            const T w = u[o + j] + lambda[o + j];
            const T vn = c * w;
            dv[o + j] = vn - v[o + j];
            v[o + j] = vn;
            lambda[o + j] = w - vn;
            r[o + j] = u[o + j] - vn;
        }
    }
}

template <typename T>
__device__ __forceinline__ void project_nonneg(T* s, long long len) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < len;
         e += (long long)gridDim.x * blockDim.x) {
        const T x = s[e];
        s[e] = x < T(0) ? T(0) : x;
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points, one per dtype, written out (the compile check counts the declared kernels).

extern "C" __global__ void cvx_masked_fwd_f32(const float* x, const unsigned char* mask,
                                           const float* v, float* out, int n, int d, int p) {
    masked_fwd<float>(x, mask, v, out, n, d, p);
}
extern "C" __global__ void cvx_masked_bwd_f32(const float* x, const unsigned char* mask,
                                           const float* r, float* out, int n, int d, int p) {
    masked_bwd<float, 0>(x, mask, r, out, n, d, p);
}
extern "C" __global__ void cvx_sign_fwd_f32(const float* x, const unsigned char* mask, const float* v,
                                         float* out, int n, int d, int p) {
    sign_fwd<float, 0>(x, mask, v, out, nullptr, nullptr, nullptr, n, d, p);
}
extern "C" __global__ void cvx_sign_bwd_f32(const float* x, const unsigned char* mask, const float* z,
                                         float* out, int n, int d, int p) {
    masked_bwd<float, 1>(x, mask, z, out, n, d, p);
}
extern "C" __global__ void cvx_admm_slack_f32(const float* x, const unsigned char* mask,
                                           const float* u, float* s, float* nu, float* ds, float* r, int n,
                                           int d, int p) {
    sign_fwd<float, 1>(x, mask, u, s, nu, ds, r, n, d, p);
}
extern "C" __global__ void cvx_group_prox_f32(float* v, int groups, int d, float t) {
    group_prox<float>(v, groups, d, t);
}
extern "C" __global__ void cvx_admm_group_f32(const float* u, float* lambda, float* v, float* dv, float* r,
                                           int groups, int d, float t) {
    admm_group<float>(u, lambda, v, dv, r, groups, d, t);
}
extern "C" __global__ void cvx_project_nonneg_f32(float* s, long long len) {
    project_nonneg<float>(s, len);
}

extern "C" __global__ void cvx_masked_fwd_f64(const double* x, const unsigned char* mask,
                                           const double* v, double* out, int n, int d, int p) {
    masked_fwd<double>(x, mask, v, out, n, d, p);
}
extern "C" __global__ void cvx_masked_bwd_f64(const double* x, const unsigned char* mask,
                                           const double* r, double* out, int n, int d, int p) {
    masked_bwd<double, 0>(x, mask, r, out, n, d, p);
}
extern "C" __global__ void cvx_sign_fwd_f64(const double* x, const unsigned char* mask, const double* v,
                                         double* out, int n, int d, int p) {
    sign_fwd<double, 0>(x, mask, v, out, nullptr, nullptr, nullptr, n, d, p);
}
extern "C" __global__ void cvx_sign_bwd_f64(const double* x, const unsigned char* mask, const double* z,
                                         double* out, int n, int d, int p) {
    masked_bwd<double, 1>(x, mask, z, out, n, d, p);
}
extern "C" __global__ void cvx_admm_slack_f64(const double* x, const unsigned char* mask,
                                           const double* u, double* s, double* nu, double* ds, double* r, int n,
                                           int d, int p) {
    sign_fwd<double, 1>(x, mask, u, s, nu, ds, r, n, d, p);
}
extern "C" __global__ void cvx_group_prox_f64(double* v, int groups, int d, double t) {
    group_prox<double>(v, groups, d, t);
}
extern "C" __global__ void cvx_admm_group_f64(const double* u, double* lambda, double* v, double* dv, double* r,
                                           int groups, int d, double t) {
    admm_group<double>(u, lambda, v, dv, r, groups, d, t);
}
extern "C" __global__ void cvx_project_nonneg_f64(double* s, long long len) {
    project_nonneg<double>(s, len);
}
