// index.cu: index_select / index_add over [outer, size, inner] views, PyTorch gather /
// scatter_add of any rank up to 8, and an index validation pass. f32 and bf16 data, i64
// indices. CPU reference: index/cpu.rs.
//
// What it computes:
//   index_select_*     out[o, j, k] = src[o, idx[j], k]        src [outer, size, inner],
//                                                              out [outer, nidx, inner]
//   index_add_*        dst[o, idx[j], k] += src[o, j, k]       (atomics: see Numerics)
//   index_add_det_*    the same, deterministic: one thread per (o, k) column adds j = 0, 1, ...
//                      in order, exactly the CPU's loop order (bitwise equal for f32)
//   gather_*           out[p] = src[p with coordinate `axis` replaced by index[p]], p over the
//                      index's shape (PyTorch torch.gather; out has the index's shape)
//   scatter_add_*      dst[p with coordinate `axis` replaced by index[p]] += src[p]
//                      (PyTorch Tensor.scatter_add_; atomics)
//   index_check        validation only: flags every idx[j] outside [0, size)
//
// ABI (sizes long long; buffers contiguous row-major; T = float or __nv_bfloat16):
//   index_select_T(const T* src, const long long* idx, T* out, long long outer, long long size,
//                  long long inner, long long nidx, unsigned long long* error)
//   index_add_T(T* dst, const long long* idx, const T* src, long long outer, long long size,
//               long long inner, long long nidx, unsigned long long* error)
//   index_add_det_T(same arguments as index_add_T)
//   gather_T(const T* src, const long long* index, T* out, IndexDims dims,
//            unsigned long long* error)
//   scatter_add_T(T* dst, const long long* index, const T* src, IndexDims dims,
//                 unsigned long long* error)
//   index_check(const long long* idx, long long n, long long size, unsigned long long* error)
//   IndexDims is passed BY VALUE; its Rust twin is index::launch::IndexDims (#[repr(C)],
//   224 bytes, built by IndexDims::gather / IndexDims::scatter_add from the shapes).
//   error: optional (null to skip) u64 that the host sets to u64::MAX before the launch. An index
//   outside [0, size) is never dereferenced: the kernel does atomicMin(error, position), so
//   afterwards error holds the smallest bad position in the index buffer (the CPU's
//   IndexError::position; the host reads the value there for IndexError::index). A bad index
//   gives 0 in index_select/gather outputs and is skipped by the accumulating kernels.
//   To get the CPU's "dst untouched on error" for index_add/scatter_add, run index_check first
//   and launch the accumulation only if error is still u64::MAX.
//
// Launch shape (index/launch.rs):
//   index_select_*, index_add_*   block (BX, BY, 1), BX * BY = 256: threadIdx.x walks the inner
//       row in 16-byte vectors (when aligned), threadIdx.y picks one of BY (o, j) rows; BX is a
//       power of two in [32, 256] sized to the row. Grid any x >= 1 over ceil(outer·nidx / BY)
//       (grid-strided).
//   index_add_det_*               block 256, grid any x >= 1 over the outer·inner columns.
//   gather_*, scatter_add_*, index_check   block 256, grid any x >= 1 over the index elements.
//   No shared memory.
//
// Bytes per element moved (s = 4 for f32, 2 for bf16):
//   index_select  reads s + 8/inner (the index, once per row), writes s.
//   index_add     reads 2s, writes s (an atomic read-modify-write in L2); det: the same.
//   gather        reads s + 8, writes s; scatter_add reads 2s + 8, writes s (atomic). No FLOPs
//   beyond one add per accumulated element: all memory- or latency-bound.
//
// Numerics:
//   * index_add_* and scatter_add_* use atomicAdd: the sum is exact in value per add, but with
//     repeated indices the ORDER of the adds is not fixed, so f32 results can differ run to run
//     in the last bits (unique indices are deterministic). bf16 atomics (sm_80+) round to bf16
//     at every add. index_add_det_* is the deterministic alternative (the CPU's exact order).
//   * index_select/gather copy bits (a NaN stays the same NaN).
//
// Known weaknesses: index_add_det_* has only outer·inner threads, each walking all nidx
// indices: fine for wide rows, slow for narrow ones with many indices (an embedding gradient
// with inner = 64 and 10^5 tokens wants a sort-by-index or segmented variant). gather and
// scatter_add decompose each position with up to 8 64-bit divisions.

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

#define INDEX_MAX_RANK 8

// Shapes of a gather / scatter_add, by value. Every array has INDEX_MAX_RANK entries, the
// first `rank` used.
struct IndexDims {
    long long rank;        // 1..=8
    long long axis;        // the indexed dimension, < rank
    long long axis_size;   // size of the indexed tensor (gather: src, scatter: dst) along axis
    long long numel;       // number of index elements = product of index_shape
    long long index_shape[INDEX_MAX_RANK];
    long long data_strides[INDEX_MAX_RANK];  // contiguous strides of the indexed tensor
    long long src_strides[INDEX_MAX_RANK];   // scatter_add: contiguous strides of src
};

__device__ __forceinline__ void flag_error(unsigned long long* error, long long position) {
    if (error) atomicMin(error, (unsigned long long)position);
}

__device__ __forceinline__ bool in_range(long long i, long long size) { return i >= 0 && i < size; }

__device__ __forceinline__ bool aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

__device__ __forceinline__ long long thread_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() { return (long long)gridDim.x * blockDim.x; }

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) { return __float2bfloat16_rn(v); }

// ---------------------------------------------------------------------------------------------
// index_select / index_add: a team of BX threads per (o, j) row of `inner` elements.

template <typename T>
__device__ __forceinline__ void index_select(const T* src, const long long* idx, T* out,
                                             long long outer, long long size, long long inner,
                                             long long nidx, unsigned long long* error) {
    constexpr int VEC = 16 / (int)sizeof(T);
    const long long rows = outer * nidx;
    for (long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y; row < rows;
         row += (long long)gridDim.x * blockDim.y) {
        const long long o = row / nidx, j = row - o * nidx;
        const long long i = idx[j];
        const bool ok = in_range(i, size);
        if (!ok && threadIdx.x == 0) flag_error(error, j);
        const T* s = src + (o * size + (ok ? i : 0)) * inner;
        T* d = out + row * inner;
        long long done = 0;
        if (aligned16(s) && aligned16(d)) {  // copy 16-byte vectors, then the tail
            const long long nv = inner / VEC;
            for (long long v = threadIdx.x; v < nv; v += blockDim.x) {
                reinterpret_cast<uint4*>(d)[v] =
                    ok ? reinterpret_cast<const uint4*>(s)[v] : make_uint4(0u, 0u, 0u, 0u);
            }
            done = nv * VEC;
        }
        for (long long k = done + threadIdx.x; k < inner; k += blockDim.x) {
            d[k] = ok ? s[k] : from_f32<T>(0.0f);
        }
    }
}

template <typename T>
__device__ __forceinline__ void index_add_atomic(T* dst, const long long* idx, const T* src,
                                                 long long outer, long long size, long long inner,
                                                 long long nidx, unsigned long long* error) {
    const long long rows = outer * nidx;
    for (long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y; row < rows;
         row += (long long)gridDim.x * blockDim.y) {
        const long long o = row / nidx, j = row - o * nidx;
        const long long i = idx[j];
        if (!in_range(i, size)) {
            if (threadIdx.x == 0) flag_error(error, j);
            continue;
        }
        T* d = dst + (o * size + i) * inner;
        const T* s = src + row * inner;
        for (long long k = threadIdx.x; k < inner; k += blockDim.x) atomicAdd(d + k, s[k]);
    }
}

// One thread per (o, k) column: j = 0, 1, ... in order, the CPU's loop order.
template <typename T>
__device__ __forceinline__ void index_add_det(T* dst, const long long* idx, const T* src,
                                              long long outer, long long size, long long inner,
                                              long long nidx, unsigned long long* error) {
    for (long long c = thread_index(); c < outer * inner; c += grid_stride()) {
        const long long o = c / inner, k = c - o * inner;
        T* d = dst + o * size * inner + k;
        const T* s = src + o * nidx * inner + k;
        for (long long j = 0; j < nidx; ++j) {
            const long long i = idx[j];  // the same address across the warp: one broadcast load
            if (!in_range(i, size)) {
                if (k == 0) flag_error(error, j);
                continue;
            }
            d[i * inner] = from_f32<T>(to_f32(d[i * inner]) + to_f32(s[j * inner]));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// gather / scatter_add: one thread per index element p.

// Offsets of element p of the index's shape in the indexed tensor (without the axis term) and
// in src; unrolled over the 8 possible dimensions so that `dims` is only indexed by constants.
__device__ __forceinline__ void offsets(const IndexDims& dims, long long p, long long& data_off,
                                        long long& src_off) {
    data_off = 0;
    src_off = 0;
#pragma unroll
    for (int d = INDEX_MAX_RANK - 1; d >= 0; --d) {
        if (d < dims.rank) {
            const long long q = p / dims.index_shape[d];
            const long long coord = p - q * dims.index_shape[d];
            p = q;
            if (d != dims.axis) data_off += coord * dims.data_strides[d];
            src_off += coord * dims.src_strides[d];
        }
    }
}

__device__ __forceinline__ long long axis_stride(const IndexDims& dims) {
    long long s = 0;
#pragma unroll
    for (int d = 0; d < INDEX_MAX_RANK; ++d)
        if (d == dims.axis) s = dims.data_strides[d];
    return s;
}

template <typename T>
__device__ __forceinline__ void gather(const T* src, const long long* index, T* out,
                                       const IndexDims& dims, unsigned long long* error) {
    const long long astride = axis_stride(dims);
    for (long long p = thread_index(); p < dims.numel; p += grid_stride()) {
        const long long i = index[p];
        if (!in_range(i, dims.axis_size)) {
            flag_error(error, p);
            out[p] = from_f32<T>(0.0f);
            continue;
        }
        long long data_off, src_off;
        offsets(dims, p, data_off, src_off);
        out[p] = src[data_off + i * astride];  // out is contiguous over the index's shape
    }
}

template <typename T>
__device__ __forceinline__ void scatter_add(T* dst, const long long* index, const T* src,
                                            const IndexDims& dims, unsigned long long* error) {
    const long long astride = axis_stride(dims);
    for (long long p = thread_index(); p < dims.numel; p += grid_stride()) {
        const long long i = index[p];
        if (!in_range(i, dims.axis_size)) {
            flag_error(error, p);
            continue;
        }
        long long data_off, src_off;
        offsets(dims, p, data_off, src_off);
        atomicAdd(dst + data_off + i * astride, src[src_off]);
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points.

extern "C" __global__ void index_select_f32(const float* src, const long long* idx, float* out,
                                            long long outer, long long size, long long inner,
                                            long long nidx, unsigned long long* error) {
    index_select<float>(src, idx, out, outer, size, inner, nidx, error);
}
extern "C" __global__ void index_select_bf16(const bf16* src, const long long* idx, bf16* out,
                                             long long outer, long long size, long long inner,
                                             long long nidx, unsigned long long* error) {
    index_select<bf16>(src, idx, out, outer, size, inner, nidx, error);
}
extern "C" __global__ void index_add_f32(float* dst, const long long* idx, const float* src,
                                         long long outer, long long size, long long inner,
                                         long long nidx, unsigned long long* error) {
    index_add_atomic<float>(dst, idx, src, outer, size, inner, nidx, error);
}
extern "C" __global__ void index_add_bf16(bf16* dst, const long long* idx, const bf16* src,
                                          long long outer, long long size, long long inner,
                                          long long nidx, unsigned long long* error) {
    index_add_atomic<bf16>(dst, idx, src, outer, size, inner, nidx, error);
}
extern "C" __global__ void index_add_det_f32(float* dst, const long long* idx, const float* src,
                                             long long outer, long long size, long long inner,
                                             long long nidx, unsigned long long* error) {
    index_add_det<float>(dst, idx, src, outer, size, inner, nidx, error);
}
extern "C" __global__ void index_add_det_bf16(bf16* dst, const long long* idx, const bf16* src,
                                              long long outer, long long size, long long inner,
                                              long long nidx, unsigned long long* error) {
    index_add_det<bf16>(dst, idx, src, outer, size, inner, nidx, error);
}
extern "C" __global__ void gather_f32(const float* src, const long long* index, float* out,
                                      IndexDims dims, unsigned long long* error) {
    gather<float>(src, index, out, dims, error);
}
extern "C" __global__ void gather_bf16(const bf16* src, const long long* index, bf16* out,
                                       IndexDims dims, unsigned long long* error) {
    gather<bf16>(src, index, out, dims, error);
}
extern "C" __global__ void scatter_add_f32(float* dst, const long long* index, const float* src,
                                           IndexDims dims, unsigned long long* error) {
    scatter_add<float>(dst, index, src, dims, error);
}
extern "C" __global__ void scatter_add_bf16(bf16* dst, const long long* index, const bf16* src,
                                            IndexDims dims, unsigned long long* error) {
    scatter_add<bf16>(dst, index, src, dims, error);
}
extern "C" __global__ void index_check(const long long* idx, long long n, long long size,
                                       unsigned long long* error) {
    for (long long j = thread_index(); j < n; j += grid_stride()) {
        if (!in_range(idx[j], size)) flag_error(error, j);
    }
}
