//! One line of the report: a case's measurement turned into rates and a place on the roofline.

use serde::Serialize;

use super::ceilings::Ceilings;
use super::timing::Timing;

/// The reference column of one row.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RefCell {
    /// What was timed ("numpy 2.4.6", "ours, unfused ..."); `None` when nothing ran.
    pub name: Option<String>,
    pub timing: Option<Timing>,
    /// Reference median ÷ our median: above 1, ours is faster.
    pub ratio: Option<f64>,
    /// Why the column is empty, when it is.
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub family: String,
    pub kernel: String,
    pub shape: String,
    pub dtype: String,
    pub device: String,
    /// Input sets rotated (so an input smaller than the cache is not timed hot).
    pub copies: usize,
    /// Minimum bytes moved and nominal FLOPs per call (the kernels' `cost` formulas).
    pub bytes: f64,
    pub flops: f64,
    /// FLOPs per byte.
    pub intensity: f64,
    pub timing: Option<Timing>,
    /// Why the row was not measured.
    pub skipped: Option<String>,
    pub gb_per_s: Option<f64>,
    pub gflop_per_s: Option<f64>,
    /// "memory" or "compute": which roof is lower at this intensity.
    pub bound: Option<String>,
    /// Achieved rate ÷ the attainable rate at this intensity (min(bandwidth·I, peak)).
    pub fraction_of_roof: Option<f64>,
    pub reference: RefCell,
}

impl Row {
    /// Fills the rates, the bound and the fraction of the roof from the timing.
    pub fn finish(&mut self, ceilings: &Ceilings) {
        let Some(t) = &self.timing else { return };
        self.gb_per_s = Some(self.bytes / t.median_s / 1e9);
        self.gflop_per_s = Some(self.flops / t.median_s / 1e9);
        if let (Some(bw), Some(peak)) = (ceilings.bandwidth(), ceilings.compute()) {
            self.bound = Some(
                if bw * self.intensity < peak {
                    "memory"
                } else {
                    "compute"
                }
                .into(),
            );
            let attainable = ceilings.attainable(self.intensity).unwrap_or(f64::NAN);
            self.fraction_of_roof = Some(self.flops / t.median_s / attainable);
        }
        if let Some(r) = &self.reference.timing {
            self.reference.ratio = Some(r.median_s / t.median_s);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::ceilings::{Ceiling, Kind};

    pub(crate) fn timing(median_s: f64) -> Timing {
        Timing {
            median_s,
            p10_s: median_s * 0.9,
            p90_s: median_s * 1.2,
            min_s: median_s * 0.8,
            runs: 10,
        }
    }

    pub(crate) fn ceilings() -> Ceilings {
        let c = |name: &str, kind, rate| Ceiling {
            name: name.into(),
            kind,
            rate,
            timing: timing(0.01),
            roof: true,
        };
        Ceilings {
            measured: vec![c("copy", Kind::Bandwidth, 10e9), c("gemm", Kind::Compute, 100e9)],
            skipped: vec![],
        }
    }

    pub(crate) fn row(bytes: f64, flops: f64, median_s: f64) -> Row {
        Row {
            family: "elementwise".into(),
            kernel: "add".into(),
            shape: "4x4".into(),
            dtype: "f32".into(),
            device: "cpu".into(),
            copies: 1,
            bytes,
            flops,
            intensity: flops / bytes,
            timing: Some(timing(median_s)),
            skipped: None,
            gb_per_s: None,
            gflop_per_s: None,
            bound: None,
            fraction_of_roof: None,
            reference: RefCell::default(),
        }
    }

    #[test]
    fn rates_bound_and_fraction() {
        let c = ceilings();
        // 1 GB in 0.2 s = 5 GB/s at 0.25 FLOP/B: memory bound, roof 2.5 GFLOP/s, half of it.
        let mut r = row(1e9, 0.25e9, 0.2);
        r.reference.timing = Some(timing(0.4));
        r.finish(&c);
        assert!((r.gb_per_s.unwrap() - 5.0).abs() < 1e-9);
        assert!((r.gflop_per_s.unwrap() - 1.25).abs() < 1e-9);
        assert_eq!(r.bound.as_deref(), Some("memory"));
        assert!((r.fraction_of_roof.unwrap() - 0.5).abs() < 1e-9);
        assert!((r.reference.ratio.unwrap() - 2.0).abs() < 1e-9);
        // 100 FLOP/B: compute bound against the 100 GFLOP/s peak.
        let mut r = row(1e6, 1e8, 0.002);
        r.finish(&c);
        assert_eq!(r.bound.as_deref(), Some("compute"));
        assert!((r.fraction_of_roof.unwrap() - 0.5).abs() < 1e-9);
    }
}
