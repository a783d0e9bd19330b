//! The roofline chart: arithmetic intensity (FLOP/byte) against achieved GFLOP/s, log-log, one
//! marker series per kernel family, with the roof drawn dashed (bandwidth × intensity up to the
//! ridge point, then the compute peak) and, where measured, the single-thread copy's slope.

use algorithms::report::plot::{Figure, Series};

use super::ceilings::Kind;
use super::Report;

pub fn figure(report: &Report) -> Figure {
    let mut fig = Figure::new(
        "roofline",
        format!("Roofline, {} ({})", report.device, report.date),
        "arithmetic intensity (FLOP/byte)",
        "GFLOP/s",
    )
    .log_x()
    .log_y();
    let done: Vec<_> = report.rows.iter().filter(|r| r.gflop_per_s.is_some()).collect();
    let (mut lo, mut hi) = (0.1f64, 100.0f64);
    for r in &done {
        lo = lo.min(r.intensity / 2.0);
        hi = hi.max(r.intensity * 2.0);
    }
    let c = &report.ceilings;
    if let (Some(bw), Some(peak)) = (c.bandwidth(), c.compute()) {
        let (bw, peak) = (bw / 1e9, peak / 1e9);
        let ridge = peak / bw;
        let pts = if ridge > lo && ridge < hi {
            vec![(lo, bw * lo), (ridge, peak), (hi, peak)]
        } else {
            vec![(lo, (bw * lo).min(peak)), (hi, (bw * hi).min(peak))]
        };
        fig.push(Series::dashed(
            format!("roof: {bw:.1} GB/s, {peak:.0} GFLOP/s"),
            pts,
        ));
    }
    for ceil in c
        .measured
        .iter()
        .filter(|m| m.kind == Kind::Bandwidth && !c.is_roof(m))
    {
        let bw = ceil.rate / 1e9;
        let end = c.compute().map_or(hi, |p| (p / 1e9 / bw).min(hi));
        fig.push(Series::dashed(
            format!("{}: {bw:.1} GB/s", ceil.name),
            vec![(lo, bw * lo), (end, bw * end)],
        ));
    }
    let mut families: Vec<&str> = done.iter().map(|r| r.family.as_str()).collect();
    families.dedup();
    for fam in families {
        let pts = done
            .iter()
            .filter(|r| r.family == fam)
            .map(|r| (r.intensity, r.gflop_per_s.unwrap_or(f64::NAN)))
            .collect();
        fig.push(Series::points(fam, pts));
    }
    fig
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::machine::Machine;
    use crate::report::row::tests::{ceilings, row};

    #[test]
    fn roof_and_points() {
        let c = ceilings();
        let mut r = row(1e9, 0.25e9, 0.2);
        r.finish(&c);
        let report = Report {
            date: "d".into(),
            commit: "c".into(),
            device: "cpu".into(),
            mode: "quick".into(),
            wall_s: 1.0,
            machine: Machine::probe(),
            reference: String::new(),
            ceilings: c,
            rows: vec![r],
        };
        let fig = figure(&report);
        // Ridge at 100 / 10 = 10 FLOP/B, between the axis ends 0.1 and 100.
        assert_eq!(
            fig.series[0].points,
            vec![(0.1, 1.0), (10.0, 100.0), (100.0, 100.0)]
        );
        assert_eq!(fig.series[1].label, "elementwise");
        assert!(fig.to_svg().starts_with("<svg"));
    }
}
