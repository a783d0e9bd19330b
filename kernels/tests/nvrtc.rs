//! Layer 4 of the test plan, every check that needs NVRTC, in one binary that compiles each
//! registered `.cu` source once per architecture (sm_80, sm_90, ptxas included, spills as
//! errors), in parallel, and shares the results:
//!
//! * every source compiles for both architectures with no register spills, and ptxas reports
//!   one kernel per PTX entry;
//! * the guards work: a spilling kernel is rejected, a syntax error comes back with the log;
//! * every name a family lists in its `launch::KERNELS` is an `.entry` of its sm_90 PTX, and
//!   every entry is listed (the launchers look kernels up by these strings);
//! * every kernel the Rust launchers name (`KernelRef`) exists in the sm_90 PTX with the
//!   parameter kinds the launcher passes (a misspelt name, a missing `extern "C"`, a dropped
//!   or reordered parameter, a `float` where the launcher passes `long long`).
//!
//! These were three binaries (nvrtc_compile, cuda_entries, cuda_launch_refs), each compiling
//! the sources again; the entry and parameter checks now read the strict compile's PTX, which
//! is the same PTX (the strict flags only add ptxas warnings-as-errors).
//!
//! Skips with a printed reason where NVRTC is missing; fails instead when `REQUIRE_NVRTC=1`
//! (`cargo xtask test` sets it after fetching the pinned NVRTC wheels), so CI cannot pass by
//! silently skipping.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use kernels::cuda::launch::{ptx_entry_params, ptx_kind};
use kernels::cuda::{
    all_sources, compile, nvrtc_available, nvrtc_version, ptx_entry_sizes, stats_table, Arch, CompileOptions,
    Compiled, CudaError, KernelRef, KernelSource,
};

/// Writes straight to stderr. libtest captures `println!`/`eprintln!` of passing tests, and
/// the skip reason and the register table are meant to be seen in every run.
fn report(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// `true` when the NVRTC checks should run; `false` (after printing why) when they skip.
fn nvrtc_or_skip(test: &str) -> bool {
    match nvrtc_available() {
        Ok(()) => true,
        Err(why) => {
            let required = std::env::var("REQUIRE_NVRTC").is_ok_and(|v| v == "1");
            assert!(!required, "REQUIRE_NVRTC=1 but NVRTC is not usable: {why}");
            // The reason is long and the same for every test: print it once.
            static ONCE: std::sync::Once = std::sync::Once::new();
            let mut shown = false;
            ONCE.call_once(|| {
                report(&format!(
                    "\n{test}: SKIPPED (REQUIRE_NVRTC=1 makes this fail): {why}\n"
                ));
                shown = true;
            });
            if !shown {
                report(&format!("\n{test}: SKIPPED (NVRTC not usable, see above)\n"));
            }
            false
        }
    }
}

/// One (source, arch) compile: the result, or the error's text.
struct Outcome {
    source: &'static str,
    arch: Arch,
    result: Result<Compiled, String>,
}

/// Every registered source compiled strictly for every checked architecture, once per test
/// binary, whichever test asks first (the others wait). The pairs are spread over one worker
/// per core, largest sources first so that no long compile starts last.
fn compiled() -> &'static [Outcome] {
    static ALL: OnceLock<Vec<Outcome>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut jobs: Vec<(&'static KernelSource, Arch)> = all_sources()
            .iter()
            .flat_map(|s| Arch::CHECKED.into_iter().map(move |a| (s, a)))
            .collect();
        jobs.sort_by_key(|(s, _)| std::cmp::Reverse(s.src.len()));
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(jobs.len());
        let next = AtomicUsize::new(0);
        let done = Mutex::new(Vec::with_capacity(jobs.len()));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(source, arch)) = jobs.get(i) else {
                        break;
                    };
                    let result = compile(source, arch, &CompileOptions::strict()).map_err(|e| e.to_string());
                    done.lock().unwrap().push(Outcome {
                        source: source.name,
                        arch,
                        result,
                    });
                });
            }
        });
        let mut done = done.into_inner().unwrap();
        // Registration order, then architecture: the report reads the same in every run.
        let order = |name: &str| all_sources().iter().position(|s| s.name == name);
        done.sort_by_key(|o| (order(o.source), o.arch.capability()));
        done
    })
}

/// The sm_90 PTX of a registered source, for the entry and parameter checks.
fn sm90_ptx(source: &str) -> Result<&'static str, String> {
    let outcome = compiled()
        .iter()
        .find(|o| o.source == source && o.arch == Arch::Sm90)
        .ok_or_else(|| format!("{source}: not a registered source"))?;
    match &outcome.result {
        Ok(c) => Ok(&c.ptx),
        Err(_) => Err(format!(
            "{source}: did not compile for sm_90 (see every_kernel_compiles_for_sm80_and_sm90_without_spills)"
        )),
    }
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90_without_spills() {
    if !nvrtc_or_skip("every_kernel_compiles_for_sm80_and_sm90_without_spills") {
        return;
    }
    let all = compiled();
    let ok: Vec<Compiled> = all
        .iter()
        .filter_map(|o| o.result.as_ref().ok().cloned())
        .collect();
    let failures: Vec<&str> = all
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(String::as_str))
        .collect();
    let (major, minor) = nvrtc_version().unwrap_or_default();
    report(&format!(
        "NVRTC {major}.{minor}, ptxas via NVRTC, spills are errors:\n{}",
        stats_table(&ok)
    ));
    assert!(
        failures.is_empty(),
        "{} compile(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert_eq!(ok.len(), all_sources().len() * Arch::CHECKED.len());
    for c in &ok {
        // Entry points are counted in the PTX, not by grepping `__global__`: several sources
        // generate their per-op, per-dtype entry points with macros.
        let declared = ptx_entry_sizes(&c.ptx).len();
        assert_eq!(
            c.kernels.len(),
            declared,
            "{} {}: ptxas reported {} kernels, the PTX has {declared} entries",
            c.source,
            c.arch,
            c.kernels.len()
        );
        assert!(c.ptx.contains(&format!(".target {}", c.arch)), "PTX target");
        assert!(!c.cubin.is_empty(), "{} {}: no cubin", c.source, c.arch);
        for k in &c.kernels {
            assert!(k.registers > 0 && k.ptx_bytes > 0, "{k:?}");
        }
    }
}

/// The guard works: a kernel squeezed into too few registers must fail the strict compile, with
/// ptxas's spill message in the error. Otherwise the check above could pass vacuously.
#[test]
fn a_spilling_kernel_is_rejected() {
    if !nvrtc_or_skip("a_spilling_kernel_is_rejected") {
        return;
    }
    let src = KernelSource {
        name: "spill.cu",
        src: r#"
extern "C" __global__ void spill(float* out, const float* in, int n) {
    float r[64];
    for (int j = 0; j < 64; ++j) r[j] = in[j * n + threadIdx.x];
    out[threadIdx.x] = r[n & 63];
}
"#,
    };
    let mut options = CompileOptions::strict();
    options.extra.push("--maxrregcount=32".to_string());
    match compile(&src, Arch::Sm90, &options) {
        Err(CudaError::Compile { log, .. }) => {
            assert!(log.contains("spill"), "unexpected log:\n{log}")
        }
        Err(e) => panic!("expected a compile error, got: {e}"),
        Ok(c) => panic!("expected a spill error, compiled: {:?}", c.kernels),
    }
    // Without the strict flags the same kernel compiles, and the spill shows in the stats.
    options.spills_are_errors = false;
    let c = compile(&src, Arch::Sm90, &options).expect("non-strict compile");
    assert!(c.kernels[0].spills(), "{:?}", c.kernels[0]);
}

#[test]
fn a_syntax_error_comes_back_with_the_log() {
    if !nvrtc_or_skip("a_syntax_error_comes_back_with_the_log") {
        return;
    }
    let src = KernelSource {
        name: "broken.cu",
        src: "extern \"C\" __global__ void broken(float* x) { x[0] = undefined_name; }",
    };
    let err = compile(&src, Arch::Sm80, &CompileOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("broken.cu") && text.contains("undefined_name"),
        "{text}"
    );
}

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
    if !nvrtc_or_skip("every_listed_kernel_is_a_ptx_entry_and_every_entry_is_listed") {
        return;
    }
    for (name, listed) in families() {
        let ptx = sm90_ptx(name).unwrap_or_else(|e| panic!("{e}"));
        let entries: Vec<String> = ptx_entry_sizes(ptx).into_iter().map(|(entry, _)| entry).collect();
        for k in listed {
            assert!(
                entries.iter().any(|e| e == k),
                "{name}: {k} is listed in KERNELS but is not a PTX .entry (entries: {entries:?})"
            );
            assert!(ptx.contains(&format!(".entry {k}(")), "{name}: {k}");
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

fn launched() -> Vec<KernelRef> {
    let mut all = kernels::elementwise::cuda::all_kernels();
    all.extend(kernels::elementwise::cast_cuda::all_kernels());
    all.extend(kernels::cuda::gemm::TILED_KERNELS);
    all.extend(kernels::reduce::cuda::all_kernels());
    all.extend(kernels::softmax::cuda::all_kernels());
    all.extend(kernels::norm::cuda::all_kernels());
    all.extend(kernels::loss::cuda::all_kernels());
    all.extend(kernels::index::cuda::all_kernels());
    all.extend(kernels::random::cuda::all_kernels());
    all.extend(kernels::attention::cuda::all_kernels());
    all.extend(kernels::masked_xent::cuda::all_kernels());
    all.extend(kernels::optim::cuda::all_kernels());
    all.extend(kernels::cvx::cuda::all_kernels());
    all
}

#[test]
fn launched_kernels_exist_with_matching_parameters() {
    if !nvrtc_or_skip("launched_kernels_exist_with_matching_parameters") {
        return;
    }
    let refs = launched();
    let mut entries: HashMap<&str, HashMap<String, Vec<String>>> = HashMap::new();
    let mut failures = Vec::new();
    for r in &refs {
        if !entries.contains_key(r.source) {
            match sm90_ptx(r.source) {
                Ok(ptx) => {
                    entries.insert(r.source, ptx_entry_params(ptx).into_iter().collect());
                }
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            }
        }
        let Some(params) = entries.get(r.source).and_then(|e| e.get(r.name)) else {
            if entries.contains_key(r.source) {
                failures.push(format!("{}: no kernel named {}", r.source, r.name));
            }
            continue;
        };
        let expected: Vec<String> = r.params.iter().map(|&k| ptx_kind(k)).collect();
        if *params != expected {
            failures.push(format!(
                "{}::{}: PTX takes {params:?}, the launcher passes {expected:?}",
                r.source, r.name
            ));
        }
    }
    failures.dedup();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    report(&format!(
        "{} launched kernels checked against their PTX signatures\n",
        refs.len()
    ));
}
