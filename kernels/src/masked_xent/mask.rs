//! Which classes of which row take part in a masked softmax or cross-entropy.
//!
//! Three encodings, because the methods that need masks describe them in three ways:
//! * `Dense`: one byte per (row, class), as a boolean tensor would hold it. General, and the
//!   most expensive: it is read alongside the logits (1 byte per element next to 2 or 4).
//! * `Ranges`: one half-open range `[lo, hi)` of allowed classes per row: the per-task class
//!   blocks of task-incremental learning ([369]). Costs 8 bytes per row.
//! * `Bitset`: one bit per (row, class) in u64 words: arbitrary per-instance class sets ([52])
//!   at 1/8 byte per element.
//!
//! Every encoding holds either one row per batch row or a single row that applies to every row
//! (a `[C]` mask broadcast over the batch). `true` / a set bit means the class is *allowed*
//! (takes part), as `jax.nn.softmax(x, where=...)`; it is the opposite of the mask given to
//! PyTorch's `masked_fill`, which marks what is filled.
//!
//! The data sits behind `Arc`s so that a mask is cheap to clone into a tape's backward closure.

use std::sync::Arc;

/// An allowed-class range `[lo, hi)`; `#[repr(C)]` so a buffer of them is the CUDA kernel's
/// `uint2` array unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct ClassRange {
    pub lo: u32,
    pub hi: u32,
}

/// Which classes take part, per row. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClassMask {
    /// Every class takes part: the plain (unmasked) softmax and cross-entropy.
    #[default]
    All,
    /// `allowed[r * classes + c] != 0` when class c of mask row r takes part.
    Dense {
        allowed: Arc<[u8]>,
        rows: usize,
        classes: usize,
    },
    /// Row r allows exactly the classes in `ranges[r]` (an empty range allows none).
    Ranges(Arc<[ClassRange]>),
    /// Bit `c % 64` of word `r * words + c / 64` is set when class c of mask row r takes part.
    /// `words` must be at least `ceil(C / 64)`; bits at or above C are ignored.
    Bitset { bits: Arc<[u64]>, words: usize },
}

/// One row of a [`ClassMask`], borrowed: what the row loops use, so the choice of encoding is
/// made once per row (or chunk), never per element.
#[derive(Clone, Copy, Debug)]
pub enum RowMask<'a> {
    All,
    /// The row's bytes, `classes` long.
    Dense(&'a [u8]),
    Range(usize, usize),
    /// The row's words.
    Bits(&'a [u64]),
}

impl ClassMask {
    /// A dense mask from booleans, `rows * classes` of them (`rows == 1` broadcasts).
    pub fn dense(allowed: &[bool], rows: usize, classes: usize) -> ClassMask {
        assert_eq!(
            allowed.len(),
            rows * classes,
            "ClassMask::dense: rows * classes booleans"
        );
        ClassMask::Dense {
            allowed: allowed.iter().map(|&a| a as u8).collect(),
            rows,
            classes,
        }
    }

    /// Per-row `[lo, hi)` ranges (one range broadcasts). Bounds are checked by [`Self::check`].
    pub fn ranges(ranges: &[(usize, usize)]) -> ClassMask {
        let to_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        ClassMask::Ranges(
            ranges
                .iter()
                .map(|&(lo, hi)| ClassRange {
                    lo: to_u32(lo),
                    hi: to_u32(hi),
                })
                .collect(),
        )
    }

    /// A bitset with the listed classes allowed, one list per row (one list broadcasts).
    /// Classes at or above `classes` are a caller bug and panic.
    pub fn from_class_lists<S: AsRef<[usize]>>(classes: usize, rows: &[S]) -> ClassMask {
        let words = classes.div_ceil(64).max(1);
        let mut bits = vec![0u64; rows.len() * words];
        for (r, list) in rows.iter().enumerate() {
            for &c in list.as_ref() {
                assert!(
                    c < classes,
                    "ClassMask::from_class_lists: class {c} of row {r} >= {classes}"
                );
                bits[r * words + c / 64] |= 1 << (c % 64);
            }
        }
        ClassMask::Bitset {
            bits: bits.into(),
            words,
        }
    }

    /// How many mask rows there are (1 for a broadcast mask, and for `All`).
    pub fn mask_rows(&self) -> usize {
        match self {
            ClassMask::All => 1,
            ClassMask::Dense { rows, .. } => *rows,
            ClassMask::Ranges(r) => r.len(),
            ClassMask::Bitset { bits, words } => bits.len() / (*words).max(1),
        }
    }

    /// Whether this mask fits logits of `[rows, classes]`; the reason when it does not.
    pub fn check(&self, rows: usize, classes: usize) -> Result<(), String> {
        let mask_rows = self.mask_rows();
        if !matches!(self, ClassMask::All) && mask_rows != 1 && mask_rows != rows {
            return Err(format!(
                "the mask has {mask_rows} rows; expected 1 (broadcast) or one per logits row ({rows})"
            ));
        }
        match self {
            ClassMask::All => Ok(()),
            ClassMask::Dense {
                classes: c,
                allowed,
                rows: r,
            } => {
                if *c != classes || allowed.len() != r * c {
                    return Err(format!(
                        "a dense mask of {r} x {c} ({} bytes) does not fit {classes} classes",
                        allowed.len()
                    ));
                }
                Ok(())
            }
            ClassMask::Ranges(ranges) => match ranges
                .iter()
                .enumerate()
                .find(|(_, r)| r.lo > r.hi || r.hi as usize > classes)
            {
                Some((i, r)) => Err(format!(
                    "mask range {i} is [{}, {}), not within [0, {classes}]",
                    r.lo, r.hi
                )),
                None => Ok(()),
            },
            ClassMask::Bitset { bits, words } => {
                if *words < classes.div_ceil(64) || *words == 0 || bits.len() % words != 0 {
                    return Err(format!(
                        "a bitset of {} words in rows of {words} does not cover {classes} classes",
                        bits.len()
                    ));
                }
                Ok(())
            }
        }
    }

    /// The mask of logits row `r` (a broadcast mask gives its one row for every `r`). The mask
    /// must have passed [`Self::check`].
    #[inline]
    pub fn row(&self, r: usize) -> RowMask<'_> {
        match self {
            ClassMask::All => RowMask::All,
            ClassMask::Dense {
                allowed,
                rows,
                classes,
            } => {
                let r = if *rows == 1 { 0 } else { r };
                RowMask::Dense(&allowed[r * classes..(r + 1) * classes])
            }
            ClassMask::Ranges(ranges) => {
                let range = ranges[if ranges.len() == 1 { 0 } else { r }];
                RowMask::Range(range.lo as usize, range.hi as usize)
            }
            ClassMask::Bitset { bits, words } => {
                let r = if bits.len() == *words { 0 } else { r };
                RowMask::Bits(&bits[r * words..(r + 1) * words])
            }
        }
    }

    /// Whether class `c` of logits row `r` takes part.
    pub fn allowed(&self, r: usize, c: usize) -> bool {
        self.row(r).allowed(c)
    }
}

impl RowMask<'_> {
    #[inline(always)]
    pub fn allowed(&self, c: usize) -> bool {
        match *self {
            RowMask::All => true,
            RowMask::Dense(a) => a[c] != 0,
            RowMask::Range(lo, hi) => lo <= c && c < hi,
            RowMask::Bits(w) => (w[c / 64] >> (c % 64)) & 1 == 1,
        }
    }

    /// How many of the first `classes` classes take part.
    pub fn count(&self, classes: usize) -> usize {
        match *self {
            RowMask::All => classes,
            RowMask::Dense(a) => a.iter().filter(|&&b| b != 0).count(),
            RowMask::Range(lo, hi) => hi.min(classes).saturating_sub(lo),
            RowMask::Bits(w) => {
                let full = classes / 64;
                let mut n: usize = w[..full].iter().map(|x| x.count_ones() as usize).sum();
                if !classes.is_multiple_of(64) {
                    n += (w[full] & ((1u64 << (classes % 64)) - 1)).count_ones() as usize;
                }
                n
            }
        }
    }

    /// Write `value` over the masked entries of `out`, which holds classes `start..start + len`.
    /// The loops are per encoding, so `All` costs nothing and `Range` two `fill`s.
    #[inline]
    pub fn fill_masked<T: Copy>(&self, start: usize, out: &mut [T], value: T) {
        match *self {
            RowMask::All => {}
            RowMask::Dense(a) => {
                let n = out.len();
                for (o, &b) in out.iter_mut().zip(&a[start..start + n]) {
                    if b == 0 {
                        *o = value;
                    }
                }
            }
            RowMask::Range(lo, hi) => {
                let end = start + out.len();
                let a = lo.clamp(start, end) - start;
                let b = hi.clamp(start, end) - start;
                if a < b {
                    out[..a].fill(value);
                    out[b..].fill(value);
                } else {
                    out.fill(value);
                }
            }
            RowMask::Bits(w) => {
                for (i, o) in out.iter_mut().enumerate() {
                    let c = start + i;
                    if (w[c / 64] >> (c % 64)) & 1 == 0 {
                        *o = value;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same set of allowed classes in all three encodings (and `All`).
    #[test]
    fn encodings_agree() {
        let classes = 70;
        let rows: [Vec<usize>; 3] = [(3..9).collect(), vec![], (0..70).collect()];
        let bits = ClassMask::from_class_lists(classes, &rows);
        let mut dense = vec![false; 3 * classes];
        for (r, list) in rows.iter().enumerate() {
            for &c in list {
                dense[r * classes + c] = true;
            }
        }
        let dense = ClassMask::dense(&dense, 3, classes);
        let ranges = ClassMask::ranges(&[(3, 9), (5, 5), (0, 70)]);
        for m in [&bits, &dense, &ranges] {
            m.check(3, classes).unwrap();
            for (r, list) in rows.iter().enumerate() {
                assert_eq!(m.row(r).count(classes), list.len());
                for c in 0..classes {
                    assert_eq!(m.allowed(r, c), list.contains(&c), "{m:?} row {r} class {c}");
                }
                let mut out = vec![1.0f32; 30];
                m.row(r).fill_masked(40, &mut out, -5.0);
                for (i, &v) in out.iter().enumerate() {
                    assert_eq!(v == 1.0, list.contains(&(40 + i)));
                }
            }
        }
        assert!(ClassMask::All.allowed(7, 1000));
        assert_eq!(ClassMask::All.row(0).count(9), 9);
    }

    #[test]
    fn broadcast_and_bad_shapes() {
        let one = ClassMask::ranges(&[(1, 3)]);
        one.check(10, 4).unwrap();
        assert!(one.allowed(9, 2) && !one.allowed(9, 3));
        assert!(ClassMask::ranges(&[(1, 5)])
            .check(1, 4)
            .unwrap_err()
            .contains("[1, 5)"));
        assert!(ClassMask::ranges(&[(3, 2)]).check(1, 4).is_err());
        assert!(ClassMask::ranges(&[(0, 1), (0, 1)])
            .check(3, 4)
            .unwrap_err()
            .contains("2 rows"));
        let d = ClassMask::dense(&[true, false], 1, 2);
        assert!(d.check(5, 3).is_err());
        d.check(5, 2).unwrap();
        let b = ClassMask::Bitset {
            bits: vec![u64::MAX].into(),
            words: 1,
        };
        assert!(b.check(2, 65).is_err());
        b.check(2, 64).unwrap();
        // Bits at or above C are ignored.
        assert_eq!(b.row(1).count(10), 10);
    }
}
