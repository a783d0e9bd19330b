//! End to end: an MLP learns a non-linear two-class problem on the CPU in a few seconds.

use autograd::DType;
use tests::{two_spirals, Mlp};

#[test]
fn mlp_learns_two_spirals() {
    let (x, y) = two_spirals(512, 0.02, 1, DType::F32).unwrap();
    let (x_test, y_test) = two_spirals(512, 0.02, 2, DType::F32).unwrap();
    let model = Mlp::new(&[2, 64, 64, 2], DType::F32, 3).unwrap();
    let start = std::time::Instant::now();
    let first = model.sgd_step(&x, &y, 0.3).unwrap();
    let mut last = first;
    for _ in 0..600 {
        last = model.sgd_step(&x, &y, 0.3).unwrap();
    }
    let train = model.accuracy(&x, &y).unwrap();
    let test = model.accuracy(&x_test, &y_test).unwrap();
    println!(
        "two spirals: loss {first:.3} -> {last:.4}, train acc {train:.3}, test acc {test:.3}, {:.2?}",
        start.elapsed()
    );
    assert!(last < first / 4.0, "loss {first} -> {last}");
    assert!(test >= 0.95, "held-out accuracy {test} < 0.95 (train {train})");
}
