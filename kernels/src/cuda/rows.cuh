// rows.cuh: the row machinery shared by reduce.cu, softmax.cu, norm.cu and loss.cu.
// NVRTC compiles one string per program and this pipeline passes no include files, so
// kernels/src/cuda/sources.rs prepends this header to each of those sources (as attention does
// with attention_common.cuh). One copy, so the four families cannot drift apart.

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

// ---------------------------------------------------------------------------------------------
// Shared row machinery.

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

