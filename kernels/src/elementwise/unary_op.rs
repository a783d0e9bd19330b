//! The unary ops' scalar math: forward value and derivative, in one place.

use crate::Float;

/// `1/sqrt(2π)`, for the Gaussian density in GELU's derivative.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
/// `sqrt(2/π)`, the tanh-form GELU constant (Hendrycks & Gimpel 2016).
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_TANH_CUBIC: f64 = 0.044_715;

/// Unary ops with a closed-form derivative. `derivative(x, y)` is dy/dx given the input `x` and
/// the forward output `y` (some derivatives are cheaper from `y`, e.g. tanh and sigmoid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Abs,
    /// Derivative 0 everywhere (the jump at 0 has no useful gradient), as PyTorch.
    Sign,
    Tanh,
    Sigmoid,
    /// Derivative at 0 taken as 0, as PyTorch.
    Relu,
    /// x·Φ(x) with the exact normal CDF.
    GeluErf,
    /// The tanh approximation 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).
    GeluTanh,
    /// x·sigmoid(x).
    Silu,
    /// ln(1 + eˣ), computed without overflow.
    Softplus,
    Erf,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 15] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::GeluErf,
        UnaryOp::GeluTanh,
        UnaryOp::Silu,
        UnaryOp::Softplus,
        UnaryOp::Erf,
    ];

    /// The op's name as recorded on the tape and used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::GeluErf => "gelu",
            UnaryOp::GeluTanh => "gelu_tanh",
            UnaryOp::Silu => "silu",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Erf => "erf",
        }
    }

    #[inline(always)]
    pub fn forward<T: Float>(self, x: T) -> T {
        let half = T::from_f64(0.5);
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => T::ONE / x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => x.signum0(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => sigmoid(x),
            // `x < 0 ? 0 : x`: a NaN input stays NaN, as in PyTorch and the CUDA kernel.
            UnaryOp::Relu => {
                if x < T::ZERO {
                    T::ZERO
                } else {
                    x
                }
            }
            UnaryOp::GeluErf => {
                half * x * (T::ONE + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf())
            }
            UnaryOp::GeluTanh => {
                let inner = T::from_f64(SQRT_2_OVER_PI) * (x + T::from_f64(GELU_TANH_CUBIC) * x * x * x);
                half * x * (T::ONE + inner.tanh())
            }
            UnaryOp::Silu => x * sigmoid(x),
            // max(x, 0) + ln(1 + e^{-|x|}) never overflows and keeps precision for large |x|.
            UnaryOp::Softplus => x.max(T::ZERO) + (-x.abs()).exp().ln_1p(),
            UnaryOp::Erf => x.erf(),
        }
    }

    /// dy/dx at `x`, where `y = forward(x)`.
    #[inline(always)]
    pub fn derivative<T: Float>(self, x: T, y: T) -> T {
        let half = T::from_f64(0.5);
        match self {
            UnaryOp::Neg => -T::ONE,
            UnaryOp::Exp => y,
            UnaryOp::Log => T::ONE / x,
            UnaryOp::Sqrt => half / y,
            UnaryOp::Rsqrt => -half * y * y * y,
            UnaryOp::Abs => x.signum0(),
            UnaryOp::Sign => T::ZERO,
            UnaryOp::Tanh => T::ONE - y * y,
            UnaryOp::Sigmoid => y * (T::ONE - y),
            UnaryOp::Relu => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            UnaryOp::GeluErf => {
                let cdf = half * (T::ONE + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf());
                let pdf = T::from_f64(INV_SQRT_2PI) * (-half * x * x).exp();
                cdf + x * pdf
            }
            UnaryOp::GeluTanh => {
                let c = T::from_f64(SQRT_2_OVER_PI);
                let a = T::from_f64(GELU_TANH_CUBIC);
                let t = (c * (x + a * x * x * x)).tanh();
                half * (T::ONE + t)
                    + half * x * (T::ONE - t * t) * c * (T::ONE + T::from_f64(3.0) * a * x * x)
            }
            UnaryOp::Silu => {
                let s = sigmoid(x);
                s * (T::ONE + x * (T::ONE - s))
            }
            UnaryOp::Softplus => sigmoid(x),
            UnaryOp::Erf => T::from_f64(2.0 * INV_SQRT_2PI * std::f64::consts::SQRT_2) * (-x * x).exp(),
        }
    }
}

/// Logistic sigmoid, evaluated on the side that cannot overflow.
#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each closed-form derivative against a central difference in f64: catches a wrong formula
    /// before any tensor machinery is involved. Points avoid the kinks of abs/relu/sign and the
    /// domain edge of log/sqrt.
    #[test]
    fn derivatives_match_central_differences() {
        let points = [-2.3, -0.7, 0.4, 1.1, 3.2];
        let h = 1e-6;
        for op in UnaryOp::ALL {
            for &p in &points {
                let x: f64 = if matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt) {
                    p.abs()
                } else {
                    p
                };
                let numeric = (op.forward(x + h) - op.forward(x - h)) / (2.0 * h);
                let analytic = op.derivative(x, op.forward(x));
                assert!(
                    (numeric - analytic).abs() <= 1e-6 * (1.0 + analytic.abs()),
                    "{}: x={x} numeric={numeric} analytic={analytic}",
                    op.name()
                );
            }
        }
    }

    #[test]
    fn stable_at_extremes() {
        assert_eq!(UnaryOp::Softplus.forward(1000.0f32), 1000.0);
        assert_eq!(UnaryOp::Softplus.forward(-1000.0f32), 0.0);
        assert_eq!(UnaryOp::Sigmoid.forward(-1000.0f32), 0.0);
        assert_eq!(UnaryOp::Sigmoid.forward(1000.0f32), 1.0);
        assert_eq!(UnaryOp::Silu.forward(-1000.0f64), -0.0);
        assert!(
            UnaryOp::Relu.forward(f32::NAN).is_nan(),
            "relu must not hide a NaN"
        );
    }
}
