//! Copies of strided views (contiguous, to_device, copy_ into a view), the views' backwards
//! (narrow, cat, broadcast_to) and the sum that broadcasting's backward uses.

use super::common::*;
use autograd::{DType, Device, Tensor};

#[test]
fn views_copies_and_their_backward() {
    let Some(dev) = cuda_or_skip("views_copies_and_their_backward") else {
        return;
    };
    let mut r = rng(11);
    let x = random(&[6, 31, 33], Domain::Normal, &mut r);
    let y = random(&[6, 5, 33], Domain::Normal, &mut r);
    check(
        "permute+contiguous",
        dev,
        std::slice::from_ref(&x),
        |t| t[0].permute(&[2, 0, 1])?.contiguous(),
        0.0,
        0.0,
    );
    check(
        "narrow",
        dev,
        std::slice::from_ref(&x),
        |t| t[0].narrow(1, 3, 20)?.mul_scalar(2.0),
        0.0,
        0.0,
    );
    check(
        "reshape of view",
        dev,
        std::slice::from_ref(&x),
        |t| t[0].t()?.reshape(&[6, 1023]),
        0.0,
        0.0,
    );
    check(
        "cat",
        dev,
        &[x.clone(), y],
        |t| Tensor::cat(&[&t[0], &t[1]], 1),
        0.0,
        0.0,
    );
    check(
        "stack",
        dev,
        &[x.clone(), x.clone()],
        |t| Tensor::stack(&[&t[0], &t[1]], 0),
        0.0,
        0.0,
    );
    let b = random(&[33], Domain::Normal, &mut r);
    check(
        "broadcast_to",
        dev,
        &[b],
        |t| t[0].broadcast_to(&[7, 33])?.mul_scalar(1.0),
        1e-6,
        1e-6,
    );
}

#[test]
fn sums_over_axes() {
    let Some(dev) = cuda_or_skip("sums_over_axes") else {
        return;
    };
    let mut r = rng(12);
    for (shape, axes) in [
        (&[1][..], &[][..]),
        (&[4097], &[0]),
        (&[31, 33], &[1]),
        (&[31, 33], &[0]),
        (&[3, 70_001], &[1]),
        (&[5, 7, 9], &[0, 2]),
    ] {
        let x = random(shape, Domain::Normal, &mut r);
        let n: usize = if axes.is_empty() {
            shape.iter().product()
        } else {
            axes.iter().map(|&a| shape[a as usize]).product()
        };
        // A tree sum and the CPU's blocked sum round differently; the error of a sum of n
        // terms of size ~1 grows like sqrt(n)·eps, so the absolute tolerance scales with it.
        let atol = 1e-6 * (n as f64).sqrt() * 3.0;
        check(
            "sum",
            dev,
            std::slice::from_ref(&x),
            |t| t[0].sum(axes, false),
            F32_RTOL,
            atol,
        );
        check("mean", dev, &[x], |t| t[0].mean(axes, true), F32_RTOL, atol);
    }
}

#[test]
fn moving_between_devices_round_trips_every_dtype() {
    let Some(dev) = cuda_or_skip("moving_between_devices_round_trips_every_dtype") else {
        return;
    };
    let x = random(&[33, 31], Domain::Normal, &mut rng(13));
    for dtype in [DType::F32, DType::BF16, DType::F64, DType::I64, DType::Bool] {
        let t = x.detach().to_dtype(dtype).expect("convert");
        let back = t
            .to_device(dev)
            .and_then(|g| g.to_device(Device::Cpu))
            .expect("round trip");
        assert_eq!(back.to_vec_f64().unwrap(), t.to_vec_f64().unwrap(), "{dtype}");
        // A transposed view moves as its values, row-major.
        let view = t.t().unwrap();
        let moved = view.to_device(dev).expect("upload");
        assert_eq!(
            moved.to_vec_f64().unwrap(),
            view.to_vec_f64().unwrap(),
            "{dtype} view"
        );
    }
    let g = Tensor::zeros(&[5], DType::F32, dev).expect("zeros");
    assert_eq!(g.to_vec::<f32>().unwrap(), vec![0.0; 5]);
    assert_eq!(
        Tensor::full(&[], 2.5, DType::F32, dev).unwrap().item().unwrap(),
        2.5
    );
}
