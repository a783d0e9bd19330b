//! Exact checks of the optimizer methods ([157] Lion's box, [400] decoupled decay) and of the
//! synthetic harnesses, with snapshots of small deterministic outputs.

use algorithms::decoupled_wd::{best_wd_slope, grid_data, no_gradient_trajectory, train_cell};
use algorithms::harness::blobs::{blobs, class_incremental, BlobSpec};
use algorithms::harness::stream::{si_blurry, StreamSpec};
use algorithms::lion_box::{
    mlp_run, quadratic_run, random_stream_run, GradStream, QUAD_EDGE_TOL, QUAD_INTERIOR_TOL,
};
use nn::optim::WeightDecay;
use nn::schedule::Schedule;

fn fmt(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(", ")
}

#[test]
fn blobs_are_deterministic_balanced_and_checked() {
    let spec = BlobSpec {
        train_per_class: 3,
        test_per_class: 2,
        ..BlobSpec::default()
    };
    let (a, ta) = blobs(&spec).unwrap();
    let (b, _) = blobs(&spec).unwrap();
    assert_eq!(a, b);
    let (c, _) = blobs(&BlobSpec {
        seed: 1,
        ..spec.clone()
    })
    .unwrap();
    assert_ne!(a.x, c.x);
    assert_eq!((a.len(), ta.len(), a.x.len()), (30, 20, 30 * 16));
    for k in 0..10 {
        assert_eq!(a.y.iter().filter(|&&y| y == k).count(), 3);
    }
    let first: Vec<f64> = a.row(0)[..4].iter().map(|&v| v as f64).collect();
    insta::assert_snapshot!("blobs_first_row", fmt(&first));
    assert!(blobs(&BlobSpec {
        classes: 1,
        ..spec.clone()
    })
    .is_err());
    assert!(blobs(&BlobSpec {
        label_noise: 1.0,
        ..spec
    })
    .is_err());
    assert_eq!(class_incremental(10, 5).unwrap()[4], vec![8, 9]);
    assert!(class_incremental(10, 3).is_err());
}

#[test]
fn label_noise_flips_about_the_requested_fraction_to_other_classes() {
    let clean = blobs(&BlobSpec::default()).unwrap().0;
    let noisy = blobs(&BlobSpec {
        label_noise: 0.3,
        ..BlobSpec::default()
    })
    .unwrap()
    .0;
    assert_eq!(clean.x, noisy.x);
    let flipped = clean.y.iter().zip(&noisy.y).filter(|(a, b)| a != b).count() as f64 / 1000.0;
    assert!((0.25..0.35).contains(&flipped), "{flipped}");
}

#[test]
fn blurry_stream_partitions_classes_and_mixes_the_requested_fraction() {
    let s = si_blurry(&StreamSpec::default()).unwrap();
    let mut all: Vec<usize> = s.task_classes.concat();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    assert!(s.task_classes.iter().all(|g| !g.is_empty()));
    assert_eq!(*s.task_starts.last().unwrap(), s.samples.len());
    assert!(
        (0.06..0.14).contains(&s.blurry_fraction()),
        "{}",
        s.blurry_fraction()
    );
    assert_eq!(s, si_blurry(&StreamSpec::default()).unwrap());
    let none = si_blurry(&StreamSpec {
        blurry: 0.0,
        ..StreamSpec::default()
    })
    .unwrap();
    assert_eq!(none.blurry_fraction(), 0.0);
    insta::assert_snapshot!(
        "stream_tasks",
        format!("{:?} {:?}", s.task_classes, s.task_starts)
    );
    assert!(si_blurry(&StreamSpec {
        tasks: 11,
        ..StreamSpec::default()
    })
    .is_err());
    assert!(si_blurry(&StreamSpec {
        imbalance: 0.5,
        ..StreamSpec::default()
    })
    .is_err());
}

/// [157]: for every gradient stream, the per-step bound |x_t| ≤ (1−ηλ)|x_{t−1}| + η and the box
/// after entry hold up to f32 rounding (4 ulps), with constant and cosine step sizes.
#[test]
fn lion_box_is_forward_invariant_for_any_gradient_stream() {
    for stream in [GradStream::Gaussian, GradStream::HeavyTailed, GradStream::Outward] {
        for (lambda, lr, sched) in [
            (1.0, 0.01, None),
            (10.0, 0.1, None),
            (
                0.5,
                0.02,
                Some(Schedule::Cosine {
                    warmup: 0,
                    total: 300,
                    final_value: 0.1,
                }),
            ),
        ] {
            let r = random_stream_run(stream, 300, lambda, lr, sched, 300, 7).unwrap();
            assert!(
                r.worst_step_excess_ulps <= 4.0,
                "{stream:?} λ={lambda}: {}",
                r.worst_step_excess_ulps
            );
            assert!(r.coords_entered > 0, "{stream:?} λ={lambda}");
            assert!(
                r.worst_box_excess_ulps <= 4.0,
                "{stream:?} λ={lambda}: {}",
                r.worst_box_excess_ulps
            );
            if let Some(entered) = r.entered_at {
                assert!(r.scaled_norms[entered..]
                    .iter()
                    .all(|&n| n <= 1.0 + 4.0 * f32::EPSILON as f64));
            }
        }
    }
    assert!(random_stream_run(GradStream::Gaussian, 10, 10.0, 0.2, None, 5, 0).is_err());
    let r = random_stream_run(GradStream::Gaussian, 50, 1.0, 0.1, None, 6, 3).unwrap();
    insta::assert_snapshot!("lion_norms_short", fmt(&r.scaled_norms));
}

/// [157]: on ½‖x − x*‖² Lion ends at clip(x*, ±1/λ): the edge coordinates at ±1/λ up to f32
/// rounding, the interior ones within a few final step sizes.
#[test]
fn lion_converges_to_the_clipped_optimum() {
    let q = quadratic_run(1000, 1.0, 0.05, 1500, 11).unwrap();
    assert!(q.edge_coords > 500, "{}", q.edge_coords);
    assert!(q.final_edge_error <= QUAD_EDGE_TOL, "{}", q.final_edge_error);
    assert!(
        q.final_interior_error <= QUAD_INTERIOR_TOL * q.final_eta,
        "{} vs η_T {}",
        q.final_interior_error,
        q.final_eta
    );
    // The interior coordinates are not at the edge: the two groups are told apart.
    assert!(q.final_interior_error > 100.0 * q.final_edge_error);
    insta::assert_snapshot!(
        "lion_quadratic_summary",
        format!(
            "edge {} edge_err {:.3e} interior_err {:.3e} eta_T {:.3e}",
            q.edge_coords, q.final_edge_error, q.final_interior_error, q.final_eta
        )
    );
}

#[test]
fn lion_keeps_mlp_weights_in_the_box() {
    let (trace, _) = mlp_run(3.0, 3e-3, 150, 5).unwrap();
    let worst = trace.iter().cloned().fold(0.0, f64::max);
    assert!(worst <= 1.0 + 4.0 * f32::EPSILON as f64, "{worst}");
    // The box is active: training pushes some weight near the edge.
    assert!(worst > 0.9, "{worst}");
}

/// [400]: a weight with no loss gradient decays geometrically under AdamW and roughly linearly
/// (about α per step) under Adam-L2.
#[test]
fn decoupled_decay_is_geometric_and_l2_is_normalized() {
    let (lr, wd) = (0.01, 0.05);
    let w = no_gradient_trajectory(WeightDecay::Paper, lr, wd, 30).unwrap();
    for (t, v) in w.iter().enumerate() {
        let want = (1.0 - wd).powi(t as i32);
        assert!((v - want).abs() <= 1e-6 * want, "step {t}: {v} vs {want}");
    }
    let l2 = no_gradient_trajectory(WeightDecay::CoupledL2, lr, wd, 30).unwrap();
    for p in l2.windows(2).take(20) {
        let step = p[0] - p[1];
        assert!(step > 0.8 * lr && step <= lr * (1.0 + 1e-5), "{step}");
    }
    insta::assert_snapshot!(
        "no_gradient_trajectories",
        format!("AdamW: {}\nAdam-L2: {}", fmt(&w[..8]), fmt(&l2[..8]))
    );
    assert!(no_gradient_trajectory(WeightDecay::Library, lr, wd, 3).is_err());
}

#[test]
fn best_wd_slope_reads_the_grid() {
    let lrs = [1e-3, 1e-2, 1e-1];
    let wds = [1e-3, 1e-2, 1e-1];
    // Best λ constant in α: slope 0. Best λ proportional to α: slope 1.
    let flat = vec![vec![1.0, 0.5, 1.0]; 3];
    assert_eq!(best_wd_slope(&lrs, &wds, &flat).1, 0.0);
    let diag: Vec<Vec<f64>> = (0..3)
        .map(|i| (0..3).map(|j| if i == j { 0.1 } else { 1.0 }).collect())
        .collect();
    let (best, slope) = best_wd_slope(&lrs, &wds, &diag);
    assert_eq!(best, wds.to_vec());
    assert!((slope - 1.0).abs() < 1e-12);
}

#[test]
fn grid_cells_are_deterministic() {
    let (train, test) = grid_data(3).unwrap();
    let a = train_cell(&train, &test, WeightDecay::Paper, 1e-2, 1e-2, 30, 3).unwrap();
    let b = train_cell(&train, &test, WeightDecay::Paper, 1e-2, 1e-2, 30, 3).unwrap();
    let c = train_cell(&train, &test, WeightDecay::CoupledL2, 1e-2, 1e-2, 30, 3).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}
