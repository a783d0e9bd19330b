//! End to end: AdamW and Lion (through `nn::optim`) train the tests-crate MLP on two spirals.

use autograd::{DType, Reduction};
use nn::optim::{AdamW, Algorithm, Lion, Optimizer};
use nn::schedule::Schedule;
use tests::{two_spirals, Mlp};

/// Trains a fresh MLP for `steps` full-batch steps; returns (first loss, last loss, accuracy).
fn train<A: Algorithm>(hyper: A, steps: u64) -> (f64, f64, f64) {
    let (x, y) = two_spirals(256, 0.02, 1, DType::F32).unwrap();
    let model = Mlp::new(&[2, 32, 32, 2], DType::F32, 3).unwrap();
    let mut opt = Optimizer::new(model.parameters().into_iter().cloned().collect(), hyper).unwrap();
    opt.set_schedule(Some(Schedule::Cosine {
        warmup: 10,
        total: steps,
        final_value: 0.1,
    }))
    .unwrap();
    let (mut first, mut last) = (f64::NAN, f64::NAN);
    for t in 0..steps {
        let loss = autograd::cross_entropy(&model.forward(&x).unwrap(), &y, Reduction::Mean).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        last = loss.item().unwrap();
        if t == 0 {
            first = last;
        }
    }
    (first, last, model.accuracy(&x, &y).unwrap())
}

#[test]
fn adamw_and_lion_reduce_the_mlp_loss() {
    let adamw = train(
        AdamW {
            lr: 2e-2,
            weight_decay: 1e-2,
            ..AdamW::default()
        },
        200,
    );
    let lion = train(
        Lion {
            lr: 2e-3,
            weight_decay: 1e-1,
            ..Lion::default()
        },
        200,
    );
    for (name, (first, last, acc)) in [("AdamW", adamw), ("Lion", lion)] {
        println!("{name}: loss {first:.3} -> {last:.4}, train accuracy {acc:.3}");
        assert!(last < first / 3.0, "{name}: loss {first} -> {last}");
        assert!(acc > 0.9, "{name}: accuracy {acc}");
    }
}
