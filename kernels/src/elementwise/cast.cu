// cast.cu: dtype conversion (`to_dtype`) between every pair of the six storage dtypes, f32,
// f64, bf16, f16, i64 and bool (0/1 bytes): 30 pairs, each with a contiguous and a strided entry.
//
// What it computes:
//   cast_{a}_to_{b}(src, dst, n)             dst[i] = convert(src[i]),   i in [0, n)
//   cast_strided_{a}_to_{b}(l, src, dst, n)  dst[i] = convert(src[.0]),  operand 0 of `l` is the
//       source view (strides, offset; the Layout of strided.cu); dst is contiguous.
//
// The conversion is the contract written in kernels/src/elementwise/cast.rs, whose CPU
// reference the CPU `to_dtype` runs and whose tests pin its edge cases; this file ports the same
// integer algorithm line for line (decode the source bits to sign, exponent and a 64-bit
// significand, then round once into the target format):
//   * float -> float: nearest, ties to even, one rounding from the exact value (f64 -> bf16 is
//     not f64 -> f32 -> bf16); past max + half an ulp -> +-inf; subnormals kept (never
//     flushed), underflow keeps the sign; widening exact.
//   * NaN -> NaN with its sign and the top bits of its payload, quiet bit set.
//   * i64 -> float: nearest, ties to even, one rounding (i64 -> f32 is not i64 -> f64 -> f32).
//   * float -> i64: toward zero, saturating, NaN -> 0.   anything -> bool: x != 0 (NaN -> 1).
//   * bool -> anything: any non-zero byte is 1.
// Only integer instructions touch the values, so no floating-point mode (flush-to-zero, the
// canonical NaN of cvt) can change a bit: the results equal the CPU's bit for bit.
//
// Launch shape: 1-D grid-stride loops, block 256, any grid >= 1 (as elementwise.cu).
// Bytes per element: read size(a), write size(b); no FLOPs (a few dozen integer instructions,
//   still memory-bound). The strided entries add strided.cu's index arithmetic.
//
// The conversion functions also compile as plain C++ (no __CUDACC__): kernels/tests/cast_host.rs
// builds them with the host's C++ compiler and compares them with cast.rs on millions of inputs,
// so the port is checked by running it, not only by reading it.

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define CAST_FN __device__ __forceinline__
#define CLZ64(x) __clzll((long long)(x))
#else
#define CAST_FN inline
#define CLZ64(x) __builtin_clzll(x)
#endif

typedef unsigned long long u64;

// A decoded element (cast.rs `Value`): kind 0 zero, 1 inf, 2 NaN, 3 finite. A finite value is
// +-sig * 2^(exp - 63) with the leading one of sig at bit 63; a NaN's payload is its mantissa
// shifted up to bit 63.
struct Value {
    int kind;
    bool neg;
    int exp;
    u64 sig;
};

enum { ZERO = 0, INF = 1, NAN_ = 2, FINITE = 3 };

// Type codes, as cast.rs `CastType`: (exponent bits, mantissa bits) for the floats.
enum { T_F32, T_F64, T_BF16, T_F16, T_I64, T_BOOL };

CAST_FN int exp_bits(int t) { return t == T_F64 ? 11 : t == T_F16 ? 5 : 8; }
CAST_FN int man_bits(int t) { return t == T_F64 ? 52 : t == T_F32 ? 23 : t == T_F16 ? 10 : 7; }

CAST_FN Value decode(int from, u64 bits) {
    Value v;
    v.neg = false;
    v.exp = 0;
    v.sig = 0;
    if (from == T_I64) {
        const long long i = (long long)bits;
        if (i == 0) { v.kind = ZERO; return v; }
        // Two's-complement magnitude; i64::MIN gives 2^63, which fits in u64.
        const u64 mag = i < 0 ? (u64)0 - bits : bits;
        const int lz = CLZ64(mag);
        v.kind = FINITE;
        v.neg = i < 0;
        v.exp = 63 - lz;
        v.sig = mag << lz;
        return v;
    }
    if (from == T_BOOL) {
        if ((bits & 0xff) == 0) { v.kind = ZERO; return v; }
        v.kind = FINITE;
        v.sig = 1ull << 63;
        return v;
    }
    const int eb = exp_bits(from), mb = man_bits(from);
    v.neg = ((bits >> (eb + mb)) & 1) == 1;
    const int e = (int)((bits >> mb) & ((1ull << eb) - 1));
    const u64 m = bits & ((1ull << mb) - 1);
    const int bias = (1 << (eb - 1)) - 1;
    if (e == (1 << eb) - 1) {
        v.kind = m == 0 ? INF : NAN_;
        v.sig = m << (64 - mb);
    } else if (e == 0) {
        if (m == 0) {
            v.kind = ZERO;
        } else {
            // Subnormal: m * 2^(1 - bias - mb), leading one at bit 63 - lz.
            const int lz = CLZ64(m);
            v.kind = FINITE;
            v.exp = (63 - lz) + 1 - bias - mb;
            v.sig = m << lz;
        }
    } else {
        v.kind = FINITE;
        v.exp = e - bias;
        v.sig = (m | (1ull << mb)) << (63 - mb);
    }
    return v;
}

// mag >> shift rounded to nearest, ties to even; shift in [1, 63].
CAST_FN u64 shift_round(u64 mag, int shift) {
    const u64 kept = mag >> shift;
    const u64 rest = mag & ((1ull << shift) - 1);
    const u64 half = 1ull << (shift - 1);
    return (rest > half || (rest == half && (kept & 1))) ? kept + 1 : kept;
}

CAST_FN u64 encode_float(int eb, int mb, Value v) {
    const u64 sign = (u64)v.neg << (eb + mb);
    const u64 inf = ((1ull << eb) - 1) << mb;
    if (v.kind == ZERO) return sign;
    if (v.kind == INF) return sign | inf;
    if (v.kind == NAN_) return sign | inf | (1ull << (mb - 1)) | (v.sig >> (64 - mb));
    const int bias = (1 << (eb - 1)) - 1;
    const int biased = v.exp + bias;
    if (biased >= (1 << eb) - 1) return sign | inf;
    u64 magnitude;
    if (biased >= 1) {
        // Normal: the rounded significand keeps its hidden one, so adding it to
        // (biased - 1) << mb carries into the exponent, and past the largest finite onto inf.
        magnitude = ((u64)(biased - 1) << mb) + shift_round(v.sig, 63 - mb);
    } else {
        // Subnormal (unit 2^(1 - bias - mb)); a carry into bit mb is the smallest normal.
        const int shift = (63 - mb) + (1 - biased);
        if (shift <= 63) magnitude = shift_round(v.sig, shift);
        else if (shift == 64) magnitude = v.sig > (1ull << 63) ? 1 : 0;
        else magnitude = 0;
    }
    return sign | magnitude;
}

CAST_FN u64 encode(int to, Value v) {
    if (to == T_BOOL) return v.kind == ZERO ? 0 : 1;
    if (to == T_I64) {
        const u64 max = 0x7fffffffffffffffull, min = 0x8000000000000000ull;
        if (v.kind == ZERO || v.kind == NAN_) return 0;
        if (v.kind == INF) return v.neg ? min : max;
        if (v.exp < 0) return 0;
        if (v.exp >= 63) return v.neg ? min : max;
        const u64 mag = v.sig >> (63 - v.exp);
        return v.neg ? (u64)0 - mag : mag;
    }
    return encode_float(exp_bits(to), man_bits(to), v);
}

// The conversion of one element's bits (low size(from) bytes) to the target's bits.
CAST_FN u64 cast_bits(int from, int to, u64 bits) {
    if (from == to) return bits;
    return encode(to, decode(from, bits));
}

#if defined(__CUDACC__) || defined(__CUDACC_RTC__) || defined(KERNELS_EMU)

// Storage word of each type code: conversions work on raw bits.
template <int T> struct Word;
template <> struct Word<T_F32> { typedef unsigned int type; };
template <> struct Word<T_F64> { typedef u64 type; };
template <> struct Word<T_BF16> { typedef unsigned short type; };
template <> struct Word<T_F16> { typedef unsigned short type; };
template <> struct Word<T_I64> { typedef u64 type; };
template <> struct Word<T_BOOL> { typedef unsigned char type; };

#define MAX_RANK 8

// Byte for byte strided.cu's Layout (kernels::cuda::launch::Layout).
struct Layout {
    long long shape[MAX_RANK];
    long long strides[3][MAX_RANK];
    long long offsets[3];
    int rank;
    int pad;
};

__device__ __forceinline__ long long tid() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ long long gstride() { return (long long)gridDim.x * blockDim.x; }

template <int A, int B>
__device__ void cast(const typename Word<A>::type* src, typename Word<B>::type* dst, long long n) {
    for (long long i = tid(); i < n; i += gstride()) {
        dst[i] = (typename Word<B>::type)cast_bits(A, B, (u64)src[i]);
    }
}

template <int A, int B>
__device__ void cast_strided(const Layout& l, const typename Word<A>::type* src, typename Word<B>::type* dst,
                             long long n) {
    for (long long i = tid(); i < n; i += gstride()) {
        long long rest = i, off = l.offsets[0];
        for (int d = l.rank - 1; d >= 0; --d) {
            off += (rest % l.shape[d]) * l.strides[0][d];
            rest /= l.shape[d];
        }
        dst[i] = (typename Word<B>::type)cast_bits(A, B, (u64)src[off]);
    }
}

#define CAST(a, A, b, B)                                                                              \
    extern "C" __global__ void cast_##a##_to_##b(const Word<A>::type* src, Word<B>::type* dst, long long n) { \
        cast<A, B>(src, dst, n);                                                                      \
    }                                                                                                 \
    extern "C" __global__ void cast_strided_##a##_to_##b(Layout l, const Word<A>::type* src, Word<B>::type* dst, \
                                                         long long n) {                               \
        cast_strided<A, B>(l, src, dst, n);                                                           \
    }

// Every ordered pair of distinct types (kernels::elementwise::cast_cuda::KERNELS lists them).
CAST(f32, T_F32, f64, T_F64)   CAST(f32, T_F32, bf16, T_BF16)  CAST(f32, T_F32, f16, T_F16)
CAST(f32, T_F32, i64, T_I64)   CAST(f32, T_F32, bool, T_BOOL)
CAST(f64, T_F64, f32, T_F32)   CAST(f64, T_F64, bf16, T_BF16)  CAST(f64, T_F64, f16, T_F16)
CAST(f64, T_F64, i64, T_I64)   CAST(f64, T_F64, bool, T_BOOL)
CAST(bf16, T_BF16, f32, T_F32) CAST(bf16, T_BF16, f64, T_F64)  CAST(bf16, T_BF16, f16, T_F16)
CAST(bf16, T_BF16, i64, T_I64) CAST(bf16, T_BF16, bool, T_BOOL)
CAST(f16, T_F16, f32, T_F32)   CAST(f16, T_F16, f64, T_F64)    CAST(f16, T_F16, bf16, T_BF16)
CAST(f16, T_F16, i64, T_I64)   CAST(f16, T_F16, bool, T_BOOL)
CAST(i64, T_I64, f32, T_F32)   CAST(i64, T_I64, f64, T_F64)    CAST(i64, T_I64, bf16, T_BF16)
CAST(i64, T_I64, f16, T_F16)   CAST(i64, T_I64, bool, T_BOOL)
CAST(bool, T_BOOL, f32, T_F32) CAST(bool, T_BOOL, f64, T_F64)  CAST(bool, T_BOOL, bf16, T_BF16)
CAST(bool, T_BOOL, f16, T_F16) CAST(bool, T_BOOL, i64, T_I64)

#endif
