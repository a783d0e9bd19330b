// matmul.cu: a readable tiled shared-memory GEMM, strided and batched, any m, n, k, f32 and bf16
// storage with f32 accumulation. The reference kernel to study and the fallback where cuBLAS is
// not used; the fast path is cuBLAS (launched from Rust elsewhere). CPU reference: matmul/.
//
// What it computes, for every batch z in [0, batch), i in [0, m), j in [0, n):
//   C_z(i, j) = alpha · Σ_{p < k} A_z(i, p) · B_z(p, j) + beta · C_z(i, j)
//   with A_z(i, p) = a[z·a_bs + i·a_rs + p·a_cs], B_z(p, j) = b[z·b_bs + p·b_rs + j·b_cs],
//        C_z(i, j) = c[z·c_bs + i·c_rs + j·c_cs]   (element strides, like matmul's MatRef).
//   Transposes are just swapped strides: row-major A is (a_rs, a_cs) = (k, 1), Aᵀ stored
//   row-major as [k, m] is (1, m). A batch stride of 0 broadcasts A or B over the batch.
//   beta == 0 means C is not read (NaN or garbage in C does not leak into the result), as BLAS.
//
// ABI (T = float or __nv_bfloat16 per suffix; alpha, beta are f32 for both):
//   matmul_gemm_T(long long m, long long n, long long k, float alpha,
//                 const T* a, long long a_rs, long long a_cs, long long a_bs,
//                 const T* b, long long b_rs, long long b_cs, long long b_bs,
//                 float beta, T* c, long long c_rs, long long c_cs, long long c_bs,
//                 long long batch)
//   C must not overlap A or B, and distinct (z, i, j) must address distinct elements of C.
//
// Launch shape (matmul/launch.rs): block (256, 1, 1) exactly; grid (ceil(n / 128),
//   ceil(m / 128), min(batch, 65535)); batches beyond gridDim.z are grid-strided. Static shared
//   memory 2 x 8 x 132 x 4 B = 8448 B; no dynamic shared memory.
//
// The algorithm (the classic register-blocked SGEMM, e.g. Volkov & Demmel 2008; siboehm's
// "How to optimize a CUDA matmul kernel" walks through the same steps):
//   * Each block computes a 128 x 128 tile of C, marching over k in steps of BK = 8.
//   * Each step stages A's 128 x 8 panel and B's 8 x 128 panel in shared memory, both stored
//     k-major (As[p][i], Bs[p][j]) so that the inner loop reads rows of them as float4.
//   * Each of the 256 threads owns an 8 x 8 register micro-tile of C: rows {4ty..4ty+3} ∪
//     {64+4ty..64+4ty+3} and columns {4tx..4tx+3} ∪ {64+4tx..64+4tx+3} (tx, ty in 0..16).
//     Per k it loads 8 values of A and 8 of B (4 x LDS.128) and does 64 FMAs.
//   * The next panels are loaded from global memory into registers while the current ones are
//     multiplied (register prefetch), hiding most of the load latency with one buffer.
//   * Global loads are coalesced whichever stride is 1: with a_cs == 1 a warp reads 8
//     consecutive k of 4 rows (four full 32-byte sectors), with a_cs != 1 it reads 32
//     consecutive rows of one k; the same for B. Out-of-range elements (ragged m, n, k) load as
//     0, so any size is exact; stores are bounds-checked.
//   * Bank conflicts: rows of As/Bs are padded from 128 to 132 floats (16 bytes, so float4 reads
//     stay aligned): the transposing stores then hit 32 distinct banks, and the float4 reads of
//     the inner loop are conflict-free (16 distinct consecutive float4s of Bs per warp, 2
//     broadcast float4s of As).
//
// Bytes and FLOPs: 2·m·n·k FLOPs per batch. Minimum traffic (m·k + k·n)·s + m·n·s (·2 with
//   beta != 0); each block re-reads its A and B panels: m·n·k·s·(1/128 + 1/128) from L2.
//   Compute-bound for large sizes.
//
// Numerics: f32 FMAs in k order within a block's k-steps (p = 0, 1, ..., k−1), one rounding per
//   FMA; bf16 inputs are widened to f32 exactly, C is rounded once at the store. The CPU
//   reference sums in a different (blocked) order: parity to a tolerance (~1e-5 relative for
//   well-conditioned f32 inputs, growing with k).
//
// Known weaknesses (why cuBLAS is the fast path): CUDA-core FFMA only, no tensor cores (TF32 /
//   bf16 MMA, sm_90 wgmma), so it reaches at best ~60-70% of FP32 FFMA peak on large squares and
//   a small fraction of the bf16 tensor-core peak; one shared-memory buffer (two barriers per
//   k-step); scalar global loads (no 16-byte vectors or cp.async / TMA); tiles of 128 waste work
//   on small or skinny matrices (no split-k). Registers: ptxas gives it ~216 (64 accumulators,
//   16 fragments, the prefetch registers and 64-bit addressing), so one 256-thread block runs
//   per SM (8 warps); capping at 128 with __launch_bounds__(256, 2) spills (checked with NVRTC
//   13.0), and fitting two blocks would need 32-bit tile offsets or a layout fixed at compile
//   time.

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

#define BM 128        // rows of C per block
#define BN 128        // columns of C per block
#define BK 8          // k per shared-memory step
#define PAD 4         // floats of padding per shared row (keeps float4 alignment)
#define THREADS 256   // 16 x 16 threads, each an 8 x 8 micro-tile

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) { return __float2bfloat16_rn(v); }

// The (row, k) of the e-th element of A's 128 x 8 panel (e in [0, 1024)), ordered so that
// consecutive threads touch consecutive addresses: along k when a_cs == 1, along rows otherwise.
// The same helper serves B's 8 x 128 panel with (column, k).
__device__ __forceinline__ void panel_coords(int e, bool k_contiguous, int& mn, int& p) {
    if (k_contiguous) {
        mn = e / BK;
        p = e % BK;
    } else {
        mn = e % BM;
        p = e / BM;
    }
}

// Load this thread's 4 elements of A's and B's panels at k0 into registers (0 outside the
// matrices).
template <typename T>
__device__ __forceinline__ void load_panels(const T* A, long long a_rs, long long a_cs,
                                            const T* B, long long b_rs, long long b_cs,
                                            long long m, long long n, long long k, long long row0,
                                            long long col0, long long k0, float* ra, float* rb) {
    const int tid = threadIdx.x;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        int i, p;
        panel_coords(tid + THREADS * r, a_cs == 1, i, p);
        const long long gi = row0 + i, gp = k0 + p;
        ra[r] = (gi < m && gp < k) ? to_f32(A[gi * a_rs + gp * a_cs]) : 0.0f;
        int j, q;
        panel_coords(tid + THREADS * r, b_rs == 1, j, q);
        const long long gj = col0 + j, gq = k0 + q;
        rb[r] = (gj < n && gq < k) ? to_f32(B[gq * b_rs + gj * b_cs]) : 0.0f;
    }
}

template <typename T>
__device__ __forceinline__ void gemm(long long m, long long n, long long k, float alpha,
                                     const T* a, long long a_rs, long long a_cs, long long a_bs,
                                     const T* b, long long b_rs, long long b_cs, long long b_bs,
                                     float beta, T* c, long long c_rs, long long c_cs,
                                     long long c_bs, long long batch) {
    __shared__ __align__(16) float As[BK][BM + PAD];
    __shared__ __align__(16) float Bs[BK][BN + PAD];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const long long row0 = (long long)blockIdx.y * BM, col0 = (long long)blockIdx.x * BN;

    for (long long z = blockIdx.z; z < batch; z += gridDim.z) {
        const T* A = a + z * a_bs;
        const T* B = b + z * b_bs;
        T* C = c + z * c_bs;

        float acc[8][8];
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

        float ra[4], rb[4];
        load_panels(A, a_rs, a_cs, B, b_rs, b_cs, m, n, k, row0, col0, 0, ra, rb);
        for (long long k0 = 0; k0 < k; k0 += BK) {
            // Registers -> shared memory (k-major), then prefetch the next panels.
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                int i, p, j, q;
                panel_coords(tid + THREADS * r, a_cs == 1, i, p);
                panel_coords(tid + THREADS * r, b_rs == 1, j, q);
                As[p][i] = ra[r];
                Bs[q][j] = rb[r];
            }
            __syncthreads();
            if (k0 + BK < k) {
                load_panels(A, a_rs, a_cs, B, b_rs, b_cs, m, n, k, row0, col0, k0 + BK, ra, rb);
            }
#pragma unroll
            for (int p = 0; p < BK; ++p) {
                const float4 a0 = *reinterpret_cast<const float4*>(&As[p][4 * ty]);
                const float4 a1 = *reinterpret_cast<const float4*>(&As[p][64 + 4 * ty]);
                const float4 b0 = *reinterpret_cast<const float4*>(&Bs[p][4 * tx]);
                const float4 b1 = *reinterpret_cast<const float4*>(&Bs[p][64 + 4 * tx]);
                const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
                for (int i = 0; i < 8; ++i)
#pragma unroll
                    for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
            }
            __syncthreads();  // everyone is done reading before the next panels are stored
        }

        // C = alpha·acc + beta·C, bounds-checked; beta == 0 never reads C.
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const long long gi = row0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + (i - 4));
            if (gi >= m) continue;
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const long long gj = col0 + (j < 4 ? 4 * tx + j : 64 + 4 * tx + (j - 4));
                if (gj >= n) continue;
                T* out = C + gi * c_rs + gj * c_cs;
                float v = alpha * acc[i][j];
                if (beta != 0.0f) v += beta * to_f32(*out);
                *out = from_f32<T>(v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points.

extern "C" __global__ void __launch_bounds__(THREADS)
matmul_gemm_f32(long long m, long long n, long long k, float alpha, const float* a, long long a_rs,
                long long a_cs, long long a_bs, const float* b, long long b_rs, long long b_cs,
                long long b_bs, float beta, float* c, long long c_rs, long long c_cs,
                long long c_bs, long long batch) {
    gemm<float>(m, n, k, alpha, a, a_rs, a_cs, a_bs, b, b_rs, b_cs, b_bs, beta, c, c_rs, c_cs,
                c_bs, batch);
}

extern "C" __global__ void __launch_bounds__(THREADS)
matmul_gemm_bf16(long long m, long long n, long long k, float alpha, const bf16* a, long long a_rs,
                 long long a_cs, long long a_bs, const bf16* b, long long b_rs, long long b_cs,
                 long long b_bs, float beta, bf16* c, long long c_rs, long long c_cs,
                 long long c_bs, long long batch) {
    gemm<bf16>(m, n, k, alpha, a, a_rs, a_cs, a_bs, b, b_rs, b_cs, b_bs, beta, c, c_rs, c_cs,
               c_bs, batch);
}
