// attention_common.cuh: what attention_fwd.cu and attention_bwd.cu share. Prepended to each of
// them at registration (kernels/src/cuda/sources.rs), because NVRTC compiles one string and our
// pipeline passes no headers; so this file must not declare kernels itself.
//
// Contents: the parameter block (mirrored by `AttnParams` in launch.rs, layout checked by a test),
// the mask test and tile classification (the same rules as mask.rs), cp.async tile loads with
// zero fill, and the mma.sync / ldmatrix wrappers of the bf16 tensor-core paths.

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

#define ATTN_NEG_INF __int_as_float(0xff800000)
#define ATTN_POS_INF __int_as_float(0x7f800000)
#define ATTN_LOG2E 1.4426950408889634f
#define ATTN_LN2 0.6931471805599453f

// One block of parameters for every attention entry point (forward and backward). Pointers the
// entry does not use may be null. Element strides: [0] batch, [1] head, [2] row; the head
// dimension is contiguous. Gradients use their input's strides (dq: q_stride, dk: k_stride,
// dv: v_stride, dout: o_stride). lse, delta are [B, H, nq] and max_logit [B, H], contiguous f32.
struct AttnParams {
    const void* q;
    const void* k;
    const void* v;
    void* out;
    float* lse;
    float* max_logit;              // pre-filled with -inf by the host; atomically max-ed
    const unsigned char* mask;     // nonzero = may attend; null = no boolean mask
    const void* bias;              // same dtype as q; null = no bias
    const int* key_lengths;        // [B]; null = no key padding
    const void* dout;
    void* dq;
    void* dk;
    void* dv;
    float* delta;                  // rowsum(dout * out), written by attention_bwd_delta_*
    float* dbias;                  // [B, H, nq, nk] f32, zero-filled by the host: dS per pair,
                                   // written only by attention_bwd_dq_dbias_*; null elsewhere
    long long q_stride[3];
    long long k_stride[3];
    long long v_stride[3];
    long long o_stride[3];
    long long mask_stride[4];      // over [B, H, nq, nk]; 0 on broadcast dimensions
    long long bias_stride[4];
    int batch;
    int heads;
    int kv_heads;
    int q_len;
    int kv_len;
    int head_dim;                  // read only by the entries not specialized on D
    int causal;                    // bottom-right aligned: j <= i + (kv_len - q_len)
    int diagonal;                  // j != i + (kv_len - q_len)
    float scale;
};

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }

// Where one (batch, head) reads and writes, and its masking constants.
struct HeadView {
    int b, h, hk;
    int shift;  // kv_len - q_len: query i sits at key position i + shift
    int klen;   // keys that padding leaves: min(kv_len, key_lengths[b])
};

__device__ __forceinline__ HeadView head_view(const AttnParams& p, int b, int h) {
    HeadView v;
    v.b = b;
    v.h = h;
    v.hk = h / (p.heads / p.kv_heads);
    v.shift = p.kv_len - p.q_len;
    v.klen = p.key_lengths ? min(p.kv_len, p.key_lengths[b]) : p.kv_len;
    return v;
}

// Whether query i may attend to key j (rows and keys past the ends may not).
__device__ __forceinline__ bool attn_allowed(const AttnParams& p, const HeadView& hv, int i, int j) {
    if (i >= p.q_len || j >= hv.klen) return false;
    if (p.causal && j > i + hv.shift) return false;
    if (p.diagonal && j == i + hv.shift) return false;
    if (p.mask) {
        const long long* s = p.mask_stride;
        if (p.mask[hv.b * s[0] + hv.h * s[1] + i * s[2] + j * s[3]] == 0) return false;
    }
    return true;
}

template <typename T>
__device__ __forceinline__ float attn_bias(const AttnParams& p, const HeadView& hv, int i, int j) {
    const long long* s = p.bias_stride;
    return to_f32(static_cast<const T*>(p.bias)[hv.b * s[0] + hv.h * s[1] + i * s[2] + j * s[3]]);
}

enum { TILE_EMPTY = 0, TILE_PARTIAL = 1, TILE_FULL = 2 };

// Classify queries [i0, i1) x keys [j0, j1), as Mask::classify does; "full" also needs every row
// and key in range, so that full tiles read no mask and no out-of-range bias.
__device__ __forceinline__ int tile_kind(const AttnParams& p, const HeadView& hv, int i0, int i1, int j0, int j1) {
    if (j0 >= hv.klen) return TILE_EMPTY;
    bool full = i1 <= p.q_len && j1 <= hv.klen && !p.mask;
    if (p.causal) {
        if (j0 > i1 - 1 + hv.shift) return TILE_EMPTY;
        if (j1 - 1 > i0 + hv.shift) full = false;
    }
    if (p.diagonal && i0 + hv.shift < j1 && i1 - 1 + hv.shift >= j0) full = false;
    return full ? TILE_FULL : TILE_PARTIAL;
}

// Keys at or past this index are masked for every query in [i0, i1) (causal and padding bounds).
__device__ __forceinline__ int key_end(const AttnParams& p, const HeadView& hv, int i1) {
    int end = hv.klen;
    if (p.causal) end = min(end, max(0, i1 + hv.shift));
    return end;
}

// First query that can see any key of [j0, ...) under the causal rule (0 without it).
__device__ __forceinline__ int query_begin(const AttnParams& p, const HeadView& hv, int j0) {
    return p.causal ? max(0, j0 - hv.shift) : 0;
}

// max into a float in global memory for any sign: non-negative floats order like ints, negative
// ones in reverse like unsigned ints. The target starts at -inf (0xff800000).
__device__ __forceinline__ void atomic_max_f32(float* addr, float v) {
    if (v >= 0.0f) {
        atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v));
    } else {
        atomicMin(reinterpret_cast<unsigned int*>(addr), __float_as_uint(v));
    }
}

// Block-wide max of one value per thread, then one atomic per block into *dst (skipped for -inf,
// the initial value). `scratch` holds one float per warp.
template <int WARPS>
__device__ __forceinline__ void block_max_to(float* dst, float v, float* scratch) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = scratch[0];
#pragma unroll
        for (int w = 1; w < WARPS; ++w) m = fmaxf(m, scratch[w]);
        if (m != ATTN_NEG_INF) atomic_max_f32(dst, m);
    }
}

// ---------------------------------------------------------------------------------------------
// Global -> shared tile loads: cp.async, 16 bytes per copy, rows past `valid` zero-filled (source
// size 0 reads nothing). Needs 16-byte aligned rows: the host checks base pointers and strides.

// Under KERNELS_EMU (the host emulator, docs/emulator.md) each wrapper calls the emulator's
// implementation of the instruction, written from the PTX ISA; there cp.async copies at once, so
// commit and wait have nothing to do (a valid order for an asynchronous copy).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    const int bytes = valid ? 16 : 0;
#ifdef KERNELS_EMU
    ::kemu::cp_async(smem, gmem, 16, bytes);
#else
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(bytes));
#endif
}
#ifdef KERNELS_EMU
__device__ __forceinline__ void cp_async_commit() {}
template <int N>
__device__ __forceinline__ void cp_async_wait() {}
#else
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
#endif

// rows [0, ROWS) of a [*, D] matrix at `g` (row stride `stride`) into smem rows of LD elements.
template <typename T, int D, int ROWS, int LD, int THREADS>
__device__ __forceinline__ void load_rows_async(T* smem, const T* g, long long stride, int valid) {
    constexpr int PER = 16 / sizeof(T);  // elements per 16-byte copy
    constexpr int CHUNKS = D / PER;
#pragma unroll
    for (int c = threadIdx.x; c < ROWS * CHUNKS; c += THREADS) {
        const int r = c / CHUNKS;
        const int col = (c % CHUNKS) * PER;
        // Rows past the end copy nothing; point them at row 0 so the address stays valid.
        const long long row = r < valid ? r : 0;
        cp_async16(smem + r * LD + col, g + row * stride + col, r < valid);
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor cores: mma.sync m16n8k16, bf16 inputs, f32 accumulators, fragments via ldmatrix.
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with g = lane / 4, t = lane % 4:
//   A (16x16, row): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//   B (16x8, col):  b0 (k = 2t..2t+1, n = g), b1 (k = 2t+8.., n = g)
//   C (16x8):       c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..2t+1)
// So the C fragments of two adjacent n-tiles are, packed to bf16, the A fragment of the next
// product (FlashAttention-2's register reuse of P).

__device__ __forceinline__ void mma_16816(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
#ifdef KERNELS_EMU
    ::kemu::mma_m16n8k16_bf16_f32(c, a, b0, b1);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const bf16* smem) {
#ifdef KERNELS_EMU
    ::kemu::ldmatrix_x4(r, smem, false);
#else
    const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const bf16* smem) {
#ifdef KERNELS_EMU
    ::kemu::ldmatrix_x4(r, smem, true);
#else
    const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#endif
}

__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
}

// A fragment of rows [r0, r0+16) x cols [c0, c0+16) of a row-major smem matrix (row stride LD).
template <int LD>
__device__ __forceinline__ void load_a(unsigned a[4], const bf16* s, int r0, int c0, int lane) {
    ldmatrix_x4(a, s + (r0 + (lane & 15)) * LD + c0 + (lane >> 4) * 8);
}

// B fragments of two n-tiles (n = rows [n0, n0+16) of the smem matrix, k = cols [k0, k0+16)),
// when B = Mᵀ for a row-major M (keys as rows): {b0, b1} of n-tile n0 and of n0 + 8.
template <int LD>
__device__ __forceinline__ void load_b_rows(unsigned b[4], const bf16* s, int n0, int k0, int lane) {
    ldmatrix_x4(b, s + (n0 + (lane & 7) + ((lane >> 4) << 3)) * LD + k0 + ((lane >> 3) & 1) * 8);
}

// B fragments of two n-tiles when B = M itself (k = rows [k0, k0+16), n = cols [n0, n0+16)):
// {b0, b1} of n-tile n0 and of n0 + 8, transposed on the fly by ldmatrix.trans.
template <int LD>
__device__ __forceinline__ void load_b_cols(unsigned b[4], const bf16* s, int k0, int n0, int lane) {
    ldmatrix_x4_trans(b, s + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + n0 + (lane >> 4) * 8);
}
