//! The roofline report of `cargo xtask bench` (issue 8): measure the machine's ceilings, time a
//! curated set of shapes per kernel family against them and against a reference
//! implementation, and write `report.md`, `report.json` and `roofline.svg`.
//!
//! * [`ceilings`]: copy bandwidth and GEMM peak, measured first in the same run.
//! * [`cases`]: the shapes per family, their byte and FLOP counts, their builders.
//! * [`timing`]: warm-up, per-call times with a device synchronize, median and p10–p90.
//! * [`reference`]: numpy / PyTorch through `bench/reference/reference.py`.
//! * [`output`] and [`roofline`]: the markdown, JSON and SVG.
//!
//! Nothing here panics on a missing GPU, Python or library: each becomes a skipped row or an
//! empty column with its reason.

pub mod cases;
pub mod ceilings;
pub mod machine;
pub mod output;
pub mod reference;
pub mod roofline;
pub mod row;
pub mod timing;

use std::path::Path;
use std::time::{Duration, Instant};

use autograd::Device;
use serde::Serialize;

use cases::{Env, Reference, Scale};
use ceilings::Ceilings;
use machine::Machine;
use row::{RefCell, Row};
use timing::{measure, Plan};

/// Which device `--device` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA device 0 when one can be opened, else the CPU.
    Auto,
    Cpu,
    Cuda,
}

pub struct Options {
    pub device: DeviceChoice,
    /// Only cases whose "family kernel shape dtype" contains this (case-insensitive).
    pub filter: Option<String>,
    pub scale: Scale,
    /// Run the Python reference (off in the smoke test).
    pub reference: bool,
    /// Print a line per case to stderr.
    pub progress: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub commit: String,
    pub device: String,
    /// "full", "quick" or "tiny".
    pub mode: String,
    pub wall_s: f64,
    pub machine: Machine,
    /// The reference library, or why there is none.
    pub reference: String,
    pub ceilings: Ceilings,
    pub rows: Vec<Row>,
}

/// The device to run on, or why the one asked for cannot be used.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, String> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        // The host emulator is never timed: its figures say nothing about a GPU.
        DeviceChoice::Auto if cuda_is_emulated() => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::best_available()),
        DeviceChoice::Cuda if cuda_is_emulated() => {
            Err("--device cuda: device 0 is the host emulator (host emulator: timings meaningless)".into())
        }
        DeviceChoice::Cuda => match Device::cuda_unavailable_reason() {
            None => Ok(Device::Cuda(0)),
            Some(why) => Err(format!("--device cuda: no usable GPU ({why})")),
        },
    }
}

/// Whether CUDA device 0 is the kernels crate's host emulator (feature `emulator` and
/// `KERNELS_EMULATOR=1`) rather than a GPU.
fn cuda_is_emulated() -> bool {
    kernels::cuda::CudaDevice::get(0).is_ok_and(|d| d.is_emulated())
}

pub fn plan(scale: Scale) -> Plan {
    Plan {
        warmup_runs: scale.pick(2, 1, 1),
        min_runs: scale.pick(10, 3, 2),
        max_runs: scale.pick(200, 30, 2),
        budget: Duration::from_millis(scale.pick(1500, 200, 0)),
    }
}

/// Runs everything `opts` asks for and returns the report (nothing written yet).
pub fn run(opts: &Options) -> Result<Report, String> {
    let started = Instant::now();
    let device = resolve_device(opts.device)?;
    let say = |msg: &str| {
        if opts.progress {
            eprintln!("bench: {msg}");
        }
    };
    let mut cases = cases::all(opts.scale);
    if let Some(f) = &opts.filter {
        let f = f.to_lowercase();
        cases.retain(|c| c.label().to_lowercase().contains(&f));
        if cases.is_empty() {
            let families: Vec<_> = cases::all(Scale::Tiny).iter().map(|c| c.family).collect();
            let mut families = families;
            families.dedup();
            return Err(format!(
                "--filter {f:?} matches no case (families: {}; the filter also matches kernel names, \
                 shapes and dtypes)",
                families.join(", ")
            ));
        }
    }
    let mut machine = Machine::probe();
    let mut ceilings = match device {
        Device::Cpu => {
            say(&format!(
                "measuring the CPU's ceilings ({} threads)",
                machine.threads
            ));
            ceilings::measure_cpu(opts.scale, machine.threads)
        }
        Device::Cuda(i) => {
            if let Ok(d) = kernels::cuda::CudaDevice::get(i) {
                machine.gpu = Some(format!("{} ({:?}, {} SMs)", d.name(), d.arch(), d.sm_count()));
            }
            say("measuring the GPU's ceilings (device copy, cuBLAS f32 and bf16 GEMM)");
            ceilings::measure_cuda(opts.scale, i)
        }
    };
    for c in &ceilings.measured {
        say(&format!("ceiling {}: {:.1} G/s", c.name, c.rate / 1e9));
    }
    for (name, why) in &ceilings.skipped {
        say(&format!("ceiling {name}: skipped ({why})"));
    }
    // Twice the last-level cache (or, on a GPU, 128 MiB: twice an H100's L2), so that a
    // rotation pass cannot be served from cache.
    let (rotate, cap) = match (device, opts.scale) {
        (_, Scale::Tiny) => (1 << 16, 1 << 20),
        (Device::Cpu, _) => (2 * machine.llc_bytes, 1 << 30),
        (Device::Cuda(_), _) => (128 << 20, 1 << 30),
    };
    let plan = plan(opts.scale);
    let mut rows = Vec::new();
    let mut py_cases = Vec::new();
    let total = cases.len();
    for (k, case) in cases.into_iter().enumerate() {
        let copies = cases::copies_for(case.bytes, rotate, cap);
        let env = Env { device, copies };
        let timed = (case.build)(&env).and_then(|mut body| measure(&plan, device, &mut body));
        let mut reference = RefCell::default();
        match (case.reference.on(device), &timed) {
            (_, Err(_)) => {}
            (Reference::Ours { label, build }, Ok(_)) => {
                reference.name = Some(label.to_string());
                match build(&env).and_then(|mut body| measure(&plan, device, &mut body)) {
                    Ok(t) => reference.timing = Some(t),
                    Err(e) => reference.note = Some(format!("failed: {e}")),
                }
            }
            (Reference::Python(spec), Ok(_)) => {
                let mut spec = spec.clone();
                spec["copies"] = serde_json::json!(copies);
                py_cases.push((rows.len(), spec));
            }
            (Reference::None(why), Ok(_)) => reference.note = Some(why.to_string()),
            // `on` resolves every ByDevice; a nested one left over would be a bug in `on`.
            (Reference::ByDevice { .. }, Ok(_)) => reference.note = Some("unresolved reference".into()),
        }
        let what = format!(
            "[{:>2}/{total}] {} {} {} {}",
            k + 1,
            case.family,
            case.kernel,
            case.shape,
            case.dtype
        );
        match &timed {
            Ok(t) => say(&format!(
                "{what}: {} ({:.1} GB/s){}",
                output::fmt_time(t.median_s),
                case.bytes / t.median_s / 1e9,
                reference.timing.as_ref().map_or(String::new(), |r| format!(
                    ", reference {}",
                    output::fmt_time(r.median_s)
                ))
            )),
            Err(e) => say(&format!("{what}: skipped ({e})")),
        }
        let (timing, skipped) = match timed {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e)),
        };
        rows.push(Row {
            family: case.family.into(),
            kernel: case.kernel,
            shape: case.shape,
            dtype: case.dtype.into(),
            device: device.to_string(),
            copies,
            bytes: case.bytes,
            flops: case.flops,
            intensity: case.flops / case.bytes,
            timing,
            skipped,
            gb_per_s: None,
            gflop_per_s: None,
            bound: None,
            fraction_of_roof: None,
            reference,
        });
    }
    let reference = python_reference(opts, device, &plan, &py_cases, &mut rows, &say);
    for r in &mut rows {
        r.finish(&ceilings);
    }
    machine.load_end = machine::load_average();
    ceilings.measured.shrink_to_fit();
    Ok(Report {
        date: machine::utc_now(),
        commit: machine::git_commit(),
        device: device.to_string(),
        mode: format!("{:?}", opts.scale).to_lowercase(),
        wall_s: started.elapsed().as_secs_f64(),
        machine,
        reference,
        ceilings,
        rows,
    })
}

/// Times the Python reference for the rows that have one; returns the column's description.
fn python_reference(
    opts: &Options,
    device: Device,
    plan: &Plan,
    py_cases: &[(usize, serde_json::Value)],
    rows: &mut [Row],
    say: &dyn Fn(&str),
) -> String {
    let lib = match device {
        Device::Cpu => "numpy",
        Device::Cuda(_) => "PyTorch",
    };
    let outcome = if !opts.reference {
        reference::Outcome {
            unavailable: Some("reference not run (disabled)".into()),
            ..Default::default()
        }
    } else if py_cases.is_empty() {
        reference::Outcome::default()
    } else {
        say(&format!("timing the {lib} reference on {} cases", py_cases.len()));
        reference::run(device, plan, py_cases)
    };
    for (i, _) in py_cases {
        let cell = &mut rows[*i].reference;
        match (&outcome.unavailable, outcome.results.get(i)) {
            (Some(why), _) => cell.note = Some(format!("no {lib}: {why}")),
            (None, Some(Ok(t))) => {
                cell.name = outcome.library.clone();
                cell.timing = Some(t.clone());
            }
            (None, Some(Err(why))) => cell.note = Some(why.clone()),
            (None, None) => cell.note = Some("no result from the reference script".into()),
        }
    }
    match (outcome.library, outcome.unavailable) {
        (_, Some(why)) => format!("none: {why}"),
        (Some(lib), None) => format!("{lib}, timed in this run ({})", reference::SCRIPT_NAME),
        (None, None) => "none needed by the selected cases".into(),
    }
}

/// Writes report.md, report.json and roofline.svg into `dir`.
pub fn write(report: &Report, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let files = [
        ("report.md", output::markdown(report)),
        ("report.json", output::json(report)),
        ("roofline.svg", roofline::figure(report).to_svg()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
