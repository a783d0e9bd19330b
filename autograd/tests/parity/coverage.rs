//! Coverage: every op name recorded on the tape in `autograd/src` either has a CUDA parity
//! case or is listed below with the reason it has none. The row-family cases are data, so this
//! runs them on the CPU and collects the op names they record; the elementwise, layout and
//! matmul tests predate the case lists and are named with the file that covers them. Runs
//! without a GPU.

use std::collections::BTreeSet;
use std::path::Path;

/// Ops covered by the older parity files (their tests call them directly, not through cases).
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    ("add", "elementwise.rs"),
    ("sub", "elementwise.rs"),
    ("mul", "elementwise.rs"),
    ("div", "elementwise.rs"),
    ("pow", "elementwise.rs"),
    ("add_scalar", "elementwise.rs"),
    ("mul_scalar", "elementwise.rs"),
    ("pow_scalar", "elementwise.rs"),
    ("clamp", "elementwise.rs"),
    ("where", "elementwise.rs"),
    ("narrow", "layout.rs"),
    ("cat", "layout.rs"),
    ("broadcast_to", "layout.rs"),
    ("sum", "layout.rs"),
    ("matmul", "matmul.rs"),
    ("attention", "attention.rs"),
    ("cross_entropy_with", "masked_xent.rs"),
];

/// Ops with no CUDA path yet, and why.
const NOT_ON_CUDA: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Literal op names passed to `record(` in the source, plus the names of the two call sites
/// that pass a variable (unary ops and max/min), which gradcheck's coverage test also lists.
fn recorded_in_source() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut names = BTreeSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let Some(pos) = line.find("record(\"") else {
                continue;
            };
            if line.trim_start().starts_with("//") {
                continue;
            }
            let lit = &line[pos + "record(\"".len()..];
            names.insert(lit[..lit.find('"').unwrap()].to_string());
        }
    }
    names.extend(["max", "min"].map(String::from));
    names.extend(
        kernels::elementwise::UnaryOp::ALL
            .iter()
            .map(|op| op.name().to_string()),
    );
    names
}

#[test]
fn every_recorded_op_has_a_parity_case_or_a_reason() {
    // The scan reads the source tree this binary was built from; a binary carried to a GPU
    // machine (cargo xtask gpu-bundle) has none beside it, and the check has run where it was
    // built.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    if !src.is_dir() {
        eprintln!(
            "parity coverage: SKIPPED: no source tree at {} (a carried binary)",
            src.display()
        );
        return;
    }
    let mut covered: BTreeSet<String> = BTreeSet::new();
    let cases = [
        super::rows::reduction_cases(),
        super::rows::softmax_cases(),
        super::rows::norm_cases(),
        super::loss_index::loss_cases(),
        super::loss_index::index_cases(),
        super::loss_index::dropout_cases(),
        super::masked_xent_softmax::masked_softmax_cases(),
        super::cast::cast_cases(),
    ];
    for case in cases.iter().flatten() {
        covered.extend(
            super::cases::cpu_output(case)
                .graph_ops()
                .into_iter()
                .map(String::from),
        );
    }
    // Unary ops are all run by elementwise.rs's UNARY table.
    covered.extend(
        kernels::elementwise::UnaryOp::ALL
            .iter()
            .map(|op| op.name().to_string()),
    );
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity");
    for (op, file) in COVERED_ELSEWHERE {
        let file_name = file.split(' ').next().unwrap();
        let text = std::fs::read_to_string(manifest.join(file_name)).unwrap();
        assert!(
            text.contains(&format!("\"{op}\"")),
            "{file_name} does not name {op}"
        );
        covered.insert(op.to_string());
    }
    let excused: BTreeSet<String> = NOT_ON_CUDA.iter().map(|(op, _)| op.to_string()).collect();
    let in_source = recorded_in_source();
    assert!(in_source.len() > 30, "the scan found only {in_source:?}");
    let missing: Vec<_> = in_source
        .iter()
        .filter(|op| !covered.contains(*op) && !excused.contains(*op))
        .collect();
    assert!(
        missing.is_empty(),
        "ops recorded in autograd/src with neither a CUDA parity case nor a reason in \
         parity/coverage.rs: {missing:?}"
    );
    // A reason for an op that has since gained a case is stale.
    let stale: Vec<_> = excused.intersection(&covered).collect();
    assert!(stale.is_empty(), "listed as not on CUDA but covered: {stale:?}");
    println!(
        "parity coverage: {} ops covered, {} excused",
        covered.len(),
        excused.len()
    );
}
