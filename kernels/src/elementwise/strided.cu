// strided.cu: elementwise ops over strided and broadcast views, the strided copy behind
// `contiguous()` / `copy_`, and the row sum behind broadcasting's backward.
//
// What it computes. Every kernel but sum_rows walks the n = prod(shape) elements of an output
// of shape `l.shape` in row-major order; element i of operand j is read at
//   offsets[j] + sum_d index_d(i) * strides[j][d]        (stride 0 on broadcast axes)
//   bcast_{add,sub,mul,div,pow}_{dt}(l, a, b, out, n)  out[i] = a[.] op b[.]      (operands a, b)
//   bcast_{eq,ne,lt,le,gt,ge}_{dt}(l, a, b, out, n)    out[i] = a[.] cmp b[.], as a 0/1 byte
//   where_{dt}(l, cond, a, b, out, n)                  out[i] = cond[.] ? a[.] : b[.]  (c, a, b)
//   copy_strided_b{1,2,4,8}(l, src, dst, n)            dst[.1] = src[.0]: operand 0 is the source
//       view, operand 1 the destination view, so one kernel both gathers (contiguous()) and
//       scatters (copy_ into a view). Elements are moved as raw 1/2/4/8-byte words: any dtype.
//   sum_rows_{dt}(x, out, rows, row_len)              out[r] = sum_j x[r * row_len + j]
// Outputs of bcast/compare/where are contiguous.
//
// Launch shape: 1-D grid-stride loops, block 256, any grid >= 1 (as elementwise.cu). sum_rows:
//   one block of 256 threads per row (grid-stride over rows), a fixed-order tree in shared
//   memory, so the result does not depend on timing: deterministic, no atomics.
//
// Bytes per element: bcast f32 reads 8 B and writes 4 B (broadcast operands hit in cache, so
//   often less); copy reads and writes the element size; sum_rows reads 4 B per element. All
//   memory-bound. The index arithmetic (a div/mod per axis) costs more than the math; rank is
//   kept small by the host, which drops size-1 axes before launching.
//
// Numerics: f32 math, bf16 widened and rounded once (as elementwise.cu). Comparisons follow
//   IEEE (NaN compares unequal to everything, != is true). sum_rows accumulates in f32; its
//   pairwise tree sums in a different order than the CPU's sequential/blocked sum, which is why
//   the parity tolerance for sums scales with the row length.
//
// The layout struct is passed by value (288 bytes, far under the 4 KiB parameter limit), so a
//   launch needs no device allocation for shapes and strides.

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

#define MAX_RANK 8

struct Layout {
    long long shape[MAX_RANK];
    long long strides[3][MAX_RANK];
    long long offsets[3];
    int rank;
    int pad;
};

__device__ __forceinline__ long long tid() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ long long gstride() { return (long long)gridDim.x * blockDim.x; }

// Offsets of element i in the first `N` operands.
template <int N>
__device__ __forceinline__ void locate(const Layout& l, long long i, long long (&off)[N]) {
#pragma unroll
    for (int j = 0; j < N; ++j) off[j] = l.offsets[j];
    for (int d = l.rank - 1; d >= 0; --d) {
        const long long size = l.shape[d];
        const long long idx = i % size;
        i /= size;
#pragma unroll
        for (int j = 0; j < N; ++j) off[j] += idx * l.strides[j][d];
    }
}

__device__ __forceinline__ float ld(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16* p, long long i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16* p, long long i, float v) { p[i] = __float2bfloat16_rn(v); }

struct Add { __device__ float operator()(float a, float b) const { return a + b; } };
struct Sub { __device__ float operator()(float a, float b) const { return a - b; } };
struct Mul { __device__ float operator()(float a, float b) const { return a * b; } };
struct Div { __device__ float operator()(float a, float b) const { return a / b; } };
struct Pow { __device__ float operator()(float a, float b) const { return powf(a, b); } };

struct Eq { __device__ bool operator()(float a, float b) const { return a == b; } };
struct Ne { __device__ bool operator()(float a, float b) const { return a != b; } };
struct Lt { __device__ bool operator()(float a, float b) const { return a < b; } };
struct Le { __device__ bool operator()(float a, float b) const { return a <= b; } };
struct Gt { __device__ bool operator()(float a, float b) const { return a > b; } };
struct Ge { __device__ bool operator()(float a, float b) const { return a >= b; } };

template <typename T, typename Op>
__device__ void bcast(const Layout& l, const T* a, const T* b, T* out, long long n, Op op) {
    for (long long i = tid(); i < n; i += gstride()) {
        long long off[2];
        locate<2>(l, i, off);
        st(out, i, op(ld(a, off[0]), ld(b, off[1])));
    }
}

template <typename T, typename Cmp>
__device__ void compare(const Layout& l, const T* a, const T* b, unsigned char* out, long long n, Cmp cmp) {
    for (long long i = tid(); i < n; i += gstride()) {
        long long off[2];
        locate<2>(l, i, off);
        out[i] = cmp(ld(a, off[0]), ld(b, off[1])) ? 1 : 0;
    }
}

template <typename T>
__device__ void select(const Layout& l, const unsigned char* c, const T* a, const T* b, T* out, long long n) {
    for (long long i = tid(); i < n; i += gstride()) {
        long long off[3];
        locate<3>(l, i, off);
        out[i] = c[off[0]] ? a[off[1]] : b[off[2]];
    }
}

template <typename W>
__device__ void copy_strided(const Layout& l, const W* src, W* dst, long long n) {
    for (long long i = tid(); i < n; i += gstride()) {
        long long off[2];
        locate<2>(l, i, off);
        dst[off[1]] = src[off[0]];
    }
}

template <typename T>
__device__ void sum_rows(const T* x, T* out, long long rows, long long row_len) {
    __shared__ float partial[256];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* row = x + r * row_len;
        float acc = 0.0f;
        for (long long j = threadIdx.x; j < row_len; j += blockDim.x) acc += ld(row, j);
        partial[threadIdx.x] = acc;
        __syncthreads();
        for (int width = blockDim.x / 2; width > 0; width /= 2) {
            if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
            __syncthreads();
        }
        if (threadIdx.x == 0) st(out, r, partial[0]);
        // The next row reuses `partial`: no thread may write it before thread 0 has read it.
        __syncthreads();
    }
}

#define BCAST(name, Op)                                                                              \
    extern "C" __global__ void bcast_##name##_f32(Layout l, const float* a, const float* b, float* out, long long n) { bcast(l, a, b, out, n, Op()); } \
    extern "C" __global__ void bcast_##name##_bf16(Layout l, const bf16* a, const bf16* b, bf16* out, long long n) { bcast(l, a, b, out, n, Op()); }
#define CMP(name, Cmp)                                                                               \
    extern "C" __global__ void bcast_##name##_f32(Layout l, const float* a, const float* b, unsigned char* out, long long n) { compare(l, a, b, out, n, Cmp()); } \
    extern "C" __global__ void bcast_##name##_bf16(Layout l, const bf16* a, const bf16* b, unsigned char* out, long long n) { compare(l, a, b, out, n, Cmp()); }

BCAST(add, Add)
BCAST(sub, Sub)
BCAST(mul, Mul)
BCAST(div, Div)
BCAST(pow, Pow)
CMP(eq, Eq)
CMP(ne, Ne)
CMP(lt, Lt)
CMP(le, Le)
CMP(gt, Gt)
CMP(ge, Ge)

extern "C" __global__ void where_f32(Layout l, const unsigned char* c, const float* a, const float* b, float* out, long long n) { select(l, c, a, b, out, n); }
extern "C" __global__ void where_bf16(Layout l, const unsigned char* c, const bf16* a, const bf16* b, bf16* out, long long n) { select(l, c, a, b, out, n); }

extern "C" __global__ void copy_strided_b1(Layout l, const unsigned char* src, unsigned char* dst, long long n) { copy_strided(l, src, dst, n); }
extern "C" __global__ void copy_strided_b2(Layout l, const unsigned short* src, unsigned short* dst, long long n) { copy_strided(l, src, dst, n); }
extern "C" __global__ void copy_strided_b4(Layout l, const unsigned int* src, unsigned int* dst, long long n) { copy_strided(l, src, dst, n); }
extern "C" __global__ void copy_strided_b8(Layout l, const unsigned long long* src, unsigned long long* dst, long long n) { copy_strided(l, src, dst, n); }

// Block size must be 256 (the shared array); the host launches it so.
extern "C" __global__ void sum_rows_f32(const float* x, float* out, long long rows, long long row_len) { sum_rows(x, out, rows, row_len); }
extern "C" __global__ void sum_rows_bf16(const bf16* x, bf16* out, long long rows, long long row_len) { sum_rows(x, out, rows, row_len); }
