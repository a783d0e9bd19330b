//! The report's three forms: markdown (report.md and stdout), JSON (report.json and
//! `--json`), and the roofline SVG (`roofline.rs`).

use std::fmt::Write;

use algorithms::report::Table;

use super::Report;

/// `1.23 ms`, `45.6 µs`, `2.10 s`: three significant figures in the natural unit.
pub fn fmt_time(s: f64) -> String {
    let (v, unit) = if s >= 1.0 {
        (s, "s")
    } else if s >= 1e-3 {
        (s * 1e3, "ms")
    } else {
        (s * 1e6, "µs")
    };
    format!("{} {unit}", sig3(v))
}

/// Three significant figures, no exponent (`0.0123`, `1.23`, `123`, `12300`).
pub fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(3, 8) as usize;
        format!("{v:.decimals$}")
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "".into(), f)
}

/// The rows as a markdown table. GPU rows report TFLOP/s, CPU rows GFLOP/s.
pub fn rows_table(report: &Report) -> Table {
    let tera = report.device != "cpu";
    let flops_head = if tera { "TFLOP/s" } else { "GFLOP/s" };
    let mut t = Table::new(&[
        "family",
        "kernel",
        "shape",
        "dtype",
        "device",
        "median",
        "p10–p90",
        "GB/s",
        flops_head,
        "FLOP/B",
        "% of roof",
        "reference",
        "ref median",
        "ref ÷ ours",
    ]);
    for r in &report.rows {
        let base = [&r.family, &r.kernel, &r.shape, &r.dtype, &r.device].map(|s| s.to_string());
        let Some(tm) = &r.timing else {
            let why = format!("skipped: {}", r.skipped.as_deref().unwrap_or("not run"));
            let mut cells: Vec<String> = base.to_vec();
            cells.push(why);
            cells.resize(14, String::new());
            t.row(&cells);
            continue;
        };
        let rf = &r.reference;
        let ref_name = match (&rf.name, &rf.note) {
            (Some(n), None) => n.clone(),
            (Some(n), Some(note)) => format!("{n}: {note}"),
            (None, Some(note)) => note.clone(),
            (None, None) => String::new(),
        };
        let mut cells = base.to_vec();
        cells.extend([
            fmt_time(tm.median_s),
            format!("{}–{}", fmt_time(tm.p10_s), fmt_time(tm.p90_s)),
            opt(r.gb_per_s, sig3),
            opt(r.gflop_per_s, |g| sig3(if tera { g / 1e3 } else { g })),
            sig3(r.intensity),
            opt(r.fraction_of_roof, |f| {
                format!("{}% ({})", sig3(100.0 * f), r.bound.as_deref().unwrap_or(""))
            }),
            ref_name,
            opt(rf.timing.as_ref().map(|t| t.median_s), fmt_time),
            opt(rf.ratio, |x| format!("{}×", sig3(x))),
        ]);
        t.row(&cells);
    }
    t
}

pub fn ceilings_table(report: &Report) -> Table {
    let mut t = Table::new(&[
        "ceiling",
        "rate (fastest run)",
        "median",
        "p10–p90",
        "runs",
        "roofline",
    ]);
    for c in &report.ceilings.measured {
        let rate = match c.kind {
            super::ceilings::Kind::Bandwidth => format!("{} GB/s", sig3(c.rate / 1e9)),
            super::ceilings::Kind::Compute => format!("{} GFLOP/s", sig3(c.rate / 1e9)),
        };
        t.row(&[
            c.name.clone(),
            rate,
            fmt_time(c.timing.median_s),
            format!("{}–{}", fmt_time(c.timing.p10_s), fmt_time(c.timing.p90_s)),
            c.timing.runs.to_string(),
            if report.ceilings.is_roof(c) { "yes" } else { "" }.into(),
        ]);
    }
    for (name, why) in &report.ceilings.skipped {
        t.row(&[
            name.clone(),
            format!("skipped: {why}"),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
        ]);
    }
    t
}

pub fn markdown(report: &Report) -> String {
    let m = &report.machine;
    let mut s = String::new();
    let load = |l: Option<f64>| l.map_or("unknown".into(), |l| format!("{l:.2}"));
    let _ = writeln!(s, "# Kernel benchmark report\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| date | {} |", report.date);
    let _ = writeln!(s, "| commit | {} |", report.commit);
    let _ = writeln!(s, "| device | {} |", report.device);
    let _ = writeln!(s, "| CPU | {} ({} threads) |", m.cpu, m.threads);
    if let Some(gpu) = &m.gpu {
        let _ = writeln!(s, "| GPU | {gpu} |");
    }
    let _ = writeln!(
        s,
        "| memory | {:.1} GiB; last-level cache {} MiB |",
        m.memory_gib,
        m.llc_bytes >> 20
    );
    let _ = writeln!(s, "| OS | {} |", m.os);
    let _ = writeln!(
        s,
        "| load average (1 min) | {} at start, {} at end |",
        load(m.load_start),
        load(m.load_end)
    );
    let _ = writeln!(s, "| mode | {} ({:.0} s) |", report.mode, report.wall_s);
    let _ = writeln!(s, "| reference | {} |", report.reference);
    let _ = writeln!(
        s,
        "\n## Ceilings (measured in this run)\n\n{}",
        ceilings_table(report).to_markdown()
    );
    let _ = writeln!(s, "## Kernels\n\n{}", rows_table(report).to_markdown());
    let _ = writeln!(
        s,
        "Median of the timed calls, spread p10–p90. GB/s and FLOP/s divide the minimum bytes moved and \
         the nominal FLOPs of one call (the `cost` module beside each kernel) by the median. FLOP/B is the \
         arithmetic intensity; `% of roof` is the achieved FLOP/s over min(bandwidth × FLOP/B, peak) with \
         the ceilings marked `roofline` above, and says which of the two binds. `ref ÷ ours` is the \
         reference's median over ours: above 1, ours is faster.\n"
    );
    let skipped: Vec<_> = report.rows.iter().filter(|r| r.timing.is_none()).collect();
    if !skipped.is_empty() {
        let _ = writeln!(s, "## Skipped\n");
        for r in skipped {
            let why = r.skipped.as_deref().unwrap_or("not run");
            let _ = writeln!(
                s,
                "* {} {} {} on {}: {why}",
                r.family, r.kernel, r.shape, r.device
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "![roofline](roofline.svg)");
    s
}

pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::machine::Machine;
    use crate::report::row::tests::{ceilings, row};

    fn report() -> Report {
        let c = ceilings();
        let mut ok = row(1e9, 0.25e9, 0.2);
        ok.finish(&c);
        let mut skipped = row(1.0, 1.0, 1.0);
        skipped.timing = None;
        skipped.kernel = "exp".into();
        skipped.skipped = Some("exp: not implemented on cuda:0".into());
        Report {
            date: "2026-11-22 10:00 UTC".into(),
            commit: "abc1234".into(),
            device: "cpu".into(),
            mode: "quick".into(),
            wall_s: 12.0,
            machine: Machine::probe(),
            reference: "numpy is missing".into(),
            ceilings: c,
            rows: vec![ok, skipped],
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_time(0.00123), "1.23 ms");
        assert_eq!(fmt_time(4.56e-5), "45.6 µs");
        assert_eq!(fmt_time(2.1), "2.10 s");
        assert_eq!(sig3(152.4), "152");
        assert_eq!(sig3(0.0123), "0.0123");
        assert_eq!(sig3(f64::NAN), "-");
    }

    #[test]
    fn markdown_has_rows_ceilings_and_reasons() {
        let md = markdown(&report());
        assert!(md.contains("| elementwise | add | 4x4 | f32 | cpu | 200 ms | 180 ms–240 ms | 5.00 | 1.25 | 0.250 | 50.0% (memory) |"), "{md}");
        assert!(md.contains("| copy | 10.0 GB/s |"), "{md}");
        assert!(md.contains("skipped: exp: not implemented on cuda:0"), "{md}");
        assert!(md.contains("numpy is missing"));
        // Every table line of the kernels table has the header's column count.
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("| elementwise")).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.matches(" | ").count() == 13), "{lines:?}");
    }

    #[test]
    fn json_round_trips_the_figures() {
        let v: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(v["rows"][0]["gb_per_s"], 5.0);
        assert_eq!(v["rows"][1]["skipped"], "exp: not implemented on cuda:0");
        assert_eq!(v["ceilings"]["measured"][0]["kind"], "bandwidth");
        assert_eq!(v["commit"], "abc1234");
    }
}
