//! Which (query, key) pairs may attend, and an optional additive bias on the logits.
//!
//! A [`Mask`] is the AND of up to four constraints, each optional:
//!
//! * **causal**, bottom-right aligned: query `i` may see key `j` iff `j <= i + (nk - nq)`. For
//!   `nq == nk` this is the usual lower triangle. For `nq < nk` (decoding with a KV cache) the
//!   last query sees every key; for `nq > nk` the first `nq - nk` queries see no key at all and
//!   are fully masked rows. This is FlashAttention's convention (>= 2.1), and PyTorch's
//!   `CausalBias(..., lower_right)`; note that `torch.nn.functional.scaled_dot_product_attention`
//!   with `is_causal=True` aligns top-left instead (they agree when `nq == nk`).
//! * **diagonal**: query `i` may not see key `i + (nk - nq)`, its own position (SAITS's
//!   "diagonally masked" self-attention). Same alignment as causal, so causal + diagonal is the
//!   strict lower triangle.
//! * **key padding**: batch row `b` has `lengths[b]` valid keys; keys `j >= lengths[b]` are masked.
//! * **boolean**: an arbitrary `u8` mask read through strides over `[B, H, nq, nk]` (stride 0 on a
//!   broadcast dimension); nonzero means "may attend", as in PyTorch's SDPA and JAX's
//!   `dot_product_attention`.
//!
//! Why a struct of constraints rather than one enum variant per kind: real models combine them
//! (causal + key padding in any padded decoder batch), and the AND of structured constraints
//! keeps the cheap tile classification that a dense boolean mask would lose.
//!
//! Tile classification ([`Mask::classify`]) is what lets the tiled CPU kernel and the CUDA kernels
//! skip work: an `Empty` tile contributes nothing and is not computed; a `Full` tile needs no
//! per-element test; a `Partial` tile tests every element. Classification is conservative: a
//! tile it calls `Partial` may happen to be full or empty (a boolean mask is always `Partial`).

/// A `u8` mask read as `data[offset + b*s[0] + h*s[1] + i*s[2] + j*s[3]]`; nonzero = attend.
#[derive(Clone, Copy, Debug)]
pub struct BoolMask<'a> {
    pub data: &'a [u8],
    pub strides: [usize; 4],
    pub offset: usize,
}

/// An additive bias on the logits, read like [`BoolMask`] (broadcast dimensions have stride 0).
/// Its gradient is written through the same strides into a buffer of the bias's own layout, so
/// broadcast dimensions are summed over.
#[derive(Clone, Copy, Debug)]
pub struct Bias<'a, T> {
    pub data: &'a [T],
    pub strides: [usize; 4],
    pub offset: usize,
}

impl<T: Copy> Bias<'_, T> {
    #[inline]
    pub fn at(&self, b: usize, h: usize, i: usize, j: usize) -> T {
        let s = self.strides;
        self.data[self.offset + b * s[0] + h * s[1] + i * s[2] + j * s[3]]
    }

    /// Index of element (b, h, i, j) in the bias buffer.
    #[inline]
    pub fn index(&self, b: usize, h: usize, i: usize, j: usize) -> usize {
        let s = self.strides;
        self.offset + b * s[0] + h * s[1] + i * s[2] + j * s[3]
    }
}

/// The AND of the constraints that are set; `Mask::default()` lets everything attend.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mask<'a> {
    pub causal: bool,
    pub diagonal: bool,
    /// One valid-key count per batch row.
    pub key_lengths: Option<&'a [usize]>,
    pub bool_mask: Option<BoolMask<'a>>,
}

/// How a rectangle of (query, key) pairs is masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileKind {
    /// Every pair may attend: no per-element test needed.
    Full,
    /// Some pairs may be masked: test each element.
    Partial,
    /// No pair may attend: skip the tile.
    Empty,
}

impl TileKind {
    /// The kind of a tile that satisfies two constraints at once.
    fn and(self, other: TileKind) -> TileKind {
        match (self, other) {
            (TileKind::Empty, _) | (_, TileKind::Empty) => TileKind::Empty,
            (TileKind::Full, TileKind::Full) => TileKind::Full,
            _ => TileKind::Partial,
        }
    }
}

impl<'a> Mask<'a> {
    pub const NONE: Mask<'static> = Mask {
        causal: false,
        diagonal: false,
        key_lengths: None,
        bool_mask: None,
    };

    pub fn causal() -> Mask<'a> {
        Mask {
            causal: true,
            ..Mask::NONE
        }
    }

    pub fn diagonal() -> Mask<'a> {
        Mask {
            diagonal: true,
            ..Mask::NONE
        }
    }

    pub fn key_padding(lengths: &'a [usize]) -> Mask<'a> {
        Mask {
            key_lengths: Some(lengths),
            ..Mask::NONE
        }
    }

    pub fn boolean(mask: BoolMask<'a>) -> Mask<'a> {
        Mask {
            bool_mask: Some(mask),
            ..Mask::NONE
        }
    }

    /// Whether query `i` of head (b, h) may attend to key `j`, for `nq` queries and `nk` keys.
    #[inline]
    pub fn allowed(&self, b: usize, h: usize, i: usize, j: usize, nq: usize, nk: usize) -> bool {
        // Bottom-right alignment: key j is "at" query position j - (nk - nq).
        let pos = i as isize + nk as isize - nq as isize;
        if self.causal && j as isize > pos {
            return false;
        }
        if self.diagonal && j as isize == pos {
            return false;
        }
        if let Some(len) = self.key_lengths {
            if j >= len[b] {
                return false;
            }
        }
        if let Some(m) = &self.bool_mask {
            let s = m.strides;
            if m.data[m.offset + b * s[0] + h * s[1] + i * s[2] + j * s[3]] == 0 {
                return false;
            }
        }
        true
    }

    /// Classify queries `i0..i1` against keys `j0..j1` of batch row `b` (non-empty ranges).
    pub fn classify(
        &self,
        b: usize,
        rows: (usize, usize),
        cols: (usize, usize),
        nq: usize,
        nk: usize,
    ) -> TileKind {
        let ((i0, i1), (j0, j1)) = (rows, cols);
        debug_assert!(i0 < i1 && j0 < j1);
        let shift = nk as isize - nq as isize;
        // Positions of the first and last query in key coordinates.
        let (p0, p1) = (i0 as isize + shift, i1 as isize - 1 + shift);
        let (j0, j1) = (j0 as isize, j1 as isize);
        let mut kind = TileKind::Full;
        if self.causal {
            kind = kind.and(if j1 - 1 <= p0 {
                TileKind::Full
            } else if j0 > p1 {
                TileKind::Empty
            } else {
                TileKind::Partial
            });
        }
        // The diagonal crosses the tile iff the query positions [p0, p1] meet the keys [j0, j1).
        if self.diagonal && p0 < j1 && p1 >= j0 {
            kind = kind.and(TileKind::Partial);
        }
        if let Some(len) = self.key_lengths {
            let len = len[b] as isize;
            kind = kind.and(if j1 <= len {
                TileKind::Full
            } else if j0 >= len {
                TileKind::Empty
            } else {
                TileKind::Partial
            });
        }
        if self.bool_mask.is_some() {
            kind = kind.and(TileKind::Partial);
        }
        kind
    }

    /// The keys `0..end` beyond which no query of `i0..i1` may attend (causal and padding
    /// bounds); loops over key tiles stop there instead of classifying empty tiles one by one.
    pub fn key_end(&self, b: usize, rows: (usize, usize), nq: usize, nk: usize) -> usize {
        let mut end = nk;
        if self.causal {
            let last = rows.1 as isize - 1 + nk as isize - nq as isize;
            end = end.min((last + 1).max(0) as usize);
        }
        if let Some(len) = self.key_lengths {
            end = end.min(len[b]);
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: the classification is never wrong (Full means all allowed, Empty none).
    #[test]
    fn classification_agrees_with_allowed() {
        let lens = [5usize, 0, 9];
        let bm: Vec<u8> = (0..7 * 9).map(|x| (x % 3 != 0) as u8).collect();
        let bool_mask = BoolMask {
            data: &bm,
            strides: [0, 0, 9, 1],
            offset: 0,
        };
        for (nq, nk) in [(7, 9), (9, 7), (8, 8), (1, 9), (7, 1)] {
            for causal in [false, true] {
                for diagonal in [false, true] {
                    for pad in [false, true] {
                        for with_bool in [false, true] {
                            if with_bool && (nq, nk) != (7, 9) {
                                continue;
                            }
                            let mask = Mask {
                                causal,
                                diagonal,
                                key_lengths: pad.then_some(&lens[..]),
                                bool_mask: with_bool.then_some(bool_mask),
                            };
                            check_all_tiles(&mask, nq, nk);
                        }
                    }
                }
            }
        }
    }

    fn check_all_tiles(mask: &Mask, nq: usize, nk: usize) {
        for b in 0..3 {
            for (bi, bj) in [(1, 1), (2, 3), (4, 4), (3, 2)] {
                for i0 in (0..nq).step_by(bi) {
                    for j0 in (0..nk).step_by(bj) {
                        let (i1, j1) = ((i0 + bi).min(nq), (j0 + bj).min(nk));
                        let kind = mask.classify(b, (i0, i1), (j0, j1), nq, nk);
                        let all: Vec<bool> = (i0..i1)
                            .flat_map(|i| (j0..j1).map(move |j| (i, j)))
                            .map(|(i, j)| mask.allowed(b, 0, i, j, nq, nk))
                            .collect();
                        match kind {
                            TileKind::Full => assert!(all.iter().all(|&a| a), "{mask:?} {b} {i0} {j0}"),
                            TileKind::Empty => assert!(all.iter().all(|&a| !a), "{mask:?} {b} {i0} {j0}"),
                            TileKind::Partial => {}
                        }
                        if kind != TileKind::Empty {
                            assert!(j0 < mask.key_end(b, (i0, i1), nq, nk) || all.iter().all(|&a| !a));
                        }
                        let end = mask.key_end(b, (i0, i1), nq, nk);
                        for i in i0..i1 {
                            for j in end..nk {
                                assert!(!mask.allowed(b, 0, i, j, nq, nk), "key_end {end} too small");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn alignment_conventions() {
        // nq = 2 queries at the end of nk = 4 keys: query 0 sits at key position 2.
        let m = Mask::causal();
        let row0: Vec<bool> = (0..4).map(|j| m.allowed(0, 0, 0, j, 2, 4)).collect();
        assert_eq!(row0, [true, true, true, false]);
        // nq = 4 > nk = 2: queries 0 and 1 see nothing (fully masked rows).
        assert!((0..2).all(|j| !m.allowed(0, 0, 1, j, 4, 2)));
        assert!(m.allowed(0, 0, 2, 0, 4, 2));
        let d = Mask::diagonal();
        assert!(!d.allowed(0, 0, 3, 3, 4, 4) && d.allowed(0, 0, 3, 2, 4, 4));
        assert!(!d.allowed(0, 0, 0, 2, 2, 4));
    }
}
