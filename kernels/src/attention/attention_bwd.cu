// attention_bwd.cu: fused attention backward, FlashAttention-2 style recompute, f32 and bf16.
// (attention_common.cuh is prepended at registration: AttnParams, masks, loads, mma wrappers.)
//
// What it computes, from dout, the forward's out and lse, and q, k, v (notation of
// attention_fwd.cu; P_ij = exp(s_ij - lse_i), 0 where masked or where lse_i = -inf):
//   delta_i = <dout_i, out_i>                          (attention_bwd_delta_*)
//   dV_j = sum_i P_ij dout_i,  dS_ij = P_ij (<dout_i, v_j> - delta_i),
//   dK_j = scale sum_i dS_ij q_i                        (attention_bwd_dkdv_*)
//   dQ_i = scale sum_j dS_ij k_j                        (attention_bwd_dq_*)
//   dbias[b, h, i, j] = dS_ij                           (attention_bwd_dq_dbias_* only)
// Under GQA a KV head's dK, dV sum over the H / Hkv query heads that share it. The scale multiplies
// <q_i, k_j> before the bias is added (s_ij = scale <q_i, k_j> + bias_ij), so dS, the gradient of
// s, is the bias's gradient as it is (and dQ, dK carry the scale).
//
// Bias gradient: the attention_bwd_dq_dbias_* entries are the dQ kernels instantiated with
// DBIAS = true; they also store every dS they form into params.dbias, an f32 [B, H, nq, nk] buffer
// the host zero-fills (tiles this kernel skips, being fully masked, keep their zeros; masked pairs
// inside a visited tile store P = 0 times a finite number, 0; fully masked rows have P = 0). The
// host sums it over the bias's broadcast dimensions with the reduce kernels. That buffer is
// O(B H nq nk), the price of a gradient for a bias that may be [B, H, nq, nk] itself; the plain
// dQ entries (DBIAS = false) are separate instances and do none of this work. f32 stages one
// [16][33] step of dS in shared memory (2 KiB more) and stores it row-contiguous; bf16 stores
// from the mma accumulators directly (f32 dS, before its bf16 rounding for dQ's mma).
//
// Why two main kernels and no atomics: FlashAttention-2 computes dK, dV per key tile and adds dQ
// with f32 atomics, which makes dQ depend on the order blocks finish. Here the dK/dV kernel owns
// a key tile (and loops over queries), the dQ kernel owns a query tile (and loops over keys):
// every output element is written by exactly one thread, results are deterministic, and no f32
// dQ scratch buffer is needed. The price is recomputing S and dP in both: 7 matmul-sized products
// instead of 5 (1.4x the FLOPs of the fused single-kernel backward).
//
// Entries and launch shapes (launch.rs computes them; grid.y <= 65535):
//   attention_bwd_delta_{f32,bf16}: 128 threads, one warp per row, grid ceil(B H nq / 4).
//   attention_bwd_dkdv_bf16_d{32,64,128}: 128 threads (4 warps, 16 keys each), BC = 64 keys per
//     block, query steps of BR = 64 (D = 32, 64) or 16 (D = 128); grid (ceil(nk / 64), B Hkv).
//     Smem (2 BC + 2 BR) (D + 8) 2 B + 8 BR: 20, 37, 43 KiB. Per step and warp, on mma.sync:
//     S^T = K_w Q^T, dV_w += P^T dout, dP^T = V_w dout^T, dK_w += dS^T Q (P^T, dS^T reused from
//     the accumulators as A fragments).
//   attention_bwd_dq_bf16_d{32,64,128}: 128 threads (16 queries per warp), BR = 64 queries per
//     block, key steps of BC = 64 (D = 32, 64) or 16 (D = 128); grid (ceil(nq / 64), B H).
//     S = Q_w K^T, dP = dout_w V^T, dQ_w += dS K. Smem as above: 20, 36, 43 KiB.
//   attention_bwd_dkdv_f32_d*: 128 threads, 8 per key row (16 keys per block), queries in steps
//     of 32 through smem (8, 16, 32 KiB); attention_bwd_dq_f32_d*: 8 threads per query row
//     (16 per block), keys in steps of 32. CUDA cores, exact f32, for parity tests.
//   attention_bwd_dq_dbias_{f32,bf16}_d*: the dQ launches above, same grid and block.
//
// Bytes and FLOPs: the dK/dV kernel reads q, dout once per key tile (2 B H nq D s ceil(nk/64)),
// the dQ kernel k, v once per query tile; each output is written once. With the bias gradient,
// add 4 B H nq nk bytes of dS stores (at most: skipped tiles store nothing) beside the host's
// zero fill and reduction (4 B H nq nk each); no extra FLOPs beyond the reduction's adds. Nominal FLOPs 2.5 x the
// forward's (10 B H nq nk D, halved by causal skipping), as the FlashAttention papers count;
// these kernels do 14 B H nq nk D.
//
// Skipping: the dK/dV kernel starts at the first query tile that can see its keys (causal) and
// writes zeros for key tiles past a padding length; the dQ kernel stops at key_end; full tiles
// run without mask tests. Masks: causal (bottom-right), diagonal, key padding, boolean, bias,
// the same rules as the forward (attn_allowed and tile_kind in attention_common.cuh).
//
// Numerics: all accumulation and softmax recomputation in f32; in bf16, P and dS are rounded to
// bf16 as mma inputs (as FlashAttention-2 does). A fully masked row has lse = -inf; it is loaded
// as +inf so that exp2(s - lse) is exactly 0 (never -inf - -inf), which zeroes its dQ and its
// contributions to dK and dV; its delta is <dout, 0> = 0.

template <int D>
struct BwdBf16Tile {
    static constexpr int THREADS = 128;
    static constexpr int LD = D + 8;
    static constexpr int KV_BC = 64;               // dK/dV kernel: keys per block
    static constexpr int KV_BR = D <= 64 ? 64 : 16;  // dK/dV kernel: queries per step
    static constexpr int Q_BR = 64;                // dQ kernel: queries per block
    static constexpr int Q_BC = D <= 64 ? 64 : 16;   // dQ kernel: keys per step
};

// lse in log2 units for exp2, with a fully masked (or out-of-range) row as +inf so that P = 0.
__device__ __forceinline__ float lse2_of(const AttnParams& p, long long bh, int i) {
    if (i >= p.q_len) return ATTN_POS_INF;
    const float l = p.lse[bh * p.q_len + i];
    return l == ATTN_NEG_INF ? ATTN_POS_INF : l * ATTN_LOG2E;
}

__device__ __forceinline__ float delta_of(const AttnParams& p, long long bh, int i) {
    return i < p.q_len ? p.delta[bh * p.q_len + i] : 0.0f;
}

// P (scaled logit in log2 units minus lse2) for one element, 0 where masked.
template <typename T>
__device__ __forceinline__ float prob(const AttnParams& p, const HeadView& hv, int kind, float raw, float lse2, int i, int j) {
    if (kind != TILE_FULL && !attn_allowed(p, hv, i, j)) return 0.0f;
    float x = raw * p.scale * ATTN_LOG2E;
    if (p.bias) x += attn_bias<T>(p, hv, i, j) * ATTN_LOG2E;
    return exp2f(x - lse2);
}

// ---------------------------------------------------------------------------------------------
// delta = rowsum(dout * out), one warp per row.

template <typename T>
__device__ __forceinline__ void attn_bwd_delta(const AttnParams& p) {
    const long long row = (long long)blockIdx.x * 4 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= (long long)p.batch * p.heads * p.q_len) return;
    const int i = row % p.q_len;
    const long long bh = row / p.q_len;
    const int b = bh / p.heads, h = bh % p.heads;
    const long long off = b * p.o_stride[0] + h * p.o_stride[1] + i * p.o_stride[2];
    const T* o = static_cast<const T*>(p.out) + off;
    const T* g = static_cast<const T*>(p.dout) + off;
    float acc = 0.0f;
    for (int d = lane; d < p.head_dim; d += 32) acc += to_f32(o[d]) * to_f32(g[d]);
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
    if (lane == 0) p.delta[row] = acc;
}

// ---------------------------------------------------------------------------------------------
// bf16 dK, dV

template <int D>
__device__ __forceinline__ void attn_bwd_dkdv_bf16(const AttnParams& p) {
    using Tile = BwdBf16Tile<D>;
    constexpr int BC = Tile::KV_BC, BR = Tile::KV_BR, LD = Tile::LD, THREADS = Tile::THREADS;
    __shared__ __align__(16) bf16 ks[BC * LD];
    __shared__ __align__(16) bf16 vs[BC * LD];
    __shared__ __align__(16) bf16 qs[BR * LD];
    __shared__ __align__(16) bf16 dos[BR * LD];
    __shared__ float lse_s[BR];
    __shared__ float delta_s[BR];

    const int b = blockIdx.y / p.kv_heads, hk = blockIdx.y % p.kv_heads;
    const int group = p.heads / p.kv_heads;
    const int j0 = blockIdx.x * BC;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const bf16* k = static_cast<const bf16*>(p.k) + b * p.k_stride[0] + hk * p.k_stride[1] + j0 * p.k_stride[2];
    const bf16* v = static_cast<const bf16*>(p.v) + b * p.v_stride[0] + hk * p.v_stride[1] + j0 * p.v_stride[2];
    load_rows_async<bf16, D, BC, LD, THREADS>(ks, k, p.k_stride[2], min(BC, p.kv_len - j0));
    load_rows_async<bf16, D, BC, LD, THREADS>(vs, v, p.v_stride[2], min(BC, p.kv_len - j0));
    cp_async_commit();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.0f;
    }
    for (int hh = 0; hh < group; ++hh) {
        const int h = hk * group + hh;
        const long long bh = (long long)b * p.heads + h;
        const HeadView hv = head_view(p, b, h);
        if (j0 >= hv.klen) break;  // padding: no query sees these keys (same for every head)
        const bf16* q = static_cast<const bf16*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1];
        const bf16* go = static_cast<const bf16*>(p.dout) + b * p.o_stride[0] + h * p.o_stride[1];
        for (int i0 = query_begin(p, hv, j0) / BR * BR; i0 < p.q_len; i0 += BR) {
            const int kind = tile_kind(p, hv, i0, i0 + BR, j0, j0 + BC);
            if (kind == TILE_EMPTY) continue;
            __syncthreads();  // the previous step's Q and dout are no longer read
            load_rows_async<bf16, D, BR, LD, THREADS>(qs, q + i0 * p.q_stride[2], p.q_stride[2], p.q_len - i0);
            load_rows_async<bf16, D, BR, LD, THREADS>(dos, go + i0 * p.o_stride[2], p.o_stride[2], p.q_len - i0);
            cp_async_commit();
            for (int c = threadIdx.x; c < BR; c += THREADS) {
                lse_s[c] = lse2_of(p, bh, i0 + c);
                delta_s[c] = delta_of(p, bh, i0 + c);
            }
            cp_async_wait<0>();
            __syncthreads();

            // S^T = K_w Q^T: this warp's 16 keys x BR queries.
            float st[BR / 8][4];
#pragma unroll
            for (int n = 0; n < BR / 8; ++n) st[n][0] = st[n][1] = st[n][2] = st[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                unsigned a[4];
                load_a<LD>(a, ks, warp * 16, kk * 16, lane);
#pragma unroll
                for (int n2 = 0; n2 < BR / 16; ++n2) {
                    unsigned bfr[4];
                    load_b_rows<LD>(bfr, qs, n2 * 16, kk * 16, lane);
                    mma_16816(st[2 * n2], a, bfr[0], bfr[1]);
                    mma_16816(st[2 * n2 + 1], a, bfr[2], bfr[3]);
                }
            }
#pragma unroll
            for (int n = 0; n < BR / 8; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int c = n * 8 + 2 * t + (e & 1);
                    const int j = j0 + warp * 16 + g + (e >> 1) * 8;
                    st[n][e] = prob<bf16>(p, hv, kind, st[n][e], lse_s[c], i0 + c, j);
                }
            }
            // dV_w += P^T dout, and dP^T = V_w dout^T.
            float dpt[BR / 8][4];
#pragma unroll
            for (int n = 0; n < BR / 8; ++n) dpt[n][0] = dpt[n][1] = dpt[n][2] = dpt[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < BR / 16; ++kk) {
                const unsigned a[4] = {pack_bf16(st[2 * kk][0], st[2 * kk][1]), pack_bf16(st[2 * kk][2], st[2 * kk][3]),
                                       pack_bf16(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                                       pack_bf16(st[2 * kk + 1][2], st[2 * kk + 1][3])};
#pragma unroll
                for (int n2 = 0; n2 < D / 16; ++n2) {
                    unsigned bfr[4];
                    load_b_cols<LD>(bfr, dos, kk * 16, n2 * 16, lane);
                    mma_16816(dv[2 * n2], a, bfr[0], bfr[1]);
                    mma_16816(dv[2 * n2 + 1], a, bfr[2], bfr[3]);
                }
            }
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                unsigned a[4];
                load_a<LD>(a, vs, warp * 16, kk * 16, lane);
#pragma unroll
                for (int n2 = 0; n2 < BR / 16; ++n2) {
                    unsigned bfr[4];
                    load_b_rows<LD>(bfr, dos, n2 * 16, kk * 16, lane);
                    mma_16816(dpt[2 * n2], a, bfr[0], bfr[1]);
                    mma_16816(dpt[2 * n2 + 1], a, bfr[2], bfr[3]);
                }
            }
            // dS^T = P^T (dP^T - delta), then dK_w += dS^T Q.
#pragma unroll
            for (int n = 0; n < BR / 8; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) st[n][e] *= dpt[n][e] - delta_s[n * 8 + 2 * t + (e & 1)];
            }
#pragma unroll
            for (int kk = 0; kk < BR / 16; ++kk) {
                const unsigned a[4] = {pack_bf16(st[2 * kk][0], st[2 * kk][1]), pack_bf16(st[2 * kk][2], st[2 * kk][3]),
                                       pack_bf16(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                                       pack_bf16(st[2 * kk + 1][2], st[2 * kk + 1][3])};
#pragma unroll
                for (int n2 = 0; n2 < D / 16; ++n2) {
                    unsigned bfr[4];
                    load_b_cols<LD>(bfr, qs, kk * 16, n2 * 16, lane);
                    mma_16816(dk[2 * n2], a, bfr[0], bfr[1]);
                    mma_16816(dk[2 * n2 + 1], a, bfr[2], bfr[3]);
                }
            }
        }
    }
    cp_async_wait<0>();
    bf16* dkp = static_cast<bf16*>(p.dk) + b * p.k_stride[0] + hk * p.k_stride[1];
    bf16* dvp = static_cast<bf16*>(p.dv) + b * p.v_stride[0] + hk * p.v_stride[1];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int j = j0 + warp * 16 + g + r * 8;
        if (j >= p.kv_len) continue;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            *reinterpret_cast<__nv_bfloat162*>(dkp + j * p.k_stride[2] + n * 8 + 2 * t) =
                __floats2bfloat162_rn(dk[n][2 * r] * p.scale, dk[n][2 * r + 1] * p.scale);
            *reinterpret_cast<__nv_bfloat162*>(dvp + j * p.v_stride[2] + n * 8 + 2 * t) =
                __floats2bfloat162_rn(dv[n][2 * r], dv[n][2 * r + 1]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// bf16 dQ

template <int D, bool DBIAS>
__device__ __forceinline__ void attn_bwd_dq_bf16(const AttnParams& p) {
    using Tile = BwdBf16Tile<D>;
    constexpr int BR = Tile::Q_BR, BC = Tile::Q_BC, LD = Tile::LD, THREADS = Tile::THREADS;
    __shared__ __align__(16) bf16 qs[BR * LD];
    __shared__ __align__(16) bf16 dos[BR * LD];
    __shared__ __align__(16) bf16 ks[BC * LD];
    __shared__ __align__(16) bf16 vs[BC * LD];

    const long long bh = blockIdx.y;
    const int b = blockIdx.y / p.heads, h = blockIdx.y % p.heads;
    const HeadView hv = head_view(p, b, h);
    const int i0 = blockIdx.x * BR;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    load_rows_async<bf16, D, BR, LD, THREADS>(
        qs, static_cast<const bf16*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1] + i0 * p.q_stride[2], p.q_stride[2],
        p.q_len - i0);
    load_rows_async<bf16, D, BR, LD, THREADS>(
        dos, static_cast<const bf16*>(p.dout) + b * p.o_stride[0] + h * p.o_stride[1] + i0 * p.o_stride[2],
        p.o_stride[2], p.q_len - i0);
    cp_async_commit();
    const int row0 = i0 + warp * 16 + g;
    const float lse2[2] = {lse2_of(p, bh, row0), lse2_of(p, bh, row0 + 8)};
    const float dlt[2] = {delta_of(p, bh, row0), delta_of(p, bh, row0 + 8)};
    const bf16* k = static_cast<const bf16*>(p.k) + b * p.k_stride[0] + hv.hk * p.k_stride[1];
    const bf16* v = static_cast<const bf16*>(p.v) + b * p.v_stride[0] + hv.hk * p.v_stride[1];

    float dq[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
    const int end = key_end(p, hv, min(i0 + BR, p.q_len));
    for (int j0 = 0; j0 < end; j0 += BC) {
        const int kind = tile_kind(p, hv, i0, i0 + BR, j0, j0 + BC);
        if (kind == TILE_EMPTY) continue;
        __syncthreads();  // the previous K, V are no longer read
        load_rows_async<bf16, D, BC, LD, THREADS>(ks, k + j0 * p.k_stride[2], p.k_stride[2], p.kv_len - j0);
        load_rows_async<bf16, D, BC, LD, THREADS>(vs, v + j0 * p.v_stride[2], p.v_stride[2], p.kv_len - j0);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();

        float s[BC / 8][4], dp[BC / 8][4];
#pragma unroll
        for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
        }
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            unsigned a[4], a2[4];
            load_a<LD>(a, qs, warp * 16, kk * 16, lane);
            load_a<LD>(a2, dos, warp * 16, kk * 16, lane);
#pragma unroll
            for (int n2 = 0; n2 < BC / 16; ++n2) {
                unsigned bfr[4];
                load_b_rows<LD>(bfr, ks, n2 * 16, kk * 16, lane);
                mma_16816(s[2 * n2], a, bfr[0], bfr[1]);
                mma_16816(s[2 * n2 + 1], a, bfr[2], bfr[3]);
                load_b_rows<LD>(bfr, vs, n2 * 16, kk * 16, lane);
                mma_16816(dp[2 * n2], a2, bfr[0], bfr[1]);
                mma_16816(dp[2 * n2 + 1], a2, bfr[2], bfr[3]);
            }
        }
#pragma unroll
        for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int j = j0 + n * 8 + 2 * t + (e & 1);
                const int i = row0 + (e >> 1) * 8;
                const float pr = prob<bf16>(p, hv, kind, s[n][e], lse2[e >> 1], i, j);
                s[n][e] = pr * (dp[n][e] - dlt[e >> 1]);
                // dS in f32, before its bf16 rounding for the mma (a predicated scalar store:
                // rows of nk need not be 8-byte aligned for a pair store).
                if (DBIAS && i < p.q_len && j < p.kv_len) p.dbias[(bh * p.q_len + i) * p.kv_len + j] = s[n][e];
            }
        }
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk) {
            const unsigned a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                   pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                   pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int n2 = 0; n2 < D / 16; ++n2) {
                unsigned bfr[4];
                load_b_cols<LD>(bfr, ks, kk * 16, n2 * 16, lane);
                mma_16816(dq[2 * n2], a, bfr[0], bfr[1]);
                mma_16816(dq[2 * n2 + 1], a, bfr[2], bfr[3]);
            }
        }
    }
    cp_async_wait<0>();
    bf16* dqp = static_cast<bf16*>(p.dq) + b * p.q_stride[0] + h * p.q_stride[1];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int i = row0 + r * 8;
        if (i >= p.q_len) continue;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
            *reinterpret_cast<__nv_bfloat162*>(dqp + i * p.q_stride[2] + n * 8 + 2 * t) =
                __floats2bfloat162_rn(dq[n][2 * r] * p.scale, dq[n][2 * r + 1] * p.scale);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// f32 on CUDA cores: 8 threads per row, each owning D/8 dims as float4 chunks c * 8 + t (so the
// 8 threads of a row read 128 contiguous bytes of a shared row, conflict-free).

template <int D>
struct BwdF32Tile {
    static constexpr int TPR = 8;
    static constexpr int ROWS = 16;  // rows owned per block (keys for dK/dV, queries for dQ)
    static constexpr int STEP = 32;  // rows streamed through smem per step
    static constexpr int THREADS = ROWS * TPR;
    static constexpr int CH = D / (4 * TPR);
};

__device__ __forceinline__ float dot4(const float4 a, const float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }
__device__ __forceinline__ void axpy4(float4& y, float a, const float4 x) {
    y.x += a * x.x;
    y.y += a * x.y;
    y.z += a * x.z;
    y.w += a * x.w;
}
// Sum over the 8 threads of a row.
__device__ __forceinline__ float row_sum8(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    x += __shfl_xor_sync(0xffffffffu, x, 4);
    return x;
}

template <int CH>
__device__ __forceinline__ void load_row_chunks(float4 (&dst)[CH], const float* row, bool valid, int t) {
#pragma unroll
    for (int c = 0; c < CH; ++c) dst[c] = valid ? reinterpret_cast<const float4*>(row)[c * 8 + t] : make_float4(0, 0, 0, 0);
}

template <int D>
__device__ __forceinline__ void attn_bwd_dkdv_f32(const AttnParams& p) {
    using Tile = BwdF32Tile<D>;
    constexpr int ROWS = Tile::ROWS, STEP = Tile::STEP, CH = Tile::CH, THREADS = Tile::THREADS;
    __shared__ __align__(16) float qs[STEP * D];
    __shared__ __align__(16) float dos[STEP * D];
    __shared__ float lse_s[STEP];
    __shared__ float delta_s[STEP];

    const int b = blockIdx.y / p.kv_heads, hk = blockIdx.y % p.kv_heads;
    const int group = p.heads / p.kv_heads;
    const int j0 = blockIdx.x * ROWS;
    const int t = threadIdx.x % 8, j = j0 + threadIdx.x / 8;
    const long long jr = min(j, p.kv_len - 1);
    float4 kr[CH], vr[CH], dk[CH], dv[CH];
    load_row_chunks<CH>(kr, static_cast<const float*>(p.k) + b * p.k_stride[0] + hk * p.k_stride[1] + jr * p.k_stride[2],
                        j < p.kv_len, t);
    load_row_chunks<CH>(vr, static_cast<const float*>(p.v) + b * p.v_stride[0] + hk * p.v_stride[1] + jr * p.v_stride[2],
                        j < p.kv_len, t);
#pragma unroll
    for (int c = 0; c < CH; ++c) dk[c] = dv[c] = make_float4(0, 0, 0, 0);

    for (int hh = 0; hh < group; ++hh) {
        const int h = hk * group + hh;
        const long long bh = (long long)b * p.heads + h;
        const HeadView hv = head_view(p, b, h);
        if (j0 >= hv.klen) break;
        const float* q = static_cast<const float*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1];
        const float* go = static_cast<const float*>(p.dout) + b * p.o_stride[0] + h * p.o_stride[1];
        for (int i0 = query_begin(p, hv, j0) / STEP * STEP; i0 < p.q_len; i0 += STEP) {
            const int kind = tile_kind(p, hv, i0, i0 + STEP, j0, j0 + ROWS);
            if (kind == TILE_EMPTY) continue;
            __syncthreads();
            load_rows_async<float, D, STEP, D, THREADS>(qs, q + i0 * p.q_stride[2], p.q_stride[2], p.q_len - i0);
            load_rows_async<float, D, STEP, D, THREADS>(dos, go + i0 * p.o_stride[2], p.o_stride[2], p.q_len - i0);
            cp_async_commit();
            for (int c = threadIdx.x; c < STEP; c += THREADS) {
                lse_s[c] = lse2_of(p, bh, i0 + c);
                delta_s[c] = delta_of(p, bh, i0 + c);
            }
            cp_async_wait<0>();
            __syncthreads();
#pragma unroll 4
            for (int ii = 0; ii < STEP; ++ii) {
                const float4* qi = reinterpret_cast<const float4*>(qs + ii * D);
                const float4* gi = reinterpret_cast<const float4*>(dos + ii * D);
                float s = 0.0f, dp = 0.0f;
#pragma unroll
                for (int c = 0; c < CH; ++c) {
                    s += dot4(qi[c * 8 + t], kr[c]);
                    dp += dot4(gi[c * 8 + t], vr[c]);
                }
                s = row_sum8(s);
                dp = row_sum8(dp);
                const float pr = prob<float>(p, hv, kind, s, lse_s[ii], i0 + ii, j);
                const float ds = pr * (dp - delta_s[ii]);
#pragma unroll
                for (int c = 0; c < CH; ++c) {
                    axpy4(dv[c], pr, gi[c * 8 + t]);
                    axpy4(dk[c], ds, qi[c * 8 + t]);
                }
            }
        }
    }
    cp_async_wait<0>();
    if (j < p.kv_len) {
        float* dkr = static_cast<float*>(p.dk) + b * p.k_stride[0] + hk * p.k_stride[1] + (long long)j * p.k_stride[2];
        float* dvr = static_cast<float*>(p.dv) + b * p.v_stride[0] + hk * p.v_stride[1] + (long long)j * p.v_stride[2];
#pragma unroll
        for (int c = 0; c < CH; ++c) {
            reinterpret_cast<float4*>(dkr)[c * 8 + t] =
                make_float4(dk[c].x * p.scale, dk[c].y * p.scale, dk[c].z * p.scale, dk[c].w * p.scale);
            reinterpret_cast<float4*>(dvr)[c * 8 + t] = dv[c];
        }
    }
}

template <int D, bool DBIAS>
__device__ __forceinline__ void attn_bwd_dq_f32(const AttnParams& p) {
    using Tile = BwdF32Tile<D>;
    constexpr int ROWS = Tile::ROWS, STEP = Tile::STEP, CH = Tile::CH, THREADS = Tile::THREADS;
    __shared__ __align__(16) float ks[STEP * D];
    __shared__ __align__(16) float vs[STEP * D];
    // dS of one step, [ROWS][STEP + 1] (padded: the 4 rows a warp stores per key land on
    // distinct banks), so that it leaves in row-contiguous, coalesced stores.
    __shared__ float ds_s[DBIAS ? ROWS * (STEP + 1) : 1];

    const long long bh = blockIdx.y;
    const int b = blockIdx.y / p.heads, h = blockIdx.y % p.heads;
    const HeadView hv = head_view(p, b, h);
    const int i0 = blockIdx.x * ROWS;
    const int t = threadIdx.x % 8, i = i0 + threadIdx.x / 8;
    const long long ir = min(i, p.q_len - 1);
    float4 qr[CH], gr[CH], dq[CH];
    load_row_chunks<CH>(qr, static_cast<const float*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1] + ir * p.q_stride[2],
                        i < p.q_len, t);
    load_row_chunks<CH>(gr, static_cast<const float*>(p.dout) + b * p.o_stride[0] + h * p.o_stride[1] + ir * p.o_stride[2],
                        i < p.q_len, t);
#pragma unroll
    for (int c = 0; c < CH; ++c) dq[c] = make_float4(0, 0, 0, 0);
    const float lse2 = lse2_of(p, bh, i), dlt = delta_of(p, bh, i);
    const float* k = static_cast<const float*>(p.k) + b * p.k_stride[0] + hv.hk * p.k_stride[1];
    const float* v = static_cast<const float*>(p.v) + b * p.v_stride[0] + hv.hk * p.v_stride[1];
    const int end = key_end(p, hv, min(i0 + ROWS, p.q_len));
    for (int j0 = 0; j0 < end; j0 += STEP) {
        const int kind = tile_kind(p, hv, i0, i0 + ROWS, j0, j0 + STEP);
        if (kind == TILE_EMPTY) continue;
        __syncthreads();
        load_rows_async<float, D, STEP, D, THREADS>(ks, k + j0 * p.k_stride[2], p.k_stride[2], p.kv_len - j0);
        load_rows_async<float, D, STEP, D, THREADS>(vs, v + j0 * p.v_stride[2], p.v_stride[2], p.kv_len - j0);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();
#pragma unroll 4
        for (int jj = 0; jj < STEP; ++jj) {
            const float4* kj = reinterpret_cast<const float4*>(ks + jj * D);
            const float4* vj = reinterpret_cast<const float4*>(vs + jj * D);
            float s = 0.0f, dp = 0.0f;
#pragma unroll
            for (int c = 0; c < CH; ++c) {
                s += dot4(qr[c], kj[c * 8 + t]);
                dp += dot4(gr[c], vj[c * 8 + t]);
            }
            s = row_sum8(s);
            dp = row_sum8(dp);
            const float ds = prob<float>(p, hv, kind, s, lse2, i, j0 + jj) * (dp - dlt);
            if (DBIAS && t == 0) ds_s[(threadIdx.x / 8) * (STEP + 1) + jj] = ds;
#pragma unroll
            for (int c = 0; c < CH; ++c) axpy4(dq[c], ds, kj[c * 8 + t]);
        }
        if (DBIAS) {
            // The next step's first __syncthreads keeps ds_s until every thread has stored it.
            __syncthreads();
            for (int e = threadIdx.x; e < ROWS * STEP; e += THREADS) {
                const int r = e / STEP, jd = j0 + e % STEP;
                if (i0 + r < p.q_len && jd < p.kv_len) {
                    p.dbias[(bh * p.q_len + i0 + r) * p.kv_len + jd] = ds_s[r * (STEP + 1) + e % STEP];
                }
            }
        }
    }
    cp_async_wait<0>();
    if (i < p.q_len) {
        float* dqr = static_cast<float*>(p.dq) + b * p.q_stride[0] + h * p.q_stride[1] + (long long)i * p.q_stride[2];
#pragma unroll
        for (int c = 0; c < CH; ++c) {
            reinterpret_cast<float4*>(dqr)[c * 8 + t] =
                make_float4(dq[c].x * p.scale, dq[c].y * p.scale, dq[c].z * p.scale, dq[c].w * p.scale);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points. Minimum 2 blocks per SM: see attention_fwd.cu.

extern "C" __global__ void __launch_bounds__(128) attention_bwd_delta_f32(const AttnParams p) { attn_bwd_delta<float>(p); }
extern "C" __global__ void __launch_bounds__(128) attention_bwd_delta_bf16(const AttnParams p) { attn_bwd_delta<bf16>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dkdv_bf16_d32(const AttnParams p) { attn_bwd_dkdv_bf16<32>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dkdv_bf16_d64(const AttnParams p) { attn_bwd_dkdv_bf16<64>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dkdv_bf16_d128(const AttnParams p) { attn_bwd_dkdv_bf16<128>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_bf16_d32(const AttnParams p) { attn_bwd_dq_bf16<32, false>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_bf16_d64(const AttnParams p) { attn_bwd_dq_bf16<64, false>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_bf16_d128(const AttnParams p) { attn_bwd_dq_bf16<128, false>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dkdv_f32_d32(const AttnParams p) { attn_bwd_dkdv_f32<32>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dkdv_f32_d64(const AttnParams p) { attn_bwd_dkdv_f32<64>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dkdv_f32_d128(const AttnParams p) { attn_bwd_dkdv_f32<128>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_f32_d32(const AttnParams p) { attn_bwd_dq_f32<32, false>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_f32_d64(const AttnParams p) { attn_bwd_dq_f32<64, false>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_f32_d128(const AttnParams p) { attn_bwd_dq_f32<128, false>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_dbias_bf16_d32(const AttnParams p) { attn_bwd_dq_bf16<32, true>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_dbias_bf16_d64(const AttnParams p) { attn_bwd_dq_bf16<64, true>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_dbias_bf16_d128(const AttnParams p) { attn_bwd_dq_bf16<128, true>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_dbias_f32_d32(const AttnParams p) { attn_bwd_dq_f32<32, true>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_dbias_f32_d64(const AttnParams p) { attn_bwd_dq_f32<64, true>(p); }
extern "C" __global__ void __launch_bounds__(128, 2) attention_bwd_dq_dbias_f32_d128(const AttnParams p) { attn_bwd_dq_f32<128, true>(p); }
