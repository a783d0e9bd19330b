// optim.cu: fused multi-tensor optimizer steps (AdamW, Lion-kappa, SGD, UPGD), f32 and bf16.
//
// Entry points (P = f32: float params and grads; P = bf16: bf16 params and grads; state is
// always f32):
//   adamw_{f32,bf16}          AdamW / Adam-L2, one launch per parameter group
//   lion_{f32,bf16}           Lion-kappa, Signum (beta1 = beta2), signSGD (state0 = null)
//   sgd_{f32,bf16}            SGD with momentum / dampening / Nesterov, SGDW (state0 = null: none)
//   upgd_utility_{f32,bf16}   UPGD pass 1: utility EMA, one max per block into block_max[]
//   upgd_update_{f32,bf16}    UPGD pass 2: reduces block_max[] to the global max, then updates
//   sumsq_{f32,bf16}          per-chunk sum of squares (f64) of g, or of Lion's c = a*m + b*g
//   norm_finish               per-tensor sums of the chunk sums; 1/||c|| for Lion's l2 kappa
//   clip_finish               global norm and the clip factor min(1, max_norm / (norm + 1e-6))
//
// What each computes, per element, with g = grad * gs (gs = *grad_scale if that pointer is not
// null, else cfg.grad_scale): exactly the formulas on the Rust config structs
// (kernels/src/optim/config.rs), in the same order, which kernels/src/optim/cpu.rs implements:
//   AdamW:  g += l2*p (if l2 != 0); p *= keep; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*(g*g);
//           p -= (step_size*m) / (sqrt(v)/bc2_sqrt + eps)
//   Lion:   c = b1*m + (1-b1)*g (c = g without state0); u = sign(c) | c*inv_norm[t] |
//           clamp(c*huber_inv_delta, -1, 1); p *= keep; p -= lr*u; m = b2*m + (1-b2)*g
//   SGD:    g += l2*p (if l2 != 0); p *= keep; b = first ? g : mu*b + (1-damp)*g;
//           d = nesterov ? g + mu*b : b (d = g without state0); p -= lr*d
//   UPGD:   pass 1: U = bu*U + (1-bu)*(-(g*p)); pass 2: s = 1/(1 + exp(-(U*scale))),
//           scale = 1/(bc*gmax) (0 if that is 0 or not finite, or gating is off), xi = sigma*N(0,1),
//           p *= keep; p -= lr_gate*((g + xi)*(1 - s))  [non-protecting: lr_gate*(g + xi*(1 - s))]
//
// Launch shape (all update kernels): block = 256 threads (any multiple of 32 up to 1024);
//   grid = any size >= 1, typically min(num_chunks, 8 * SM count): block b walks chunks b,
//   b + gridDim.x, ... of the group (tables built by kernels::optim::launch::plan_chunks; a chunk
//   is chunk_size elements of one tensor, chunk_size a multiple of 4, e.g. 65536). Each thread
//   moves 4 consecutive elements per iteration: one float4 (f32) or 8-byte (4 x bf16) access
//   per buffer when the tensor's buffers are aligned, scalar accesses otherwise and at a tail.
//   upgd_utility writes block_max[blockIdx.x], so block_max has gridDim.x entries and
//   upgd_update is told that count. sumsq writes chunk_sums[chunk]; norm_finish runs one block
//   per tensor; clip_finish one block.
//
// Bytes per parameter (what the roofline report divides by), f32 params / bf16 params + f32 state:
//   AdamW  read p g m v, write p m v            28 B / 22 B      ~15 FLOP (sqrt and div incl.)
//   Lion   read p g m,   write p m              20 B / 14 B      ~8 FLOP
//   SGD    momentum: read p g b, write p b      20 B / 14 B;  no momentum: 12 B / 6 B
//   UPGD   pass 1 read p g U, write U (16 B / 12 B); pass 2 read p g U, write p (16 B / 10 B)
//   sumsq  reads g (and m): 4-8 B / 2-6 B. Every step is memory-bound (<= 1 FLOP/B).
//
// Numerics:
//   * Every f32 operation is written with __fmul_rn / __fadd_rn / __fsub_rn / __fdiv_rn /
//     __fsqrt_rn, which the compiler may not contract into FMAs. With IEEE sqrt and division,
//     AdamW, Lion (sign and Huber kappa) and SGD are then bit-identical to the CPU reference, and
//     the parity test can compare bits. UPGD's sigmoid (expf) and noise (logf, cosf) and the l2
//     kappa's norm (reduction order) match to a few ulps only.
//   * bf16 params are widened, updated in f32 and rounded once: to nearest even, or
//     stochastically (stochastic_rounding = 1) with the low 16 bits of the Philox word of element
//     i: word i % 4 of block round_offset + i / 4 (the contract of kernels/src/random/mod.rs).
//     The conversions are written out in bits, as in kernels/src/optim/elem.rs.
//   * UPGD noise: element i draws words 2(i%2), 2(i%2)+1 of block noise_offset + i/2 and maps them
//     by Box-Muller (u1 = (w0 >> 8) + 1 scaled by 2^-24, in (0, 1]; so log is finite).
//   * Maxima ignore NaN (fmaxf) and count -0 as +0, so the global max is order-independent;
//     chunk sums are f64, summed in a fixed tree: deterministic for a fixed launch shape.
//   * NVRTC has no <math.h>: -infinity is written __int_as_float(0xff800000).

typedef unsigned long long u64;
typedef unsigned short bf16_t;

struct AdamWConfig {
    float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, step_size, bc2_sqrt, keep, l2,
        grad_scale;
    unsigned seed_lo, seed_hi, stochastic_rounding, pad;
};
struct LionConfig {
    float beta1, one_minus_beta1, beta2, one_minus_beta2, lr, keep, huber_inv_delta, grad_scale;
    unsigned kappa, seed_lo, seed_hi, stochastic_rounding;
};
struct SgdConfig {
    float lr, momentum, one_minus_dampening, keep, l2, grad_scale;
    unsigned nesterov, first_step, seed_lo, seed_hi, stochastic_rounding, pad;
};
struct UpgdConfig {
    float beta_u, one_minus_beta_u, bias_correction, lr_gate, keep, sigma, grad_scale;
    unsigned protect_gradient, gate, seed_lo, seed_hi, stochastic_rounding;
};
struct OptimTensor {
    void* param;
    const void* grad;
    float* state0;
    float* state1;
    long long numel;
    u64 noise_offset;
    u64 round_offset;
    int first_chunk;
    int num_chunks;
};
struct OptimChunk {
    int tensor;
    int pad;
    long long start;
};

// The Rust side (config.rs, launch.rs) asserts the same sizes and pins the field offsets
// (NVRTC's front end has no __builtin_offsetof in constant expressions).
static_assert(sizeof(AdamWConfig) == 56, "AdamWConfig");
static_assert(sizeof(LionConfig) == 48, "LionConfig");
static_assert(sizeof(SgdConfig) == 48, "SgdConfig");
static_assert(sizeof(UpgdConfig) == 48, "UpgdConfig");
static_assert(sizeof(OptimTensor) == 64, "OptimTensor");
static_assert(sizeof(OptimChunk) == 16, "OptimChunk");

// ---------------------------------------------------------------------------------------------
// Arithmetic that cannot be contracted, so results equal the CPU's IEEE operations.

__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float dvd(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ bool finite(float x) {
    return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u;
}
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// ---------------------------------------------------------------------------------------------
// Philox4x32-10 (kernels/src/random/philox.rs): key = seed words, counter = offset + block.

__device__ __forceinline__ uint4 philox(unsigned k0, unsigned k1, u64 offset, u64 block) {
    const u64 b = offset + block;
    unsigned c0 = (unsigned)b, c1 = (unsigned)(b >> 32), c2 = 0u, c3 = 0u;
#pragma unroll
    for (int r = 0; r < 10; ++r) {
        if (r > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const unsigned hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const unsigned hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    return make_uint4(c0, c1, c2, c3);
}

__device__ __forceinline__ float normal_from_words(unsigned a, unsigned b) {
    const float scale = 5.9604644775390625e-08f;  // 2^-24
    const float u1 = (float)((a >> 8) + 1u) * scale;
    const float u2 = (float)(b >> 8) * scale;
    return mul(sqrtf(mul(-2.0f, logf(u1))), cosf(mul(6.28318548202514648f, u2)));
}

// ---------------------------------------------------------------------------------------------
// Storage: 4 consecutive elements at i, vector access when `vec` (aligned, all 4 in range).

__device__ __forceinline__ float bf16_to_f32(unsigned b) { return __uint_as_float((b & 0xffffu) << 16); }
__device__ __forceinline__ bf16_t f32_to_bf16_rn(float x) {
    const unsigned b = __float_as_uint(x);
    if (x != x) return (bf16_t)((b >> 16) | 0x0040u);
    return (bf16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}
__device__ __forceinline__ bf16_t f32_to_bf16_sr(float x, unsigned r) {
    if (!finite(x)) return f32_to_bf16_rn(x);
    return (bf16_t)((__float_as_uint(x) + (r & 0xffffu)) >> 16);
}

__device__ __forceinline__ bool aligned(const void* p, unsigned bytes) {
    return ((u64)p & (u64)(bytes - 1)) == 0;
}
__device__ __forceinline__ bool aligned_for(const float* p) { return aligned(p, 16); }
__device__ __forceinline__ bool aligned_for(const bf16_t* p) { return aligned(p, 8); }

__device__ __forceinline__ void ld4(const float* p, long long i, int cnt, bool vec, float* o) {
    if (vec) {
        const float4 t = *reinterpret_cast<const float4*>(p + i);
        o[0] = t.x; o[1] = t.y; o[2] = t.z; o[3] = t.w;
    } else {
#pragma unroll
        for (int k = 0; k < 4; ++k) o[k] = k < cnt ? p[i + k] : 0.0f;
    }
}
__device__ __forceinline__ void ld4(const bf16_t* p, long long i, int cnt, bool vec, float* o) {
    if (vec) {
        const uint2 t = *reinterpret_cast<const uint2*>(p + i);
        o[0] = bf16_to_f32(t.x); o[1] = bf16_to_f32(t.x >> 16);
        o[2] = bf16_to_f32(t.y); o[3] = bf16_to_f32(t.y >> 16);
    } else {
#pragma unroll
        for (int k = 0; k < 4; ++k) o[k] = k < cnt ? bf16_to_f32(p[i + k]) : 0.0f;
    }
}
__device__ __forceinline__ float ld1(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float ld1(const bf16_t* p, long long i) { return bf16_to_f32(p[i]); }
__device__ __forceinline__ void st4(float* p, long long i, int cnt, bool vec, const float* x) {
    if (vec) {
        *reinterpret_cast<float4*>(p + i) = make_float4(x[0], x[1], x[2], x[3]);
    } else {
#pragma unroll
        for (int k = 0; k < 4; ++k) if (k < cnt) p[i + k] = x[k];
    }
}

// Parameters: f32 is stored as is; bf16 is rounded, stochastically from one Philox block (the
// 4 elements at i, i a multiple of 4, are exactly the 4 words of block round_offset + i/4).
__device__ __forceinline__ void st_param(float* p, long long i, int cnt, bool vec, const float* x,
                                         unsigned, unsigned, unsigned, u64) {
    st4(p, i, cnt, vec, x);
}
__device__ __forceinline__ void st_param(bf16_t* p, long long i, int cnt, bool vec, const float* x,
                                         unsigned sr, unsigned k0, unsigned k1, u64 round_offset) {
    bf16_t o[4];
    if (sr) {
        const uint4 w = philox(k0, k1, round_offset, (u64)(i >> 2));
        o[0] = f32_to_bf16_sr(x[0], w.x); o[1] = f32_to_bf16_sr(x[1], w.y);
        o[2] = f32_to_bf16_sr(x[2], w.z); o[3] = f32_to_bf16_sr(x[3], w.w);
    } else {
#pragma unroll
        for (int k = 0; k < 4; ++k) o[k] = f32_to_bf16_rn(x[k]);
    }
    if (vec) {
        *reinterpret_cast<uint2*>(p + i) =
            make_uint2((unsigned)o[0] | ((unsigned)o[1] << 16), (unsigned)o[2] | ((unsigned)o[3] << 16));
    } else {
#pragma unroll
        for (int k = 0; k < 4; ++k) if (k < cnt) p[i + k] = o[k];
    }
}

// The walk every update kernel shares: chunks of the group, 4 elements per thread-iteration.
// `body(t, chunk_tensor_index, i, cnt, vec)` does the work for elements [i, i + cnt).
template <typename P, typename Body>
__device__ __forceinline__ void for_each_quad(const OptimTensor* tensors, const OptimChunk* chunks,
                                              int num_chunks, long long chunk_size, Body body) {
    for (int ci = blockIdx.x; ci < num_chunks; ci += gridDim.x) {
        const OptimChunk ch = chunks[ci];
        const OptimTensor t = tensors[ch.tensor];
        const long long end = ch.start + chunk_size < t.numel ? ch.start + chunk_size : t.numel;
        const bool al = aligned_for((const P*)t.param) && aligned_for((const P*)t.grad) &&
                        aligned(t.state0, 16) && aligned(t.state1, 16);
        for (long long i = ch.start + 4LL * threadIdx.x; i < end; i += 4LL * blockDim.x) {
            const int cnt = end - i < 4 ? (int)(end - i) : 4;
            body(t, ch.tensor, i, cnt, al && cnt == 4);
        }
    }
}

__device__ __forceinline__ float grad_scale_of(const float* ptr, float fallback) {
    return ptr ? *ptr : fallback;
}

// ---------------------------------------------------------------------------------------------
// AdamW

__device__ __forceinline__ float adamw_elem(const AdamWConfig& c, float gs, float p, float g,
                                            float& m, float& v) {
    g = mul(g, gs);
    if (c.l2 != 0.0f) g = add(g, mul(c.l2, p));
    p = mul(p, c.keep);
    m = add(mul(c.beta1, m), mul(c.one_minus_beta1, g));
    v = add(mul(c.beta2, v), mul(c.one_minus_beta2, mul(g, g)));
    const float denom = add(dvd(__fsqrt_rn(v), c.bc2_sqrt), c.eps);
    return sub(p, dvd(mul(c.step_size, m), denom));
}

template <typename P>
__device__ __forceinline__ void adamw_impl(const AdamWConfig c, const OptimTensor* tensors,
                                           const OptimChunk* chunks, int num_chunks,
                                           long long chunk_size, const float* grad_scale) {
    const float gs = grad_scale_of(grad_scale, c.grad_scale);
    for_each_quad<P>(tensors, chunks, num_chunks, chunk_size,
                     [&](const OptimTensor& t, int, long long i, int cnt, bool vec) {
        float p[4], g[4], m[4], v[4];
        ld4((const P*)t.param, i, cnt, vec, p);
        ld4((const P*)t.grad, i, cnt, vec, g);
        ld4(t.state0, i, cnt, vec, m);
        ld4(t.state1, i, cnt, vec, v);
#pragma unroll
        for (int k = 0; k < 4; ++k) p[k] = adamw_elem(c, gs, p[k], g[k], m[k], v[k]);
        st4(t.state0, i, cnt, vec, m);
        st4(t.state1, i, cnt, vec, v);
        st_param((P*)t.param, i, cnt, vec, p, c.stochastic_rounding, c.seed_lo, c.seed_hi, t.round_offset);
    });
}

extern "C" __global__ void adamw_f32(const AdamWConfig c, const OptimTensor* tensors, const OptimChunk* chunks,
                                     int num_chunks, long long chunk_size, const float* grad_scale) {
    adamw_impl<float>(c, tensors, chunks, num_chunks, chunk_size, grad_scale);
}
extern "C" __global__ void adamw_bf16(const AdamWConfig c, const OptimTensor* tensors, const OptimChunk* chunks,
                                      int num_chunks, long long chunk_size, const float* grad_scale) {
    adamw_impl<bf16_t>(c, tensors, chunks, num_chunks, chunk_size, grad_scale);
}

// ---------------------------------------------------------------------------------------------
// Lion-kappa (state0 = m, or null for signSGD); tensor_inv_norm[t] feeds the l2 kappa.

__device__ __forceinline__ float lion_direction(const LionConfig& c, float x, float inv_norm) {
    if (c.kappa == 0u) return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
    if (c.kappa == 1u) return mul(x, inv_norm);
    return fminf(fmaxf(mul(x, c.huber_inv_delta), -1.0f), 1.0f);
}

template <typename P>
__device__ __forceinline__ void lion_impl(const LionConfig c, const OptimTensor* tensors,
                                          const OptimChunk* chunks, int num_chunks, long long chunk_size,
                                          const float* grad_scale, const float* tensor_inv_norm) {
    const float gs = grad_scale_of(grad_scale, c.grad_scale);
    for_each_quad<P>(tensors, chunks, num_chunks, chunk_size,
                     [&](const OptimTensor& t, int ti, long long i, int cnt, bool vec) {
        const float inv_norm = tensor_inv_norm ? tensor_inv_norm[ti] : 0.0f;
        const bool has_m = t.state0 != nullptr;
        float p[4], g[4], m[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        ld4((const P*)t.param, i, cnt, vec, p);
        ld4((const P*)t.grad, i, cnt, vec, g);
        if (has_m) ld4(t.state0, i, cnt, vec, m);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const float gk = mul(g[k], gs);
            const float x = has_m ? add(mul(c.beta1, m[k]), mul(c.one_minus_beta1, gk)) : gk;
            const float u = lion_direction(c, x, inv_norm);
            p[k] = sub(mul(p[k], c.keep), mul(c.lr, u));
            if (has_m) m[k] = add(mul(c.beta2, m[k]), mul(c.one_minus_beta2, gk));
        }
        if (has_m) st4(t.state0, i, cnt, vec, m);
        st_param((P*)t.param, i, cnt, vec, p, c.stochastic_rounding, c.seed_lo, c.seed_hi, t.round_offset);
    });
}

extern "C" __global__ void lion_f32(const LionConfig c, const OptimTensor* tensors, const OptimChunk* chunks,
                                    int num_chunks, long long chunk_size, const float* grad_scale,
                                    const float* tensor_inv_norm) {
    lion_impl<float>(c, tensors, chunks, num_chunks, chunk_size, grad_scale, tensor_inv_norm);
}
extern "C" __global__ void lion_bf16(const LionConfig c, const OptimTensor* tensors, const OptimChunk* chunks,
                                     int num_chunks, long long chunk_size, const float* grad_scale,
                                     const float* tensor_inv_norm) {
    lion_impl<bf16_t>(c, tensors, chunks, num_chunks, chunk_size, grad_scale, tensor_inv_norm);
}

// ---------------------------------------------------------------------------------------------
// SGD (state0 = momentum buffer, or null)

template <typename P>
__device__ __forceinline__ void sgd_impl(const SgdConfig c, const OptimTensor* tensors, const OptimChunk* chunks,
                                         int num_chunks, long long chunk_size, const float* grad_scale) {
    const float gs = grad_scale_of(grad_scale, c.grad_scale);
    for_each_quad<P>(tensors, chunks, num_chunks, chunk_size,
                     [&](const OptimTensor& t, int, long long i, int cnt, bool vec) {
        const bool has_b = t.state0 != nullptr;
        float p[4], g[4], b[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        ld4((const P*)t.param, i, cnt, vec, p);
        ld4((const P*)t.grad, i, cnt, vec, g);
        if (has_b && !c.first_step) ld4(t.state0, i, cnt, vec, b);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            float gk = mul(g[k], gs);
            if (c.l2 != 0.0f) gk = add(gk, mul(c.l2, p[k]));
            const float pk = mul(p[k], c.keep);
            float d = gk;
            if (has_b) {
                b[k] = c.first_step ? gk : add(mul(c.momentum, b[k]), mul(c.one_minus_dampening, gk));
                d = c.nesterov ? add(gk, mul(c.momentum, b[k])) : b[k];
            }
            p[k] = sub(pk, mul(c.lr, d));
        }
        if (has_b) st4(t.state0, i, cnt, vec, b);
        st_param((P*)t.param, i, cnt, vec, p, c.stochastic_rounding, c.seed_lo, c.seed_hi, t.round_offset);
    });
}

extern "C" __global__ void sgd_f32(const SgdConfig c, const OptimTensor* tensors, const OptimChunk* chunks,
                                   int num_chunks, long long chunk_size, const float* grad_scale) {
    sgd_impl<float>(c, tensors, chunks, num_chunks, chunk_size, grad_scale);
}
extern "C" __global__ void sgd_bf16(const SgdConfig c, const OptimTensor* tensors, const OptimChunk* chunks,
                                    int num_chunks, long long chunk_size, const float* grad_scale) {
    sgd_impl<bf16_t>(c, tensors, chunks, num_chunks, chunk_size, grad_scale);
}

// ---------------------------------------------------------------------------------------------
// Block reductions (blockDim.x a multiple of 32, at most 1024).

__device__ __forceinline__ float block_max(float x) {
    __shared__ float warp_max[32];
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_down_sync(0xffffffffu, x, o));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_max[warp] = x;
    __syncthreads();
    const int warps = (blockDim.x + 31) >> 5;
    x = lane < warps ? warp_max[lane] : neg_inf();
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_down_sync(0xffffffffu, x, o));
    }
    return x;  // valid in thread 0
}

__device__ __forceinline__ double block_sum(double x) {
    __shared__ double warp_sum[32];
    for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sum[warp] = x;
    __syncthreads();
    const int warps = (blockDim.x + 31) >> 5;
    x = lane < warps ? warp_sum[lane] : 0.0;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
    }
    return x;  // valid in thread 0
}

// ---------------------------------------------------------------------------------------------
// UPGD (state0 = utility EMA U)

template <typename P>
__device__ __forceinline__ void upgd_utility_impl(const UpgdConfig c, const OptimTensor* tensors,
                                                  const OptimChunk* chunks, int num_chunks,
                                                  long long chunk_size, const float* grad_scale,
                                                  float* block_max_out) {
    const float gs = grad_scale_of(grad_scale, c.grad_scale);
    float local = neg_inf();
    for_each_quad<P>(tensors, chunks, num_chunks, chunk_size,
                     [&](const OptimTensor& t, int, long long i, int cnt, bool vec) {
        float p[4], g[4], u[4];
        ld4((const P*)t.param, i, cnt, vec, p);
        ld4((const P*)t.grad, i, cnt, vec, g);
        ld4(t.state0, i, cnt, vec, u);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const float utility = -mul(mul(g[k], gs), p[k]);
            u[k] = add(mul(c.beta_u, u[k]), mul(c.one_minus_beta_u, utility));
            if (k < cnt) local = fmaxf(local, add(u[k], 0.0f));  // +0 turns -0 into +0
        }
        st4(t.state0, i, cnt, vec, u);
    });
    const float m = block_max(local);
    if (threadIdx.x == 0) block_max_out[blockIdx.x] = m;
}

template <typename P>
__device__ __forceinline__ void upgd_update_impl(const UpgdConfig c, const OptimTensor* tensors,
                                                 const OptimChunk* chunks, int num_chunks,
                                                 long long chunk_size, const float* grad_scale,
                                                 const float* block_max_in, int num_block_max) {
    // Every block reduces the pass-1 maxima itself (a few KB from L2): no third launch.
    __shared__ float shared_scale;
    float x = neg_inf();
    for (int j = threadIdx.x; j < num_block_max; j += blockDim.x) x = fmaxf(x, block_max_in[j]);
    x = block_max(x);
    if (threadIdx.x == 0) {
        const float d = mul(c.bias_correction, x);
        shared_scale = (c.gate == 0u || !finite(d) || d == 0.0f) ? 0.0f : dvd(1.0f, d);
    }
    __syncthreads();
    const float scale = shared_scale;
    const float gs = grad_scale_of(grad_scale, c.grad_scale);
    const bool noisy = c.sigma != 0.0f;
    for_each_quad<P>(tensors, chunks, num_chunks, chunk_size,
                     [&](const OptimTensor& t, int, long long i, int cnt, bool vec) {
        float p[4], g[4], u[4], xi[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        ld4((const P*)t.param, i, cnt, vec, p);
        ld4((const P*)t.grad, i, cnt, vec, g);
        ld4(t.state0, i, cnt, vec, u);
        if (noisy) {
            const uint4 a = philox(c.seed_lo, c.seed_hi, t.noise_offset, (u64)(i >> 1));
            const uint4 b = philox(c.seed_lo, c.seed_hi, t.noise_offset, (u64)(i >> 1) + 1);
            xi[0] = mul(c.sigma, normal_from_words(a.x, a.y));
            xi[1] = mul(c.sigma, normal_from_words(a.z, a.w));
            xi[2] = mul(c.sigma, normal_from_words(b.x, b.y));
            xi[3] = mul(c.sigma, normal_from_words(b.z, b.w));
        }
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const float gk = mul(g[k], gs);
            const float s = dvd(1.0f, add(1.0f, expf(-mul(u[k], scale))));
            const float pk = mul(p[k], c.keep);
            const float one_minus_s = sub(1.0f, s);
            float step;
            if (c.protect_gradient) step = mul(noisy ? add(gk, xi[k]) : gk, one_minus_s);
            else step = noisy ? add(gk, mul(xi[k], one_minus_s)) : gk;
            p[k] = sub(pk, mul(c.lr_gate, step));
        }
        st_param((P*)t.param, i, cnt, vec, p, c.stochastic_rounding, c.seed_lo, c.seed_hi, t.round_offset);
    });
}

extern "C" __global__ void upgd_utility_f32(const UpgdConfig c, const OptimTensor* tensors,
                                            const OptimChunk* chunks, int num_chunks, long long chunk_size,
                                            const float* grad_scale, float* block_max_out) {
    upgd_utility_impl<float>(c, tensors, chunks, num_chunks, chunk_size, grad_scale, block_max_out);
}
extern "C" __global__ void upgd_utility_bf16(const UpgdConfig c, const OptimTensor* tensors,
                                             const OptimChunk* chunks, int num_chunks, long long chunk_size,
                                             const float* grad_scale, float* block_max_out) {
    upgd_utility_impl<bf16_t>(c, tensors, chunks, num_chunks, chunk_size, grad_scale, block_max_out);
}
extern "C" __global__ void upgd_update_f32(const UpgdConfig c, const OptimTensor* tensors,
                                           const OptimChunk* chunks, int num_chunks, long long chunk_size,
                                           const float* grad_scale, const float* block_max_in,
                                           int num_block_max) {
    upgd_update_impl<float>(c, tensors, chunks, num_chunks, chunk_size, grad_scale, block_max_in, num_block_max);
}
extern "C" __global__ void upgd_update_bf16(const UpgdConfig c, const OptimTensor* tensors,
                                            const OptimChunk* chunks, int num_chunks, long long chunk_size,
                                            const float* grad_scale, const float* block_max_in,
                                            int num_block_max) {
    upgd_update_impl<bf16_t>(c, tensors, chunks, num_chunks, chunk_size, grad_scale, block_max_in, num_block_max);
}

// ---------------------------------------------------------------------------------------------
// Norms: per-chunk sums of squares, per-tensor sums, and the global-norm clip factor.
// x = a*m + b*(g*gs) when use_state and state0 is set (Lion's c), else x = g*gs (the gradient).
// One block per chunk (grid = num_chunks), so chunk_sums[ci] has a single writer.

template <typename P>
__device__ __forceinline__ void sumsq_impl(float a, float b, int use_state, const OptimTensor* tensors,
                                           const OptimChunk* chunks, int num_chunks, long long chunk_size,
                                           const float* grad_scale, double* chunk_sums) {
    const float gs = grad_scale_of(grad_scale, 1.0f);
    for (int ci = blockIdx.x; ci < num_chunks; ci += gridDim.x) {
        const OptimChunk ch = chunks[ci];
        const OptimTensor t = tensors[ch.tensor];
        const bool with_m = use_state && t.state0 != nullptr;
        const long long end = ch.start + chunk_size < t.numel ? ch.start + chunk_size : t.numel;
        double acc = 0.0;
        for (long long i = ch.start + threadIdx.x; i < end; i += blockDim.x) {
            const float gk = mul(ld1((const P*)t.grad, i), gs);
            const float x = with_m ? add(mul(a, t.state0[i]), mul(b, gk)) : gk;
            acc += (double)x * (double)x;
        }
        const double s = block_sum(acc);
        if (threadIdx.x == 0) chunk_sums[ci] = s;
        __syncthreads();  // warp_sum is reused by the next chunk
    }
}

extern "C" __global__ void sumsq_f32(float a, float b, int use_state, const OptimTensor* tensors,
                                     const OptimChunk* chunks, int num_chunks, long long chunk_size,
                                     const float* grad_scale, double* chunk_sums) {
    sumsq_impl<float>(a, b, use_state, tensors, chunks, num_chunks, chunk_size, grad_scale, chunk_sums);
}
extern "C" __global__ void sumsq_bf16(float a, float b, int use_state, const OptimTensor* tensors,
                                      const OptimChunk* chunks, int num_chunks, long long chunk_size,
                                      const float* grad_scale, double* chunk_sums) {
    sumsq_impl<bf16_t>(a, b, use_state, tensors, chunks, num_chunks, chunk_size, grad_scale, chunk_sums);
}

// One block per tensor: tensor_sums[t] = sum of its chunk sums; tensor_inv_norm[t] = 1/sqrt of it
// (0 for a zero sum), rounded once from f64, as the CPU computes it.
extern "C" __global__ void norm_finish(const double* chunk_sums, const OptimTensor* tensors, int num_tensors,
                                       double* tensor_sums, float* tensor_inv_norm) {
    for (int t = blockIdx.x; t < num_tensors; t += gridDim.x) {
        const OptimTensor tt = tensors[t];
        double acc = 0.0;
        for (int j = threadIdx.x; j < tt.num_chunks; j += blockDim.x) acc += chunk_sums[tt.first_chunk + j];
        const double s = block_sum(acc);
        if (threadIdx.x == 0) {
            tensor_sums[t] = s;
            if (tensor_inv_norm) tensor_inv_norm[t] = s > 0.0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        }
        __syncthreads();
    }
}

// One block: the global norm over every tensor and the factor the update kernels read through
// their grad_scale pointer: min(1, max_norm / (norm + 1e-6)), torch.nn.utils.clip_grad_norm_'s.
extern "C" __global__ void clip_finish(const double* tensor_sums, int num_tensors, double max_norm,
                                       float* grad_scale_out, float* norm_out) {
    double acc = 0.0;
    for (int j = threadIdx.x; j < num_tensors; j += blockDim.x) acc += tensor_sums[j];
    const double s = block_sum(acc);
    if (threadIdx.x == 0) {
        const double norm = sqrt(s);
        const double f = max_norm / (norm + 1e-6);
        grad_scale_out[0] = (float)(f < 1.0 ? f : 1.0);
        if (norm_out) norm_out[0] = (float)norm;
    }
}
