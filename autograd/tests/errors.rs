//! Bad input through the public API: each error class comes back as a value naming the op and
//! what it was given. None of these may panic.

use autograd::{DType, Device, Error, Tensor};

fn t(shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        (0..n).map(|i| i as f32 * 0.5 - 1.0).collect::<Vec<f32>>(),
        shape,
        Device::Cpu,
    )
    .unwrap()
}

#[test]
fn shape_mismatch_names_op_and_shapes() {
    let e = t(&[2, 3]).add(&t(&[3, 2])).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "add", .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("add") && msg.contains("[2, 3]") && msg.contains("[3, 2]"),
        "{msg}"
    );

    let e = t(&[2, 3]).matmul(&t(&[4, 5])).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "matmul", .. }), "{e:?}");
    assert!(e.to_string().contains("inner dimensions differ (3 vs 4)"), "{e}");

    assert!(matches!(
        t(&[6]).reshape(&[4]).unwrap_err(),
        Error::ShapeMismatch { op: "reshape", .. }
    ));
    assert!(matches!(
        t(&[2, 3]).broadcast_to(&[3, 3]).unwrap_err(),
        Error::ShapeMismatch { .. }
    ));
    assert!(matches!(
        Tensor::cat(&[&t(&[2, 3]), &t(&[2, 4])], 0).unwrap_err(),
        Error::ShapeMismatch { op: "cat", .. }
    ));
    assert!(matches!(
        Tensor::stack(&[&t(&[2]), &t(&[3])], 0).unwrap_err(),
        Error::ShapeMismatch { op: "stack", .. }
    ));
    let mask = t(&[3]).gt_scalar(0.0).unwrap();
    assert!(matches!(
        t(&[2]).masked_fill(&mask, 0.0).unwrap_err(),
        Error::ShapeMismatch { .. }
    ));
}

#[test]
fn dtype_mismatch_and_unsupported_dtypes() {
    let a = t(&[3]);
    let b = a.to_dtype(DType::F64).unwrap();
    let e = a.add(&b).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { op: "add", .. }), "{e:?}");
    assert!(e.to_string().contains("f32") && e.to_string().contains("f64"));

    // bf16 is a storage format: arithmetic on it asks for a conversion first.
    let h = a.to_dtype(DType::BF16).unwrap();
    let e = h.exp().unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnsupportedDType {
                op: "exp",
                dtype: DType::BF16,
                ..
            }
        ),
        "{e:?}"
    );
    let i = Tensor::from_vec(vec![1i64, 2], &[2], Device::Cpu).unwrap();
    assert!(matches!(
        i.sum(&[], false).unwrap_err(),
        Error::UnsupportedDType { op: "sum", .. }
    ));
    let mask_as_float = t(&[3]);
    assert!(matches!(
        Tensor::where_cond(&mask_as_float, &a, &a).unwrap_err(),
        Error::UnsupportedDType {
            op: "where",
            dtype: DType::F32,
            ..
        }
    ));
    assert!(matches!(
        a.to_vec::<f64>().unwrap_err(),
        Error::DTypeMismatch { op: "to_vec", .. }
    ));
}

#[test]
fn bad_axes() {
    let x = t(&[2, 3]);
    for e in [
        x.sum(&[2], false).unwrap_err(),
        x.sum(&[-3], false).unwrap_err(),
        x.sum(&[0, -2], false).unwrap_err(),
        x.transpose(0, 5).unwrap_err(),
        x.narrow(2, 0, 1).unwrap_err(),
        x.unsqueeze(4).unwrap_err(),
        x.permute(&[0, 0]).unwrap_err(),
        Tensor::cat(&[&x, &x], 2).unwrap_err(),
    ] {
        assert!(matches!(e, Error::BadAxis { .. }), "{e:?}");
        assert!(e.to_string().contains("rank 2"), "{e}");
    }
}

#[test]
fn bad_ranges_and_arguments() {
    let x = t(&[2, 3]);
    assert!(matches!(
        x.narrow(1, 2, 2).unwrap_err(),
        Error::InvalidArgument { op: "narrow", .. }
    ));
    assert!(matches!(
        x.narrow(1, usize::MAX, 2).unwrap_err(),
        Error::InvalidArgument { op: "narrow", .. }
    ));
    assert!(matches!(
        x.squeeze(0).unwrap_err(),
        Error::InvalidArgument { op: "squeeze", .. }
    ));
    assert!(matches!(
        x.clamp(Some(1.0), Some(0.0)).unwrap_err(),
        Error::InvalidArgument { op: "clamp", .. }
    ));
    assert!(matches!(
        x.var(&[0], false, 2).unwrap_err(),
        Error::InvalidArgument { op: "var", .. }
    ));
    assert!(matches!(
        x.item().unwrap_err(),
        Error::InvalidArgument { op: "item", .. }
    ));
    assert!(matches!(
        Tensor::arange(0.0, 1.0, 0.0, DType::F32, Device::Cpu).unwrap_err(),
        Error::InvalidArgument { op: "arange", .. }
    ));
    assert!(matches!(
        Tensor::from_vec(vec![1.0f32; 5], &[2, 3], Device::Cpu).unwrap_err(),
        Error::DataLength {
            op: "from_vec",
            len: 5,
            ..
        }
    ));
    assert!(matches!(
        Tensor::cat(&[], 0).unwrap_err(),
        Error::InvalidArgument { op: "cat", .. }
    ));
}

#[test]
fn empty_inputs_where_undefined() {
    let e = Tensor::zeros(&[0, 3], DType::F32, Device::Cpu).unwrap();
    // Defined on empty input: sum is 0, as in PyTorch and numpy.
    assert_eq!(e.sum(&[0], false).unwrap().to_vec::<f32>().unwrap(), vec![0.0; 3]);
    assert_eq!(e.exp().unwrap().shape(), &[0, 3]);
    // Undefined: mean, max and min of nothing.
    for err in [
        e.mean(&[0], false).unwrap_err(),
        e.max(&[], false).unwrap_err(),
        e.min(&[0], true).unwrap_err(),
    ] {
        assert!(matches!(err, Error::EmptyInput { .. }), "{err:?}");
        assert!(err.to_string().contains("[0, 3]"), "{err}");
    }
}

#[test]
fn unavailable_device_is_an_error_not_a_panic() {
    // No machine has a CUDA device 4096: this holds with and without a GPU.
    let e = Tensor::zeros(&[2], DType::F32, Device::Cuda(4096)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DeviceUnavailable {
                device: Device::Cuda(4096),
                ..
            }
        ),
        "{e:?}"
    );
    // Without a GPU, device 0 is unavailable too, with the probe's reason.
    if let Some(why) = Device::cuda_unavailable_reason() {
        let e = Tensor::zeros(&[2], DType::F32, Device::Cuda(0)).unwrap_err();
        assert!(e.to_string().contains(&why), "{e}");
        assert_eq!(Device::best_available(), Device::Cpu);
    }
    assert!(matches!(
        t(&[2]).to_device(Device::Cuda(4096)).unwrap_err(),
        Error::DeviceUnavailable { .. }
    ));
}

#[test]
fn tracked_tensor_reaching_op_without_backward() {
    let w = t(&[3]).set_requires_grad(true);
    // In-place writes would change values the graph may have saved.
    assert!(matches!(
        w.copy_(&t(&[3])).unwrap_err(),
        Error::NoBackward { op: "copy_" }
    ));
    assert!(matches!(
        w.add_scaled_(&t(&[3]), 1.0).unwrap_err(),
        Error::NoBackward { op: "add_scaled_" }
    ));
    // Converting to a storage-only dtype has no gradient to pass back.
    let e = w.to_dtype(DType::BF16).unwrap_err();
    assert!(matches!(e, Error::NoBackward { op: "to_dtype" }), "{e:?}");
    assert!(e.to_string().contains("detach"), "{e}");
    // Detached, or under no_grad, the same calls are fine.
    assert!(w.detach().to_dtype(DType::BF16).is_ok());
    assert!(autograd::no_grad(|| w.to_dtype(DType::F16)).is_ok());
}

#[test]
fn backward_seed_rules() {
    let x = t(&[2, 2]).set_requires_grad(true);
    let y = x.exp().unwrap();
    assert!(matches!(
        y.backward().unwrap_err(),
        Error::BadSeed { seed: None, .. }
    ));
    let wrong = Tensor::ones(&[4], DType::F32, Device::Cpu).unwrap();
    assert!(matches!(
        y.backward_with(&wrong).unwrap_err(),
        Error::BadSeed { seed: Some(_), .. }
    ));
    let untracked = t(&[1]);
    assert!(matches!(
        untracked.backward().unwrap_err(),
        Error::InvalidArgument { op: "backward", .. }
    ));
}
