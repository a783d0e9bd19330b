//! Every name a family lists in its `launch::KERNELS` is an `.entry` of its compiled PTX, and
//! every `.entry` is listed: the launcher looks kernels up by these strings, so a typo or a
//! forgotten entry must fail here, on a machine without a GPU.
//!
//! Skips with a printed reason where NVRTC is missing; fails instead when `REQUIRE_NVRTC=1`.

use std::io::Write;

use kernels::cuda::{compile, nvrtc_available, ptx_entry_sizes, source, Arch, CompileOptions};

/// (registered source, the family's entry list).
fn families() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("reduce.cu", kernels::reduce::launch::KERNELS),
        ("softmax.cu", kernels::softmax::launch::KERNELS),
        ("norm.cu", kernels::norm::launch::KERNELS),
        ("loss.cu", kernels::loss::launch::KERNELS),
        ("dropout.cu", kernels::random::launch::KERNELS),
        ("index.cu", kernels::index::launch::KERNELS),
        ("matmul.cu", kernels::matmul::launch::KERNELS),
    ]
}

#[test]
fn every_listed_kernel_is_a_ptx_entry_and_every_entry_is_listed() {
    if let Err(why) = nvrtc_available() {
        let required = std::env::var("REQUIRE_NVRTC").is_ok_and(|v| v == "1");
        assert!(!required, "REQUIRE_NVRTC=1 but NVRTC is not usable: {why}");
        let _ = writeln!(
            std::io::stderr(),
            "\nevery_listed_kernel_is_a_ptx_entry: SKIPPED (REQUIRE_NVRTC=1 makes this fail): {why}"
        );
        return;
    }
    for (name, listed) in families() {
        let src = source(name).unwrap_or_else(|| panic!("{name} is not registered in cuda::sources"));
        let compiled =
            compile(src, Arch::Sm90, &CompileOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let entries: Vec<String> = ptx_entry_sizes(&compiled.ptx)
            .into_iter()
            .map(|(entry, _)| entry)
            .collect();
        for k in listed {
            assert!(
                entries.iter().any(|e| e == k),
                "{name}: {k} is listed in KERNELS but is not a PTX .entry (entries: {entries:?})"
            );
            assert!(compiled.ptx.contains(&format!(".entry {k}(")), "{name}: {k}");
        }
        for e in &entries {
            assert!(
                listed.contains(&e.as_str()),
                "{name}: .entry {e} is missing from the family's KERNELS"
            );
        }
        let mut unique = listed.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), listed.len(), "{name}: KERNELS has duplicates");
    }
}
