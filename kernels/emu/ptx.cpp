// ptx.cpp: the PTX instructions our kernels write as inline asm, implemented for the host
// emulator from the PTX ISA's definitions (not from the kernels that use them, so a kernel
// that gets a fragment layout wrong computes a wrong result here too).

#include "cuda_emu.h"

namespace kemu {

// cp.async.{ca,cg}.shared.global [dst], [src], cp-size, src-size: copies src-size bytes and
// zero-fills the rest of cp-size. Both addresses must be aligned to cp-size. Done at once,
// which is one of the orders the asynchronous copy allows (wait_group is then a no-op).
void cp_async(void* smem, const void* gmem, int cp_size, int src_size) {
    if (cp_size != 4 && cp_size != 8 && cp_size != 16) fail("cp.async: cp-size must be 4, 8 or 16");
    if (src_size < 0 || src_size > cp_size) fail("cp.async: src-size outside [0, cp-size]");
    if ((reinterpret_cast<uintptr_t>(smem) | reinterpret_cast<uintptr_t>(gmem)) % static_cast<uintptr_t>(cp_size))
        fail("cp.async: an address is not aligned to cp-size");
    if (src_size > 0) memcpy(smem, gmem, static_cast<size_t>(src_size));
    memset(static_cast<char*>(smem) + src_size, 0, static_cast<size_t>(cp_size - src_size));
}

// ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16: lanes 8j..8j+7 give the addresses of rows
// 0..7 of matrix j (16 bytes each, 16-byte aligned); register j of lane l receives, with
// g = l / 4 and t = l % 4, elements (g, 2t) and (g, 2t+1) of matrix j (low half first), or with
// .trans elements (2t, g) and (2t+1, g).
void ldmatrix_x4(unsigned r[4], const void* row_addr, bool trans) {
    const void* rows[32];
    warp_exchange(0xffffffffu, &row_addr, sizeof row_addr, rows);
    for (int l = 0; l < 32; ++l)
        if (reinterpret_cast<uintptr_t>(rows[l]) % 16 != 0) fail("ldmatrix: a row address is not 16-byte aligned");
    const int lane = static_cast<int>(g_cur->lane);
    const int g = lane >> 2, t = lane & 3;
    for (int j = 0; j < 4; ++j) {
        unsigned short lo, hi;
        if (!trans) {
            const unsigned short* row = static_cast<const unsigned short*>(rows[8 * j + g]);
            lo = row[2 * t];
            hi = row[2 * t + 1];
        } else {
            lo = static_cast<const unsigned short*>(rows[8 * j + 2 * t])[g];
            hi = static_cast<const unsigned short*>(rows[8 * j + 2 * t + 1])[g];
        }
        r[j] = static_cast<unsigned>(lo) | (static_cast<unsigned>(hi) << 16);
    }
}

namespace {
struct MmaIn {
    unsigned a[4];
    unsigned b[2];
    float c[4];
};
float bf16_lo(unsigned v) { return __int_as_float(static_cast<int>(v << 16)); }
float bf16_hi(unsigned v) { return __int_as_float(static_cast<int>(v & 0xffff0000u)); }
}  // namespace

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, c: D (16x8) = A (16x16) B (16x8)
// + C. Fragments ("Matrix Fragments for mma.m16n8k16 with floating point type"), with
// groupID g = lane >> 2 and threadID_in_group t = lane % 4, each register holding two bf16,
// the lower-numbered element in the low half:
//   A: a_i, i = 0..7, row g for i in {0,1,4,5} else g + 8; col 2t + (i & 1), + 8 for i >= 4.
//   B: b_i, i = 0..3, row (k) 2t + (i & 1), + 8 for i >= 2; col (n) g.
//   C, D: c_i, i = 0..3, row g for i < 2 else g + 8; col 2t + (i & 1).
// Numerics: bf16 products are exact in f32; they are added to C in k order in f32 round to
// nearest. The tensor core's internal order and rounding are not specified by PTX, so results
// can differ from a GPU in the last bits.
void mma_m16n8k16_bf16_f32(float d[4], const unsigned a[4], unsigned b0, unsigned b1) {
    MmaIn mine;
    for (int i = 0; i < 4; ++i) {
        mine.a[i] = a[i];
        mine.c[i] = d[i];
    }
    mine.b[0] = b0;
    mine.b[1] = b1;
    MmaIn all[32];
    warp_exchange(0xffffffffu, &mine, sizeof mine, all);
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
        const int g = l >> 2, t = l & 3;
        for (int i = 0; i < 8; ++i) {
            const unsigned reg = all[l].a[i / 2];
            const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
            const int col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
            A[row][col] = (i & 1) ? bf16_hi(reg) : bf16_lo(reg);
        }
        for (int i = 0; i < 4; ++i) {
            const unsigned reg = all[l].b[i / 2];
            B[2 * t + (i & 1) + (i >= 2 ? 8 : 0)][g] = (i & 1) ? bf16_hi(reg) : bf16_lo(reg);
            C[i < 2 ? g : g + 8][2 * t + (i & 1)] = all[l].c[i];
        }
    }
    const int g = static_cast<int>(g_cur->lane) >> 2, t = static_cast<int>(g_cur->lane) & 3;
    for (int i = 0; i < 4; ++i) {
        const int row = i < 2 ? g : g + 8, col = 2 * t + (i & 1);
        float acc = C[row][col];
        for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
        d[i] = acc;
    }
}

// ex2.approx.ftz.f32: 2^x with subnormal inputs and results flushed to sign-preserving zero.
// Computed to full precision (the instruction's error is at most 2 ulp).
float ex2_approx_ftz(float x) {
    if (x != 0.0f && fabsf(x) < 1.17549435e-38f) x = copysignf(0.0f, x);
    float y = exp2f(x);
    if (y != 0.0f && fabsf(y) < 1.17549435e-38f) y = 0.0f;
    return y;
}

}  // namespace kemu
