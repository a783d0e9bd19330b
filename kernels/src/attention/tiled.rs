//! FlashAttention on the CPU: the algorithm, in plain Rust, without the `nq × nk` matrix.
//!
//! # Forward: online softmax over key tiles
//!
//! For a tile of `QT` queries, keep per row a running max `m`, a running sum `l` of
//! `exp(s − m)`, and an unnormalized output `acc = Σ exp(s − m) · v`. For each tile of `KT` keys:
//!
//! ```text
//! s      = scale · q kᵀ + bias  (masked: -inf)        QT × KT logits, the only tile kept
//! m'     = max(m, max_j s_j)
//! α      = exp(m − m')                                 rescales what was summed under the old max
//! l      = α·l + Σ_j exp(s_j − m')
//! acc    = α·acc + Σ_j exp(s_j − m') · v_j
//! ```
//!
//! and at the end `out = acc / l`, `lse = m + ln l`. While a row has seen only masked keys its
//! `m` is -inf and the update is skipped (it would compute `exp(-inf − -inf) = NaN`); a row that
//! stays so to the end is a fully masked row: `out = 0`, `lse = -inf`.
//!
//! # Backward: recompute, never store P
//!
//! With `δ_i = ⟨dout_i, out_i⟩` precomputed (one number per row), every element of `P` can be
//! rebuilt on its own as `P_ij = exp(s_ij − lse_i)`, so the backward walks key tiles (outer) and
//! query tiles (inner) as FlashAttention-2 does, and per pair of tiles computes
//!
//! ```text
//! S = Q Kᵀ,  dP = dout Vᵀ                    (two QT × KT tiles)
//! P = exp(scale·S + bias − lse),  dS = P ∘ (dP − δ)
//! dV += Pᵀ dout,  dK += scale·dSᵀ Q,  dQ += scale·dS K
//! ```
//!
//! A masked element, or any element of a fully masked row (`lse = -inf`), has `P = 0` set
//! explicitly, so those rows get exactly 0.
//!
//! All five products (two in the forward) run on `crate::matmul::gemm`, the packed AVX-512 /
//! AVX2 / portable micro-kernels, single-threaded per tile (rayon parallelism is across heads).
//!
//! # Threads and memory
//!
//! The forward runs one rayon task per (batch, head); the backward one per (batch, KV head), which
//! owns the `dK`, `dV` rows of its KV head and the `dQ` rows of all query heads that share it, so
//! no two tasks write the same element and the result does not depend on the thread count.
//! The bias gradient, whose elements may be shared by many heads (a broadcast bias), is summed
//! into one buffer per rayon split and the buffers are added at the end: its rounding can vary
//! from run to run at the last-bit level; nothing else does.
//!
//! Extra memory: per task one `QT × KT` logit tile and `QT × (D + 2)` accumulators in the forward,
//! two `QT × KT` tiles per task in the backward, plus `δ` (`B·H·nq` values) — O(B·H·N), never O(N²).
//!
//! Tiles are skipped by [`Mask::classify`](super::Mask::classify): empty tiles are not computed,
//! full tiles skip the per-element mask test, and key loops stop at [`Mask::key_end`](super::Mask::key_end).

use super::{dot, reference, AttentionError, Forward, Grads, Problem, TileKind};
use crate::matmul::{gemm, GemmScalar, MatRef};
use crate::Float;
use rayon::prelude::*;

/// Queries per tile. With D = 64 and f32, a 64 × 64 logit tile and the 64-row accumulator take
/// 32 KiB, about an L1 cache plus a little of L2; the keys and values of the tile another 32 KiB.
pub const QT: usize = 64;
/// Keys per tile.
pub const KT: usize = 64;

/// Shapes with no work (or no head dimension) go to the reference, which handles them without
/// special cases and without any `nq × nk` cost (one of the factors is 0).
fn degenerate<T: Float>(p: &Problem<T>) -> bool {
    let s = &p.shape;
    s.rows() == 0 || s.kv_len == 0 || s.head_dim == 0
}

/// Forward: `out`, `lse`, `max_logit`, equal to [`reference::forward`] up to rounding.
pub fn forward<T: Float + GemmScalar>(p: &Problem<T>) -> Result<Forward<T>, AttentionError> {
    p.validate()?;
    if degenerate(p) {
        return reference::forward(p);
    }
    let s = p.shape;
    let (d, nq) = (s.head_dim, s.q_len);
    let mut out = vec![<T as Float>::ZERO; s.q_elems()];
    let mut lse = vec![T::NEG_INFINITY; s.rows()];
    let mut max_logit = vec![T::NEG_INFINITY; s.batch * s.heads];
    out.par_chunks_mut(nq * d)
        .zip(lse.par_chunks_mut(nq))
        .zip(max_logit.par_iter_mut())
        .enumerate()
        .for_each(|(bh, ((out, lse), max_logit))| {
            *max_logit = forward_head(p, bh / s.heads, bh % s.heads, out, lse);
        });
    Ok(Forward { out, lse, max_logit })
}

/// One (batch, head): writes its `out` and `lse` rows, returns its max logit.
fn forward_head<T: Float + GemmScalar>(
    p: &Problem<T>,
    b: usize,
    h: usize,
    out: &mut [T],
    lse: &mut [T],
) -> T {
    let s = &p.shape;
    let (d, nq, nk) = (s.head_dim, s.q_len, s.kv_len);
    let kvh = b * s.kv_heads + h / s.group();
    let q = &p.q[(b * s.heads + h) * nq * d..][..nq * d];
    let k = &p.k[kvh * nk * d..][..nk * d];
    let v = &p.v[kvh * nk * d..][..nk * d];
    let mut tile = [<T as Float>::ZERO; QT * KT];
    let mut m = [T::NEG_INFINITY; QT];
    let mut l = [<T as Float>::ZERO; QT];
    let mut head_max = T::NEG_INFINITY;
    for i0 in (0..nq).step_by(QT) {
        let i1 = (i0 + QT).min(nq);
        let rows = i1 - i0;
        let acc = &mut out[i0 * d..i1 * d];
        acc.fill(<T as Float>::ZERO);
        m[..rows].fill(T::NEG_INFINITY);
        l[..rows].fill(<T as Float>::ZERO);
        let end = p.mask.key_end(b, (i0, i1), nq, nk);
        for j0 in (0..end).step_by(KT) {
            let j1 = (j0 + KT).min(end);
            let cols = j1 - j0;
            let kind = p.mask.classify(b, (i0, i1), (j0, j1), nq, nk);
            if kind == TileKind::Empty {
                continue;
            }
            let check = kind == TileKind::Partial;
            // S = Q Kᵀ for the tile on the GEMM micro-kernels (K read transposed in place).
            let st = &mut tile[..rows * cols];
            gemm(rows_of(q, i0, rows, d), rows_of(k, j0, cols, d).t(), st, false).expect("tile shapes");
            let mut any_row = false;
            for r in 0..rows {
                let row = &mut st[r * cols..][..cols];
                for (c, x) in row.iter_mut().enumerate() {
                    *x = p.finish_logit((b, h, i0 + r, j0 + c), *x, check);
                }
                let tile_max = row.iter().fold(T::NEG_INFINITY, |a, &x| a.max(x));
                head_max = head_max.max(tile_max);
                let m_new = m[r].max(tile_max);
                if m_new == T::NEG_INFINITY {
                    row.fill(<T as Float>::ZERO); // nothing allowed yet in this row: P = 0
                    continue;
                }
                any_row = true;
                let alpha = (m[r] - m_new).exp(); // 0 when m[r] was -inf: nothing to rescale
                if alpha != T::ONE {
                    acc[r * d..][..d].iter_mut().for_each(|a| *a *= alpha);
                }
                let mut sum = <T as Float>::ZERO;
                for x in row.iter_mut() {
                    *x = (*x - m_new).exp(); // exactly 0 for a masked (-inf) logit
                    sum += *x;
                }
                l[r] = alpha * l[r] + sum;
                m[r] = m_new;
            }
            if any_row {
                // acc += P V (rows already rescaled by alpha above).
                gemm(
                    MatRef::row_major(st, rows, cols),
                    rows_of(v, j0, cols, d),
                    acc,
                    true,
                )
                .expect("tile shapes");
            }
        }
        for r in 0..rows {
            let acc_r = &mut acc[r * d..][..d];
            if m[r] == T::NEG_INFINITY {
                acc_r.fill(<T as Float>::ZERO); // fully masked row
                lse[i0 + r] = T::NEG_INFINITY;
            } else {
                acc_r.iter_mut().for_each(|a| *a /= l[r]);
                lse[i0 + r] = m[r] + l[r].ln();
            }
        }
    }
    head_max
}

/// Backward from `dout`, using the forward's `out` and `lse`. Equal to [`reference::backward`]
/// up to rounding; `dbias` (in the bias buffer's layout) when `want_dbias` and there is a bias.
pub fn backward<T: Float + GemmScalar>(
    p: &Problem<T>,
    out: &[T],
    lse: &[T],
    dout: &[T],
    want_dbias: bool,
) -> Result<Grads<T>, AttentionError> {
    p.validate()?;
    let s = p.shape;
    for (what, len, expected) in [
        ("out", out.len(), s.q_elems()),
        ("dout", dout.len(), s.q_elems()),
        ("lse", lse.len(), s.rows()),
    ] {
        if len != expected {
            return Err(AttentionError::Length { what, len, expected });
        }
    }
    if degenerate(p) {
        return reference::backward(p, dout, want_dbias);
    }
    let (d, nq, nk, g) = (s.head_dim, s.q_len, s.kv_len, s.group());
    // δ_i = ⟨dout_i, out_i⟩: O(B·H·nq), the only extra buffer.
    let mut delta = vec![<T as Float>::ZERO; s.rows()];
    delta.par_iter_mut().enumerate().for_each(|(r, x)| {
        *x = dot(&dout[r * d..][..d], &out[r * d..][..d]);
    });
    let ctx = BwdCtx {
        p,
        lse,
        dout,
        delta: &delta,
    };
    let mut dq = vec![<T as Float>::ZERO; s.q_elems()];
    let mut dk = vec![<T as Float>::ZERO; s.kv_elems()];
    let mut dv = vec![<T as Float>::ZERO; s.kv_elems()];
    let tasks = dq
        .par_chunks_mut(g * nq * d)
        .zip(dk.par_chunks_mut(nk * d))
        .zip(dv.par_chunks_mut(nk * d))
        .enumerate();
    let bias_len = p.bias.map(|b| b.data.len());
    let dbias = match bias_len.filter(|_| want_dbias) {
        None => {
            tasks.for_each(|(t, ((dq, dk), dv))| ctx.kv_head(t, dq, dk, dv, None));
            None
        }
        Some(len) => Some(
            tasks
                .fold(Vec::new, |mut acc, (t, ((dq, dk), dv))| {
                    acc.resize(len, <T as Float>::ZERO);
                    ctx.kv_head(t, dq, dk, dv, Some(&mut acc));
                    acc
                })
                .reduce(Vec::new, |a, b| match (a.is_empty(), b.is_empty()) {
                    (true, _) => b,
                    (_, true) => a,
                    _ => a.into_iter().zip(b).map(|(x, y)| x + y).collect(),
                }),
        )
        .map(|v| {
            if v.is_empty() {
                vec![<T as Float>::ZERO; len]
            } else {
                v
            }
        }),
    };
    Ok(Grads { dq, dk, dv, dbias })
}

struct BwdCtx<'a, T> {
    p: &'a Problem<'a, T>,
    lse: &'a [T],
    dout: &'a [T],
    delta: &'a [T],
}

impl<T: Float + GemmScalar> BwdCtx<'_, T> {
    /// Task `t` = (batch, KV head): its dK, dV rows and the dQ rows of its query heads.
    fn kv_head(&self, t: usize, dq: &mut [T], dk: &mut [T], dv: &mut [T], mut dbias: Option<&mut Vec<T>>) {
        let p = self.p;
        let s = &p.shape;
        let (d, nq, nk, g) = (s.head_dim, s.q_len, s.kv_len, s.group());
        let b = t / s.kv_heads;
        let k = &p.k[t * nk * d..][..nk * d];
        let v = &p.v[t * nk * d..][..nk * d];
        // Two QT x KT tiles: P, then dS (scaled); the only per-task scratch.
        let mut pt = [<T as Float>::ZERO; QT * KT];
        let mut dst = [<T as Float>::ZERO; QT * KT];
        for j0 in (0..nk).step_by(KT) {
            let j1 = (j0 + KT).min(nk);
            let cols = j1 - j0;
            for hh in 0..g {
                let h = (t % s.kv_heads) * g + hh;
                let bh = b * s.heads + h;
                let q = &p.q[bh * nq * d..][..nq * d];
                let go = &self.dout[bh * nq * d..][..nq * d];
                let dqh = &mut dq[hh * nq * d..][..nq * d];
                for i0 in (0..nq).step_by(QT) {
                    let i1 = (i0 + QT).min(nq);
                    let rows = i1 - i0;
                    let kind = p.mask.classify(b, (i0, i1), (j0, j1), nq, nk);
                    if kind == TileKind::Empty {
                        continue;
                    }
                    let (pt, dst) = (&mut pt[..rows * cols], &mut dst[..rows * cols]);
                    // S = Q Kᵀ, then P = exp(S' − lse) in place (0 where masked or fully masked).
                    gemm(rows_of(q, i0, rows, d), rows_of(k, j0, cols, d).t(), pt, false)
                        .expect("tile shapes");
                    // dP = dout Vᵀ.
                    gemm(rows_of(go, i0, rows, d), rows_of(v, j0, cols, d).t(), dst, false)
                        .expect("tile shapes");
                    for r in 0..rows {
                        let i = i0 + r;
                        let lse = self.lse[bh * nq + i];
                        let delta = self.delta[bh * nq + i];
                        for c in 0..cols {
                            let e = r * cols + c;
                            let x = p.finish_logit((b, h, i, j0 + c), pt[e], kind == TileKind::Partial);
                            // A fully masked row has lse = -inf: its P is 0, never exp(-inf + inf).
                            let pij = if lse == T::NEG_INFINITY {
                                <T as Float>::ZERO
                            } else {
                                (x - lse).exp()
                            };
                            let ds = pij * (dst[e] - delta);
                            if let (Some(db), Some(bias)) = (dbias.as_deref_mut(), &p.bias) {
                                db[bias.index(b, h, i, j0 + c)] += ds;
                            }
                            pt[e] = pij;
                            dst[e] = p.scale * ds;
                        }
                    }
                    let (pm, dsm) = (
                        MatRef::row_major(&*pt, rows, cols),
                        MatRef::row_major(&*dst, rows, cols),
                    );
                    // dV += Pᵀ dout, dK += scale dSᵀ Q, dQ += scale dS K.
                    gemm(pm.t(), rows_of(go, i0, rows, d), &mut dv[j0 * d..j1 * d], true)
                        .expect("tile shapes");
                    gemm(dsm.t(), rows_of(q, i0, rows, d), &mut dk[j0 * d..j1 * d], true)
                        .expect("tile shapes");
                    gemm(dsm, rows_of(k, j0, cols, d), &mut dqh[i0 * d..i1 * d], true).expect("tile shapes");
                }
            }
        }
    }
}

/// Rows `r0 .. r0 + rows` of a row-major `[*, d]` buffer as a matrix view.
fn rows_of<T>(data: &[T], r0: usize, rows: usize, d: usize) -> MatRef<'_, T> {
    MatRef {
        data,
        offset: r0 * d,
        rows,
        cols: d,
        row_stride: d,
        col_stride: 1,
    }
}
