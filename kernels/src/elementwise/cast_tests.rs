//! The conversion contract of `cast.rs`, edge case by edge case, and against independent
//! references: Rust's `as` (correctly rounded f64 -> f32 and i64 -> float, saturating float ->
//! i64), the `half` crate for f32 -> bf16/f16 and for widening, and a brute-force nearest
//! search for f64 -> bf16/f16.

use super::{cast_bits, CastType};
use half::{bf16, f16};
use CastType::*;

fn f64_to_bf16(x: f64) -> u16 {
    cast_bits(F64, BF16, x.to_bits()) as u16
}
fn f64_to_f16(x: f64) -> u16 {
    cast_bits(F64, F16, x.to_bits()) as u16
}
fn f32_to(to: CastType, x: f32) -> u64 {
    cast_bits(F32, to, x.to_bits() as u64)
}

/// A fixed-seed xorshift, so the random checks are reproducible without a rand dependency.
struct Bits(u64);
impl Bits {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn halfway_values_round_to_even() {
    // bf16 has 8 significant bits: between 1 and 1 + 2^-7 the halfway point is 1 + 2^-8.
    assert_eq!(
        f32_to(BF16, 1.0 + 2f32.powi(-8)),
        0x3f80,
        "tie goes down to the even 1.0"
    );
    assert_eq!(
        f32_to(BF16, 1.0 + 3.0 * 2f32.powi(-8)),
        0x3f82,
        "tie goes up to the even"
    );
    assert_eq!(
        f32_to(BF16, 1.0 + 2f32.powi(-8) + 2f32.powi(-20)),
        0x3f81,
        "above the tie"
    );
    // f16 has 11 significant bits.
    assert_eq!(f32_to(F16, 1.0 + 2f32.powi(-11)), 0x3c00);
    assert_eq!(f32_to(F16, 1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
    // The sticky bits below the top 32 of an f64 count: just above a bf16 tie rounds up (the
    // old `half::bf16::from_f64` path looked only at the top 32 bits and rounded down).
    let above_tie = 1.0 + 2f64.powi(-8) + 2f64.powi(-40);
    assert_eq!(f64_to_bf16(above_tie), 0x3f81);
    assert_eq!(f64_to_f16(1.0 + 2f64.powi(-11) + 2f64.powi(-40)), 0x3c01);
    // One rounding, not two through f32: this f64 rounds to an f32 tie of f16, which would
    // then go down to even; rounded once it goes up.
    let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-30);
    assert_eq!(((x as f32) as f64), 1.0 + 2f64.powi(-11));
    assert_eq!(f64_to_f16(x), 0x3c01);
}

#[test]
fn nan_stays_nan_with_sign_and_payload_top_bits() {
    assert_eq!(f32_to(BF16, f32::NAN), 0x7fc0);
    assert_eq!(f32_to(F16, f32::NAN), 0x7e00);
    assert_eq!(f32_to(F64, f32::NAN), f64::NAN.to_bits());
    assert_eq!(f32_to(F32, -f32::NAN), (-f32::NAN).to_bits() as u64);
    // A signalling NaN whose payload lives only in low bits still comes out a NaN (quiet).
    let snan = f32::from_bits(0xff80_0001);
    assert_eq!(f32_to(BF16, snan), 0xffc0);
    assert_eq!(f32_to(F16, snan), 0xfe00);
    // Payload top bits kept: f64 -> f32 as x86's cvtsd2ss and ARM's fcvt do.
    let payload = f64::from_bits(0x7ff4_0000_0000_0000 | (0b101 << 45));
    assert_eq!(
        cast_bits(F64, F32, payload.to_bits()),
        0x7fe0_0000 | (0b101 << 16)
    );
    assert_eq!(cast_bits(BF16, F32, 0x7fa1), 0x7fe1_0000);
    assert_eq!(cast_bits(F16, F64, 0xfd01), 0xfff8_0000_0000_0000 | (0x101 << 42));
    assert_eq!(f32_to(I64, f32::NAN), 0);
    assert_eq!(f32_to(Bool, f32::NAN), 1);
}

#[test]
fn infinities_and_overflow() {
    assert_eq!(f32_to(BF16, f32::INFINITY), 0x7f80);
    assert_eq!(f32_to(F16, f32::NEG_INFINITY), 0xfc00);
    assert_eq!(f32_to(F16, 65504.0), 0x7bff, "largest finite f16");
    assert_eq!(f32_to(F16, 65519.99), 0x7bff, "below max + half an ulp");
    assert_eq!(
        f32_to(F16, 65520.0),
        0x7c00,
        "max + half an ulp is a tie that goes to inf"
    );
    assert_eq!(f32_to(F16, -1e6), 0xfc00);
    assert_eq!(
        f32_to(BF16, f32::MAX),
        0x7f80,
        "f32::MAX rounds past bf16's largest finite"
    );
    assert_eq!(f64_to_bf16(1e300), 0x7f80);
    assert_eq!(
        cast_bits(F64, F32, (-1e300f64).to_bits()),
        f32::NEG_INFINITY.to_bits() as u64
    );
    assert_eq!(f32_to(I64, f32::INFINITY), i64::MAX as u64);
    assert_eq!(f32_to(I64, -1e30), i64::MIN as u64);
    assert_eq!(cast_bits(F64, I64, 9.3e18f64.to_bits()), i64::MAX as u64);
    assert_eq!(cast_bits(F64, I64, (-2f64.powi(63)).to_bits()), i64::MIN as u64);
    assert_eq!(
        cast_bits(F64, I64, (-2.9f64).to_bits()),
        -2i64 as u64,
        "toward zero"
    );
}

#[test]
fn subnormals_are_kept_not_flushed() {
    // The smallest f16 subnormal is 2^-24; half of it ties to 0, a bit more rounds up.
    assert_eq!(f32_to(F16, 2f32.powi(-24)), 0x0001);
    assert_eq!(f32_to(F16, 2f32.powi(-25)), 0x0000);
    assert_eq!(f32_to(F16, -2f32.powi(-25) * 1.5), 0x8001);
    assert_eq!(f32_to(F16, -1e-30), 0x8000, "underflow keeps the sign");
    assert_eq!(
        f32_to(F16, 6.0e-5),
        0x03ef,
        "a mid subnormal: 6e-5 / 2^-24 = 1006.6 -> 1007"
    );
    // Rounding up out of the subnormals gives the smallest normal, 2^-14.
    assert_eq!(f32_to(F16, 2f32.powi(-14) - 2f32.powi(-26)), 0x0400);
    // f32 subnormals: the smallest (2^-149) widens exactly and narrows to a bf16 subnormal.
    let tiny = f32::from_bits(1);
    assert_eq!(f32_to(F64, tiny), 2f64.powi(-149).to_bits());
    assert_eq!(
        f32_to(BF16, tiny),
        0x0000,
        "2^-149 is below half of bf16's 2^-133"
    );
    assert_eq!(
        f32_to(BF16, f32::from_bits(0x0001_8000)),
        0x0002,
        "tie to even, upwards"
    );
    assert_eq!(cast_bits(F64, F32, 2f64.powi(-149).to_bits()), 1);
    assert_eq!(cast_bits(F64, F32, 2f64.powi(-150).to_bits()), 0, "tie to even 0");
    assert_eq!(cast_bits(F64, F32, (2f64.powi(-150) * 1.000001).to_bits()), 1);
    assert_eq!(
        cast_bits(F64, BF16, f64::from_bits(1).to_bits()),
        0,
        "f64 subnormal"
    );
    // bf16 / f16 subnormals widen exactly.
    assert_eq!(cast_bits(F16, F32, 0x0001), 2f32.powi(-24).to_bits() as u64);
    assert_eq!(cast_bits(BF16, F64, 0x8001), (-2f64.powi(-133)).to_bits());
}

#[test]
fn integers_and_bools() {
    let big = (1i64 << 62) + (1 << 38) + 1;
    assert_eq!(cast_bits(I64, F32, big as u64), (big as f32).to_bits() as u64);
    assert_eq!(big as f32, 2f32.powi(62) + 2f32.powi(39), "one rounding");
    assert_ne!((big as f64) as f32, big as f32, "two roundings differ here");
    assert_eq!(cast_bits(I64, F64, i64::MIN as u64), (i64::MIN as f64).to_bits());
    assert_eq!(cast_bits(I64, BF16, 257), 0x4380, "257 ties to 256");
    assert_eq!(cast_bits(I64, F16, 100_000), 0x7c00, "past f16's range: inf");
    assert_eq!(cast_bits(I64, Bool, 0), 0);
    assert_eq!(cast_bits(I64, Bool, -5i64 as u64), 1);
    assert_eq!(cast_bits(Bool, F32, 1), 1f32.to_bits() as u64);
    assert_eq!(cast_bits(Bool, F16, 1), 0x3c00);
    assert_eq!(cast_bits(Bool, I64, 1), 1);
    assert_eq!(cast_bits(Bool, F64, 0), 0);
    assert_eq!(f32_to(Bool, -0.0), 0);
    assert_eq!(f32_to(Bool, 1e-45), 1);
    assert_eq!(cast_bits(BF16, Bool, 0x8000), 0);
}

#[test]
fn every_bf16_and_f16_widens_exactly() {
    for b in 0..=u16::MAX {
        let x = bf16::from_bits(b);
        let f16x = f16::from_bits(b);
        if !x.is_nan() {
            assert_eq!(
                cast_bits(BF16, F32, b as u64),
                x.to_f32().to_bits() as u64,
                "{b:#x}"
            );
            assert_eq!(cast_bits(BF16, F64, b as u64), x.to_f64().to_bits(), "{b:#x}");
            // And back: every value round-trips.
            assert_eq!(cast_bits(F32, BF16, x.to_f32().to_bits() as u64), b as u64);
        }
        if !f16x.is_nan() {
            assert_eq!(
                cast_bits(F16, F32, b as u64),
                f16x.to_f32().to_bits() as u64,
                "{b:#x}"
            );
            assert_eq!(cast_bits(F16, F64, b as u64), f16x.to_f64().to_bits(), "{b:#x}");
            assert_eq!(cast_bits(F64, F16, f16x.to_f64().to_bits()), b as u64);
            // bf16 <-> f16 is one rounding from the exact value.
            let via = cast_bits(F16, BF16, b as u64);
            assert_eq!(via, f32_to(BF16, f16x.to_f32()), "{b:#x}");
        }
    }
}

#[test]
fn f32_sources_agree_with_half_and_f64_sources_with_as() {
    let mut r = Bits(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200_000 {
        let w = r.next();
        let x = f32::from_bits(w as u32);
        // half's f32 conversions round once to nearest even, as the contract says.
        assert_eq!(f32_to(BF16, x), bf16::from_f32(x).to_bits() as u64, "{x:e}");
        if !x.is_nan() {
            assert_eq!(f32_to(F16, x), f16::from_f32(x).to_bits() as u64, "{x:e}");
        }
        assert_eq!(f32_to(I64, x), x as i64 as u64, "{x:e}");
        let d = f64::from_bits(w);
        if !d.is_nan() {
            assert_eq!(cast_bits(F64, F32, w), (d as f32).to_bits() as u64, "{d:e}");
        }
        assert_eq!(cast_bits(F64, I64, w), d as i64 as u64, "{d:e}");
        // Values near 1 with random low bits reach the ties and the sticky bits.
        let near = f64::from_bits(0x3ff0_0000_0000_0000 | (w >> 12));
        assert_eq!(
            cast_bits(F64, F32, near.to_bits()),
            (near as f32).to_bits() as u64
        );
        let i = w as i64 >> (w % 64);
        assert_eq!(cast_bits(I64, F64, i as u64), (i as f64).to_bits(), "{i}");
        assert_eq!(cast_bits(I64, F32, i as u64), (i as f32).to_bits() as u64, "{i}");
    }
}

/// The nearest of the two representable neighbours, by comparing with their midpoint exactly
/// (bf16 and f16 values and their midpoints are all exact f64s).
fn nearest(x: f64, widen: impl Fn(u16) -> f64, candidates: (u16, u16)) -> u16 {
    let (lo, hi) = candidates;
    let (a, b) = (widen(lo), widen(hi));
    let mid = (a + b) / 2.0;
    if (x - mid).abs() == 0.0 {
        if lo & 1 == 0 {
            lo
        } else {
            hi
        }
    } else if (x - a).abs() < (x - b).abs() {
        lo
    } else {
        hi
    }
}

#[test]
fn f64_sources_round_once_to_the_nearest_bf16_and_f16() {
    let mut r = Bits(0x1234_5678_9abc_def1);
    let mantissa = (1u64 << 52) - 1;
    for _ in 0..200_000 {
        let w = r.next();
        // Positive normal values with random low bits (the sticky bits matter): exponents
        // 2^-8..2^7 are normal in both bf16 and f16.
        let x = f64::from_bits(((1023 - 8 + (w >> 60)) << 52) | (w & mantissa));
        let b = f64_to_bf16(x);
        let widen_b = |v: u16| bf16::from_bits(v).to_f64();
        let around = if widen_b(b) > x { (b - 1, b) } else { (b, b + 1) };
        assert_eq!(b, nearest(x, widen_b, around), "bf16 of {x:e}");
        let h = f64_to_f16(x);
        let widen_h = |v: u16| f16::from_bits(v).to_f64();
        let around = if widen_h(h) > x { (h - 1, h) } else { (h, h + 1) };
        assert_eq!(h, nearest(x, widen_h, around), "f16 of {x:e}");
    }
}
