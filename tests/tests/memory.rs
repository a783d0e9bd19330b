//! Live tensor storage returns to its baseline after every training step: the graph, the
//! intermediate activations and every gradient are freed once the step is done.
//!
//! This file holds one test on purpose: the storage counters are process-wide, so another test
//! running in parallel in the same binary would disturb them.

use autograd::memory::{live_bytes, live_storages, peak_bytes, reset_peak};
use autograd::DType;
use tests::{two_spirals, Mlp};

#[test]
fn live_storage_returns_to_baseline_after_each_step() {
    let (x, y) = two_spirals(64, 0.02, 1, DType::F32).unwrap();
    let model = Mlp::new(&[2, 32, 32, 2], DType::F32, 3).unwrap();
    let (base_bytes, base_storages) = (live_bytes(), live_storages());
    assert!(base_storages > 0);
    reset_peak();
    for step in 0..1000 {
        model.sgd_step(&x, &y, 0.1).unwrap();
        assert_eq!(
            (live_bytes(), live_storages()),
            (base_bytes, base_storages),
            "step {step}: storage did not return to its baseline"
        );
    }
    // A step does allocate (activations, gradients), so the check above is not vacuous.
    assert!(
        peak_bytes() > base_bytes,
        "peak {} vs baseline {base_bytes}",
        peak_bytes()
    );
    println!(
        "baseline {base_bytes} B in {base_storages} storages; peak during a step {} B",
        peak_bytes()
    );
}
