//! The tape's behaviour: what it records, what backward returns, accumulation, no_grad, and
//! that gradients are exact on hand-computable cases.

use autograd::{no_grad, DType, Device, Tensor};

fn v(data: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, Device::Cpu).unwrap()
}

#[test]
fn exact_gradients_on_a_small_expression() {
    // f(a, b) = sum(a * b + a), df/da = b + 1, df/db = a
    let a = v(&[1.0, 2.0, 3.0], &[3]).set_requires_grad(true);
    let b = v(&[4.0, 5.0, 6.0], &[3]).set_requires_grad(true);
    let f = a.mul(&b).unwrap().add(&a).unwrap().sum_all().unwrap();
    assert_eq!(f.item().unwrap(), 4.0 + 10.0 + 18.0 + 6.0);
    let g = f.backward().unwrap();
    assert_eq!(g.get(&a).unwrap().to_vec::<f64>().unwrap(), vec![5.0, 6.0, 7.0]);
    assert_eq!(g.get(&b).unwrap().to_vec::<f64>().unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(g.len(), 2, "only leaves' gradients are returned");
}

#[test]
fn a_tensor_used_many_times_accumulates() {
    // f = sum(x * x * x) via three uses of x: df/dx = 3x².
    let x = v(&[1.0, -2.0], &[2]).set_requires_grad(true);
    let f = x
        .mul(&x)
        .unwrap()
        .mul(&x)
        .unwrap()
        .add(&x.mul_scalar(0.0).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let g = f.backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![3.0, 12.0]);
}

#[test]
fn explicit_seed_gives_a_vector_jacobian_product() {
    let x = v(&[1.0, 2.0], &[2]).set_requires_grad(true);
    let y = x.mul_scalar(3.0).unwrap();
    let g = y.backward_with(&v(&[10.0, -1.0], &[2])).unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![30.0, -3.0]);
}

#[test]
fn no_grad_records_nothing() {
    let x = v(&[1.0], &[1]).set_requires_grad(true);
    let y = no_grad(|| x.exp().unwrap());
    assert!(!y.requires_grad());
    assert!(y.graph_ops().is_empty());
    assert!(autograd::is_grad_enabled());
    // Nested scopes restore the outer state.
    no_grad(|| {
        no_grad(|| ());
        assert!(!autograd::is_grad_enabled());
    });
    assert!(x.exp().unwrap().requires_grad());
}

#[test]
fn detach_stops_the_gradient() {
    let x = v(&[2.0], &[1]).set_requires_grad(true);
    // f = x * stop_gradient(x): df/dx = stop_gradient(x) = 2, not 2x = 4.
    let f = x.mul(&x.detach()).unwrap().sum_all().unwrap();
    assert_eq!(
        f.backward().unwrap().get(&x).unwrap().to_vec::<f64>().unwrap(),
        vec![2.0]
    );
    assert!(x.stop_gradient().shares_storage_with(&x));
}

#[test]
fn inputs_without_a_path_get_no_gradient() {
    let x = v(&[1.0], &[1]).set_requires_grad(true);
    let unused = v(&[1.0], &[1]).set_requires_grad(true);
    let f = x.exp().unwrap().sum_all().unwrap();
    let g = f.backward().unwrap();
    assert!(g.get(&unused).is_none());
    assert!(g.get(&x).is_some());
}

#[test]
fn backward_can_run_twice_on_one_graph() {
    let x = v(&[1.0, 2.0], &[2]).set_requires_grad(true);
    let f = x.tanh().unwrap().sum_all().unwrap();
    let g1 = f.backward().unwrap().get(&x).unwrap().to_vec::<f64>().unwrap();
    let g2 = f.backward().unwrap().get(&x).unwrap().to_vec::<f64>().unwrap();
    assert_eq!(g1, g2);
}

#[test]
fn deep_graphs_do_not_overflow_the_stack() {
    let x = v(&[0.5], &[1]).set_requires_grad(true);
    let mut y = x.clone();
    for _ in 0..20_000 {
        y = y.mul_scalar(1.0).unwrap();
    }
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), vec![1.0]);
}

#[test]
fn graph_is_freed_with_its_output() {
    let before = autograd::memory::live_storages();
    {
        let x = Tensor::ones(&[64], DType::F32, Device::Cpu)
            .unwrap()
            .set_requires_grad(true);
        let _y = x.exp().unwrap().mul(&x).unwrap().sum_all().unwrap();
    }
    // No global tape holds the intermediates once the output is gone. (Other tests in this
    // binary may allocate concurrently, so allow for their storages being in flight.)
    let after = autograd::memory::live_storages();
    assert!(after <= before + 8, "before {before}, after {after}");
}
