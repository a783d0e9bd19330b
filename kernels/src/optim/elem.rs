//! How parameters and gradients are stored, and how a computed value is rounded back.
//!
//! bf16 is handled as raw bits ([`Bf16`], the layout of `half::bf16` and `__nv_bfloat16`),
//! with the conversions written out here and in `optim.cu` bit for bit the same way, so the
//! rounding cannot differ between the CPU and the GPU (CUDA's `__float2bfloat16_rn` and
//! `half`'s conversion agree on finite values but not on NaN payloads).

use crate::Float;

/// A bf16 value as its 16 bits: sign, 8 exponent bits, 7 mantissa bits (the top half of an f32).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bf16(pub u16);

impl Bf16 {
    #[inline(always)]
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }

    /// Round to nearest, ties to even. NaN stays NaN (quieted, sign kept); ±inf stays ±inf;
    /// finite values too large for bf16 become ±inf, as IEEE rounding does.
    #[inline(always)]
    pub fn from_f32_nearest(x: f32) -> Bf16 {
        let b = x.to_bits();
        let lsb = (b >> 16) & 1;
        let rounded = (b.wrapping_add(0x7fff + lsb) >> 16) as u16;
        let quiet_nan = ((b >> 16) | 0x0040) as u16;
        // A select, not an early return, so loops over it vectorize.
        Bf16(if x.is_nan() { quiet_nan } else { rounded })
    }

    /// Stochastic rounding: up with probability equal to the distance from the value below
    /// (in units of the bf16 spacing), using the low 16 bits of `random`. Unbiased:
    /// E[round(x)] = x. Non-finite values round to nearest (they are exact already, or NaN).
    #[inline(always)]
    pub fn from_f32_stochastic(x: f32, random: u32) -> Bf16 {
        if !x.is_finite() {
            return Bf16::from_f32_nearest(x);
        }
        // Adding r < 2^16 to the bits carries into the kept half exactly when the dropped low
        // half plus r overflows 16 bits: probability (low half) / 2^16. Magnitudes round
        // stochastically for either sign, since the bits of |x| are what is rounded.
        Bf16((x.to_bits().wrapping_add(random & 0xffff) >> 16) as u16)
    }

    /// View raw bits (`&mut [u16]`, e.g. from `bytemuck::cast_slice_mut::<half::bf16, u16>`)
    /// as bf16 values.
    pub fn from_bits_slice_mut(bits: &mut [u16]) -> &mut [Bf16] {
        // SAFETY: Bf16 is repr(transparent) over u16: same size, alignment and validity.
        unsafe { std::slice::from_raw_parts_mut(bits.as_mut_ptr().cast::<Bf16>(), bits.len()) }
    }

    pub fn from_bits_slice(bits: &[u16]) -> &[Bf16] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(bits.as_ptr().cast::<Bf16>(), bits.len()) }
    }
}

/// A stored parameter or gradient element. `Math` is the type the update computes in.
pub trait Elem: Copy + Send + Sync + 'static {
    type Math: Float;
    /// Whether storing rounds (bf16): only then are rounding bits drawn.
    const ROUNDS: bool;
    fn load(self) -> Self::Math;
    /// Round a result into storage: stochastically with `random` when given (bf16 only;
    /// exact types ignore it), else to nearest even.
    fn store(x: Self::Math, random: Option<u32>) -> Self;
}

impl Elem for f32 {
    type Math = f32;
    const ROUNDS: bool = false;
    #[inline(always)]
    fn load(self) -> f32 {
        self
    }
    #[inline(always)]
    fn store(x: f32, _: Option<u32>) -> f32 {
        x
    }
}

impl Elem for f64 {
    type Math = f64;
    const ROUNDS: bool = false;
    #[inline(always)]
    fn load(self) -> f64 {
        self
    }
    #[inline(always)]
    fn store(x: f64, _: Option<u32>) -> f64 {
        x
    }
}

impl Elem for Bf16 {
    type Math = f32;
    const ROUNDS: bool = true;
    #[inline(always)]
    fn load(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn store(x: f32, random: Option<u32>) -> Bf16 {
        match random {
            Some(r) => Bf16::from_f32_stochastic(x, r),
            None => Bf16::from_f32_nearest(x),
        }
    }
}

/// A standard normal from two Philox words by Box–Muller, in f32 whatever the compute type
/// (the noise is random anyway; f32 keeps the CPU and `optim.cu` on the same formula):
/// `u1 = (bits24(a) + 1)·2^-24 ∈ (0, 1]`, `u2 = bits24(b)·2^-24 ∈ [0, 1)`,
/// `z = sqrt(-2 ln u1) · cos(2π u2)`. `optim.cu` uses `logf`/`cosf`, which may differ from
/// libm's by an ulp or two: noise is compared with a tolerance, never bit for bit.
#[inline]
pub fn normal_from_words(a: u32, b: u32) -> f32 {
    const TWO_PI: f32 = std::f32::consts::TAU;
    let scale = 1.0 / (1u32 << 24) as f32;
    let u1 = ((a >> 8) + 1) as f32 * scale;
    let u2 = (b >> 8) as f32 * scale;
    libm::sqrtf(-2.0 * libm::logf(u1)) * libm::cosf(TWO_PI * u2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_even_matches_exact_rounding() {
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties go to the even (1.0).
        assert_eq!(Bf16::from_f32_nearest(1.0 + 2f32.powi(-8)).to_f32(), 1.0);
        // 1.0078125 + 2^-8 is halfway and its lower neighbour is odd: rounds up.
        let odd = 1.0078125f32;
        assert_eq!(Bf16::from_f32_nearest(odd + 2f32.powi(-8)).to_f32(), 1.015625);
        assert_eq!(Bf16::from_f32_nearest(1.0 + 2f32.powi(-9)).to_f32(), 1.0);
        assert!(Bf16::from_f32_nearest(f32::NAN).to_f32().is_nan());
        assert_eq!(Bf16::from_f32_nearest(f32::INFINITY).to_f32(), f32::INFINITY);
        assert_eq!(Bf16::from_f32_nearest(-0.0).0, 0x8000);
        assert_eq!(Bf16::from_f32_nearest(f32::MAX).to_f32(), f32::INFINITY);
    }

    #[test]
    fn stochastic_rounding_is_unbiased_and_brackets() {
        // x = 1 + 0.3 ulp(bf16): rounds to 1 or to 1 + ulp, up with probability 0.3.
        let ulp = 2f32.powi(-7);
        let x = 1.0 + 0.3 * ulp;
        let n = 1 << 16;
        let mut up = 0;
        for r in 0..n {
            let y = Bf16::from_f32_stochastic(x, r as u32).to_f32();
            assert!(y == 1.0 || y == 1.0 + ulp, "{y}");
            up += (y > 1.0) as u32;
        }
        // Every 16-bit value once: the count of round-ups is exact.
        let dropped = x.to_bits() & 0xffff;
        assert_eq!(up, dropped);
        let mean = 1.0 + ulp * up as f64 as f32 / n as f32;
        assert!((mean - x).abs() < 1e-6);
        // Exact bf16 values never move; negative values round their magnitude.
        assert_eq!(Bf16::from_f32_stochastic(1.5, 0xffff).to_f32(), 1.5);
        let y = Bf16::from_f32_stochastic(-x, 0xffff).to_f32();
        assert_eq!(y, -(1.0 + ulp));
    }

    #[test]
    fn box_muller_moments() {
        let n = 40_000u32;
        let (mut s1, mut s2) = (0f64, 0f64);
        for i in 0..n {
            let w = crate::random::philox::philox4x32_10([i, 0, 0, 0], [3, 4]);
            let z = normal_from_words(w[0], w[1]) as f64;
            assert!(z.is_finite());
            s1 += z;
            s2 += z * z;
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03, "{mean} {var}");
    }
}
