//! The materialized reference: for one head at a time, build the whole `nq × nk` matrix of
//! logits, softmax it row by row, multiply by V. The backward builds `P`, `dP` and `dS` the same
//! way. Plain loops in the order of the formulas in [`super`]; single-threaded on purpose, so it
//! stays the definition rather than a second optimized kernel.
//!
//! Memory: `O(nq·nk)` per head (three such matrices in the backward). That is the cost the tiled
//! version avoids.
//!
//! Numerics: the row max is subtracted before `exp`; a fully masked row (max = -inf) is set to
//! `out = 0, lse = -inf, P = 0` explicitly, never through `exp(-inf - -inf)`. `δ_i` is computed as
//! `Σ_j P_ij dP_ij` here and as `⟨dout_i, out_i⟩` in the tiled backward: equal in exact
//! arithmetic, computed differently, so the comparison tests both.

use super::{axpy, dot, AttentionError, Forward, Grads, Problem};
use crate::Float;

/// The masked logits of head (b, h): `nq × nk`, -inf where masked.
fn logits<T: Float>(p: &Problem<T>, b: usize, h: usize) -> Vec<T> {
    let s = &p.shape;
    let (d, nq, nk) = (s.head_dim, s.q_len, s.kv_len);
    let hk = h / s.group();
    let q = &p.q[(b * s.heads + h) * nq * d..][..nq * d];
    let k = &p.k[(b * s.kv_heads + hk) * nk * d..][..nk * d];
    let mut out = vec![T::NEG_INFINITY; nq * nk];
    for i in 0..nq {
        for j in 0..nk {
            out[i * nk + j] = p.logit((b, h, i, j), &q[i * d..][..d], &k[j * d..][..d], true);
        }
    }
    out
}

/// Softmax of each row of `logits` in place; returns the rows' log-sum-exp.
fn softmax_rows<T: Float>(logits: &mut [T], nq: usize, nk: usize) -> Vec<T> {
    let mut lse = vec![T::NEG_INFINITY; nq];
    for i in 0..nq {
        let row = &mut logits[i * nk..][..nk];
        let m = row.iter().fold(T::NEG_INFINITY, |a, &x| a.max(x));
        if m == T::NEG_INFINITY {
            row.fill(T::ZERO);
            continue;
        }
        let mut sum = T::ZERO;
        for x in row.iter_mut() {
            *x = (*x - m).exp();
            sum += *x;
        }
        for x in row.iter_mut() {
            *x /= sum;
        }
        lse[i] = m + sum.ln();
    }
    lse
}

/// Forward: `out`, `lse` and `max_logit` (layouts in [`super`]).
pub fn forward<T: Float>(p: &Problem<T>) -> Result<Forward<T>, AttentionError> {
    p.validate()?;
    let s = p.shape;
    let (d, nq, nk) = (s.head_dim, s.q_len, s.kv_len);
    let mut out = vec![T::ZERO; s.q_elems()];
    let mut lse = vec![T::NEG_INFINITY; s.rows()];
    let mut max_logit = vec![T::NEG_INFINITY; s.batch * s.heads];
    for b in 0..s.batch {
        for h in 0..s.heads {
            let bh = b * s.heads + h;
            let hk = h / s.group();
            let v = &p.v[(b * s.kv_heads + hk) * nk * d..][..nk * d];
            let mut probs = logits(p, b, h);
            max_logit[bh] = probs.iter().fold(T::NEG_INFINITY, |a, &x| a.max(x));
            let row_lse = softmax_rows(&mut probs, nq, nk);
            lse[bh * nq..][..nq].copy_from_slice(&row_lse);
            let o = &mut out[bh * nq * d..][..nq * d];
            for i in 0..nq {
                for j in 0..nk {
                    axpy(&mut o[i * d..][..d], probs[i * nk + j], &v[j * d..][..d]);
                }
            }
        }
    }
    Ok(Forward { out, lse, max_logit })
}

/// Backward from `dout` (the gradient of `out`). Recomputes the forward's probabilities; `dbias`
/// is returned (in the bias buffer's layout) when `want_dbias` and the problem has a bias.
pub fn backward<T: Float>(p: &Problem<T>, dout: &[T], want_dbias: bool) -> Result<Grads<T>, AttentionError> {
    p.validate()?;
    let s = p.shape;
    if dout.len() != s.q_elems() {
        return Err(AttentionError::Length {
            what: "dout",
            len: dout.len(),
            expected: s.q_elems(),
        });
    }
    let (d, nq, nk) = (s.head_dim, s.q_len, s.kv_len);
    let mut dq = vec![T::ZERO; s.q_elems()];
    let mut dk = vec![T::ZERO; s.kv_elems()];
    let mut dv = vec![T::ZERO; s.kv_elems()];
    let mut dbias = match (&p.bias, want_dbias) {
        (Some(bias), true) => Some(vec![T::ZERO; bias.data.len()]),
        _ => None,
    };
    for b in 0..s.batch {
        for h in 0..s.heads {
            let bh = b * s.heads + h;
            let kvh = b * s.kv_heads + h / s.group();
            let q = &p.q[bh * nq * d..][..nq * d];
            let k = &p.k[kvh * nk * d..][..nk * d];
            let v = &p.v[kvh * nk * d..][..nk * d];
            let g = &dout[bh * nq * d..][..nq * d];
            let mut probs = logits(p, b, h);
            softmax_rows(&mut probs, nq, nk);
            // dP = dout Vᵀ, then dS = P ∘ (dP − Σ_j P dP) row by row.
            let mut ds = vec![T::ZERO; nq * nk];
            for i in 0..nq {
                for j in 0..nk {
                    ds[i * nk + j] = dot(&g[i * d..][..d], &v[j * d..][..d]);
                }
                let row_p = &probs[i * nk..][..nk];
                let delta: T = row_p.iter().zip(&ds[i * nk..][..nk]).map(|(&a, &b)| a * b).sum();
                for j in 0..nk {
                    ds[i * nk + j] = row_p[j] * (ds[i * nk + j] - delta);
                }
            }
            let dqh = &mut dq[bh * nq * d..][..nq * d];
            for i in 0..nq {
                for j in 0..nk {
                    let (pij, dsij) = (probs[i * nk + j], ds[i * nk + j]);
                    axpy(&mut dv[kvh * nk * d + j * d..][..d], pij, &g[i * d..][..d]);
                    axpy(&mut dqh[i * d..][..d], p.scale * dsij, &k[j * d..][..d]);
                    axpy(
                        &mut dk[kvh * nk * d + j * d..][..d],
                        p.scale * dsij,
                        &q[i * d..][..d],
                    );
                    if let (Some(db), Some(bias)) = (dbias.as_mut(), &p.bias) {
                        db[bias.index(b, h, i, j)] += dsij;
                    }
                }
            }
        }
    }
    Ok(Grads { dq, dk, dv, dbias })
}
