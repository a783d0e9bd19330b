//! Coverage: every op name passed to the graph's `record(...)` anywhere in `autograd/src` must
//! be recorded by at least one gradcheck case. Adding an op without a gradcheck fails here.

use std::collections::BTreeSet;
use std::path::Path;

/// Call sites whose op name is a variable, with the names they can take.
fn dynamic_names(file: &str, var: &str) -> Option<Vec<&'static str>> {
    match (file, var) {
        ("unary.rs", "name") => Some(
            kernels::elementwise::UnaryOp::ALL
                .iter()
                .map(|op| op.name())
                .collect(),
        ),
        ("reduce.rs", "op") => Some(vec!["max", "min"]),
        _ => None,
    }
}

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

/// Op names recorded in the source, found by scanning for `record(`.
fn recorded_in_source() -> BTreeSet<&'static str> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut names = BTreeSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        for (i, line) in text.lines().enumerate() {
            let Some(pos) = line.find("record(") else { continue };
            if line.contains("fn record(") || line.trim_start().starts_with("//") {
                continue;
            }
            let rest = line[pos + "record(".len()..].trim_start();
            if let Some(lit) = rest.strip_prefix('"') {
                let name = &lit[..lit.find('"').unwrap()];
                names.insert(&*Box::leak(name.to_string().into_boxed_str()));
            } else {
                let var: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let Some(dynamic) = dynamic_names(&file, &var) else {
                    panic!(
                        "{}:{}: `record({var}, ...)` names its op through a variable; list the names it can \
                         take in coverage.rs `dynamic_names`",
                        path.display(),
                        i + 1
                    )
                };
                names.extend(dynamic);
            }
        }
    }
    names
}

#[test]
fn every_recorded_op_has_a_gradcheck() {
    let in_source = recorded_in_source();
    assert!(in_source.len() > 30, "the scan found only {in_source:?}");
    let covered: BTreeSet<&'static str> = super::common::recorded_ops(&super::all_cases())
        .into_iter()
        .collect();
    let missing: Vec<_> = in_source.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "ops recorded in autograd/src without a gradcheck case: {missing:?}"
    );
    println!("gradcheck coverage: {} ops: {:?}", in_source.len(), in_source);
}
