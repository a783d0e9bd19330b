//! Creation, data access, views sharing storage, dtype conversion and broadcasting.

use autograd::{DType, Device, Tensor};
use half::bf16;
use rand::SeedableRng;

#[test]
fn creation() {
    let z = Tensor::zeros(&[2, 3], DType::F32, Device::Cpu).unwrap();
    assert_eq!(z.shape(), &[2, 3]);
    assert_eq!(z.to_vec::<f32>().unwrap(), vec![0.0; 6]);
    assert_eq!(
        Tensor::ones(&[2], DType::F64, Device::Cpu)
            .unwrap()
            .to_vec::<f64>()
            .unwrap(),
        vec![1.0, 1.0]
    );
    assert_eq!(
        Tensor::full(&[], 7.0, DType::I64, Device::Cpu)
            .unwrap()
            .to_vec::<i64>()
            .unwrap(),
        vec![7]
    );
    let r = Tensor::arange(0.0, 1.0, 0.25, DType::F32, Device::Cpu).unwrap();
    assert_eq!(r.to_vec::<f32>().unwrap(), vec![0.0, 0.25, 0.5, 0.75]);
    assert_eq!(
        Tensor::arange(3.0, 0.0, -1.0, DType::I64, Device::Cpu)
            .unwrap()
            .to_vec::<i64>()
            .unwrap(),
        vec![3, 2, 1]
    );
    assert_eq!(
        Tensor::scalar(2.5, DType::F64, Device::Cpu)
            .unwrap()
            .item()
            .unwrap(),
        2.5
    );
}

#[test]
fn seeded_random_is_reproducible_and_sane() {
    let mut r1 = rand::rngs::StdRng::seed_from_u64(42);
    let mut r2 = rand::rngs::StdRng::seed_from_u64(42);
    let a = Tensor::randn(&[10_000], DType::F64, Device::Cpu, &mut r1).unwrap();
    let b = Tensor::randn(&[10_000], DType::F64, Device::Cpu, &mut r2).unwrap();
    assert_eq!(a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
    // Mean within 4 standard errors (0.04) of 0, variance within 0.1 of 1.
    assert!(a.mean_all().unwrap().item().unwrap().abs() < 0.04);
    assert!((a.var(&[], false, 1).unwrap().item().unwrap() - 1.0).abs() < 0.1);
    let u = Tensor::rand(&[1000], DType::F32, Device::Cpu, &mut r1)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
}

#[test]
fn views_share_storage_and_read_correctly() {
    let x = Tensor::arange(0.0, 12.0, 1.0, DType::F32, Device::Cpu)
        .unwrap()
        .reshape(&[3, 4])
        .unwrap();
    let t = x.t().unwrap();
    assert!(t.shares_storage_with(&x));
    assert!(!t.is_contiguous());
    assert_eq!(t.shape(), &[4, 3]);
    assert_eq!(
        t.to_vec::<f32>().unwrap(),
        vec![0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]
    );
    let n = x.narrow(1, 1, 2).unwrap();
    assert!(n.shares_storage_with(&x));
    assert_eq!(n.to_vec::<f32>().unwrap(), vec![1., 2., 5., 6., 9., 10.]);
    let e = Tensor::arange(0.0, 3.0, 1.0, DType::F32, Device::Cpu)
        .unwrap()
        .reshape(&[3, 1])
        .unwrap();
    let b = e.expand(&[2, 3, 2]).unwrap();
    assert_eq!(
        b.to_vec::<f32>().unwrap(),
        vec![0., 0., 1., 1., 2., 2., 0., 0., 1., 1., 2., 2.]
    );
    // A reshape of a non-contiguous view copies.
    let r = t.reshape(&[12]).unwrap();
    assert!(!r.shares_storage_with(&x));
    assert_eq!(r.to_vec::<f32>().unwrap()[..4], [0., 4., 8., 1.]);
    // Writes through a view land in the base tensor.
    let base = Tensor::zeros(&[2, 3], DType::F32, Device::Cpu).unwrap();
    base.narrow(1, 1, 1)
        .unwrap()
        .copy_(&Tensor::ones(&[2, 1], DType::F32, Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(base.to_vec::<f32>().unwrap(), vec![0., 1., 0., 0., 1., 0.]);
}

#[test]
fn ops_on_strided_views_match_ops_on_copies() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x = Tensor::randn(&[4, 5, 6], DType::F64, Device::Cpu, &mut rng).unwrap();
    let view = x.permute(&[2, 0, 1]).unwrap().narrow(1, 1, 2).unwrap();
    let copy = Tensor::from_vec(view.to_vec::<f64>().unwrap(), view.shape(), Device::Cpu).unwrap();
    let other = Tensor::randn(&[6, 2, 5], DType::F64, Device::Cpu, &mut rng).unwrap();
    for (a, b) in [
        (view.add(&other).unwrap(), copy.add(&other).unwrap()),
        (view.exp().unwrap(), copy.exp().unwrap()),
        (view.sum(&[1], false).unwrap(), copy.sum(&[1], false).unwrap()),
        (
            view.matmul(&other.transpose(1, 2).unwrap()).unwrap(),
            copy.matmul(&other.transpose(1, 2).unwrap()).unwrap(),
        ),
    ] {
        assert_eq!(a.shape(), b.shape());
        assert_eq!(a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
    }
}

#[test]
fn dtype_conversion() {
    let x = Tensor::from_vec(vec![1.0f32, -2.5, 3.140625, 1e-3], &[4], Device::Cpu).unwrap();
    let h = x.to_dtype(DType::BF16).unwrap();
    assert_eq!(h.dtype(), DType::BF16);
    assert_eq!(h.to_vec::<bf16>().unwrap()[1], bf16::from_f32(-2.5));
    // bf16 keeps 8 significant bits: 3.140625 is representable, 1e-3 rounds.
    let back = h.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(&back[..3], &[1.0, -2.5, 3.140625]);
    assert!((back[3] - 1e-3).abs() < 1e-5);
    let f = x
        .to_dtype(DType::F16)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert_eq!(f[1], -2.5);
    let i = x.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap();
    assert_eq!(i, vec![1, -2, 3, 0]);
    let b = x.gt_scalar(0.0).unwrap();
    assert_eq!(b.dtype(), DType::Bool);
    assert_eq!(b.to_vec::<u8>().unwrap(), vec![1, 0, 1, 1]);
}

#[test]
fn broadcasting_arithmetic() {
    let col = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1], Device::Cpu).unwrap();
    let row = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], &[3], Device::Cpu).unwrap();
    assert_eq!(
        col.add(&row).unwrap().to_vec::<f32>().unwrap(),
        vec![11., 21., 31., 12., 22., 32.]
    );
    assert_eq!(col.mul(&row).unwrap().shape(), &[2, 3]);
    let s = Tensor::scalar(2.0, DType::F32, Device::Cpu).unwrap();
    assert_eq!(row.div(&s).unwrap().to_vec::<f32>().unwrap(), vec![5., 10., 15.]);
}

#[test]
fn where_masked_fill_and_comparisons() {
    let x = Tensor::from_vec(vec![-1.0f64, 0.0, 2.0], &[3], Device::Cpu).unwrap();
    let m = x.gt_scalar(0.0).unwrap();
    assert_eq!(
        x.masked_fill(&m, 9.0).unwrap().to_vec::<f64>().unwrap(),
        vec![-1.0, 0.0, 9.0]
    );
    let zeros = x.zeros_like().unwrap();
    assert_eq!(
        Tensor::where_cond(&m, &x, &zeros)
            .unwrap()
            .to_vec::<f64>()
            .unwrap(),
        vec![0.0, 0.0, 2.0]
    );
    assert_eq!(x.le_scalar(0.0).unwrap().to_vec::<u8>().unwrap(), vec![1, 1, 0]);
    assert_eq!(x.eq(&x).unwrap().to_vec::<u8>().unwrap(), vec![1, 1, 1]);
    assert_eq!(x.ne_scalar(0.0).unwrap().to_vec::<u8>().unwrap(), vec![1, 0, 1]);
}

#[test]
fn in_place_data_access() {
    let x = Tensor::zeros(&[2, 2], DType::F32, Device::Cpu).unwrap();
    let alias = x.clone();
    x.with_data_mut(|d: &mut [f32]| d.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32))
        .unwrap();
    assert_eq!(
        alias.with_data(|d: &[f32]| d.to_vec()).unwrap(),
        vec![0.0, 1.0, 2.0, 3.0]
    );
    assert!(x.with_data_mut(|_: &mut [f64]| ()).is_err());
    assert!(x.t().unwrap().with_data_mut(|_: &mut [f32]| ()).is_err());
    let w = x.set_requires_grad(true);
    assert!(matches!(
        w.with_data_mut(|_: &mut [f32]| ()).unwrap_err(),
        autograd::Error::NoBackward { .. }
    ));
    assert!(autograd::no_grad(|| w.with_data_mut(|d: &mut [f32]| d[0] = 9.0)).is_ok());
    assert_eq!(x.to_vec::<f32>().unwrap()[0], 9.0);
}
