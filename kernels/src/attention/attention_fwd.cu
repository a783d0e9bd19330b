// attention_fwd.cu: fused attention forward, FlashAttention-2 style, f32 and bf16 (tensor cores).
// (attention_common.cuh is prepended at registration: AttnParams, masks, loads, mma wrappers.)
//
// What it computes, per batch row b, head h (KV head h / (H / Hkv)), query i, key j:
//   s_ij = scale * <q_i, k_j> + bias_ij  where the mask allows (i, j), else -inf
//   out_i = sum_j softmax_j(s_i)_j v_j,   lse_i = log sum_j exp(s_ij),   max_logit[b,h] = max s_ij
// Masks (ANDed, as kernels/src/attention/mask.rs): causal bottom-right (j <= i + nk - nq),
// diagonal (j != i + nk - nq), key padding (j < key_lengths[b]), a strided u8 mask, and an
// additive bias of q's dtype. A row with no allowed key writes out = 0 and lse = -inf.
//
// Algorithm: one block per (tile of BR queries, batch * head). The queries stay in shared memory
// (bf16) or registers (f32); key/value tiles of BC rows stream through shared memory; each row
// keeps a running max m, a running sum l and an unnormalized output (online softmax):
//   m' = max(m, rowmax s), alpha = exp(m - m'), l = alpha l + sum exp(s - m'), o = alpha o + P V.
// Exponentials are exp2 of logits pre-multiplied by log2(e) (one FFMA less per element).
//
// Entries and launch shape (launch.rs computes them; grid.y = B * H must be <= 65535):
//   attention_fwd_bf16_d{32,64,128}: 128 threads (4 warps, 16 query rows each), BR = 64,
//     BC = 64 (D = 32, 64) or 32 (D = 128); grid (ceil(nq / 64), B * H). Static smem
//     (BR + 2 BC) * (D + 8) * 2 B: 15 KiB, 27 KiB, 34 KiB. S = Q K^T and O += P V on mma.sync
//     m16n8k16 (bf16 in, f32 accumulate); P is re-packed from the S accumulators to bf16 A
//     fragments without touching shared memory. K/V tiles arrive by cp.async: V[t] loads while
//     S = Q K[t]^T is computed, K[t+1] while O += P V[t] is.
//   attention_fwd_f32_d{32,64,128}: 128 threads, 4 per query row (each owns D/4 of its dims,
//     interleaved by 16-byte chunks so a warp's shared-memory reads are conflict-free), BR = 32,
//     BC = 32; grid (ceil(nq / 32), B * H); smem 2 * 32 * D * 4 B (8, 16, 32 KiB). CUDA cores,
//     exact f32: the parity reference for the bf16 path and the CPU kernels.
//   Rows of q/k/v/out must be 16-byte aligned (D contiguous, strides multiples of 8 bf16 / 4 f32).
//
// Bytes and FLOPs: reads q, k, v once per query tile: 2 B H nq D s + 2 B H nk D s ceil(nq/BR)
// (s = element size; the K/V re-reads are what BR trades against smem) plus the mask/bias reads;
// writes B H nq D s + 4 B H nq (lse). FLOPs 4 B H nq nk D (halved by causal tile skipping), the
// convention of the FlashAttention papers; exp2 counted as one op per logit and not included.
//
// Skipping: key tiles past key_end (causal, padding) are never loaded; tiles classified full run
// without any mask test; partial tiles test each element (boolean masks always do).
//
// Numerics: accumulation, softmax statistics, lse and max_logit in f32 for both dtypes; bf16 out
// rounded once (round to nearest even). Fully masked rows never form exp(-inf - -inf): while a
// row's max is -inf its exponent base is 0 instead (FlashAttention's Check_inf), so its P is 0,
// l stays 0, and the final 1/l is replaced by 0. A -inf bias acts as a mask entry.

template <int D>
struct FwdBf16Tile {
    static constexpr int BR = 64;
    static constexpr int BC = D <= 64 ? 64 : 32;
    static constexpr int LD = D + 8;  // +16 B per row: ldmatrix rows land on distinct banks
    static constexpr int THREADS = 128;
};

template <int D>
__device__ __forceinline__ void attn_fwd_bf16(const AttnParams& p) {
    using Tile = FwdBf16Tile<D>;
    constexpr int BR = Tile::BR, BC = Tile::BC, LD = Tile::LD, THREADS = Tile::THREADS;
    __shared__ __align__(16) bf16 qs[BR * LD];
    __shared__ __align__(16) bf16 ks[BC * LD];
    __shared__ __align__(16) bf16 vs[BC * LD];
    __shared__ float scratch[THREADS / 32];

    const int bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
    const HeadView hv = head_view(p, b, h);
    const int i0 = blockIdx.x * BR;
    const int i1 = min(i0 + BR, p.q_len);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const bf16* q = static_cast<const bf16*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1] + i0 * p.q_stride[2];
    const bf16* k = static_cast<const bf16*>(p.k) + b * p.k_stride[0] + hv.hk * p.k_stride[1];
    const bf16* v = static_cast<const bf16*>(p.v) + b * p.v_stride[0] + hv.hk * p.v_stride[1];
    const float scale2 = p.scale * ATTN_LOG2E;

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {ATTN_NEG_INF, ATTN_NEG_INF};  // rows g and g + 8 of this warp, log2 units
    float l[2] = {0.0f, 0.0f};                  // this thread's part of the row sums
    float head_max = ATTN_NEG_INF;

    const int end = key_end(p, hv, i1);
    const int tiles = (end + BC - 1) / BC;
    load_rows_async<bf16, D, BR, LD, THREADS>(qs, q, p.q_stride[2], i1 - i0);
    if (tiles > 0) load_rows_async<bf16, D, BC, LD, THREADS>(ks, k, p.k_stride[2], min(BC, p.kv_len));
    cp_async_commit();

    for (int tile = 0; tile < tiles; ++tile) {
        const int j0 = tile * BC;
        load_rows_async<bf16, D, BC, LD, THREADS>(vs, v + j0 * p.v_stride[2], p.v_stride[2], min(BC, p.kv_len - j0));
        cp_async_commit();
        cp_async_wait<1>();  // Q and K[tile] have landed; V[tile] may still be in flight
        __syncthreads();

        float s[BC / 8][4];
#pragma unroll
        for (int n = 0; n < BC / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            unsigned a[4];
            load_a<LD>(a, qs, warp * 16, kk * 16, lane);
#pragma unroll
            for (int n2 = 0; n2 < BC / 16; ++n2) {
                unsigned bfr[4];
                load_b_rows<LD>(bfr, ks, n2 * 16, kk * 16, lane);
                mma_16816(s[2 * n2], a, bfr[0], bfr[1]);
                mma_16816(s[2 * n2 + 1], a, bfr[2], bfr[3]);
            }
        }
        __syncthreads();  // every warp is done with K[tile]: fetch K[tile + 1] behind P V
        if (tile + 1 < tiles) {
            load_rows_async<bf16, D, BC, LD, THREADS>(ks, k + (j0 + BC) * p.k_stride[2], p.k_stride[2],
                                                      min(BC, p.kv_len - j0 - BC));
        }
        cp_async_commit();

        const int kind = tile_kind(p, hv, i0, i0 + BR, j0, j0 + BC);
        float mx[2] = {ATTN_NEG_INF, ATTN_NEG_INF};
#pragma unroll
        for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int i = i0 + warp * 16 + g + (e >> 1) * 8;
                const int j = j0 + n * 8 + 2 * t + (e & 1);
                float x = s[n][e] * scale2;
                if (kind != TILE_FULL && !attn_allowed(p, hv, i, j)) {
                    x = ATTN_NEG_INF;
                } else if (p.bias) {
                    x += attn_bias<bf16>(p, hv, i, j) * ATTN_LOG2E;
                }
                s[n][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            head_max = fmaxf(head_max, mx[r]);
            const float m_new = fmaxf(m[r], mx[r]);
            const float base = m_new == ATTN_NEG_INF ? 0.0f : m_new;  // no -inf - -inf
            const float alpha = exp2f(m[r] - base);
            m[r] = m_new;
            l[r] *= alpha;
#pragma unroll
            for (int n = 0; n < D / 8; ++n) {
                o[n][2 * r] *= alpha;
                o[n][2 * r + 1] *= alpha;
            }
#pragma unroll
            for (int n = 0; n < BC / 8; ++n) {
                s[n][2 * r] = exp2f(s[n][2 * r] - base);
                s[n][2 * r + 1] = exp2f(s[n][2 * r + 1] - base);
                l[r] += s[n][2 * r] + s[n][2 * r + 1];
            }
        }

        cp_async_wait<1>();  // V[tile] has landed (K[tile + 1] may not have)
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk) {
            unsigned a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                             pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int n2 = 0; n2 < D / 16; ++n2) {
                unsigned bfr[4];
                load_b_cols<LD>(bfr, vs, kk * 16, n2 * 16, lane);
                mma_16816(o[2 * n2], a, bfr[0], bfr[1]);
                mma_16816(o[2 * n2 + 1], a, bfr[2], bfr[3]);
            }
        }
        __syncthreads();  // every warp is done with V[tile] before the next one is loaded
    }
    cp_async_wait<0>();

    bf16* out = static_cast<bf16*>(p.out) + b * p.o_stride[0] + h * p.o_stride[1];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        const int i = i0 + warp * 16 + g + r * 8;
        if (i < p.q_len) {
#pragma unroll
            for (int n = 0; n < D / 8; ++n) {
                *reinterpret_cast<__nv_bfloat162*>(out + i * p.o_stride[2] + n * 8 + 2 * t) =
                    __floats2bfloat162_rn(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
            }
            if (t == 0) {
                p.lse[(long long)bh * p.q_len + i] = l[r] > 0.0f ? (m[r] + log2f(l[r])) * ATTN_LN2 : ATTN_NEG_INF;
            }
        }
    }
    block_max_to<THREADS / 32>(p.max_logit + bh, head_max * ATTN_LN2, scratch);
}

// ---------------------------------------------------------------------------------------------
// f32, CUDA cores

template <int D>
struct FwdF32Tile {
    static constexpr int TPR = 4;  // threads per query row
    static constexpr int BR = 32;
    static constexpr int BC = 32;
    static constexpr int THREADS = BR * TPR;
    static constexpr int CH = D / (4 * TPR);  // float4 chunks per thread
};

template <int D>
__device__ __forceinline__ void attn_fwd_f32(const AttnParams& p) {
    using Tile = FwdF32Tile<D>;
    constexpr int BR = Tile::BR, BC = Tile::BC, TPR = Tile::TPR, CH = Tile::CH, THREADS = Tile::THREADS;
    __shared__ __align__(16) float ks[BC * D];
    __shared__ __align__(16) float vs[BC * D];
    __shared__ float scratch[THREADS / 32];

    const int bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
    const HeadView hv = head_view(p, b, h);
    const int i0 = blockIdx.x * BR;
    const int r = threadIdx.x / TPR, t = threadIdx.x % TPR;
    const int i = i0 + r;
    const float* k = static_cast<const float*>(p.k) + b * p.k_stride[0] + hv.hk * p.k_stride[1];
    const float* v = static_cast<const float*>(p.v) + b * p.v_stride[0] + hv.hk * p.v_stride[1];
    const float scale2 = p.scale * ATTN_LOG2E;

    // This thread's dims of q_i: float4 chunks c * TPR + t.
    float4 q[CH], o[CH];
    const float* qrow = static_cast<const float*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1] +
                        (long long)min(i, p.q_len - 1) * p.q_stride[2];
#pragma unroll
    for (int c = 0; c < CH; ++c) {
        q[c] = i < p.q_len ? reinterpret_cast<const float4*>(qrow)[c * TPR + t] : make_float4(0, 0, 0, 0);
        o[c] = make_float4(0, 0, 0, 0);
    }
    float m = ATTN_NEG_INF, l = 0.0f, head_max = ATTN_NEG_INF;
    const int end = key_end(p, hv, min(i0 + BR, p.q_len));
    for (int j0 = 0; j0 < end; j0 += BC) {
        __syncthreads();  // the previous tile is no longer read
        load_rows_async<float, D, BC, D, THREADS>(ks, k + j0 * p.k_stride[2], p.k_stride[2], min(BC, p.kv_len - j0));
        load_rows_async<float, D, BC, D, THREADS>(vs, v + j0 * p.v_stride[2], p.v_stride[2], min(BC, p.kv_len - j0));
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
        const int kind = tile_kind(p, hv, i0, i0 + BR, j0, j0 + BC);
        float s[BC];
        float mx = ATTN_NEG_INF;
#pragma unroll
        for (int jj = 0; jj < BC; ++jj) {
            const float4* kr = reinterpret_cast<const float4*>(ks + jj * D);
            float acc = 0.0f;
#pragma unroll
            for (int c = 0; c < CH; ++c) {
                const float4 kv = kr[c * TPR + t];
                acc += q[c].x * kv.x + q[c].y * kv.y + q[c].z * kv.z + q[c].w * kv.w;
            }
            acc += __shfl_xor_sync(0xffffffffu, acc, 1);
            acc += __shfl_xor_sync(0xffffffffu, acc, 2);
            float x = acc * scale2;
            const int j = j0 + jj;
            if (kind != TILE_FULL && !attn_allowed(p, hv, i, j)) {
                x = ATTN_NEG_INF;
            } else if (p.bias) {
                x += attn_bias<float>(p, hv, i, j) * ATTN_LOG2E;
            }
            s[jj] = x;
            mx = fmaxf(mx, x);
        }
        head_max = fmaxf(head_max, mx);
        const float m_new = fmaxf(m, mx);
        const float base = m_new == ATTN_NEG_INF ? 0.0f : m_new;
        const float alpha = exp2f(m - base);
        m = m_new;
        l *= alpha;
#pragma unroll
        for (int c = 0; c < CH; ++c) {
            o[c].x *= alpha;
            o[c].y *= alpha;
            o[c].z *= alpha;
            o[c].w *= alpha;
        }
#pragma unroll
        for (int jj = 0; jj < BC; ++jj) {
            const float pj = exp2f(s[jj] - base);
            l += pj;
            const float4* vr = reinterpret_cast<const float4*>(vs + jj * D);
#pragma unroll
            for (int c = 0; c < CH; ++c) {
                const float4 vv = vr[c * TPR + t];
                o[c].x += pj * vv.x;
                o[c].y += pj * vv.y;
                o[c].z += pj * vv.z;
                o[c].w += pj * vv.w;
            }
        }
    }
    if (i < p.q_len) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        float* orow = static_cast<float*>(p.out) + b * p.o_stride[0] + h * p.o_stride[1] + (long long)i * p.o_stride[2];
#pragma unroll
        for (int c = 0; c < CH; ++c) {
            reinterpret_cast<float4*>(orow)[c * TPR + t] = make_float4(o[c].x * inv, o[c].y * inv, o[c].z * inv, o[c].w * inv);
        }
        if (t == 0) p.lse[(long long)bh * p.q_len + i] = l > 0.0f ? (m + log2f(l)) * ATTN_LN2 : ATTN_NEG_INF;
    }
    block_max_to<THREADS / 32>(p.max_logit + bh, head_max * ATTN_LN2, scratch);
}

// ---------------------------------------------------------------------------------------------
// Entry points: one per dtype and head dim, so each is compiled with its tile constants. The
// launch bound's minimum of 2 blocks per SM lets ptxas use up to 255 registers; with no minimum it
// capped some instances near 128 and spilled.

extern "C" __global__ void __launch_bounds__(128, 2) attention_fwd_bf16_d32(const AttnParams p) { attn_fwd_bf16<32>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_fwd_bf16_d64(const AttnParams p) { attn_fwd_bf16<64>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_fwd_bf16_d128(const AttnParams p) { attn_fwd_bf16<128>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_fwd_f32_d32(const AttnParams p) { attn_fwd_f32<32>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_fwd_f32_d64(const AttnParams p) { attn_fwd_f32<64>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_fwd_f32_d128(const AttnParams p) { attn_fwd_f32<128>(p); }
