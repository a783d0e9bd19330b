//! Dtype conversion (`to_dtype`) on raw element bits: the written contract that both the CPU
//! op and `cast.cu` implement, in integer arithmetic only, so that the two agree bit for bit
//! whatever the host's or the device's floating-point modes (flush-to-zero, F16C, default NaN).
//!
//! The contract, for a source element `x` converted to `to`:
//! * Floats, f32/f64/bf16/f16, to a float: the representable value nearest to `x`, ties to even
//!   (one rounding, from the exact source value: f64 -> bf16 is not f64 -> f32 -> bf16).
//!   Magnitudes at or past the target's largest finite value plus half an ulp become ±inf;
//!   results below the normal range are subnormal (gradual underflow, never flushed), and
//!   underflow keeps the sign (-1e-300 -> -0.0). Widening is exact.
//! * NaN stays NaN with its sign and the top bits of its payload, quiet bit set (what x86 and
//!   ARM do for float-to-float conversions, and what `half` does for bf16).
//! * i64 to a float: the nearest representable value, ties to even, in one rounding (so
//!   i64 -> f32 is not i64 -> f64 -> f32, which can round twice: 2^62 + 2^38 + 1 -> 2^62 + 2^39).
//! * A float to i64: truncation toward zero, saturating at i64::MIN / i64::MAX, NaN -> 0 (Rust's
//!   `as`).
//! * Anything to bool: 1 when `x != 0` (NaN -> 1, ±0 -> 0). Bool to anything: 1 or 0 (any
//!   non-zero byte counts as true).
//!
//! Before this module the CPU converted through f64 with `half`'s `from_f64`, which decides
//! rounding from the top 32 bits of the f64 only (an f64 just above a bf16 halfway point could
//! round down) and, on x86 with F16C, rounds f64 -> f16 twice through f32: results depended on
//! the host. For f32 sources the two always agreed, since an f32 fits in those 32 bits.

/// The element types of tensor storage, as conversions see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CastType {
    F32,
    F64,
    BF16,
    F16,
    I64,
    Bool,
}

impl CastType {
    pub const ALL: [CastType; 6] = [
        CastType::F32,
        CastType::F64,
        CastType::BF16,
        CastType::F16,
        CastType::I64,
        CastType::Bool,
    ];

    /// The name used in kernel entry points (`cast_f32_to_bf16`).
    pub fn name(self) -> &'static str {
        match self {
            CastType::F32 => "f32",
            CastType::F64 => "f64",
            CastType::BF16 => "bf16",
            CastType::F16 => "f16",
            CastType::I64 => "i64",
            CastType::Bool => "bool",
        }
    }

    pub fn size_in_bytes(self) -> usize {
        match self {
            CastType::F64 | CastType::I64 => 8,
            CastType::F32 => 4,
            CastType::BF16 | CastType::F16 => 2,
            CastType::Bool => 1,
        }
    }

    /// (exponent bits, stored mantissa bits) of a float type.
    fn format(self) -> Option<(u32, u32)> {
        match self {
            CastType::F64 => Some((11, 52)),
            CastType::F32 => Some((8, 23)),
            CastType::BF16 => Some((8, 7)),
            CastType::F16 => Some((5, 10)),
            CastType::I64 | CastType::Bool => None,
        }
    }
}

/// One source element, decoded. A finite non-zero value is `±sig · 2^(exp − 63)` with the
/// leading one of `sig` at bit 63, whatever its type (an integer, a subnormal, a normal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    Zero {
        neg: bool,
    },
    Inf {
        neg: bool,
    },
    /// `payload`: the source's mantissa bits, shifted so that its top bit is bit 63.
    NaN {
        neg: bool,
        payload: u64,
    },
    Finite {
        neg: bool,
        exp: i32,
        sig: u64,
    },
}

fn decode(from: CastType, bits: u64) -> Value {
    match from {
        CastType::I64 => {
            let i = bits as i64;
            if i == 0 {
                return Value::Zero { neg: false };
            }
            let mag = i.unsigned_abs();
            let lz = mag.leading_zeros();
            Value::Finite {
                neg: i < 0,
                exp: 63 - lz as i32,
                sig: mag << lz,
            }
        }
        CastType::Bool => {
            if bits & 0xff == 0 {
                Value::Zero { neg: false }
            } else {
                Value::Finite {
                    neg: false,
                    exp: 0,
                    sig: 1 << 63,
                }
            }
        }
        float => {
            let (eb, mb) = float.format().expect("a float type");
            let neg = (bits >> (eb + mb)) & 1 == 1;
            let e = ((bits >> mb) & ((1 << eb) - 1)) as i32;
            let m = bits & ((1 << mb) - 1);
            let bias = (1 << (eb - 1)) - 1;
            if e == (1 << eb) - 1 {
                if m == 0 {
                    Value::Inf { neg }
                } else {
                    Value::NaN {
                        neg,
                        payload: m << (64 - mb),
                    }
                }
            } else if e == 0 {
                if m == 0 {
                    Value::Zero { neg }
                } else {
                    // Subnormal: m · 2^(1 − bias − mb); its leading one is at bit 63 − lz.
                    let lz = m.leading_zeros() as i32;
                    Value::Finite {
                        neg,
                        exp: (63 - lz) + 1 - bias - mb as i32,
                        sig: m << lz,
                    }
                }
            } else {
                Value::Finite {
                    neg,
                    exp: e - bias,
                    sig: (m | (1 << mb)) << (63 - mb),
                }
            }
        }
    }
}

/// `mag >> shift`, rounded to nearest, ties to even (`shift` in 1..=63).
fn shift_round(mag: u64, shift: u32) -> u64 {
    let kept = mag >> shift;
    let rest = mag & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rest > half || (rest == half && kept & 1 == 1) {
        kept + 1
    } else {
        kept
    }
}

fn encode_float(eb: u32, mb: u32, v: Value) -> u64 {
    let sign_bit = |neg: bool| (neg as u64) << (eb + mb);
    let inf = ((1u64 << eb) - 1) << mb;
    match v {
        Value::Zero { neg } => sign_bit(neg),
        Value::Inf { neg } => sign_bit(neg) | inf,
        Value::NaN { neg, payload } => sign_bit(neg) | inf | (1 << (mb - 1)) | (payload >> (64 - mb)),
        Value::Finite { neg, exp, sig } => {
            let bias = (1i32 << (eb - 1)) - 1;
            let biased = exp + bias;
            if biased >= (1 << eb) - 1 {
                return sign_bit(neg) | inf;
            }
            let magnitude = if biased >= 1 {
                // Normal: keep mb + 1 bits (hidden one included). Adding the rounded
                // significand to (biased − 1) << mb lets a carry out of the mantissa step the
                // exponent up, and past the largest finite value land exactly on inf.
                (((biased - 1) as u64) << mb) + shift_round(sig, 63 - mb)
            } else {
                // Subnormal: the unit is 2^(1 − bias − mb); a carry into bit mb gives the
                // smallest normal, which is the right encoding too.
                let shift = (63 - mb) as i32 + (1 - biased);
                match shift {
                    ..=63 => shift_round(sig, shift as u32),
                    // Below the smallest subnormal: rounds up only from above its half.
                    64 => (sig > 1 << 63) as u64,
                    _ => 0,
                }
            };
            sign_bit(neg) | magnitude
        }
    }
}

fn encode(to: CastType, v: Value) -> u64 {
    match to {
        CastType::Bool => !matches!(v, Value::Zero { .. }) as u64,
        CastType::I64 => match v {
            Value::Zero { .. } | Value::NaN { .. } => 0,
            Value::Inf { neg } => {
                if neg {
                    i64::MIN as u64
                } else {
                    i64::MAX as u64
                }
            }
            Value::Finite { neg, exp, sig } => {
                if exp < 0 {
                    0
                } else if exp >= 63 {
                    if neg {
                        i64::MIN as u64
                    } else {
                        i64::MAX as u64
                    }
                } else {
                    let mag = (sig >> (63 - exp)) as i64;
                    (if neg { -mag } else { mag }) as u64
                }
            }
        },
        float => {
            let (eb, mb) = float.format().expect("a float type");
            encode_float(eb, mb, v)
        }
    }
}

/// Converts one element. `bits` holds the source element's bytes in its low
/// `from.size_in_bytes()` bytes (`f32::to_bits`, `bf16::to_bits`, the i64's two's complement,
/// the bool byte); the result holds the target's the same way.
pub fn cast_bits(from: CastType, to: CastType, bits: u64) -> u64 {
    if from == to {
        return bits;
    }
    encode(to, decode(from, bits))
}

#[cfg(test)]
#[path = "cast_tests.rs"]
mod tests;
