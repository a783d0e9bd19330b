//! `cargo xtask ptx`: what ptxas makes of every kernel, without a GPU.
//!
//! For each registered source and architecture: registers, shared memory, stack, spills,
//! constant memory and PTX size, as one table on stdout. `--out DIR` also keeps the PTX, the
//! cubin (for `cuobjdump -sass` / `nvdisasm` on a machine that has them) and the NVRTC log.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Args;
use kernels::cuda::{
    all_sources, compile, nvrtc_available, nvrtc_version, stats_table, Arch, CompileOptions, Compiled,
};

use crate::{cuda_env, progress, wheels};

#[derive(Args)]
pub struct PtxArgs {
    /// sm_80, sm_90, any sm_XY, a comma-separated list, or `all` (sm_80 and sm_90).
    #[arg(long, default_value = "all")]
    arch: String,

    /// Write <source>.<arch>.ptx, .cubin and .log (the NVRTC/ptxas log) into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Make spills compile errors, as the compile check does (`--warn-on-spills -Werror`).
    #[arg(long)]
    strict: bool,

    /// Use the NVRTC already on LD_LIBRARY_PATH instead of fetching the pinned wheels.
    #[arg(long)]
    no_fetch: bool,
}

fn parse_archs(spec: &str) -> Result<Vec<Arch>, String> {
    if spec == "all" {
        return Ok(Arch::CHECKED.to_vec());
    }
    spec.split(',').map(str::parse).collect()
}

pub fn run(args: &PtxArgs, root: &Path) -> Result<u8, String> {
    let archs = parse_archs(&args.arch)?;
    let mut options = if args.strict {
        CompileOptions::strict()
    } else {
        CompileOptions::default()
    };
    if !args.no_fetch {
        let dirs = wheels::ensure(root, cuda_env::restarted())?;
        if !cuda_env::loader_path_has(&dirs.lib) {
            // NVRTC is loaded in this process, and the loader path is fixed at start-up.
            return cuda_env::restart_with(&dirs);
        }
        options.include_dir = Some(dirs.include);
    }
    nvrtc_available().map_err(|why| format!("NVRTC is not usable: {why}"))?;
    let (major, minor) = nvrtc_version()?;
    progress(&format!("compiling with NVRTC {major}.{minor}"));

    let mut compiled: Vec<Compiled> = Vec::new();
    let mut failures = Vec::new();
    for source in all_sources() {
        for &arch in &archs {
            match compile(source, arch, &options) {
                Ok(c) => compiled.push(c),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    print!("{}", stats_table(&compiled));
    if let Some(dir) = &args.out {
        write_outputs(dir, &compiled)?;
        progress(&format!(
            "wrote {} PTX files and their logs to {}",
            compiled.len(),
            dir.display()
        ));
    }
    if failures.is_empty() {
        return Ok(0);
    }
    for f in &failures {
        eprintln!("\n{f}");
    }
    Err(format!("{} compile(s) failed", failures.len()))
}

fn write_outputs(dir: &Path, compiled: &[Compiled]) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for c in compiled {
        let stem = c.source.trim_end_matches(".cu");
        // The options go first in the log so that the file alone says how it was produced.
        let log = format!("// nvrtc options: {}\n{}", c.options.join(" "), c.log);
        for (ext, bytes) in [
            ("ptx", c.ptx.as_bytes()),
            ("cubin", c.cubin.as_slice()),
            ("log", log.as_bytes()),
        ] {
            let path = dir.join(format!("{stem}.{}.{ext}", c.arch));
            fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_lists() {
        assert_eq!(parse_archs("all").unwrap(), [Arch::Sm80, Arch::Sm90]);
        assert_eq!(parse_archs("sm_90").unwrap(), [Arch::Sm90]);
        assert_eq!(parse_archs("sm_80,sm_86").unwrap(), [Arch::Sm80, Arch::Sm(8, 6)]);
        assert!(parse_archs("sm_80,nope").is_err());
    }
}
