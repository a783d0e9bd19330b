//! `bench-report`: the roofline report of `cargo xtask bench`, built in release mode by xtask
//! so that the timings are of optimized code. See `bench::report`.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::report::{self, cases::Scale, DeviceChoice, Options};
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Parser)]
#[command(
    name = "bench-report",
    about = "Kernels against the machine's ceilings and a reference implementation."
)]
struct Args {
    /// auto: CUDA device 0 when one can be opened, else the CPU.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Only cases whose "family kernel shape dtype" contains this (case-insensitive).
    #[arg(long)]
    filter: Option<String>,
    /// Fewer runs and smaller shapes: about a minute on 2 cores.
    #[arg(long)]
    quick: bool,
    /// Print the JSON report on stdout instead of the markdown table.
    #[arg(long)]
    json: bool,
    /// Where report.md, report.json and roofline.svg go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Skip the numpy / PyTorch reference.
    #[arg(long)]
    no_reference: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        device: match args.device {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
        },
        filter: args.filter,
        scale: if args.quick { Scale::Quick } else { Scale::Full },
        reference: !args.no_reference,
        progress: true,
    };
    let result = report::run(&opts).and_then(|r| report::write(&r, &args.out).map(|()| r));
    match result {
        Ok(r) => {
            if args.json {
                println!("{}", report::output::json(&r));
            } else {
                println!("{}", report::output::markdown(&r));
            }
            let skipped = r.rows.iter().filter(|row| row.timing.is_none()).count();
            eprintln!(
                "bench: {} rows ({skipped} skipped) in {:.0} s; wrote report.md, report.json, roofline.svg to {}",
                r.rows.len(),
                r.wall_s,
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-report: error: {e}");
            ExitCode::FAILURE
        }
    }
}
