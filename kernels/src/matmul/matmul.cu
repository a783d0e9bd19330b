// matmul.cu: the readable reference GEMM, and the fallback where cuBLAS is missing.
//
// What it computes: for every batch entry z < gridDim.z,
//   C[z][i][j] = sum_p A[z][i][p] * B[z][p][j]       (i < m, j < n, p < k)
// A and B are strided views (row, column and batch strides in elements; batch stride 0
// broadcasts), so transposed operands need no copy. C is contiguous, m*n per batch entry.
//
// Launch shape: block (16, 16); grid (ceil(n/16), ceil(m/16), batch). Each block computes one
//   16x16 tile of C: it walks k in steps of 16, staging a 16x16 tile of A and of B in shared
//   memory (padded to 17 columns so the column reads of the A tile hit 16 different banks),
//   and each thread accumulates one output element. Out-of-range loads are zeros, so no size
//   has to be a multiple of 16.
//
// Bytes and FLOPs: 2*m*n*k FLOPs; each A and B element is read from global memory n/16 and m/16
//   times (the tiling's reuse factor of 16). This kernel is the reference, not the fast path: it
//   is correct and easy to read, and gets a few percent of the machine's peak; cuBLAS is what
//   `matmul` uses when present.
//
// Numerics: f32 accumulation in the natural p order within a tile (bf16 inputs widened to f32,
//   the result rounded once). The CPU reference sums in a blocked order, so parity is checked
//   with a tolerance scaled by sqrt(k).

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

#define TILE 16

__device__ __forceinline__ float ld(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16* p, long long i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16* p, long long i, float v) { p[i] = __float2bfloat16_rn(v); }

template <typename T>
__device__ void tiled(const T* a, const T* b, T* c, long long m, long long n, long long k,
                      long long a_rs, long long a_cs, long long a_bs,
                      long long b_rs, long long b_cs, long long b_bs) {
    __shared__ float as[TILE][TILE + 1];
    __shared__ float bs[TILE][TILE + 1];
    const long long z = blockIdx.z;
    a += z * a_bs;
    b += z * b_bs;
    c += z * m * n;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long row = (long long)blockIdx.y * TILE + ty;
    const long long col = (long long)blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (long long t = 0; t < k; t += TILE) {
        const long long ak = t + tx, bk = t + ty;
        as[ty][tx] = (row < m && ak < k) ? ld(a, row * a_rs + ak * a_cs) : 0.0f;
        bs[ty][tx] = (bk < k && col < n) ? ld(b, bk * b_rs + col * b_cs) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int p = 0; p < TILE; ++p) acc += as[ty][p] * bs[p][tx];
        __syncthreads();
    }
    if (row < m && col < n) st(c, row * n + col, acc);
}

extern "C" __global__ void matmul_tiled_f32(const float* a, const float* b, float* c, long long m, long long n, long long k,
                                            long long a_rs, long long a_cs, long long a_bs,
                                            long long b_rs, long long b_cs, long long b_bs) {
    tiled(a, b, c, m, n, k, a_rs, a_cs, a_bs, b_rs, b_cs, b_bs);
}

extern "C" __global__ void matmul_tiled_bf16(const bf16* a, const bf16* b, bf16* c, long long m, long long n, long long k,
                                             long long a_rs, long long a_cs, long long a_bs,
                                             long long b_rs, long long b_cs, long long b_bs) {
    tiled(a, b, c, m, n, k, a_rs, a_cs, a_bs, b_rs, b_cs, b_bs);
}
