// dropout.cu: Philox4x32-10 random bits and dropout, bit-identical to the CPU reference
// (random/philox.rs, random/dropout.rs; the contract is spelled out in random/mod.rs).
//
// What it computes, for element i in [0, n) of a draw with (seed, offset):
//   key     = (seed as u32, seed >> 32)                      (low word first)
//   counter = (b as u32, b >> 32, 0, 0),  b = offset + i / 4  (u64, wrapping)
//   w       = philox4x32_10(counter, key)[i % 4]
//   u24     = w >> 8;  kept iff u24 >= threshold
//   dropout_fwd_*         out[i] = kept ? x[i] · scale : 0   (a dropped inf/NaN gives 0)
//   dropout_mask          mask[i] = kept ? 1 : 0             (u8)
//   random_uniform_f32    out[i] = u24 · 2^-24, in [0, 1)    (philox::fill_uniform_f32)
// The backward of dropout is the same map applied to the gradient with the same (seed, offset,
// threshold, scale): call dropout_fwd_* on g.
//
// ABI (n long long, buffers contiguous, out may be x itself for an in-place dropout):
//   dropout_fwd_f32(const float* x, float* out, long long n, unsigned long long seed,
//                   unsigned long long offset, unsigned int threshold, float scale)
//   dropout_fwd_bf16(const __nv_bfloat16* x, __nv_bfloat16* out, long long n,
//                    unsigned long long seed, unsigned long long offset, unsigned int threshold,
//                    float scale)
//   dropout_mask(unsigned char* mask, long long n, unsigned long long seed,
//                unsigned long long offset, unsigned int threshold)
//   random_uniform_f32(float* out, long long n, unsigned long long seed, unsigned long long offset)
//   threshold = dropout::keep_threshold(p) = ceil(p · 2^24) in [0, 2^24], computed on the host.
//   scale = dropout::keep_scale(p) = 1 / (1 − p) computed in f64 on the host and rounded once to
//   the element type (0 for p = 1). For bf16 the host passes that bf16 value widened to f32; the
//   kernel rounds the f32 it is given to bf16 (the identity on such a value), so x · scale is
//   the bf16 product, rounded once, exactly as the contract says.
//
// Launch shape (random/launch.rs): 1-D grid-stride, block 256, grid any x >= 1. Each thread
//   takes one Philox block: 4 consecutive elements from one Philox call (one float4, one 8-byte
//   bf16 quad, one 4-byte mask word), with scalar fallbacks for unaligned pointers and for the
//   ragged last block. No shared memory.
//
// Bytes and FLOPs per element: forward f32 reads 4 B, writes 4 B (bf16: 2 + 2); mask writes
//   1 B. Philox4x32-10 is 10 rounds of 2 32x32->64 multiplies and a few XORs per 4 elements:
//   ~20 integer mul-hi/lo + ~40 ALU ops per 4 elements, well under the memory time on A100/H100
//   (the kernels are memory-bound).
//
// Numerics: integer-exact. The keep test compares integers (u24 >= threshold), never floats,
//   so the mask is bit-identical to the CPU's; kept values are one multiply by the same scale.
//
// Known weakness: bf16 moves 8 bytes per thread per iteration (one Philox block), not 16.

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

// ---------------------------------------------------------------------------------------------
// Philox4x32-10 (Salmon et al., SC 2011), the constants of random/philox.rs.

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// One round: (hi(M1·c2) ^ c1 ^ k0, lo(M1·c2), hi(M0·c0) ^ c3 ^ k1, lo(M0·c0)).
__device__ __forceinline__ uint4 philox_round(uint4 c, uint2 k) {
    const unsigned int hi0 = __umulhi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
    const unsigned int hi1 = __umulhi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
    return make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
}

// Ten rounds; the key is bumped by the Weyl increments between rounds (the first round uses the
// key as given).
__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint2 k) {
    c = philox_round(c, k);
#pragma unroll
    for (int r = 1; r < 10; ++r) {
        k.x += PHILOX_W0;
        k.y += PHILOX_W1;
        c = philox_round(c, k);
    }
    return c;
}

// The 4 words of Philox block `blk` of a draw (contract steps 1-3).
__device__ __forceinline__ uint4 block_bits(unsigned long long seed, unsigned long long offset,
                                            unsigned long long blk) {
    const unsigned long long b = offset + blk;  // wraps, as u64::wrapping_add
    return philox4x32_10(make_uint4((unsigned int)b, (unsigned int)(b >> 32), 0u, 0u),
                         make_uint2((unsigned int)seed, (unsigned int)(seed >> 32)));
}

__device__ __forceinline__ unsigned int word(uint4 w, int lane) {
    return lane == 0 ? w.x : lane == 1 ? w.y : lane == 2 ? w.z : w.w;
}

__device__ __forceinline__ bool aligned(const void* p, unsigned long long bytes) {
    return (reinterpret_cast<unsigned long long>(p) & (bytes - 1)) == 0;
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) { return __float2bfloat16_rn(v); }

// Four consecutive elements as one access: float4 (16 B) or four bf16 (8 B).
__device__ __forceinline__ void load4(const float* p, float* v) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
}
__device__ __forceinline__ void store4(float* p, const float* v) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
union Bf16x4 {
    uint2 raw;
    __nv_bfloat162 pair[2];
};
__device__ __forceinline__ void load4(const bf16* p, float* v) {
    Bf16x4 u;
    u.raw = *reinterpret_cast<const uint2*>(p);
    const float2 a = __bfloat1622float2(u.pair[0]), b = __bfloat1622float2(u.pair[1]);
    v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y;
}
__device__ __forceinline__ void store4(bf16* p, const float* v) {
    Bf16x4 u;
    u.pair[0] = __floats2bfloat162_rn(v[0], v[1]);
    u.pair[1] = __floats2bfloat162_rn(v[2], v[3]);
    *reinterpret_cast<uint2*>(p) = u.raw;
}

__device__ __forceinline__ long long thread_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() {
    return (long long)gridDim.x * blockDim.x;
}

// ---------------------------------------------------------------------------------------------
// The kernels, once.

template <typename T>
__device__ __forceinline__ void dropout_fwd(const T* x, T* out, long long n, unsigned long long seed,
                                            unsigned long long offset, unsigned int threshold,
                                            float scale) {
    const float s = to_f32(from_f32<T>(scale));  // the element type's scale (identity for f32)
    const bool vec = aligned(x, 4 * sizeof(T)) && aligned(out, 4 * sizeof(T));
    const long long blocks = (n + 3) / 4;
    for (long long blk = thread_index(); blk < blocks; blk += grid_stride()) {
        const uint4 w = block_bits(seed, offset, (unsigned long long)blk);
        const long long i0 = blk * 4;
        if (vec && i0 + 4 <= n) {
            float v[4];
            load4(x + i0, v);
#pragma unroll
            for (int k = 0; k < 4; ++k) v[k] = (word(w, k) >> 8) >= threshold ? v[k] * s : 0.0f;
            store4(out + i0, v);
        } else {
            for (int k = 0; k < 4 && i0 + k < n; ++k) {
                const float v = to_f32(x[i0 + k]);
                out[i0 + k] = from_f32<T>((word(w, k) >> 8) >= threshold ? v * s : 0.0f);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points.

extern "C" __global__ void dropout_fwd_f32(const float* x, float* out, long long n,
                                           unsigned long long seed, unsigned long long offset,
                                           unsigned int threshold, float scale) {
    dropout_fwd<float>(x, out, n, seed, offset, threshold, scale);
}

extern "C" __global__ void dropout_fwd_bf16(const bf16* x, bf16* out, long long n,
                                            unsigned long long seed, unsigned long long offset,
                                            unsigned int threshold, float scale) {
    dropout_fwd<bf16>(x, out, n, seed, offset, threshold, scale);
}

extern "C" __global__ void dropout_mask(unsigned char* mask, long long n, unsigned long long seed,
                                        unsigned long long offset, unsigned int threshold) {
    const bool vec = aligned(mask, 4);
    const long long blocks = (n + 3) / 4;
    for (long long blk = thread_index(); blk < blocks; blk += grid_stride()) {
        const uint4 w = block_bits(seed, offset, (unsigned long long)blk);
        const long long i0 = blk * 4;
        unsigned int m = 0;
#pragma unroll
        for (int k = 0; k < 4; ++k) m |= (unsigned int)((word(w, k) >> 8) >= threshold) << (8 * k);
        if (vec && i0 + 4 <= n) {
            *reinterpret_cast<unsigned int*>(mask + i0) = m;  // little-endian: element i0 first
        } else {
            for (int k = 0; k < 4 && i0 + k < n; ++k) mask[i0 + k] = (unsigned char)(m >> (8 * k));
        }
    }
}

extern "C" __global__ void random_uniform_f32(float* out, long long n, unsigned long long seed,
                                              unsigned long long offset) {
    const bool vec = aligned(out, 16);
    const long long blocks = (n + 3) / 4;
    for (long long blk = thread_index(); blk < blocks; blk += grid_stride()) {
        const uint4 w = block_bits(seed, offset, (unsigned long long)blk);
        const long long i0 = blk * 4;
        float u[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) u[k] = (float)(word(w, k) >> 8) * (1.0f / 16777216.0f);
        if (vec && i0 + 4 <= n) {
            store4(out + i0, u);
        } else {
            for (int k = 0; k < 4 && i0 + k < n; ++k) out[i0 + k] = u[k];
        }
    }
}
