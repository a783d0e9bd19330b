//! `cargo xtask repro <method>|all`: run the surveyed methods' experiments
//! (`algorithms::repro::METHODS`) and write each report to `target/repro/<method>/report.md`
//! with its SVG figures beside it, plus `target/repro/summary.md` over the methods run.

use std::fs;
use std::path::Path;
use std::time::Instant;

use algorithms::report::Table;
use algorithms::repro::{find, Method, ReproOptions, METHODS};
use autograd::Device;
use clap::{Args, ValueEnum};

use crate::progress;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(Args)]
pub struct ReproArgs {
    /// A method's name (see `cargo xtask repro list`), `all`, or `list`.
    method: String,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Independent runs per setting, averaged where the report shows means.
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Small sizes and few steps: about a minute per method on 2 cores.
    #[arg(long)]
    quick: bool,
}

pub fn run(args: &ReproArgs, root: &Path) -> Result<u8, String> {
    if args.method == "list" {
        for m in METHODS {
            println!("{:<16} {}", m.name, m.paper);
        }
        return Ok(0);
    }
    if args.seeds == 0 {
        return Err("--seeds must be at least 1".into());
    }
    let methods: Vec<&Method> = if args.method == "all" {
        METHODS.iter().collect()
    } else {
        vec![find(&args.method)?]
    };
    let device = match args.device {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Cuda => Device::Cuda(0),
    };
    if let Some(reason) = (device != Device::Cpu)
        .then(Device::cuda_unavailable_reason)
        .flatten()
    {
        return Err(format!("--device cuda: no usable GPU ({reason})"));
    }
    let out_root = root.join("target/repro");
    let mut summary = Table::new(&["method", "paper", "claims reproduced", "time", "report"]);
    let mut failures = 0;
    for (i, m) in methods.iter().enumerate() {
        progress(&format!("[{}/{}] {}: {}", i + 1, methods.len(), m.name, m.paper));
        let started = Instant::now();
        let show = |msg: &str| eprintln!("xtask:   {:>6.1}s  {msg}", started.elapsed().as_secs_f64());
        let opts = ReproOptions {
            quick: args.quick,
            seeds: args.seeds,
            device,
            progress: &show,
        };
        let time = |t: Instant| format!("{:.1} s", t.elapsed().as_secs_f64());
        match (m.run)(&opts) {
            Ok(report) => {
                let dir = out_root.join(m.name);
                write_report(&dir, &report).map_err(|e| format!("writing {}: {e}", dir.display()))?;
                let done = report
                    .claims
                    .iter()
                    .filter(|c| c.outcome.as_str() == "reproduced")
                    .count();
                let counts = format!("{done} of {}", report.claims.len());
                progress(&format!(
                    "{}: {counts} claims reproduced, {}",
                    m.name,
                    time(started)
                ));
                let link = format!("[{0}/report.md]({0}/report.md)", m.name);
                summary.row(&[m.name, m.paper, &counts, &time(started), &link]);
            }
            Err(e) => {
                failures += 1;
                progress(&format!("{}: FAILED: {e}", m.name));
                summary.row(&[m.name, m.paper, &format!("run failed: {e}"), &time(started), ""]);
            }
        }
    }
    fs::create_dir_all(&out_root).map_err(|e| e.to_string())?;
    let mode = if args.quick { "--quick" } else { "full" };
    let text = format!(
        "# Reproduction summary\n\nDevice {}, {} seed(s), {mode} run.\n\n{}",
        device,
        args.seeds,
        summary.to_markdown()
    );
    fs::write(out_root.join("summary.md"), text).map_err(|e| e.to_string())?;
    println!("{}", summary.to_markdown());
    progress(&format!("reports under {}", out_root.display()));
    Ok(u8::from(failures > 0))
}

fn write_report(dir: &Path, report: &algorithms::report::Report) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("report.md"), report.to_markdown())?;
    for fig in &report.figures {
        fs::write(dir.join(format!("{}.svg", fig.name)), fig.to_svg())?;
    }
    Ok(())
}
