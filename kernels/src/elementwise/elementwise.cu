// elementwise.cu: binary and unary elementwise ops over contiguous buffers, f32 and bf16.
//
// What it computes (i in [0, n), every buffer contiguous, same length, no broadcasting):
//   add_*  out[i] = a[i] + b[i]          exp_*   out[i] = exp(x[i])
//   sub_*  out[i] = a[i] - b[i]          tanh_*  out[i] = tanh(x[i])
//   mul_*  out[i] = a[i] * b[i]          relu_*  out[i] = x[i] < 0 ? 0 : x[i]
//   div_*  out[i] = a[i] / b[i]          gelu_*  out[i] = 0.5 x (1 + erf(x / sqrt(2)))
//   (gelu is the exact erf form, PyTorch's `gelu(approximate='none')`, not the tanh approximation.)
//
// Launch shape: 1-D. Block = 256 threads (any multiple of 32 works). Grid = any size >= 1: every
//   kernel is a grid-stride loop, so the host can cap the grid at a few waves (e.g. 8 blocks per SM)
//   instead of one thread per element, and no size has to be a multiple of anything.
//   Each thread moves one 16-byte vector per iteration: a float4 (4 x f32) or 8 x bf16. That needs
//   16-byte-aligned pointers; the kernel checks the alignment itself and falls back to scalar
//   accesses, so a slice at an odd offset is still correct, only slower. The n % width tail is
//   done by a scalar loop.
//
// Bytes and FLOPs per element (what the roofline report divides by):
//   binary: f32 reads 8 B, writes 4 B (12 B); bf16 reads 4 B, writes 2 B (6 B). 1 FLOP.
//   unary:  f32 reads 4 B, writes 4 B (8 B);  bf16 reads 2 B, writes 2 B (4 B). 1 FLOP for relu;
//           exp / tanh / gelu are counted as 1 "op" each although they take ~10-30 instructions.
//   All of these are memory-bound on A100/H100 (arithmetic intensity <= 0.25 FLOP/B), so the
//   number that matters is achieved GB/s against the device-copy ceiling.
//
// Numerics:
//   * bf16 inputs are widened to f32, the op is done in f32, and the result is rounded once to
//     nearest-even (__floats2bfloat162_rn). So bf16 results equal the f32 result rounded, which
//     is what the CPU reference computes.
//   * Division and expf/tanhf/erff are the accurate (non --use_fast_math) versions: IEEE
//     division, so x / 0 = +-inf and 0 / 0 = NaN, exactly as on the CPU. NVRTC compiles with
//     -fmad=true, so gelu may use a fused multiply-add: results can differ from a non-fused CPU
//     reference by an ulp or so, well inside the f32 parity tolerance (1e-5 relative).
//   * relu is written as `x < 0 ? 0 : x`, not fmaxf(x, 0): fmaxf returns 0 for NaN and would
//     hide a NaN that PyTorch propagates.
//   * out may be the very same buffer as an input (in-place `a += b`; buffers that overlap at an
//     offset are not supported): each element is read and then written by the same thread, so
//     the result is right. That is also why no pointer is __restrict__: the promise would be
//     false for in-place calls, and streaming loads gain nothing from it.
//   * NVRTC has no <math.h>, so INFINITY is undefined here; should a kernel need it, write
//     __int_as_float(0x7f800000).

#include <cuda_bf16.h>

// ---------------------------------------------------------------------------------------------
// The ops, once, as functors on f32. Every dtype's entry point reuses them.

struct AddOp { __device__ __forceinline__ float operator()(float a, float b) const { return a + b; } };
struct SubOp { __device__ __forceinline__ float operator()(float a, float b) const { return a - b; } };
struct MulOp { __device__ __forceinline__ float operator()(float a, float b) const { return a * b; } };
struct DivOp { __device__ __forceinline__ float operator()(float a, float b) const { return a / b; } };

struct ExpOp  { __device__ __forceinline__ float operator()(float x) const { return expf(x); } };
struct TanhOp { __device__ __forceinline__ float operator()(float x) const { return tanhf(x); } };
struct ReluOp { __device__ __forceinline__ float operator()(float x) const { return x < 0.0f ? 0.0f : x; } };
struct GeluOp {
    __device__ __forceinline__ float operator()(float x) const {
        const float inv_sqrt2 = 0.70710678118654752440f;
        return 0.5f * x * (1.0f + erff(x * inv_sqrt2));
    }
};

// ---------------------------------------------------------------------------------------------
// Loop helpers. 64-bit indices: a 2^31-element buffer (8 GiB of f32) fits on an H100.

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

__device__ __forceinline__ long long thread_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long grid_stride() {
    return (long long)gridDim.x * blockDim.x;
}

// One 16-byte vector of bf16, viewed as four bf16 pairs so that each pair converts to a float2
// in one instruction. Loaded and stored as a uint4 so the compiler emits one 128-bit access.
union Bf16x8 {
    uint4 raw;
    __nv_bfloat162 pair[4];
};

// ---------------------------------------------------------------------------------------------
// f32

template <typename Op>
__device__ __forceinline__ void binary_f32(const float* a, const float* b, float* out, long long n,
                                           Op op) {
    long long scalar_from = 0;
    if (aligned16(a) && aligned16(b) && aligned16(out)) {
        const long long n4 = n / 4;
        const float4* a4 = reinterpret_cast<const float4*>(a);
        const float4* b4 = reinterpret_cast<const float4*>(b);
        float4* out4 = reinterpret_cast<float4*>(out);
        for (long long i = thread_index(); i < n4; i += grid_stride()) {
            const float4 x = a4[i];
            const float4 y = b4[i];
            out4[i] = make_float4(op(x.x, y.x), op(x.y, y.y), op(x.z, y.z), op(x.w, y.w));
        }
        scalar_from = n4 * 4;
    }
    for (long long i = scalar_from + thread_index(); i < n; i += grid_stride()) {
        out[i] = op(a[i], b[i]);
    }
}

template <typename Op>
__device__ __forceinline__ void unary_f32(const float* x, float* out, long long n, Op op) {
    long long scalar_from = 0;
    if (aligned16(x) && aligned16(out)) {
        const long long n4 = n / 4;
        const float4* x4 = reinterpret_cast<const float4*>(x);
        float4* out4 = reinterpret_cast<float4*>(out);
        for (long long i = thread_index(); i < n4; i += grid_stride()) {
            const float4 v = x4[i];
            out4[i] = make_float4(op(v.x), op(v.y), op(v.z), op(v.w));
        }
        scalar_from = n4 * 4;
    }
    for (long long i = scalar_from + thread_index(); i < n; i += grid_stride()) {
        out[i] = op(x[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// bf16 storage, f32 math

template <typename Op>
__device__ __forceinline__ void binary_bf16(const __nv_bfloat16* a, const __nv_bfloat16* b,
                                            __nv_bfloat16* out, long long n, Op op) {
    long long scalar_from = 0;
    if (aligned16(a) && aligned16(b) && aligned16(out)) {
        const long long n8 = n / 8;
        const uint4* a8 = reinterpret_cast<const uint4*>(a);
        const uint4* b8 = reinterpret_cast<const uint4*>(b);
        uint4* out8 = reinterpret_cast<uint4*>(out);
        for (long long i = thread_index(); i < n8; i += grid_stride()) {
            Bf16x8 x, y, r;
            x.raw = a8[i];
            y.raw = b8[i];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const float2 xf = __bfloat1622float2(x.pair[k]);
                const float2 yf = __bfloat1622float2(y.pair[k]);
                r.pair[k] = __floats2bfloat162_rn(op(xf.x, yf.x), op(xf.y, yf.y));
            }
            out8[i] = r.raw;
        }
        scalar_from = n8 * 8;
    }
    for (long long i = scalar_from + thread_index(); i < n; i += grid_stride()) {
        out[i] = __float2bfloat16_rn(op(__bfloat162float(a[i]), __bfloat162float(b[i])));
    }
}

template <typename Op>
__device__ __forceinline__ void unary_bf16(const __nv_bfloat16* x, __nv_bfloat16* out,
                                           long long n, Op op) {
    long long scalar_from = 0;
    if (aligned16(x) && aligned16(out)) {
        const long long n8 = n / 8;
        const uint4* x8 = reinterpret_cast<const uint4*>(x);
        uint4* out8 = reinterpret_cast<uint4*>(out);
        for (long long i = thread_index(); i < n8; i += grid_stride()) {
            Bf16x8 v, r;
            v.raw = x8[i];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const float2 vf = __bfloat1622float2(v.pair[k]);
                r.pair[k] = __floats2bfloat162_rn(op(vf.x), op(vf.y));
            }
            out8[i] = r.raw;
        }
        scalar_from = n8 * 8;
    }
    for (long long i = scalar_from + thread_index(); i < n; i += grid_stride()) {
        out[i] = __float2bfloat16_rn(op(__bfloat162float(x[i])));
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points: one per op and dtype, with C names so the host looks them up by a plain string.
// Signature: binary (a, b, out, n), unary (x, out, n); n is the element count.

typedef __nv_bfloat16 bf16;

extern "C" __global__ void add_f32(const float* a, const float* b, float* out, long long n) { binary_f32(a, b, out, n, AddOp()); }
extern "C" __global__ void sub_f32(const float* a, const float* b, float* out, long long n) { binary_f32(a, b, out, n, SubOp()); }
extern "C" __global__ void mul_f32(const float* a, const float* b, float* out, long long n) { binary_f32(a, b, out, n, MulOp()); }
extern "C" __global__ void div_f32(const float* a, const float* b, float* out, long long n) { binary_f32(a, b, out, n, DivOp()); }

extern "C" __global__ void add_bf16(const bf16* a, const bf16* b, bf16* out, long long n) { binary_bf16(a, b, out, n, AddOp()); }
extern "C" __global__ void sub_bf16(const bf16* a, const bf16* b, bf16* out, long long n) { binary_bf16(a, b, out, n, SubOp()); }
extern "C" __global__ void mul_bf16(const bf16* a, const bf16* b, bf16* out, long long n) { binary_bf16(a, b, out, n, MulOp()); }
extern "C" __global__ void div_bf16(const bf16* a, const bf16* b, bf16* out, long long n) { binary_bf16(a, b, out, n, DivOp()); }

extern "C" __global__ void exp_f32(const float* x, float* out, long long n)  { unary_f32(x, out, n, ExpOp()); }
extern "C" __global__ void tanh_f32(const float* x, float* out, long long n) { unary_f32(x, out, n, TanhOp()); }
extern "C" __global__ void relu_f32(const float* x, float* out, long long n) { unary_f32(x, out, n, ReluOp()); }
extern "C" __global__ void gelu_f32(const float* x, float* out, long long n) { unary_f32(x, out, n, GeluOp()); }

extern "C" __global__ void exp_bf16(const bf16* x, bf16* out, long long n)  { unary_bf16(x, out, n, ExpOp()); }
extern "C" __global__ void tanh_bf16(const bf16* x, bf16* out, long long n) { unary_bf16(x, out, n, TanhOp()); }
extern "C" __global__ void relu_bf16(const bf16* x, bf16* out, long long n) { unary_bf16(x, out, n, ReluOp()); }
extern "C" __global__ void gelu_bf16(const bf16* x, bf16* out, long long n) { unary_bf16(x, out, n, GeluOp()); }

// =============================================================================================
// The rest of UnaryOp (kernels::elementwise::UnaryOp, the CPU's formulas), their backward, the
// tensor-scalar ops and the in-place axpy that gradient accumulation uses.
//
//   {op}_{dt}(x, out, n)              out[i] = f(x[i])            for every UnaryOp not above
//   {op}_bwd_{dt}(s, g, dx, n)        dx[i] = g[i] * f'(s[i])     s is x or y = f(x), whichever
//                                     the derivative reads (autograd's `derivative_reads_output`)
//   add_scalar / mul_scalar / pow_scalar_{dt}(x, out, n, s)
//   clamp_{dt}(x, out, n, lo, hi)     min(max(x, lo), hi);  clamp_mask_{dt}: 1 inside [lo, hi], else 0
//   axpy_{dt}(y, x, n, alpha)         y[i] += alpha * x[i] (in place)
// Launch shape, bytes and numerics as above: one grid-stride loop, f32 math, bf16 rounded once.
// rsqrt is 1 / sqrtf (not the approximate rsqrtf) and sigmoid/softplus use the overflow-free
// forms of the CPU reference, so f32 parity holds at 1e-5 relative.

__device__ __forceinline__ float sigmoidf_(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}
__device__ __forceinline__ float sign0f(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f); }

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_TANH_CUBIC 0.044715f
#define INV_SQRT_2PI 0.3989422804014327f

struct NegOp      { __device__ float operator()(float x) const { return -x; } };
struct LogOp      { __device__ float operator()(float x) const { return logf(x); } };
struct SqrtOp     { __device__ float operator()(float x) const { return sqrtf(x); } };
struct RsqrtOp    { __device__ float operator()(float x) const { return 1.0f / sqrtf(x); } };
struct AbsOp      { __device__ float operator()(float x) const { return fabsf(x); } };
struct SignOp     { __device__ float operator()(float x) const { return sign0f(x); } };
struct SigmoidOp  { __device__ float operator()(float x) const { return sigmoidf_(x); } };
struct GeluTanhOp {
    __device__ float operator()(float x) const {
        const float inner = SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x);
        return 0.5f * x * (1.0f + tanhf(inner));
    }
};
struct SiluOp     { __device__ float operator()(float x) const { return x * sigmoidf_(x); } };
struct SoftplusOp { __device__ float operator()(float x) const { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); } };
struct ErfOp      { __device__ float operator()(float x) const { return erff(x); } };

// Derivatives f'(s), s being x or y as noted.
struct NegD      { __device__ float operator()(float)   const { return -1.0f; } };
struct ExpD      { __device__ float operator()(float y) const { return y; } };
struct LogD      { __device__ float operator()(float x) const { return 1.0f / x; } };
struct SqrtD     { __device__ float operator()(float y) const { return 0.5f / y; } };
struct RsqrtD    { __device__ float operator()(float y) const { return -0.5f * y * y * y; } };
struct AbsD      { __device__ float operator()(float x) const { return sign0f(x); } };
struct SignD     { __device__ float operator()(float)   const { return 0.0f; } };
struct TanhD     { __device__ float operator()(float y) const { return 1.0f - y * y; } };
struct SigmoidD  { __device__ float operator()(float y) const { return y * (1.0f - y); } };
struct ReluD     { __device__ float operator()(float x) const { return x > 0.0f ? 1.0f : 0.0f; } };
struct GeluD {
    __device__ float operator()(float x) const {
        const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752440f));
        const float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        return cdf + x * pdf;
    }
};
struct GeluTanhD {
    __device__ float operator()(float x) const {
        const float t = tanhf(SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x));
        return 0.5f * (1.0f + t)
             + 0.5f * x * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_CUBIC * x * x);
    }
};
struct SiluD {
    __device__ float operator()(float x) const {
        const float s = sigmoidf_(x);
        return s * (1.0f + x * (1.0f - s));
    }
};
struct SoftplusD { __device__ float operator()(float x) const { return sigmoidf_(x); } };
struct ErfD      { __device__ float operator()(float x) const { return 2.0f * INV_SQRT_2PI * 1.41421356237309505f * expf(-x * x); } };

// g * f'(s) as a binary functor, so the vectorized binary loops above serve the backward too.
template <typename D> struct Bwd {
    D d;
    __device__ __forceinline__ float operator()(float s, float g) const { return g * d(s); }
};

struct AddScalar { float s; __device__ float operator()(float x) const { return x + s; } };
struct MulScalar { float s; __device__ float operator()(float x) const { return x * s; } };
struct PowScalar { float p; __device__ float operator()(float x) const { return powf(x, p); } };
// fmaxf/fminf would turn NaN into a bound; the CPU's f32::max/min do the same, so they agree.
struct Clamp     { float lo, hi; __device__ float operator()(float x) const { return fminf(fmaxf(x, lo), hi); } };
struct ClampMask { float lo, hi; __device__ float operator()(float x) const { return (x >= lo && x <= hi) ? 1.0f : 0.0f; } };
struct Axpy      { float alpha; __device__ float operator()(float y, float x) const { return y + alpha * x; } };

#define UNARY_ENTRY(name, F)                                                                       \
    extern "C" __global__ void name##_f32(const float* x, float* out, long long n) { unary_f32(x, out, n, F()); } \
    extern "C" __global__ void name##_bf16(const bf16* x, bf16* out, long long n) { unary_bf16(x, out, n, F()); }
#define BWD_ENTRY(name, D)                                                                          \
    extern "C" __global__ void name##_bwd_f32(const float* s, const float* g, float* dx, long long n) { binary_f32(s, g, dx, n, Bwd<D>()); } \
    extern "C" __global__ void name##_bwd_bf16(const bf16* s, const bf16* g, bf16* dx, long long n) { binary_bf16(s, g, dx, n, Bwd<D>()); }

UNARY_ENTRY(neg, NegOp)
UNARY_ENTRY(log, LogOp)
UNARY_ENTRY(sqrt, SqrtOp)
UNARY_ENTRY(rsqrt, RsqrtOp)
UNARY_ENTRY(abs, AbsOp)
UNARY_ENTRY(sign, SignOp)
UNARY_ENTRY(sigmoid, SigmoidOp)
UNARY_ENTRY(gelu_tanh, GeluTanhOp)
UNARY_ENTRY(silu, SiluOp)
UNARY_ENTRY(softplus, SoftplusOp)
UNARY_ENTRY(erf, ErfOp)

BWD_ENTRY(neg, NegD)
BWD_ENTRY(exp, ExpD)
BWD_ENTRY(log, LogD)
BWD_ENTRY(sqrt, SqrtD)
BWD_ENTRY(rsqrt, RsqrtD)
BWD_ENTRY(abs, AbsD)
BWD_ENTRY(sign, SignD)
BWD_ENTRY(tanh, TanhD)
BWD_ENTRY(sigmoid, SigmoidD)
BWD_ENTRY(relu, ReluD)
BWD_ENTRY(gelu, GeluD)
BWD_ENTRY(gelu_tanh, GeluTanhD)
BWD_ENTRY(silu, SiluD)
BWD_ENTRY(softplus, SoftplusD)
BWD_ENTRY(erf, ErfD)

#define SCALAR_ENTRY(name, F)                                                                      \
    extern "C" __global__ void name##_f32(const float* x, float* out, long long n, float s) { unary_f32(x, out, n, F{s}); } \
    extern "C" __global__ void name##_bf16(const bf16* x, bf16* out, long long n, float s) { unary_bf16(x, out, n, F{s}); }
#define RANGE_ENTRY(name, F)                                                                       \
    extern "C" __global__ void name##_f32(const float* x, float* out, long long n, float lo, float hi) { unary_f32(x, out, n, F{lo, hi}); } \
    extern "C" __global__ void name##_bf16(const bf16* x, bf16* out, long long n, float lo, float hi) { unary_bf16(x, out, n, F{lo, hi}); }

SCALAR_ENTRY(add_scalar, AddScalar)
SCALAR_ENTRY(mul_scalar, MulScalar)
SCALAR_ENTRY(pow_scalar, PowScalar)
RANGE_ENTRY(clamp, Clamp)
RANGE_ENTRY(clamp_mask, ClampMask)

// y is both an input and the output: the in-place case the header allows.
extern "C" __global__ void axpy_f32(float* y, const float* x, long long n, float alpha) { binary_f32(y, x, y, n, Axpy{alpha}); }
extern "C" __global__ void axpy_bf16(bf16* y, const bf16* x, long long n, float alpha) { binary_bf16(y, x, y, n, Axpy{alpha}); }
