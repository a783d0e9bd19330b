// masked_xent.cu: masked softmax / log-softmax and the fused masked cross-entropy, f32 and bf16.
//
// The math, the option semantics (label smoothing over allowed classes, focal weight on the
// smoothed CE, z-loss on the masked lse, ignore_index) and the bad-input rules are those of
// kernels/src/masked_xent/mod.rs; cpu.rs beside this file is the reference these are tested
// against. In short, per row r with logits x (C classes), target t, mask value m:
//   z~_c = x_c if c is allowed, else m (a stop-gradient constant)
//   lse  = ln(sum_{c allowed} e^{x_c} + (C - A) e^m)       [the e^m term only for finite m]
//   loss = (1 - p_t)^gamma * (lse - (1 - eps) z~_t - eps * mean_{allowed} x) + lambda * lse^2
//   dx_c = g_r (beta p_c - off) - g_r T [c = t] on allowed c, exactly 0 on masked c,
//   with (beta, off, T) computed by the forward per row ("coef", 3 floats) and p_c = e^{x_c - lse}.
//
// Entry points (launch.rs lists them; a test checks each is an .entry of the PTX):
//   masked_xent_fwd_{f32,bf16}(x, targets, mask, loss, lse, coef, status, p)
//   masked_xent_bwd_{f32,bf16}(x, targets, mask, lse, coef, g, g_stride, g_scale, dx, p)
//   masked_xent_reduce(loss, targets, out, p, mean)            one block, deterministic
//   masked_softmax_fwd_{f32,bf16}(x, mask, y, p)               p.log_softmax picks log-softmax
//   masked_softmax_bwd_{f32,bf16}(y, g, mask, dx, p)
//
// Launch shape: one block per row, grid-stride over rows (grid = min(rows, cap)). Block = 128 to
//   1024 threads, a multiple of 32, chosen from C by launch.rs. Every thread streams a strided
//   share of the row in 16-byte vectors (4 x f32 or 8 x bf16) after a scalar head that reaches
//   16-byte alignment, with a scalar tail. Each thread keeps an online (max, sum) in registers;
//   the block combines them with warp shuffles and 32 floats of static shared memory per
//   quantity. There is no row buffer in shared memory, so C is bounded only by memory: a
//   256k-class row streams through the same registers as a 1k-class one. No dynamic smem.
//
// Bytes per element (the roofline numbers; s = 4 for f32, 2 for bf16):
//   xent forward   reads s (+1 dense mask, +1/8 bitset, +0 ranges); per row writes 20 B.
//   xent backward  reads s, writes s (+ mask as above); per row reads 28 B.
//   softmax fwd    reads s, writes s (the max/sum pass and the write pass both read x: 2s read
//                  unless the row stays in L2, which it does for rows up to a few MiB).
//   softmax bwd    reads 2s (y, g) twice, writes s.
//   FLOPs: ~5 per element forward (scale, compare, exp2, add), ~4 backward; memory-bound.
//
// Numerics:
//   * bf16 is widened to f32 on load; all accumulation is f32. exp is the hardware 2^x
//     (ex2.approx) of a log2(e)-scaled argument, <= 0 always (the running max is subtracted),
//     ~2 ulp. Results are rounded once on store (bf16: round-to-nearest-even).
//   * The running max is per thread and combined across the block by rescaling the smaller
//     side's sum; every exponent is <= 0, so nothing overflows whatever the logits' scale.
//   * Masked classes are skipped in the streaming pass (never read into a sum, so NaN or inf in
//     a masked slot is harmless) and their constant (C - A) e^m is added once at the end.
//     Masked gradients are stored as literal 0, not computed.
//   * A row with no finite allowed logit has lse = -inf: cross-entropy loss +inf with zero
//     gradient; softmax 0 and log-softmax -inf with zero gradient (not NaN).
//   * Errors never fault: a target outside 0..C (not ignore_index) sets XENT_BAD_TARGET in
//     status[0], writes NaN loss and zero coefficients and does not read x[t]; a masked target
//     sets XENT_MASKED_TARGET; NaN or +inf at an allowed class sets XENT_NONFINITE. status[1]
//     receives the smallest offending row (atomicMin). The host zeroes status[0] and sets
//     status[1] = INT_MAX before the launch, and turns flags into errors after it.
//   * Softmax rows with NaN or +inf at an allowed class come out NaN (as PyTorch).
//   * NVRTC has no <math.h>: infinities are written __int_as_float(0x7f800000).

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

// Must match kernels/src/masked_xent/launch.rs `XentParams` field for field (a test compares
// the size with the PTX parameter size).
struct XentParams {
    long long rows;
    long long classes;
    long long ignore_index;  // used only when has_ignore != 0
    long long mask_rows;     // 1: one mask row for all rows; else one per row
    long long mask_words;    // bitset: u64 words per mask row
    float mask_value;        // m; -inf for a hard mask
    float label_smoothing;   // eps
    float z_loss;            // lambda
    float focal_gamma;       // gamma
    int mask_kind;           // 0 all, 1 dense bytes, 2 ranges (uint2 lo, hi), 3 bitset
    int has_ignore;
    int log_softmax;         // softmax kernels: 1 = log-softmax
    int reserved;
};

#define XENT_BAD_TARGET 1
#define XENT_MASKED_TARGET 2
#define XENT_NONFINITE 4

#define MASK_ALL 0
#define MASK_DENSE 1
#define MASK_RANGES 2
#define MASK_BITSET 3

__device__ __forceinline__ float pos_inf() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fc00000); }

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

// 2^x with the hardware approximation (max relative error ~2^-22, i.e. about 2 f32 ulp;
// 2^-inf = +0; results below 2^-126 flush to 0, far below anything a sum of terms <= 1 can
// see). exp2f proper adds a denormal-range slow path to every call site for no visible gain,
// which made this file's machine code several times larger.
__device__ __forceinline__ float exp2_fast(float x) {
#ifdef KERNELS_EMU  // the host emulator (docs/emulator.md): the instruction from the PTX ISA
    return ::kemu::ex2_approx_ftz(x);
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

// ---------------------------------------------------------------------------------------------
// Masks: the encoding is a template parameter, so the per-element test is one or two
// instructions and the choice among encodings is made once per launch (a switch on p.mask_kind).

template <int KIND>
struct RowMask {
    const unsigned char* dense;
    const unsigned long long* bits;
    unsigned lo, hi;

    __device__ __forceinline__ bool allowed(long long c) const {
        if (KIND == MASK_DENSE) return dense[c] != 0;
        if (KIND == MASK_RANGES) return c >= (long long)lo && c < (long long)hi;
        if (KIND == MASK_BITSET) return (bits[c >> 6] >> (c & 63)) & 1ull;
        return true;
    }
};

template <int KIND>
__device__ __forceinline__ RowMask<KIND> row_mask(const XentParams& p, const void* mask, long long r) {
    RowMask<KIND> m = {nullptr, nullptr, 0u, 0u};
    const long long mr = p.mask_rows == 1 ? 0 : r;
    if (KIND == MASK_DENSE) m.dense = static_cast<const unsigned char*>(mask) + mr * p.classes;
    if (KIND == MASK_BITSET) m.bits = static_cast<const unsigned long long*>(mask) + mr * p.mask_words;
    if (KIND == MASK_RANGES) {
        const uint2 range = static_cast<const uint2*>(mask)[mr];
        m.lo = range.x;
        m.hi = range.y;
    }
    return m;
}

// ---------------------------------------------------------------------------------------------
// Loads and stores: one element, or one 16-byte vector widened to VEC floats.

__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ float widen(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(bf16* p, float v) { *p = __float2bfloat16_rn(v); }

union Vec16 {
    uint4 raw;
    float f[4];
    __nv_bfloat162 h[4];
};

template <typename T> struct VecOf { static constexpr int n = 16 / sizeof(T); };

__device__ __forceinline__ void unpack(const Vec16& v, float (&out)[4], float) {
#pragma unroll
    for (int k = 0; k < 4; ++k) out[k] = v.f[k];
}
__device__ __forceinline__ void unpack(const Vec16& v, float (&out)[8], bf16) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const float2 f = __bfloat1622float2(v.h[k]);
        out[2 * k] = f.x;
        out[2 * k + 1] = f.y;
    }
}
__device__ __forceinline__ void pack(Vec16& v, const float (&in)[4], float) {
#pragma unroll
    for (int k = 0; k < 4; ++k) v.f[k] = in[k];
}
__device__ __forceinline__ void pack(Vec16& v, const float (&in)[8], bf16) {
#pragma unroll
    for (int k = 0; k < 4; ++k) v.h[k] = __floats2bfloat162_rn(in[2 * k], in[2 * k + 1]);
}

// Elements before the first 16-byte boundary of the row (all of them if the row is shorter).
template <typename T>
__device__ __forceinline__ long long head_len(const T* row, long long n) {
    const long long h = (long long)(((16u - (unsigned)(reinterpret_cast<unsigned long long>(row) & 15ull)) & 15u) / sizeof(T));
    return h < n ? h : n;
}

// f(c, v) for every element of the row this thread owns: a strided scalar head, 16-byte
// vectors, a scalar tail. Every thread sees its elements in increasing c.
template <typename T, typename F>
__device__ __forceinline__ void for_row(const T* row, long long n, F&& f) {
    constexpr int VEC = VecOf<T>::n;
    const long long head = head_len(row, n);
    for (long long c = threadIdx.x; c < head; c += blockDim.x) f(c, widen(row[c]));
    const long long nvec = (n - head) / VEC;
    const uint4* vrow = reinterpret_cast<const uint4*>(row + head);
    for (long long i = threadIdx.x; i < nvec; i += blockDim.x) {
        Vec16 v;
        v.raw = __ldg(vrow + i);
        float vals[VEC];
        unpack(v, vals, T());
#pragma unroll
        for (int k = 0; k < VEC; ++k) f(head + i * VEC + k, vals[k]);
    }
    for (long long c = head + nvec * VEC + threadIdx.x; c < n; c += blockDim.x) f(c, widen(row[c]));
}

// out[c] = f(c, in[c]) over the row, vectorized when in and out share their alignment.
template <typename T, typename F>
__device__ __forceinline__ void map_row(const T* in, T* out, long long n, F&& f) {
    constexpr int VEC = VecOf<T>::n;
    const bool same = ((reinterpret_cast<unsigned long long>(in) ^ reinterpret_cast<unsigned long long>(out)) & 15ull) == 0;
    const long long head = same ? head_len(in, n) : n;
    for (long long c = threadIdx.x; c < head; c += blockDim.x) store(out + c, f(c, widen(in[c])));
    const long long nvec = (n - head) / VEC;
    const uint4* vin = reinterpret_cast<const uint4*>(in + head);
    uint4* vout = reinterpret_cast<uint4*>(out + head);
    for (long long i = threadIdx.x; i < nvec; i += blockDim.x) {
        Vec16 v;
        v.raw = __ldg(vin + i);
        float vals[VEC];
        unpack(v, vals, T());
#pragma unroll
        for (int k = 0; k < VEC; ++k) vals[k] = f(head + i * VEC + k, vals[k]);
        pack(v, vals, T());
        vout[i] = v.raw;
    }
    for (long long c = head + nvec * VEC + threadIdx.x; c < n; c += blockDim.x) store(out + c, f(c, widen(in[c])));
}

// ---------------------------------------------------------------------------------------------
// Online log-sum-exp state and its block reduction. The max is kept in the logits' own units
// and each exponent is formed as 2^((x - m) log2 e): the difference is taken before scaling,
// so lse = m + ln(s) is exactly the max when one class dominates (s = 1), and log-softmax of a
// one-class row is exactly 0 as on the CPU. (Keeping m in log2 units, t = x log2 e, rounded
// twice: (x log2 e) ln 2 != x, which left log-softmax values off by an ulp of x; the host
// emulator's parity run showed it on a [1, 1] row.)

struct Lse {
    float m;      // running max of the allowed x
    float s;      // sum of e^(x - m)
    float sum;    // sum of allowed x (for label smoothing)
    int count;    // allowed classes seen
    int flags;    // 1: NaN seen, 2: +inf seen
};

__device__ __forceinline__ void fold(float& m, float& s, float m2, float s2) {
    if (m2 > m) {
        s = s * exp2_fast((m - m2) * LOG2E) + s2;
        m = m2;
    } else if (m2 > neg_inf()) {
        s += s2 * exp2_fast((m2 - m) * LOG2E);
    }
}

__device__ __forceinline__ void lse_add(Lse& st, float v) {
    ++st.count;
    if (v != v) { st.flags |= 1; return; }
    if (v == pos_inf()) { st.flags |= 2; return; }
    st.sum += v;
    if (v == neg_inf()) return;
    // One exp2 per element; the branch is taken only when this thread's max grows.
    if (v > st.m) {
        st.s = st.s * exp2_fast((st.m - v) * LOG2E) + 1.0f;
        st.m = v;
    } else {
        st.s += exp2_fast((v - st.m) * LOG2E);
    }
}

__device__ __forceinline__ void lse_merge(Lse& a, const Lse& b) {
    fold(a.m, a.s, b.m, b.s);
    a.sum += b.sum;
    a.count += b.count;
    a.flags |= b.flags;
}

// The whole block's state, in thread 0 (other threads' result is unspecified). Fixed
// combination order, so the result is deterministic for a given block size.
__device__ Lse block_reduce(Lse st) {
    __shared__ float sm_m[32], sm_s[32], sm_sum[32];
    __shared__ int sm_count[32], sm_flags[32];
    for (int off = 16; off > 0; off >>= 1) {
        Lse o;
        o.m = __shfl_xor_sync(0xffffffffu, st.m, off);
        o.s = __shfl_xor_sync(0xffffffffu, st.s, off);
        o.sum = __shfl_xor_sync(0xffffffffu, st.sum, off);
        o.count = __shfl_xor_sync(0xffffffffu, st.count, off);
        o.flags = __shfl_xor_sync(0xffffffffu, st.flags, off);
        lse_merge(st, o);
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();  // the previous row's readers are done with the shared arrays
    if (lane == 0) {
        sm_m[warp] = st.m;
        sm_s[warp] = st.s;
        sm_sum[warp] = st.sum;
        sm_count[warp] = st.count;
        sm_flags[warp] = st.flags;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        const int warps = blockDim.x >> 5;
        for (int w = 1; w < warps; ++w) {
            const Lse o = {sm_m[w], sm_s[w], sm_sum[w], sm_count[w], sm_flags[w]};
            lse_merge(st, o);
        }
    }
    return st;
}

// Broadcast thread 0's value to the block.
__device__ __forceinline__ float block_broadcast(float v) {
    __shared__ float cell;
    __syncthreads();
    if (threadIdx.x == 0) cell = v;
    __syncthreads();
    return cell;
}

// ln Z from the reduced state: NaN / +inf flags first, then the masked constant (C - A) e^m.
__device__ __forceinline__ float finish_lse(Lse st, long long classes, float mask_value) {
    if (st.flags & 1) return quiet_nan();
    if (st.flags & 2) return pos_inf();
    const long long masked = classes - st.count;
    if (masked > 0 && mask_value > neg_inf()) fold(st.m, st.s, mask_value, (float)masked);
    if (st.m == neg_inf()) return neg_inf();
    return st.m + log2f(st.s) * LN2;
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy forward: per row loss, lse, coef[3] = (beta, off, T).

template <typename T, int KIND>
__device__ void xent_fwd(const T* __restrict__ x, const long long* __restrict__ targets, const void* mask,
                         float* loss, float* lse_out, float* coef, int* status, const XentParams& p) {
    for (long long r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const T* row = x + r * p.classes;
        const RowMask<KIND> mk = row_mask<KIND>(p, mask, r);
        Lse st = {neg_inf(), 0.0f, 0.0f, 0, 0};
        for_row(row, p.classes, [&](long long c, float v) {
            if (mk.allowed(c)) lse_add(st, v);
        });
        st = block_reduce(st);
        if (threadIdx.x != 0) continue;
        const float lse = finish_lse(st, p.classes, p.mask_value);
        float l = 0.0f, beta = 0.0f, off = 0.0f, tc = 0.0f;
        const long long t = targets[r];
        int flag = 0;
        if (p.has_ignore && t == p.ignore_index) {
            // ignored: loss 0, no gradient
        } else if (t < 0 || t >= p.classes) {
            flag = XENT_BAD_TARGET;
            l = quiet_nan();
        } else if (lse == neg_inf()) {
            l = pos_inf();  // no finite allowed logit
            if (!mk.allowed(t)) flag = XENT_MASKED_TARGET;
        } else {
            const bool t_ok = mk.allowed(t);
            if (!t_ok) flag = XENT_MASKED_TARGET;
            if (st.flags) flag |= XENT_NONFINITE;
            const float eps = p.label_smoothing;
            const float zt = t_ok ? widen(row[t]) : p.mask_value;
            const float ce = eps > 0.0f ? lse - ((1.0f - eps) * zt + eps * (st.count > 0 ? st.sum / (float)st.count : 0.0f))
                                        : lse - zt;
            float w = 1.0f, a = 0.0f;
            if (p.focal_gamma > 0.0f) {
                const float pt = expf(zt - lse);
                const float u = fmaxf(1.0f - pt, 0.0f);
                w = powf(u, p.focal_gamma);
                if (fabsf(ce) < pos_inf() && (u > 0.0f || p.focal_gamma >= 1.0f))
                    a = p.focal_gamma * powf(u, p.focal_gamma - 1.0f) * pt * ce;
            }
            l = w * ce;
            beta = w + a;
            if (p.z_loss > 0.0f) {
                l += p.z_loss * lse * lse;
                beta += 2.0f * p.z_loss * lse;
            }
            off = (eps > 0.0f && st.count > 0) ? w * eps / (float)st.count : 0.0f;
            tc = t_ok ? w * (1.0f - eps) + a : 0.0f;
        }
        if (flag) {
            atomicOr(status, flag);
            atomicMin(status + 1, (int)(r < 0x7fffffffLL ? r : 0x7fffffffLL));
        }
        loss[r] = l;
        lse_out[r] = lse;
        coef[3 * r] = beta;
        coef[3 * r + 1] = off;
        coef[3 * r + 2] = tc;
    }
}

// Cross-entropy backward: dx = g (beta e^{x - lse} - off) - g T [c = t], 0 on masked classes.
// Every element of dx is written (zeros for ignored rows), so dx needs no memset.
template <typename T, int KIND>
__device__ void xent_bwd(const T* __restrict__ x, const long long* __restrict__ targets, const void* mask,
                         const float* lse_in, const float* coef, const float* g, long long g_stride,
                         float g_scale, T* dx, const XentParams& p) {
    for (long long r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const RowMask<KIND> mk = row_mask<KIND>(p, mask, r);
        const float beta = coef[3 * r], off = coef[3 * r + 1], tc = coef[3 * r + 2];
        const float lse2 = lse_in[r] * LOG2E;
        const float gr = g[r * g_stride] * g_scale;
        const long long t = targets[r];
        const bool idle = (beta == 0.0f && off == 0.0f && tc == 0.0f) || lse_in[r] == neg_inf();
        map_row(x + r * p.classes, dx + r * p.classes, p.classes, [&](long long c, float v) {
            if (idle || !mk.allowed(c)) return 0.0f;
            float d = gr * (beta * exp2_fast(v * LOG2E - lse2) - off);
            if (c == t) d -= gr * tc;
            return d;
        });
    }
}

// Sum (or mean over the rows not ignored) of the per-row losses, by one block in a fixed order.
__device__ void xent_reduce(const float* loss, const long long* targets, float* out, const XentParams& p, int mean) {
    float s = 0.0f;
    int n = 0;
    for (long long r = threadIdx.x; r < p.rows; r += blockDim.x) {
        s += loss[r];
        n += !(p.has_ignore && targets[r] == p.ignore_index);
    }
    Lse st = {neg_inf(), 0.0f, s, n, 0};
    st = block_reduce(st);
    if (threadIdx.x == 0) out[0] = mean ? (st.count > 0 ? st.sum / (float)st.count : 0.0f) : st.sum;
}

// ---------------------------------------------------------------------------------------------
// Masked softmax / log-softmax, forward and backward.

template <typename T, int KIND>
__device__ void softmax_fwd(const T* __restrict__ x, const void* mask, T* y, const XentParams& p) {
    for (long long r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const RowMask<KIND> mk = row_mask<KIND>(p, mask, r);
        Lse st = {neg_inf(), 0.0f, 0.0f, 0, 0};
        for_row(x + r * p.classes, p.classes, [&](long long c, float v) {
            if (mk.allowed(c)) lse_add(st, v);
        });
        st = block_reduce(st);
        float lse = finish_lse(st, p.classes, p.mask_value);
        if (st.flags) lse = quiet_nan();  // +inf at an allowed class: NaN row, as PyTorch
        lse = block_broadcast(lse);
        const bool log = p.log_softmax != 0;
        const bool none = lse == neg_inf();
        const float masked_out = lse != lse ? lse : (log ? p.mask_value - lse : (p.mask_value > neg_inf() ? exp2_fast((p.mask_value - lse) * LOG2E) : 0.0f));
        const float lse2 = lse * LOG2E;
        map_row(x + r * p.classes, y + r * p.classes, p.classes, [&](long long c, float v) {
            if (none) return log ? neg_inf() : 0.0f;
            if (!mk.allowed(c)) return masked_out;
            return log ? v - lse : exp2_fast(v * LOG2E - lse2);
        });
    }
}

template <typename T, int KIND>
__device__ void softmax_bwd(const T* __restrict__ y, const T* __restrict__ g, const void* mask, T* dx,
                            const XentParams& p) {
    const bool log = p.log_softmax != 0;
    for (long long r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const RowMask<KIND> mk = row_mask<KIND>(p, mask, r);
        const T* yr = y + r * p.classes;
        const T* gr = g + r * p.classes;
        // One pass for sum(g y) (softmax) or sum(g) and max(y) (log-softmax): the sum is kept in
        // Lse.sum, the max in Lse.m, a NaN in y in Lse.flags (the exp part of Lse is unused).
        float dot = 0.0f, ymax = neg_inf();
        int nan = 0;
        for (long long c = threadIdx.x; c < p.classes; c += blockDim.x) {
            const float yv = widen(yr[c]), gv = widen(gr[c]);
            dot += log ? gv : gv * yv;
            ymax = fmaxf(ymax, yv);
            nan |= yv != yv;
        }
        Lse st = {ymax, 0.0f, dot, 0, nan};
        st = block_reduce(st);
        dot = block_broadcast(st.sum);
        // An all -inf row (every class hard-masked) has no gradient. fmaxf skips NaN, so a NaN
        // row (NaN or +inf logit) would look all -inf: it is excluded, and its gradient is NaN
        // as on the CPU (whose max propagates NaN).
        const bool dead = log && block_broadcast(st.m == neg_inf() && st.flags == 0 ? 1.0f : 0.0f) != 0.0f;
        map_row(gr, dx + r * p.classes, p.classes, [&](long long c, float gv) {
            if (dead || !mk.allowed(c)) return 0.0f;
            const float yv = widen(yr[c]);
            return log ? gv - exp2_fast(yv * LOG2E) * dot : yv * (gv - dot);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points: one per dtype; the mask encoding is dispatched inside, once per launch.

#define DISPATCH(KIND_EXPR, CALL)                          \
    switch (KIND_EXPR) {                                   \
        case MASK_DENSE: CALL(MASK_DENSE); break;          \
        case MASK_RANGES: CALL(MASK_RANGES); break;        \
        case MASK_BITSET: CALL(MASK_BITSET); break;        \
        default: CALL(MASK_ALL); break;                    \
    }

#define XENT_FWD_CALL_float(K) xent_fwd<float, K>(x, targets, mask, loss, lse, coef, status, p)
#define XENT_FWD_CALL_bf16(K) xent_fwd<bf16, K>(x, targets, mask, loss, lse, coef, status, p)
#define XENT_BWD_CALL_float(K) xent_bwd<float, K>(x, targets, mask, lse, coef, g, g_stride, g_scale, dx, p)
#define XENT_BWD_CALL_bf16(K) xent_bwd<bf16, K>(x, targets, mask, lse, coef, g, g_stride, g_scale, dx, p)
#define SM_FWD_CALL_float(K) softmax_fwd<float, K>(x, mask, y, p)
#define SM_FWD_CALL_bf16(K) softmax_fwd<bf16, K>(x, mask, y, p)
#define SM_BWD_CALL_float(K) softmax_bwd<float, K>(y, g, mask, dx, p)
#define SM_BWD_CALL_bf16(K) softmax_bwd<bf16, K>(y, g, mask, dx, p)

extern "C" __global__ void __launch_bounds__(512, 1) masked_xent_fwd_f32(const float* x, const long long* targets, const void* mask, float* loss,
                                               float* lse, float* coef, int* status, XentParams p) {
    DISPATCH(p.mask_kind, XENT_FWD_CALL_float)
}
extern "C" __global__ void __launch_bounds__(512, 1) masked_xent_fwd_bf16(const bf16* x, const long long* targets, const void* mask, float* loss,
                                                float* lse, float* coef, int* status, XentParams p) {
    DISPATCH(p.mask_kind, XENT_FWD_CALL_bf16)
}
extern "C" __global__ void __launch_bounds__(512, 1) masked_xent_bwd_f32(const float* x, const long long* targets, const void* mask,
                                               const float* lse, const float* coef, const float* g,
                                               long long g_stride, float g_scale, float* dx, XentParams p) {
    DISPATCH(p.mask_kind, XENT_BWD_CALL_float)
}
extern "C" __global__ void __launch_bounds__(512, 1) masked_xent_bwd_bf16(const bf16* x, const long long* targets, const void* mask,
                                                const float* lse, const float* coef, const float* g,
                                                long long g_stride, float g_scale, bf16* dx, XentParams p) {
    DISPATCH(p.mask_kind, XENT_BWD_CALL_bf16)
}
extern "C" __global__ void __launch_bounds__(1024) masked_xent_reduce(const float* loss, const long long* targets, float* out, XentParams p,
                                              int mean) {
    xent_reduce(loss, targets, out, p, mean);
}
extern "C" __global__ void __launch_bounds__(512, 1) masked_softmax_fwd_f32(const float* x, const void* mask, float* y, XentParams p) {
    DISPATCH(p.mask_kind, SM_FWD_CALL_float)
}
extern "C" __global__ void __launch_bounds__(512, 1) masked_softmax_fwd_bf16(const bf16* x, const void* mask, bf16* y, XentParams p) {
    DISPATCH(p.mask_kind, SM_FWD_CALL_bf16)
}
extern "C" __global__ void __launch_bounds__(512, 1) masked_softmax_bwd_f32(const float* y, const float* g, const void* mask, float* dx,
                                                  XentParams p) {
    DISPATCH(p.mask_kind, SM_BWD_CALL_float)
}
extern "C" __global__ void __launch_bounds__(512, 1) masked_softmax_bwd_bf16(const bf16* y, const bf16* g, const void* mask, bf16* dx,
                                                   XentParams p) {
    DISPATCH(p.mask_kind, SM_BWD_CALL_bf16)
}
