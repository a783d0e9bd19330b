//! Element types. `F32` and `F64` compute; `BF16` and `F16` are storage formats (convert with
//! `to_dtype` before computing); `I64` holds indices and class targets; `Bool` holds masks.

use half::{bf16, f16};
use kernels::elementwise::cast::{cast_bits, CastType};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    BF16,
    F16,
    I64,
    Bool,
}

impl DType {
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::BF16 | DType::F16 => 2,
            DType::Bool => 1,
        }
    }

    /// Whether ops compute in this dtype (and so whether gradients can flow through it).
    pub fn is_compute_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::I64 => "i64",
            DType::Bool => "bool",
        };
        f.write_str(s)
    }
}

/// A Rust type that can be a tensor element. `bool` masks are stored as `u8` (0 or 1).
pub trait Element: Copy + Send + Sync + Default + fmt::Debug + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

macro_rules! element {
    ($t:ty, $d:ident, |$x:ident| $to:expr, |$v:ident| $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                let $x = self;
                $to
            }
            #[inline(always)]
            fn from_f64($v: f64) -> Self {
                $from
            }
        }
    };
}

element!(f32, F32, |x| x as f64, |v| v as f32);
element!(f64, F64, |x| x, |v| v);
// Through the conversion contract `to_dtype` uses (one rounding to nearest even from the f64,
// whatever the host): `half`'s own `from_f64` rounds on the top 32 bits only, and twice
// through f32 on x86 with F16C.
element!(bf16, BF16, |x| x.to_f64(), |v| bf16::from_bits(
    from_f64_bits(CastType::BF16, v) as u16
));
element!(f16, F16, |x| x.to_f64(), |v| f16::from_bits(
    from_f64_bits(CastType::F16, v) as u16
));
element!(i64, I64, |x| x as f64, |v| v as i64);
element!(u8, Bool, |x| x as f64, |v| (v != 0.0) as u8);

fn from_f64_bits(to: CastType, v: f64) -> u64 {
    cast_bits(CastType::F64, to, v.to_bits())
}
