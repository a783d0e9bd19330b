//! Unary, binary (same-shape, broadcast and strided), tensor-scalar, clamp, comparison and
//! where: every elementwise op with a CUDA path.

use super::common::*;
use autograd::{Device, Result, Tensor};

type Op = fn(&Tensor) -> Result<Tensor>;

const UNARY: [(&str, Op, Domain); 15] = [
    ("neg", Tensor::neg, Domain::Normal),
    ("exp", Tensor::exp, Domain::Normal),
    ("log", Tensor::log, Domain::Positive),
    ("sqrt", Tensor::sqrt, Domain::Positive),
    ("rsqrt", Tensor::rsqrt, Domain::Positive),
    ("abs", Tensor::abs, Domain::Normal),
    ("sign", Tensor::sign, Domain::Normal),
    ("tanh", Tensor::tanh, Domain::Normal),
    ("sigmoid", Tensor::sigmoid, Domain::Normal),
    ("relu", Tensor::relu, Domain::Normal),
    ("gelu", Tensor::gelu, Domain::Normal),
    ("gelu_tanh", Tensor::gelu_tanh, Domain::Normal),
    ("silu", Tensor::silu, Domain::Normal),
    ("softplus", Tensor::softplus, Domain::Normal),
    ("erf", Tensor::erf, Domain::Normal),
];

#[test]
fn unary_ops_forward_and_backward() {
    let Some(dev) = cuda_or_skip("unary_ops_forward_and_backward") else {
        return;
    };
    let mut r = rng(1);
    for (name, op, domain) in UNARY {
        for shape in SIZES {
            let x = random(shape, domain, &mut r);
            check(name, dev, &[x], |t| op(&t[0]), F32_RTOL, F32_ATOL);
        }
    }
}

#[test]
fn unary_ops_on_strided_views() {
    let Some(dev) = cuda_or_skip("unary_ops_on_strided_views") else {
        return;
    };
    let x = random(&[37, 65], Domain::Positive, &mut rng(2));
    for (name, op, _) in UNARY {
        // A transposed, narrowed view: the op must copy it contiguous first.
        check(
            name,
            dev,
            std::slice::from_ref(&x),
            |t| op(&t[0].t()?.narrow(0, 3, 50)?),
            F32_RTOL,
            F32_ATOL,
        );
    }
}

#[test]
fn binary_ops_same_shape_broadcast_and_strided() {
    let Some(dev) = cuda_or_skip("binary_ops_same_shape_broadcast_and_strided") else {
        return;
    };
    type Bin = fn(&Tensor, &Tensor) -> Result<Tensor>;
    let ops: [(&str, Bin); 5] = [
        ("add", Tensor::add),
        ("sub", Tensor::sub),
        ("mul", Tensor::mul),
        ("div", Tensor::div),
        ("pow", Tensor::pow),
    ];
    let mut r = rng(3);
    let pairs: [(&[usize], &[usize]); 7] = [
        (&[1], &[1]),
        (&[33], &[33]),
        (&[4097], &[4097]),
        (&[31, 33], &[33]),
        (&[31, 1], &[1, 33]),
        (&[2, 1, 1000], &[3, 1]),
        (&[], &[5, 7]),
    ];
    for (name, op) in ops {
        for (sa, sb) in pairs {
            // Positive inputs keep pow's gradient (log a) and div real.
            let (a, b) = (
                random(sa, Domain::Positive, &mut r),
                random(sb, Domain::Positive, &mut r),
            );
            check(name, dev, &[a, b], |t| op(&t[0], &t[1]), F32_RTOL, F32_ATOL);
        }
        let a = random(&[40, 33], Domain::Positive, &mut r);
        let b = random(&[33, 40], Domain::Positive, &mut r);
        check(
            &format!("{name} strided"),
            dev,
            &[a, b],
            |t| op(&t[0], &t[1].t()?),
            F32_RTOL,
            F32_ATOL,
        );
    }
}

#[test]
fn scalar_ops_and_clamp() {
    let Some(dev) = cuda_or_skip("scalar_ops_and_clamp") else {
        return;
    };
    let mut r = rng(4);
    for shape in SIZES {
        let x = random(shape, Domain::Positive, &mut r);
        let y = random(shape, Domain::Normal, &mut r);
        check(
            "add_scalar",
            dev,
            std::slice::from_ref(&x),
            |t| t[0].add_scalar(0.75),
            F32_RTOL,
            F32_ATOL,
        );
        check(
            "mul_scalar",
            dev,
            std::slice::from_ref(&x),
            |t| t[0].mul_scalar(-1.5),
            F32_RTOL,
            F32_ATOL,
        );
        check(
            "pow_scalar",
            dev,
            std::slice::from_ref(&x),
            |t| t[0].pow_scalar(2.5),
            F32_RTOL,
            F32_ATOL,
        );
        check(
            "div_scalar",
            dev,
            &[x],
            |t| t[0].div_scalar(3.0),
            F32_RTOL,
            F32_ATOL,
        );
        check(
            "clamp",
            dev,
            std::slice::from_ref(&y),
            |t| t[0].clamp(Some(-1.0), Some(0.5)),
            F32_RTOL,
            F32_ATOL,
        );
        check(
            "clamp min",
            dev,
            &[y],
            |t| t[0].clamp(Some(0.0), None),
            F32_RTOL,
            F32_ATOL,
        );
    }
}

#[test]
fn comparisons_where_and_masked_fill() {
    let Some(dev) = cuda_or_skip("comparisons_where_and_masked_fill") else {
        return;
    };
    let mut r = rng(5);
    for (sa, sb) in [(&[1000][..], &[1000][..]), (&[31, 33], &[33]), (&[4097], &[1])] {
        let (a, b) = (
            random(sa, Domain::Normal, &mut r),
            random(sb, Domain::Normal, &mut r),
        );
        type Cmp = fn(&Tensor, &Tensor) -> Result<Tensor>;
        let cmps: [(&str, Cmp); 6] = [
            ("eq", Tensor::eq),
            ("ne", Tensor::ne),
            ("lt", Tensor::lt),
            ("le", Tensor::le),
            ("gt", Tensor::gt),
            ("ge", Tensor::ge),
        ];
        for (name, cmp) in cmps {
            // eq/ne of random floats are all-false/all-true; comparing with a copy of itself
            // (same values) checks the equal case too.
            check(
                name,
                dev,
                &[a.clone(), b.clone()],
                |t| cmp(&t[0], &t[1]),
                0.0,
                0.0,
            );
            check(
                name,
                dev,
                std::slice::from_ref(&a),
                |t| cmp(&t[0], &t[0]),
                0.0,
                0.0,
            );
        }
        check(
            "where",
            dev,
            &[a.clone(), b.clone()],
            |t| Tensor::where_cond(&t[0].gt(&t[1])?, &t[0], &t[1]),
            F32_RTOL,
            F32_ATOL,
        );
        check(
            "masked_fill",
            dev,
            &[a],
            |t| t[0].masked_fill(&t[0].lt_scalar(0.0)?, -2.0),
            F32_RTOL,
            F32_ATOL,
        );
    }
}

/// A CUDA tensor reaching an op with no CUDA kernel is an error naming the device, never a
/// panic and never a silent CPU fallback.
#[test]
fn ops_without_a_kernel_say_so() {
    let Some(dev) = cuda_or_skip("ops_without_a_kernel_say_so") else {
        return;
    };
    let x = Tensor::ones(&[4, 5], autograd::DType::F32, dev).expect("alloc");
    // Conversions exist on CUDA (cast.cu), arithmetic in f64 does not.
    let x64 = x
        .to_dtype(autograd::DType::F64)
        .expect("f32 -> f64 on the device");
    let err = x64.exp().expect_err("f64 arithmetic has no CUDA kernel");
    assert!(
        matches!(err, autograd::Error::NotImplementedOnDevice { .. }),
        "{err}"
    );
    let cpu = Tensor::ones(&[4, 5], autograd::DType::F32, Device::Cpu).expect("alloc");
    assert!(matches!(x.add(&cpu), Err(autograd::Error::DeviceMismatch { .. })));
}
