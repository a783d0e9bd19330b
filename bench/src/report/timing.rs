//! How one case is timed: untimed warm-up calls, then single calls each followed by a device
//! synchronize before the clock is read (GPU work is asynchronous: without it the clock would
//! time the launch, not the kernel), until both a minimum count and a time budget are reached.
//! The figure is the median; the spread is p10–p90 (robust to the odd preempted run on a
//! shared machine, unlike min–max), with the minimum kept as well.

use std::time::{Duration, Instant};

use autograd::Device;
use serde::Serialize;

/// How many runs and how long: one per report scale.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub warmup_runs: usize,
    pub min_runs: usize,
    pub max_runs: usize,
    /// Timed runs continue until this much time has been spent in them (after `min_runs`).
    pub budget: Duration,
}

/// Summary statistics of the timed runs, in seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timing {
    pub median_s: f64,
    pub p10_s: f64,
    pub p90_s: f64,
    pub min_s: f64,
    pub runs: usize,
}

impl Timing {
    /// Statistics of raw samples (any order). `None` for no samples.
    pub fn from_samples(samples: &[f64]) -> Option<Timing> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        Some(Timing {
            median_s: quantile(&s, 0.5),
            p10_s: quantile(&s, 0.1),
            p90_s: quantile(&s, 0.9),
            min_s: s[0],
            runs: s.len(),
        })
    }
}

/// Linear interpolation between closest ranks of sorted samples (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Waits for the device's queued work, so that a clock read afterwards includes it.
pub fn synchronize(device: Device) -> Result<(), String> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda(i) => kernels::cuda::CudaDevice::get(i)
            .and_then(|d| d.synchronize())
            .map_err(|e| format!("synchronizing cuda:{i}: {e}")),
    }
}

/// Times `body(i)` (i counts every call, warm-up included, so a case can rotate its inputs).
/// The first error stops the measurement and is returned.
pub fn measure(
    plan: &Plan,
    device: Device,
    mut body: impl FnMut(usize) -> Result<(), String>,
) -> Result<Timing, String> {
    let mut call = 0;
    for _ in 0..plan.warmup_runs {
        body(call)?;
        call += 1;
    }
    synchronize(device)?;
    let mut samples = Vec::new();
    let mut spent = Duration::ZERO;
    while samples.len() < plan.min_runs || (spent < plan.budget && samples.len() < plan.max_runs) {
        let start = Instant::now();
        body(call)?;
        synchronize(device)?;
        let dt = start.elapsed();
        call += 1;
        spent += dt;
        samples.push(dt.as_secs_f64());
    }
    Ok(Timing::from_samples(&samples).expect("min_runs >= 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        let t = Timing::from_samples(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((t.median_s, t.min_s, t.runs), (3.0, 1.0, 5));
        assert!((t.p10_s - 1.4).abs() < 1e-12 && (t.p90_s - 4.6).abs() < 1e-12);
        assert!(Timing::from_samples(&[]).is_none());
    }

    #[test]
    fn measure_counts_runs_and_stops_on_error() {
        let plan = Plan {
            warmup_runs: 2,
            min_runs: 4,
            max_runs: 4,
            budget: Duration::ZERO,
        };
        let mut calls = Vec::new();
        let t = measure(&plan, Device::Cpu, |i| {
            calls.push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!(t.runs, 4);
        assert_eq!(calls, vec![0, 1, 2, 3, 4, 5]);
        let err = measure(&plan, Device::Cpu, |i| {
            if i == 3 {
                Err("boom".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(err, Err("boom".to_string()));
    }
}
