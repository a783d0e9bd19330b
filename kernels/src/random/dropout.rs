//! Dropout on Philox bits (steps 5 of the contract in `random/mod.rs`). The mask is never
//! stored: forward and backward both recompute it from `(seed, offset, p)`, and since the
//! gradient of `x ↦ mask·scale·x` is `g ↦ mask·scale·g`, [`apply`] serves both.

use super::philox::{bits24, fill_with};
use crate::Float;

/// The integer threshold on the top 24 bits: element kept iff `bits24 >= keep_threshold(p)`.
/// `ceil(p · 2^24)` is exact in f64 (a power-of-two scaling), so this equals `u >= p` for the
/// uniform `u = bits24 · 2^-24`. `p` must lie in `[0, 1]`; callers validate it.
pub fn keep_threshold(p: f64) -> u32 {
    assert!(
        (0.0..=1.0).contains(&p),
        "dropout p = {p} outside [0, 1]: callers validate it"
    );
    (p * (1u64 << 24) as f64).ceil() as u32
}

/// The factor kept elements are multiplied by, `1 / (1 - p)` rounded once to `T`; 0 for
/// `p = 1`, where nothing is kept and the infinite factor would never be used.
pub fn keep_scale<T: Float>(p: f64) -> T {
    if p >= 1.0 {
        T::ZERO
    } else {
        T::from_f64(1.0 / (1.0 - p))
    }
}

/// The keep mask for `n` elements: 1 where kept, 0 where dropped.
pub fn keep_mask(seed: u64, offset: u64, p: f64, n: usize) -> Vec<u8> {
    let t = keep_threshold(p);
    let mut out = vec![0u8; n];
    fill_with(seed, offset, &mut out, |_, w| (bits24(w) >= t) as u8);
    out
}

/// `x[i] · scale` where element `i` is kept, exactly 0 where it is dropped.
pub fn apply<T: Float>(x: &[T], seed: u64, offset: u64, p: f64) -> Vec<T> {
    let t = keep_threshold(p);
    let scale: T = keep_scale(p);
    let mut out = vec![T::ZERO; x.len()];
    fill_with(seed, offset, &mut out, |i, w| {
        if bits24(w) >= t {
            x[i] * scale
        } else {
            T::ZERO
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::super::philox::uniform_f32;
    use super::*;

    #[test]
    fn threshold_matches_the_uniform_comparison() {
        assert_eq!(keep_threshold(0.0), 0);
        assert_eq!(keep_threshold(1.0), 1 << 24);
        assert_eq!(keep_threshold(0.5), 1 << 23);
        // Just above a multiple of 2^-24 rounds the threshold up.
        assert_eq!(keep_threshold(0.5 + 1e-12), (1 << 23) + 1);
        for &p in &[0.0, 0.1, 0.3, 0.5, 0.77, 1.0] {
            let mask = keep_mask(9, 3, p, 1000);
            for (i, &m) in mask.iter().enumerate() {
                let u = uniform_f32(9, 3, i as u64) as f64;
                assert_eq!(m == 1, u >= p, "p {p} element {i}");
            }
        }
    }

    #[test]
    fn apply_scales_kept_and_zeroes_dropped() {
        let x: Vec<f64> = (0..103).map(|i| i as f64 - 50.0).collect();
        let y = apply(&x, 5, 0, 0.25);
        let mask = keep_mask(5, 0, 0.25, x.len());
        for i in 0..x.len() {
            // The contract multiplies by the rounded factor; x / 0.75 can differ in the last bit.
            let expected = if mask[i] == 1 { x[i] * (1.0 / 0.75) } else { 0.0 };
            assert_eq!(y[i], expected);
        }
        assert_eq!(apply(&x, 5, 0, 0.0), x);
        let dropped_inf = apply(&[f32::INFINITY; 8], 1, 0, 1.0);
        assert_eq!(dropped_inf, vec![0.0; 8], "p = 1 writes zeros, even over inf");
    }
}
