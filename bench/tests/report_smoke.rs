//! The report runner end to end on tiny shapes: every case runs on the CPU, the three files are
//! written, and a filter that matches nothing is an error, not a panic. A few seconds.

use bench::report::{self, cases::Scale, DeviceChoice, Options};

fn opts(filter: Option<&str>) -> Options {
    Options {
        device: DeviceChoice::Cpu,
        filter: filter.map(String::from),
        scale: Scale::Tiny,
        reference: false,
        progress: false,
    }
}

#[test]
fn tiny_run_writes_the_three_outputs() {
    let r = report::run(&opts(None)).unwrap();
    let skipped: Vec<_> = r.rows.iter().filter(|row| row.timing.is_none()).collect();
    assert!(
        skipped.is_empty(),
        "skipped on the CPU: {:?}",
        skipped
            .iter()
            .map(|r| (&r.kernel, &r.skipped))
            .collect::<Vec<_>>()
    );
    assert!(r.ceilings.bandwidth().is_some() && r.ceilings.compute().is_some());
    for row in &r.rows {
        assert!(
            row.gb_per_s.unwrap() > 0.0 && row.fraction_of_roof.unwrap() > 0.0,
            "{}",
            row.kernel
        );
        // Attention rows time our unfused path as their reference; the others note the disabled Python.
        if row.family == "attention" {
            assert!(row.reference.ratio.is_some(), "{}", row.kernel);
        } else {
            assert!(row.reference.note.is_some(), "{}", row.kernel);
        }
    }
    let dir = std::env::temp_dir().join(format!("bench-report-smoke-{}", std::process::id()));
    report::write(&r, &dir).unwrap();
    for f in ["report.md", "report.json", "roofline.svg"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(text.len() > 200, "{f}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn filter_selects_and_rejects() {
    let r = report::run(&opts(Some("SOFTMAX"))).unwrap();
    assert!(!r.rows.is_empty() && r.rows.iter().all(|row| row.family == "softmax"));
    let e = report::run(&opts(Some("no-such-kernel"))).unwrap_err();
    assert!(e.contains("matches no case"), "{e}");
}
