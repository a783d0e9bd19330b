//! The tiled kernel against the materialized reference over every mask kind, GQA, Nq != Nk and
//! sizes that are not multiples of the tiles; the reference's backward against finite
//! differences; fully masked rows; argument validation.

use super::*;

/// Deterministic values in [-1, 1) (xorshift; the crate has no RNG dependency).
fn values<T: Float>(n: usize, seed: u64) -> Vec<T> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            T::from_f64((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect()
}

/// Everything a problem borrows, owned.
struct Owned<T> {
    shape: AttnShape,
    q: Vec<T>,
    k: Vec<T>,
    v: Vec<T>,
    lens: Vec<usize>,
    bool_mask: Vec<u8>,
    bias: Vec<T>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    None,
    Causal,
    Padding,
    Diagonal,
    Bool,
    Bias,
    /// Causal + padding + a boolean mask + a bias broadcast over heads.
    All,
}

const KINDS: [Kind; 7] = [
    Kind::None,
    Kind::Causal,
    Kind::Padding,
    Kind::Diagonal,
    Kind::Bool,
    Kind::Bias,
    Kind::All,
];

impl<T: Float> Owned<T> {
    fn new(shape: AttnShape, seed: u64) -> Self {
        let (b, nq, nk) = (shape.batch, shape.q_len, shape.kv_len);
        // Padding lengths include 0 (a batch row with no keys: every row of it fully masked).
        let lens = (0..b)
            .map(|i| if i == 1 { 0 } else { nk - (i * 3) % nk.max(1) })
            .collect();
        // The boolean mask is [B, 1, nq, nk] (broadcast over heads) with one fully masked row.
        let mut bool_mask: Vec<u8> = values::<f64>(b * nq * nk, seed + 7)
            .iter()
            .map(|&x| (x > -0.6) as u8)
            .collect();
        if nq > 1 {
            bool_mask[nk..2 * nk].fill(0);
        }
        Owned {
            shape,
            q: values(shape.q_elems(), seed),
            k: values(shape.kv_elems(), seed + 1),
            v: values(shape.kv_elems(), seed + 2),
            lens,
            bool_mask,
            bias: values::<T>(b * nq * nk, seed + 3)
                .into_iter()
                .map(|x| x * T::from_f64(2.0))
                .collect(),
        }
    }

    fn problem(&self, kind: Kind) -> Problem<'_, T> {
        let (nq, nk) = (self.shape.q_len, self.shape.kv_len);
        let bm = BoolMask {
            data: &self.bool_mask,
            strides: [nq * nk, 0, nk, 1],
            offset: 0,
        };
        let bias = Bias {
            data: &self.bias,
            strides: [nq * nk, 0, nk, 1],
            offset: 0,
        };
        let (mask, bias) = match kind {
            Kind::None => (Mask::NONE, None),
            Kind::Causal => (Mask::causal(), None),
            Kind::Padding => (Mask::key_padding(&self.lens), None),
            Kind::Diagonal => (Mask::diagonal(), None),
            Kind::Bool => (Mask::boolean(bm), None),
            Kind::Bias => (Mask::NONE, Some(bias)),
            Kind::All => (
                Mask {
                    causal: true,
                    diagonal: false,
                    key_lengths: Some(&self.lens),
                    bool_mask: Some(bm),
                },
                Some(bias),
            ),
        };
        Problem {
            shape: self.shape,
            q: &self.q,
            k: &self.k,
            v: &self.v,
            mask,
            bias,
            scale: default_scale(self.shape.head_dim),
        }
    }
}

fn shape(
    batch: usize,
    heads: usize,
    kv_heads: usize,
    q_len: usize,
    kv_len: usize,
    head_dim: usize,
) -> AttnShape {
    AttnShape {
        batch,
        heads,
        kv_heads,
        q_len,
        kv_len,
        head_dim,
    }
}

fn max_diff<T: Float>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let (x, y) = (x.to_f64(), y.to_f64());
            if x == y {
                0.0 // equal infinities (lse of masked rows, max_logit of empty heads)
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f64::max)
}

fn compare<T: Float + crate::matmul::GemmScalar>(sh: AttnShape, tol: f64) {
    let owned = Owned::<T>::new(sh, 11);
    for kind in KINDS {
        let p = owned.problem(kind);
        let r = reference::forward(&p).unwrap();
        let t = tiled::forward(&p).unwrap();
        let what = format!("{sh:?} {kind:?}");
        assert!(
            max_diff(&r.out, &t.out) < tol,
            "out {what}: {}",
            max_diff(&r.out, &t.out)
        );
        assert!(max_diff(&r.lse, &t.lse) < tol, "lse {what}");
        assert!(max_diff(&r.max_logit, &t.max_logit) < tol, "max_logit {what}");
        assert!(t.out.iter().all(|x| x.is_finite()), "{what}");
        let dout: Vec<T> = values(sh.q_elems(), 5);
        let rg = reference::backward(&p, &dout, true).unwrap();
        let tg = tiled::backward(&p, &t.out, &t.lse, &dout, true).unwrap();
        for (name, a, b) in [
            ("dq", &rg.dq, &tg.dq),
            ("dk", &rg.dk, &tg.dk),
            ("dv", &rg.dv, &tg.dv),
        ] {
            assert!(max_diff(a, b) < tol, "{name} {what}: {}", max_diff(a, b));
            assert!(b.iter().all(|x| x.is_finite()), "{name} {what}");
        }
        assert_eq!(rg.dbias.is_some(), p.bias.is_some());
        if let (Some(a), Some(b)) = (&rg.dbias, &tg.dbias) {
            assert!(max_diff(a, b) < tol, "dbias {what}");
        }
    }
}

#[test]
fn tiled_matches_reference_f64() {
    // Awkward sizes: one row, fewer queries than keys, more, tile multiples and one past them.
    for sh in [
        shape(2, 2, 1, 1, 5, 3),
        shape(3, 4, 2, 13, 70, 8),
        shape(2, 3, 3, 70, 13, 5),
        shape(1, 2, 2, 64, 64, 4),
        shape(2, 1, 1, 65, 129, 16),
    ] {
        compare::<f64>(sh, 1e-12);
    }
}

#[test]
fn tiled_matches_reference_f32() {
    for sh in [shape(2, 4, 2, 33, 100, 32), shape(2, 2, 1, 130, 67, 64)] {
        compare::<f32>(sh, 2e-5);
    }
}

/// Rows with no allowed key: exactly 0 output, lse -inf, exactly 0 gradient, in both kernels.
#[test]
fn fully_masked_rows_are_exact_zeros() {
    let sh = shape(3, 2, 1, 9, 6, 4);
    let owned = Owned::<f64>::new(sh, 3);
    // Padding: batch row 1 has length 0. Bool: query row 1 of every head is masked.
    // Causal with nq > nk: the first 3 queries see nothing.
    for kind in [Kind::Padding, Kind::Bool, Kind::Causal] {
        let p = owned.problem(kind);
        let dout: Vec<f64> = values(sh.q_elems(), 9);
        for (f, g) in [
            (
                reference::forward(&p).unwrap(),
                reference::backward(&p, &dout, false).unwrap(),
            ),
            {
                let f = tiled::forward(&p).unwrap();
                let g = tiled::backward(&p, &f.out, &f.lse, &dout, false).unwrap();
                (f, g)
            },
        ] {
            let mut masked_rows = 0;
            for bh in 0..sh.batch * sh.heads {
                for i in 0..sh.q_len {
                    let any =
                        (0..sh.kv_len).any(|j| p.mask.allowed(bh / sh.heads, bh % sh.heads, i, j, 9, 6));
                    if any {
                        continue;
                    }
                    masked_rows += 1;
                    let r = bh * sh.q_len + i;
                    assert_eq!(f.lse[r], f64::NEG_INFINITY);
                    assert!(f.out[r * 4..][..4].iter().all(|&x| x == 0.0), "{kind:?}");
                    assert!(g.dq[r * 4..][..4].iter().all(|&x| x == 0.0), "{kind:?}");
                }
            }
            assert!(masked_rows > 0, "{kind:?} has no fully masked row");
            assert!(g.dk.iter().chain(&g.dv).all(|x| x.is_finite()));
        }
    }
    // No key at all: every output 0, every gradient 0.
    let empty = Owned::<f64>::new(shape(1, 2, 1, 3, 0, 4), 1);
    let p = empty.problem(Kind::None);
    let f = tiled::forward(&p).unwrap();
    assert!(f.out.iter().all(|&x| x == 0.0) && f.lse.iter().all(|&x| x == f64::NEG_INFINITY));
    let g = tiled::backward(&p, &f.out, &f.lse, &values(sh.q_elems(), 1)[..6 * 4], false).unwrap();
    assert!(g.dq.iter().all(|&x| x == 0.0) && g.dk.is_empty());
}

/// The reference backward (which the tiled one is compared with) against central differences
/// of `⟨out, w⟩` in f64, for every mask kind, including q, k, v and the bias.
#[test]
fn reference_backward_matches_finite_differences() {
    let sh = shape(2, 2, 1, 4, 5, 3);
    let base = Owned::<f64>::new(sh, 21);
    let w: Vec<f64> = values(sh.q_elems(), 4);
    let h = 1e-6;
    for kind in KINDS {
        let g = reference::backward(&base.problem(kind), &w, true).unwrap();
        let project = |o: &Owned<f64>| -> f64 {
            let f = reference::forward(&o.problem(kind)).unwrap();
            f.out.iter().zip(&w).map(|(a, b)| a * b).sum()
        };
        for which in 0..4 {
            let analytic = match which {
                0 => &g.dq,
                1 => &g.dk,
                2 => &g.dv,
                _ => match &g.dbias {
                    Some(db) => db,
                    None => continue,
                },
            };
            for e in 0..analytic.len() {
                let bump = |delta: f64| {
                    let mut o = Owned::<f64>::new(sh, 21);
                    let x = match which {
                        0 => &mut o.q,
                        1 => &mut o.k,
                        2 => &mut o.v,
                        _ => &mut o.bias,
                    };
                    x[e] += delta;
                    project(&o)
                };
                let numeric = (bump(h) - bump(-h)) / (2.0 * h);
                let err = (numeric - analytic[e]).abs();
                assert!(
                    err < 1e-7 + 1e-6 * numeric.abs(),
                    "{kind:?} input {which} element {e}: {numeric} vs {}",
                    analytic[e]
                );
            }
        }
    }
}

#[test]
fn validation_errors() {
    let o = Owned::<f32>::new(shape(2, 4, 2, 3, 5, 8), 1);
    let mut p = o.problem(Kind::None);
    p.shape.kv_heads = 3;
    assert!(matches!(
        tiled::forward(&p),
        Err(AttentionError::Heads {
            heads: 4,
            kv_heads: 3
        })
    ));
    let mut p = o.problem(Kind::None);
    p.shape.head_dim = 4;
    assert!(matches!(
        tiled::forward(&p),
        Err(AttentionError::Length { what: "q", .. })
    ));
    let lens = [6usize, 1];
    let mut p = o.problem(Kind::None);
    p.mask.key_lengths = Some(&lens);
    assert!(matches!(
        reference::forward(&p),
        Err(AttentionError::KeyLengths { .. })
    ));
    p.mask.key_lengths = Some(&lens[..1]);
    assert!(matches!(
        reference::forward(&p),
        Err(AttentionError::KeyLengths { .. })
    ));
    let mut p = o.problem(Kind::Bool);
    p.mask.bool_mask.as_mut().unwrap().strides[1] = 1;
    assert!(matches!(
        tiled::forward(&p),
        Err(AttentionError::Strided {
            what: "boolean mask",
            ..
        })
    ));
    let p = o.problem(Kind::None);
    let f = tiled::forward(&p).unwrap();
    let e = tiled::backward(&p, &f.out, &f.lse[1..], &f.out, false).unwrap_err();
    assert_eq!(e.to_string(), "lse has 23 elements, the shape needs 24");
}

/// Tile skipping pays: a causal square problem computes about half the tiles. Checked through
/// the classification itself (timing is the benchmark's job).
#[test]
fn causal_skips_about_half_the_tiles() {
    let (n, m) = (1024, Mask::causal());
    let (mut computed, mut total) = (0, 0);
    for i0 in (0..n).step_by(tiled::QT) {
        for j0 in (0..n).step_by(tiled::KT) {
            total += 1;
            if j0 < m.key_end(0, (i0, i0 + tiled::QT), n, n) {
                computed += 1;
            }
        }
    }
    assert_eq!(computed * 2, total + n / tiled::QT);
}
