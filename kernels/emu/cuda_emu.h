// cuda_emu.h: the shim that makes this crate's CUDA sources valid C++17, so the host emulator
// (kernels/emu/runtime.cpp, feature `emulator`) can execute the very same kernel text on the CPU.
//
// NOT a GPU: see docs/emulator.md. Execution model in brief: every CUDA thread of a block is a
// cooperative fiber on one OS thread; blocks run one after another; barriers and warp
// collectives are scheduling points. So `__shared__` is plain `static` storage (one block's
// shared memory exists at a time) and atomics are ordinary read-modify-writes (no two fibers
// run at once).
//
// The build script (kernels/build.rs) includes this header before each kernel source, wraps
// the source in its own namespace, drops its `#include <cuda_*.h>` lines and `extern "C"`, and
// rewrites `extern __shared__ T name[];` into a pointer to the launch's dynamic shared buffer.

#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <type_traits>
#include <utility>

#define KERNELS_EMU 1

// ---------------------------------------------------------------------------------------------
// Qualifiers.

// The build script scans each preprocessed unit for these markers to find the kernels (many are
// written by macros, so the raw text does not name them all); `extern "C"` in the source becomes
// KEMU_EXTERN_C, because kernels here live in a per-source namespace with C++ linkage.
#ifdef KEMU_SCAN
#define __global__ KEMU_GLOBAL_MARK
#define KEMU_EXTERN_C KEMU_EXTERN_C_MARK
#else
#define __global__
#define KEMU_EXTERN_C
#endif
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
// One block runs at a time, so one static copy per declaration serves every block in turn.
// Unlike the GPU, its contents survive from one block to the next: a kernel that reads shared
// memory it did not write in this block is not caught.
#define __shared__ static
#define __constant__ static
#define warpSize 32

// ---------------------------------------------------------------------------------------------
// Built-in vector types (alignment as in CUDA's vector_types.h).

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct float3 { float x, y, z; };
struct __attribute__((aligned(8))) int2 { int x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
struct __attribute__((aligned(16))) double2 { double x, y; };
struct __attribute__((aligned(16))) longlong2 { long long x, y; };

inline float2 make_float2(float x, float y) { return {x, y}; }
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }

// ---------------------------------------------------------------------------------------------
// The runtime's side (runtime.cpp): the running fiber, the launch geometry, barriers and the
// warp exchange every collective is built on.

namespace kemu {
struct Fiber {
    uint3 tid;
    // Scheduler bookkeeping, read only by runtime.cpp.
    unsigned lane, warp, state, mask;
    void* sp;
};
extern Fiber* g_cur;
extern uint3 g_block_idx;
extern dim3 g_block_dim;
extern dim3 g_grid_dim;

void syncthreads();
void syncwarp(unsigned mask);
// Every lane of `mask` (which must include the caller) deposits `bytes` (<= 64) bytes; when all
// of them have, each gets the 32 lanes' deposits in `all` (lanes outside the mask: zeros).
void warp_exchange(unsigned mask, const void* mine, size_t bytes, void* all);
// Reports a kernel error (a collective reading a lane outside its mask, ...) and ends the launch.
[[noreturn]] void fail(const char* what);
void* dynamic_smem();

// PTX instructions the kernels write as inline asm, implemented from the PTX ISA (runtime.cpp).
void cp_async(void* smem, const void* gmem, int cp_size, int src_size);
void ldmatrix_x4(unsigned r[4], const void* row_addr, bool trans);
void mma_m16n8k16_bf16_f32(float d[4], const unsigned a[4], unsigned b0, unsigned b1);
float ex2_approx_ftz(float x);
}  // namespace kemu

#define threadIdx (::kemu::g_cur->tid)
#define blockIdx (::kemu::g_block_idx)
#define blockDim (::kemu::g_block_dim)
#define gridDim (::kemu::g_grid_dim)

inline void __syncthreads() { ::kemu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::kemu::syncwarp(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}
inline size_t __cvta_generic_to_shared(const void* p) { return reinterpret_cast<size_t>(p); }

// ---------------------------------------------------------------------------------------------
// Warp collectives (CUDA Programming Guide, "Warp Shuffle Functions", "Warp Vote Functions").
// Reading a lane outside `mask` is undefined on the GPU; here it is an error.

namespace kemu {
template <typename T> inline T shfl_from(unsigned mask, T v, int src_of_lane(int, int, int), int arg, int width) {
    static_assert(sizeof(T) <= 64, "shuffle of a value wider than the exchange slot");
    T all[32];
    warp_exchange(mask, &v, sizeof(T), all);
    const int lane = static_cast<int>(g_cur->lane);
    const int src = src_of_lane(lane, arg, width);
    if (!((mask >> src) & 1u)) fail("warp shuffle reads a lane outside its mask");
    return all[src];
}
inline int src_idx(int lane, int s, int w) { return (lane & ~(w - 1)) + (s & (w - 1)); }
inline int src_xor(int lane, int m, int w) {
    const int s = lane ^ m;
    return (s & ~(w - 1)) == (lane & ~(w - 1)) ? s : lane;  // outside the segment: own value
}
inline int src_down(int lane, int d, int w) { return (lane & (w - 1)) + d < w ? lane + d : lane; }
inline int src_up(int lane, int d, int w) { return (lane & (w - 1)) - d >= 0 ? lane - d : lane; }
}  // namespace kemu

template <typename T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return ::kemu::shfl_from(mask, v, ::kemu::src_idx, src, width);
}
template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
    return ::kemu::shfl_from(mask, v, ::kemu::src_xor, m, width);
}
template <typename T> inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
    return ::kemu::shfl_from(mask, v, ::kemu::src_down, static_cast<int>(d), width);
}
template <typename T> inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
    return ::kemu::shfl_from(mask, v, ::kemu::src_up, static_cast<int>(d), width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    int all[32];
    const int mine = pred != 0;
    ::kemu::warp_exchange(mask, &mine, sizeof mine, all);
    unsigned bits = 0;
    for (int l = 0; l < 32; ++l)
        if (((mask >> l) & 1u) && all[l]) bits |= 1u << l;
    return bits;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }
inline unsigned __activemask() { return 0xffffffffu; }

// ---------------------------------------------------------------------------------------------
// Bit casts and integer intrinsics.

template <typename To, typename From> inline To kemu_bits(From v) {
    static_assert(sizeof(To) == sizeof(From), "bit cast between types of different sizes");
    To t;
    memcpy(&t, &v, sizeof t);
    return t;
}
inline float __int_as_float(int v) { return kemu_bits<float>(v); }
inline float __uint_as_float(unsigned v) { return kemu_bits<float>(v); }
inline int __float_as_int(float v) { return kemu_bits<int>(v); }
inline unsigned __float_as_uint(float v) { return kemu_bits<unsigned>(v); }
inline double __longlong_as_double(long long v) { return kemu_bits<double>(v); }
inline long long __double_as_longlong(double v) { return kemu_bits<long long>(v); }
inline unsigned __umulhi(unsigned a, unsigned b) {
    return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v)); }
inline int __ffs(int v) { return __builtin_ffs(v); }
template <typename T> inline T __ldg(const T* p) { return *p; }

// ---------------------------------------------------------------------------------------------
// Float intrinsics. The fast-math forms (__expf, __fdividef, ...) are computed to full precision
// here; the GPU's are within a few ulp, which the parity tolerances already allow for.

inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : fminf(fmaxf(x, 0.0f), 1.0f); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float exp10f(float x) { return powf(10.0f, x); }

// CUDA's min/max are overloaded for every integer and float type, mixed ones included; the
// usual arithmetic conversions give the same result type.
template <typename A, typename B> inline typename std::common_type<A, B>::type min(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <typename A, typename B> inline typename std::common_type<A, B>::type max(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}

// ---------------------------------------------------------------------------------------------
// bfloat16 (cuda_bf16.h), written from the format's definition: the top 16 bits of an IEEE
// binary32. float -> bf16 rounds to nearest, ties to even; NaN stays NaN (quiet, sign kept).

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f);
    operator float() const { return __int_as_float(static_cast<int>(static_cast<unsigned>(__x) << 16)); }
};
struct __attribute__((aligned(4))) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
typedef __nv_bfloat16 __nv_bfloat16_raw_t;

inline unsigned short kemu_f32_to_bf16_bits(float f) {
    const unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<unsigned short>((u >> 16) | 0x0040u);
    const unsigned rounded = u + 0x7fffu + ((u >> 16) & 1u);
    return static_cast<unsigned short>(rounded >> 16);
}
inline __nv_bfloat16::__nv_bfloat16(float f) : __x(kemu_f32_to_bf16_bits(f)) {}

inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return static_cast<float>(b); }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) { return {__nv_bfloat16(lo), __nv_bfloat16(hi)}; }
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __floats2bfloat162_rn(f.x, f.y); }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {static_cast<float>(v.x), static_cast<float>(v.y)}; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 b;
    b.__x = u;
    return b;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }

// ---------------------------------------------------------------------------------------------
// Atomics: fibers never run at the same time, so a plain read-modify-write is atomic.

template <typename T> inline T atomicAdd(T* p, T v) {
    const T old = *p;
    *p = static_cast<T>(old + v);
    return old;
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* p, __nv_bfloat16 v) {
    const __nv_bfloat16 old = *p;
    *p = __nv_bfloat16(static_cast<float>(old) + static_cast<float>(v));
    return old;
}
template <typename T> inline T atomicSub(T* p, T v) {
    const T old = *p;
    *p = old - v;
    return old;
}
template <typename T> inline T atomicMin(T* p, T v) {
    const T old = *p;
    if (v < old) *p = v;
    return old;
}
template <typename T> inline T atomicMax(T* p, T v) {
    const T old = *p;
    if (old < v) *p = v;
    return old;
}
template <typename T> inline T atomicOr(T* p, T v) {
    const T old = *p;
    *p = old | v;
    return old;
}
template <typename T> inline T atomicAnd(T* p, T v) {
    const T old = *p;
    *p = old & v;
    return old;
}
template <typename T> inline T atomicXor(T* p, T v) {
    const T old = *p;
    *p = old ^ v;
    return old;
}
template <typename T> inline T atomicExch(T* p, T v) {
    const T old = *p;
    *p = v;
    return old;
}
template <typename T> inline T atomicCAS(T* p, T cmp, T v) {
    const T old = *p;
    if (old == cmp) *p = v;
    return old;
}

// ---------------------------------------------------------------------------------------------
// The kernel table the build script generates: one trampoline per `extern "C" __global__`
// entry, which unpacks the launch's `void** args` (a pointer to each argument's bytes, the
// list the driver takes) into the kernel's own parameter types.

namespace kemu {
struct Entry {
    const char* name;
    void (*call)(void** args);
    unsigned nparams;
    const unsigned* sizes;  // sizeof each parameter, as the kernel declares it
};
struct Unit {
    const char* source;
    const Entry* entries;
    size_t count;
};

template <typename T> using Bare = typename std::remove_cv<typename std::remove_reference<T>::type>::type;
template <typename... P> struct ParamSizes {
    static constexpr unsigned value[sizeof...(P) + 1] = {static_cast<unsigned>(sizeof(Bare<P>))..., 0u};
};
template <typename... P, size_t... I>
inline void invoke_with(void (*k)(P...), void** args, std::index_sequence<I...>) {
    k(*static_cast<Bare<P>*>(args[I])...);
}
template <typename... P> inline void invoke(void (*k)(P...), void** args) {
    invoke_with(k, args, std::index_sequence_for<P...>{});
}
template <typename... P> constexpr unsigned param_count(void (*)(P...)) { return sizeof...(P); }
template <typename... P> constexpr const unsigned* param_sizes(void (*)(P...)) { return ParamSizes<P...>::value; }
}  // namespace kemu
