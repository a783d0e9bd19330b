//! `cargo xtask bench`: the benchmarks. For now the CPU criterion benchmarks of the `bench`
//! crate (matmul, elementwise and reduction ops); the roofline report against measured
//! ceilings and reference implementations is issue 8.

use std::path::Path;
use std::process::Command;

use clap::Args;

use crate::{exit_code, progress};

#[derive(Args)]
pub struct BenchArgs {
    /// Fewer samples per benchmark (criterion's --quick): a rough figure in a fraction of the time.
    #[arg(long)]
    quick: bool,

    /// Run only benchmarks whose name contains this string (e.g. `matmul`, `gelu`).
    #[arg(long)]
    filter: Option<String>,
}

pub fn run(args: &BenchArgs, root: &Path) -> Result<u8, String> {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root)
        .args(["bench", "--package", "bench", "--benches", "--"]);
    if args.quick {
        cmd.arg("--quick");
    }
    if let Some(filter) = &args.filter {
        cmd.arg(filter);
    }
    progress("device: cpu (the CUDA benchmarks arrive with the CUDA backend)");
    progress("running the criterion benchmarks of the `bench` crate; HTML reports go to target/criterion/");
    let status = cmd
        .status()
        .map_err(|e| format!("could not run cargo bench: {e}"))?;
    Ok(exit_code(status))
}
