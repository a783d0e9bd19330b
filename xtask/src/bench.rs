//! `cargo xtask bench`: the roofline report (issue 8). Builds and runs the `bench-report`
//! binary of the `bench` crate in release mode (xtask itself is built in the dev profile, and
//! timings of unoptimized code would mean nothing), which measures the machine's ceilings,
//! times every kernel family against them and against numpy / PyTorch, and writes
//! `target/bench/{report.md, report.json, roofline.svg}`. `--criterion` runs the criterion
//! benchmarks of the `bench` crate instead.

use std::path::Path;
use std::process::Command;

use clap::{Args, ValueEnum};

use crate::{exit_code, progress};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// CUDA device 0 when one can be opened, else the CPU.
    Auto,
    Cpu,
    Cuda,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,

    /// Only cases (or with --criterion, benchmarks) whose name contains this string, e.g.
    /// `matmul`, `softmax`, `optim`.
    #[arg(long)]
    filter: Option<String>,

    /// Fewer runs and smaller shapes: about a minute on 2 cores after the build.
    #[arg(long)]
    quick: bool,

    /// Print the report as JSON on stdout instead of the markdown table.
    #[arg(long)]
    json: bool,

    /// Run the criterion benchmarks (`cargo bench -p bench`) instead of the report.
    #[arg(long)]
    criterion: bool,
}

pub fn run(args: &BenchArgs, root: &Path) -> Result<u8, String> {
    if args.criterion {
        return criterion(args, root);
    }
    let out = root.join("target/bench");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root).args([
        "run",
        "--release",
        "--quiet",
        "--package",
        "bench",
        "--bin",
        "bench-report",
        "--",
        "--device",
    ]);
    cmd.arg(match args.device {
        DeviceArg::Auto => "auto",
        DeviceArg::Cpu => "cpu",
        DeviceArg::Cuda => "cuda",
    });
    cmd.arg("--out").arg(&out);
    if args.quick {
        cmd.arg("--quick");
    }
    if args.json {
        cmd.arg("--json");
    }
    if let Some(filter) = &args.filter {
        cmd.args(["--filter", filter]);
    }
    progress("building bench-report (release) and running it; outputs go to target/bench/");
    let status = cmd
        .status()
        .map_err(|e| format!("could not run cargo run -p bench: {e}"))?;
    Ok(exit_code(status))
}

fn criterion(args: &BenchArgs, root: &Path) -> Result<u8, String> {
    if args.json || args.device != DeviceArg::Auto {
        return Err("--json and --device apply to the report, not to --criterion".into());
    }
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root)
        .args(["bench", "--package", "bench", "--benches", "--"]);
    if args.quick {
        cmd.arg("--quick");
    }
    if let Some(filter) = &args.filter {
        cmd.arg(filter);
    }
    progress("running the criterion benchmarks of the `bench` crate; HTML reports go to target/criterion/");
    let status = cmd
        .status()
        .map_err(|e| format!("could not run cargo bench: {e}"))?;
    Ok(exit_code(status))
}
