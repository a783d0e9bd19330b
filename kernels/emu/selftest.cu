// selftest.cu: kernels that test the host emulator itself (kernels/tests/emulator.rs). Built
// into the emulator only (kernels/build.rs adds it as source "emu_selftest.cu"); it is not a
// registered NVRTC source, since two of these kernels are wrong on purpose.

#include <cuda_bf16.h>

// out[block] = sum of in[block * blockDim.x + i] over the block: warp shuffles, then one value
// per warp through shared memory and a barrier.
extern "C" __global__ void emu_block_sum(const float* in, float* out) {
    __shared__ float partial[32];
    float v = in[blockIdx.x * blockDim.x + threadIdx.x];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (unsigned w = 0; w < blockDim.x / 32; ++w) s += partial[w];
        out[blockIdx.x] = s;
    }
}

// out[lane] = in[lane] shifted by `d` with __shfl_down_sync / __shfl_up_sync, and the ballot of
// in[lane] > 0 (one warp).
extern "C" __global__ void emu_shuffles(const float* in, float* down, float* up, unsigned* ballot, int d) {
    const float v = in[threadIdx.x];
    down[threadIdx.x] = __shfl_down_sync(0xffffffffu, v, d);
    up[threadIdx.x] = __shfl_up_sync(0xffffffffu, v, d);
    const unsigned b = __ballot_sync(0xffffffffu, v > 0.0f);
    if (threadIdx.x == 0) *ballot = b;
}

// Wrong on purpose: threads past `live` return before a __syncthreads the others reach.
extern "C" __global__ void emu_early_exit_barrier(float* out, int live) {
    if ((int)threadIdx.x >= live) return;
    out[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] += 1.0f;
}

// Wrong on purpose: half the warp shuffles while the other half waits at __syncthreads.
extern "C" __global__ void emu_divergent_collective(float* out) {
    if (threadIdx.x < 16) {
        out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
    } else {
        __syncthreads();
    }
}

// out[i] = bf16 bits of in[i] (__float2bfloat16_rn) and back[i] = that bf16 as a float.
extern "C" __global__ void emu_bf16_round(const float* in, unsigned short* out, float* back, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const __nv_bfloat16 b = __float2bfloat16_rn(in[i]);
    out[i] = *reinterpret_cast<const unsigned short*>(&b);
    back[i] = __bfloat162float(b);
}

// D = A B + C for one m16n8k16 tile (A 16x16 row-major, B 16x8 row-major, C and D 16x8, f32),
// one warp. Fragments are built from the PTX ISA's formulas, here written from the spec's
// per-register description: A through ldmatrix.x4 of the four 8x8 quadrants (matrix j = rows
// 8*(j&1).., cols 8*(j>>1)..), B through ldmatrix.x2.trans-equivalent x4.trans of the 16x8 B
// (matrices 0, 1 = k rows 0-7, 8-15), C directly.
extern "C" __global__ void emu_mma_tile(const __nv_bfloat16* a, const __nv_bfloat16* b, const float* c, float* d) {
    __shared__ __align__(16) __nv_bfloat16 as[16 * 16];
    __shared__ __align__(16) __nv_bfloat16 bs[16 * 8];
    const int lane = threadIdx.x;
    for (int i = lane; i < 256; i += 32) as[i] = a[i];
    for (int i = lane; i < 128; i += 32) bs[i] = b[i];
    __syncwarp();
    // Lanes 8j..8j+7 name rows 0..7 of matrix j.
    const int j = lane >> 3, r = lane & 7;
    unsigned af[4], bf[4];
    ::kemu::ldmatrix_x4(af, as + ((j & 1) * 8 + r) * 16 + (j >> 1) * 8, false);
    ::kemu::ldmatrix_x4(bf, bs + ((j & 1) * 8 + r) * 8, true);
    const int g = lane >> 2, t = lane & 3;
    float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
    ::kemu::mma_m16n8k16_bf16_f32(acc, af, bf[0], bf[1]);
    d[g * 8 + 2 * t] = acc[0];
    d[g * 8 + 2 * t + 1] = acc[1];
    d[(g + 8) * 8 + 2 * t] = acc[2];
    d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}
