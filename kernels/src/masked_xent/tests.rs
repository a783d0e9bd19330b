//! The CPU reference against a naive, materializing implementation of the documented formulas,
//! against finite differences, and on the edge cases the module documentation promises.

use super::cpu::*;
use super::*;

/// The formulas of the module documentation, written the slow, obvious way: build z̃, take a
/// two-pass log-sum-exp over all C entries, form q and p explicitly.
fn naive_row(x: &[f64], t: usize, allowed: &[bool], o: &XentOptions) -> (f64, f64) {
    let z: Vec<f64> = x
        .iter()
        .zip(allowed)
        .map(|(&v, &a)| if a { v } else { o.mask_value })
        .collect();
    let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = mx + z.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
    let a = allowed.iter().filter(|&&b| b).count() as f64;
    let eps = o.label_smoothing;
    let mut ce = 0.0;
    for c in 0..x.len() {
        let q = if allowed[c] { eps / a } else { 0.0 } + if c == t { 1.0 - eps } else { 0.0 };
        if q > 0.0 {
            ce -= q * (z[c] - lse);
        }
    }
    let pt = (z[t] - lse).exp();
    let w = (1.0 - pt).powf(o.focal_gamma);
    (w * ce + o.z_loss * lse * lse, lse)
}

/// Deterministic pseudo-random values in [-3, 3).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0
        })
        .collect()
}

fn option_sets() -> Vec<XentOptions> {
    let base = XentOptions::default();
    vec![
        base,
        XentOptions {
            mask_value: -2.0,
            ..base
        },
        XentOptions {
            label_smoothing: 0.1,
            ..base
        },
        XentOptions { z_loss: 1e-2, ..base },
        XentOptions {
            focal_gamma: 2.0,
            ..base
        },
        XentOptions {
            focal_gamma: 0.5,
            ..base
        },
        XentOptions {
            mask_value: 1.5,
            label_smoothing: 0.2,
            z_loss: 1e-3,
            focal_gamma: 1.0,
            ignore_index: Some(-100),
        },
    ]
}

/// Three rows of 7 classes with the same allowed sets in each encoding; every target allowed.
fn masks() -> Vec<(ClassMask, Vec<bool>)> {
    let lists: [&[usize]; 3] = [&[0, 2, 3, 6], &[1, 2, 3, 4, 5], &[0, 1, 2, 3, 4, 5, 6]];
    let mut dense = vec![false; 21];
    for (r, l) in lists.iter().enumerate() {
        for &c in l.iter() {
            dense[r * 7 + c] = true;
        }
    }
    vec![
        (ClassMask::All, vec![true; 21]),
        (ClassMask::dense(&dense, 3, 7), dense.clone()),
        (ClassMask::from_class_lists(7, &lists), dense),
        (
            ClassMask::ranges(&[(1, 4)]),
            (0..21).map(|i| (1..4).contains(&(i % 7))).collect(),
        ),
    ]
}

#[test]
fn forward_matches_the_naive_formulas() {
    let x = values(21, 1);
    for (mask, allowed) in masks() {
        let targets: Vec<i64> = if matches!(mask, ClassMask::Ranges(_)) {
            vec![1, 3, 2]
        } else {
            vec![3, 4, 0]
        };
        for o in option_sets() {
            let out: XentRows<f64> = cross_entropy_forward(&x, &targets, 7, &mask, &o);
            for r in 0..3 {
                let row = &x[r * 7..(r + 1) * 7];
                let (loss, lse) = naive_row(row, targets[r] as usize, &allowed[r * 7..(r + 1) * 7], &o);
                assert!((out.lse[r] - lse).abs() < 1e-13, "{mask:?} {o:?} row {r}");
                assert!(
                    (out.loss[r] - loss).abs() < 1e-12,
                    "{mask:?} {o:?} row {r}: {} vs {loss}",
                    out.loss[r]
                );
            }
        }
    }
}

/// The fused backward against central differences of Σ g_r·loss_r, every option set, every
/// mask encoding, per-row and broadcast g. Masked entries must be exactly 0.
#[test]
fn backward_matches_finite_differences() {
    let x = values(21, 2);
    let h = 1e-6;
    for (mask, allowed) in masks() {
        let targets: Vec<i64> = if matches!(mask, ClassMask::Ranges(_)) {
            vec![1, -100, 2]
        } else {
            vec![3, 4, -100]
        };
        for o in option_sets() {
            let o = XentOptions {
                ignore_index: Some(-100),
                ..o
            };
            for g in [vec![0.7, -1.3, 0.4], vec![0.9]] {
                let project = |x: &[f64]| -> f64 {
                    let l = cross_entropy_forward::<f64, f64>(x, &targets, 7, &mask, &o).loss;
                    l.iter().enumerate().map(|(r, l)| l * g[r.min(g.len() - 1)]).sum()
                };
                let f = cross_entropy_forward::<f64, f64>(&x, &targets, 7, &mask, &o);
                let dx = cross_entropy_backward(&x, &targets, 7, &mask, &f.lse, &f.coef, &g);
                for i in 0..x.len() {
                    if !allowed[i] || targets[i / 7] == -100 {
                        assert_eq!(dx[i].to_bits(), 0, "{mask:?} {o:?}: masked or ignored entry {i}");
                        continue;
                    }
                    let (mut p, mut m) = (x.clone(), x.clone());
                    p[i] += h;
                    m[i] -= h;
                    let numeric = (project(&p) - project(&m)) / (2.0 * h);
                    assert!(
                        (numeric - dx[i]).abs() < 1e-7 * (1.0 + numeric.abs()),
                        "{mask:?} {o:?} g {g:?} element {i}: {numeric} vs {}",
                        dx[i]
                    );
                }
            }
        }
    }
}

/// Masked gradients are +0.0 bit for bit, for a hard and a finite mask value, even where the
/// masked logits are NaN or infinite (they are never read into the result).
#[test]
fn masked_gradients_are_exactly_zero() {
    let mut x = values(3 * 2500, 3);
    let mask = ClassMask::ranges(&[(100, 2400)]);
    for r in 0..3 {
        x[r * 2500 + 5] = f64::NAN;
        x[r * 2500 + 2450] = f64::INFINITY;
    }
    for m in [f64::NEG_INFINITY, -1.0, 4.0] {
        let o = XentOptions {
            mask_value: m,
            label_smoothing: 0.1,
            z_loss: 1e-4,
            ..XentOptions::default()
        };
        let f = cross_entropy_forward::<f64, f64>(&x, &[100, 1000, 2399], 2500, &mask, &o);
        assert!(f.loss.iter().chain(&f.lse).all(|v| v.is_finite()), "{f:?}");
        let dx = cross_entropy_backward(&x, &[100, 1000, 2399], 2500, &mask, &f.lse, &f.coef, &[1.0]);
        for (i, d) in dx.iter().enumerate() {
            let c = i % 2500;
            if !(100..2400).contains(&c) {
                assert_eq!(d.to_bits(), 0, "m = {m}: entry {i} is {d}");
            } else {
                assert!(d.is_finite());
            }
        }
        let y = masked_softmax(&x, 2500, &mask, m);
        let g = values(x.len(), 4);
        for back in [
            masked_softmax_backward(&y, &g, 2500, &mask),
            masked_log_softmax_backward(&masked_log_softmax(&x, 2500, &mask, m), &g, 2500, &mask),
        ] {
            for (i, d) in back.iter().enumerate() {
                if !(100..2400).contains(&(i % 2500)) {
                    assert_eq!(d.to_bits(), 0, "m = {m}: softmax entry {i} is {d}");
                }
            }
        }
    }
}

/// Rows longer than a chunk (several chunks plus a remainder, with the max in a late chunk)
/// agree with the naive two-pass form.
#[test]
fn chunk_boundaries() {
    let c = 3 * CHUNK + 5;
    let mut x = values(2 * c, 5);
    x[2 * CHUNK + 7] = 40.0; // the max arrives in the third chunk: the running sum is rescaled
    x[c + 3] = -1e300;
    let allowed: Vec<bool> = (0..2 * c).map(|i| i % 3 != 0).collect();
    let mask = ClassMask::dense(&allowed, 2, c);
    let o = XentOptions {
        mask_value: 0.5,
        label_smoothing: 0.05,
        ..XentOptions::default()
    };
    let targets = [1, (c - 1) as i64];
    let out = cross_entropy_forward::<f64, f64>(&x, &targets, c, &mask, &o);
    for r in 0..2 {
        let (loss, lse) = naive_row(
            &x[r * c..(r + 1) * c],
            targets[r] as usize,
            &allowed[r * c..(r + 1) * c],
            &o,
        );
        assert!((out.lse[r] - lse).abs() < 1e-12 * lse.abs().max(1.0));
        assert!((out.loss[r] - loss).abs() < 1e-11 * loss.abs().max(1.0));
    }
}

/// bf16 logits give exactly the f32 results of their widened values: widening is exact and
/// the same f32 code runs after it.
#[test]
fn bf16_logits_equal_f32_of_the_widened_values() {
    let c = 2 * CHUNK + 11;
    let raw = values(4 * c, 6);
    let b: Vec<Bf16> = raw.iter().map(|&v| Bf16::from_f32(v as f32)).collect();
    let w: Vec<f32> = b.iter().map(|v| v.to_f32()).collect();
    let mask = ClassMask::from_class_lists(c, &[(0..c).step_by(2).collect::<Vec<_>>()]);
    let o = XentOptions {
        z_loss: 1e-4,
        focal_gamma: 2.0,
        ..XentOptions::default()
    };
    let t = [0, 2, 4, 6];
    let fb: XentRows<f32> = cross_entropy_forward(&b, &t, c, &mask, &o);
    let ff: XentRows<f32> = cross_entropy_forward(&w, &t, c, &mask, &o);
    assert_eq!(fb, ff);
    let g = [1.0f32, 0.5, -1.0, 2.0];
    assert_eq!(
        cross_entropy_backward(&b, &t, c, &mask, &fb.lse, &fb.coef, &g),
        cross_entropy_backward(&w, &t, c, &mask, &ff.lse, &ff.coef, &g)
    );
}

#[test]
fn bf16_rounding() {
    assert_eq!(Bf16::from_f32(1.0).to_f32(), 1.0);
    // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties to even (1).
    assert_eq!(Bf16::from_f32(1.0 + 1.0 / 256.0).to_f32(), 1.0);
    assert_eq!(Bf16::from_f32(1.0 + 3.0 / 256.0).to_f32(), 1.0 + 4.0 / 256.0);
    assert!(Bf16::from_f32(f32::NAN).to_f32().is_nan());
    assert_eq!(Bf16::from_f32(f32::NEG_INFINITY).to_f32(), f32::NEG_INFINITY);
}

/// A 256k-class vocabulary row streams through the 1024-entry chunk buffer.
#[test]
fn vocabulary_of_256k_classes() {
    let c = 1 << 18;
    let x: Vec<f32> = values(2 * c, 7).iter().map(|&v| v as f32).collect();
    let t = [12_345, (c - 1) as i64];
    let out: XentRows<f32> = cross_entropy_forward(&x, &t, c, &ClassMask::All, &XentOptions::default());
    for r in 0..2 {
        let row: Vec<f64> = x[r * c..(r + 1) * c].iter().map(|&v| v as f64).collect();
        let (loss, lse) = naive_row(&row, t[r] as usize, &vec![true; c], &XentOptions::default());
        // f32 sums of 2^18 terms: relative error ~1e-6 at most here.
        assert!(((out.lse[r] as f64) - lse).abs() < 1e-5 * lse.abs());
        assert!(((out.loss[r] as f64) - loss).abs() < 1e-5 * lse.abs());
    }
    let dx = cross_entropy_backward(&x, &t, c, &ClassMask::All, &out.lse, &out.coef, &[1.0]);
    let s: f64 = dx[..c].iter().map(|&v| v as f64).sum();
    assert!(s.abs() < 1e-4, "softmax − onehot sums to 0, got {s}");
}

#[test]
fn masked_softmax_is_softmax_of_the_filled_logits() {
    let x = values(21, 8);
    for (mask, allowed) in masks() {
        for m in [f64::NEG_INFINITY, -3.0, 0.7] {
            let filled: Vec<f64> = x
                .iter()
                .zip(&allowed)
                .map(|(&v, &a)| if a { v } else { m })
                .collect();
            assert_eq!(
                masked_softmax(&x, 7, &mask, m),
                crate::softmax::cpu::softmax(&filled, 7)
            );
            assert_eq!(
                masked_log_softmax(&x, 7, &mask, m),
                crate::softmax::cpu::log_softmax(&filled, 7)
            );
        }
    }
}

/// Rows with nothing allowed: hard mask → softmax 0, log-softmax -inf, CE loss +inf with lse
/// -inf; finite mask value → uniform. Gradients 0 either way.
#[test]
fn fully_masked_rows() {
    let x = [0.3, -1.0, 2.0, 0.5, 0.1, 0.2];
    let mask = ClassMask::ranges(&[(0, 0), (0, 3)]);
    let hard = masked_softmax(&x, 3, &mask, f64::NEG_INFINITY);
    assert_eq!(&hard[..3], &[0.0; 3]);
    let log_hard = masked_log_softmax(&x, 3, &mask, f64::NEG_INFINITY);
    assert_eq!(&log_hard[..3], &[f64::NEG_INFINITY; 3]);
    let soft = masked_softmax(&x, 3, &mask, -2.0);
    assert!(soft[..3].iter().all(|&p| (p - 1.0 / 3.0).abs() < 1e-15));
    let g = [1.0, -2.0, 0.5, 1.0, 1.0, 1.0];
    for dx in [
        masked_softmax_backward(&hard, &g, 3, &mask),
        masked_softmax_backward(&soft, &g, 3, &mask),
        masked_log_softmax_backward(&log_hard, &g, 3, &mask),
    ] {
        assert_eq!(&dx[..3], &[0.0; 3]);
    }
    let f = cross_entropy_forward::<f64, f64>(&x, &[0, 1], 3, &mask, &XentOptions::default());
    assert_eq!((f.loss[0], f.lse[0]), (f64::INFINITY, f64::NEG_INFINITY));
    assert_eq!(f.coef[0], RowCoef::zero());
    let dx = cross_entropy_backward(&x, &[0, 1], 3, &mask, &f.lse, &f.coef, &[1.0]);
    assert_eq!(&dx[..3], &[0.0; 3]);
}

#[test]
fn nan_and_inf_at_allowed_classes_reach_the_lse() {
    let x = [0.0, f64::NAN, 1.0, f64::INFINITY, 0.0, 1.0];
    let f = cross_entropy_forward::<f64, f64>(&x, &[0, 0], 3, &ClassMask::All, &XentOptions::default());
    assert!(f.lse[0].is_nan() && f.loss[0].is_nan());
    assert_eq!(f.lse[1], f64::INFINITY);
    // Masked, the same NaN is never read.
    let mask = ClassMask::ranges(&[(2, 3)]);
    let f = cross_entropy_forward::<f64, f64>(&x, &[2, 2], 3, &mask, &XentOptions::default());
    assert_eq!(f.loss, vec![0.0, 0.0]);
}

#[test]
#[should_panic(expected = "outside 0..3")]
fn an_out_of_range_target_is_a_caller_bug() {
    cross_entropy_forward::<f64, f64>(&[0.0; 3], &[3], 3, &ClassMask::All, &XentOptions::default());
}

#[test]
#[should_panic(expected = "callers validate masks")]
fn a_mask_of_the_wrong_shape_is_a_caller_bug() {
    masked_softmax(&[0.0f32; 6], 3, &ClassMask::ranges(&[(0, 4)]), 0.0);
}
