//! NVRTC compilation that keeps what ptxas says.
//!
//! cudarc's safe `compile_ptx*` returns only the PTX and drops the program log, and the log is
//! where ptxas reports registers, shared memory and spills (with `--ptxas-options=-v`). So this
//! goes through `cudarc::nvrtc::result` directly and keeps the log, the PTX and the cubin.
//!
//! We compile for a real architecture (`sm_80`, `sm_90`), not a virtual one (`compute_90`):
//! only then does NVRTC run ptxas, which is what produces the report and catches spills. PTX
//! built for sm_90 cannot be assembled for sm_80, so each architecture is its own compile.

use std::ffi::{c_char, CString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cudarc::nvrtc::{result, sys};

use super::error::CudaError;
use super::probe::nvrtc_available;
use super::ptxas_log::{parse_ptxas_log, ptx_entry_sizes, KernelStats};
use super::sources::KernelSource;

/// A GPU architecture to compile for. The two named ones are what the project targets
/// (A100 and H100/H200); any other compute capability can be given as `Sm(major, minor)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    Sm80,
    Sm90,
    Sm(u32, u32),
}

impl Arch {
    /// The architectures every kernel must compile for without spills.
    pub const CHECKED: [Arch; 2] = [Arch::Sm80, Arch::Sm90];

    /// From a device's compute capability, as the driver reports it.
    pub fn from_capability(major: u32, minor: u32) -> Arch {
        match (major, minor) {
            (8, 0) => Arch::Sm80,
            (9, 0) => Arch::Sm90,
            _ => Arch::Sm(major, minor),
        }
    }

    pub fn capability(self) -> (u32, u32) {
        match self {
            Arch::Sm80 => (8, 0),
            Arch::Sm90 => (9, 0),
            Arch::Sm(major, minor) => (major, minor),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = self.capability();
        write!(f, "sm_{major}{minor}")
    }
}

impl FromStr for Arch {
    type Err = String;

    /// Accepts `sm_90`, `90` or `9.0`.
    fn from_str(s: &str) -> Result<Arch, String> {
        let bad = || format!("unknown architecture {s:?}: expected sm_80, sm_90, 90 or 9.0");
        let t = s.trim().trim_start_matches("sm_");
        let (major, minor) = match t.split_once('.') {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
            // "90" -> (9, 0), "100" -> (10, 0): the last digit is the minor version.
            None if t.len() >= 2 && t.bytes().all(|b| b.is_ascii_digit()) => {
                let (a, b) = t.split_at(t.len() - 1);
                (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)
            }
            None => return Err(bad()),
        };
        Ok(Arch::from_capability(major, minor))
    }
}

/// What to ask NVRTC for beyond the defaults (C++17, ptxas verbose report, the header folder).
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Make any register spill a compile error (`--warn-on-spills` plus ptxas `-Werror`, which
    /// also turns every other ptxas warning into an error). The compile check uses this.
    pub spills_are_errors: bool,
    /// Emit line info for profilers (`-lineinfo`); it makes the PTX larger, not slower.
    pub line_info: bool,
    /// Folder with the CUDA headers; `None` looks it up with [`find_cuda_include`].
    pub include_dir: Option<PathBuf>,
    /// Passed to NVRTC as they are, e.g. `--maxrregcount=64` or `-DBLOCK=128`.
    pub extra: Vec<String>,
}

impl CompileOptions {
    /// What the compile check uses: spills are errors.
    pub fn strict() -> Self {
        CompileOptions {
            spills_are_errors: true,
            ..Self::default()
        }
    }
}

/// One source compiled for one architecture.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub source: &'static str,
    pub arch: Arch,
    /// Exactly what NVRTC was given, so a result can be reproduced.
    pub options: Vec<String>,
    pub ptx: String,
    /// Machine code for `arch`: loading it skips the driver's PTX JIT.
    pub cubin: Vec<u8>,
    /// The whole NVRTC program log, ptxas report included.
    pub log: String,
    /// Per-kernel figures from the log, with each kernel's share of the PTX.
    pub kernels: Vec<KernelStats>,
}

/// Compiles `source` for `arch` with ptxas's report on.
pub fn compile(source: &KernelSource, arch: Arch, options: &CompileOptions) -> Result<Compiled, CudaError> {
    nvrtc_available().map_err(CudaError::NvrtcUnavailable)?;
    let include_dir = match &options.include_dir {
        Some(dir) => Some(dir.clone()),
        None => find_cuda_include(),
    };
    // A source without `#include` compiles without headers; one with them cannot, and NVRTC's
    // own message ("cannot open source file") does not say where we looked.
    if include_dir.is_none() && source.src.contains("#include") {
        return Err(CudaError::HeadersNotFound {
            source: source.name.to_string(),
            searched: include_candidates(),
        });
    }
    let args = nvrtc_args(arch, options, include_dir.as_deref());
    let out = compile_raw(source.name, source.src, &args)?;
    if !out.ok {
        return Err(CudaError::Compile {
            source: source.name.to_string(),
            arch,
            options: args,
            log: out.log,
        });
    }
    let mut kernels = parse_ptxas_log(&out.log);
    let entries = ptx_entry_sizes(&out.ptx);
    let position = |name: &str| entries.iter().position(|(n, _)| n == name);
    for k in &mut kernels {
        k.ptx_bytes = position(&k.name).map_or(0, |i| entries[i].1);
    }
    // Source order reads better than ptxas's (reverse) order.
    kernels.sort_by_key(|k| position(&k.name));
    Ok(Compiled {
        source: source.name,
        arch,
        options: args,
        ptx: out.ptx,
        cubin: out.cubin,
        log: out.log,
        kernels,
    })
}

fn nvrtc_args(arch: Arch, options: &CompileOptions, include: Option<&Path>) -> Vec<String> {
    let mut args = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        "--ptxas-options=-v".to_string(),
    ];
    if options.spills_are_errors {
        args.push("--ptxas-options=--warn-on-spills".to_string());
        args.push("--ptxas-options=-Werror".to_string());
    }
    if options.line_info {
        args.push("-lineinfo".to_string());
    }
    if let Some(dir) = include {
        args.push(format!("--include-path={}", dir.display()));
    }
    args.extend(options.extra.iter().cloned());
    args
}

/// Where CUDA headers are looked for, in order: `CUDA_INCLUDE_DIR`, `$CUDA_HOME/include`,
/// `$CUDA_PATH/include`, `/usr/local/cuda/include`, and the wheel cache that `cargo xtask`
/// fills in this workspace (a path fixed at build time, so it only helps on the build machine).
fn include_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("CUDA_INCLUDE_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(var) {
            dirs.push(PathBuf::from(root).join("include"));
        }
    }
    dirs.push(PathBuf::from("/usr/local/cuda/include"));
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/cuda/nvidia/cu13/include"));
    dirs
}

/// The first folder that holds `cuda_bf16.h` (the header our kernels need and NVRTC lacks).
pub fn find_cuda_include() -> Option<PathBuf> {
    include_candidates()
        .into_iter()
        .find(|dir| dir.join("cuda_bf16.h").is_file())
}

pub(crate) struct RawOutput {
    pub ok: bool,
    pub log: String,
    pub ptx: String,
    pub cubin: Vec<u8>,
}

/// One NVRTC program: create, compile, read log/PTX/cubin, destroy. A failed compile is not an
/// `Err` here (the log is the interesting part); only failing API calls are.
pub(crate) fn compile_raw(name: &str, src: &str, args: &[String]) -> Result<RawOutput, CudaError> {
    let nvrtc_err = |call: &'static str| {
        move |e: result::NvrtcError| CudaError::Nvrtc {
            call,
            detail: format!("{e:?}"),
        }
    };
    let bad_nul = |what: &str| CudaError::Nvrtc {
        call: "nvrtcCreateProgram",
        detail: format!("{what} contains a NUL byte"),
    };
    let c_src = CString::new(src).map_err(|_| bad_nul(name))?;
    let c_name = CString::new(name).map_err(|_| bad_nul("the source name"))?;
    let prog = result::create_program(&c_src, Some(&c_name)).map_err(nvrtc_err("nvrtcCreateProgram"))?;
    // SAFETY: `prog` comes from create_program and is destroyed exactly once, below, after the
    // last use; `c_src` and `c_name` outlive it.
    let out = unsafe {
        let compiled = result::compile_program(prog, args);
        let read = || -> Result<RawOutput, CudaError> {
            let log =
                c_chars_to_string(&result::get_program_log(prog).map_err(nvrtc_err("nvrtcGetProgramLog"))?);
            let (ptx, cubin) = if compiled.is_ok() {
                let ptx = result::get_ptx(prog).map_err(nvrtc_err("nvrtcGetPTX"))?;
                (c_chars_to_string(&ptx), get_cubin(prog)?)
            } else {
                (String::new(), Vec::new())
            };
            Ok(RawOutput {
                ok: compiled.is_ok(),
                log,
                ptx,
                cubin,
            })
        };
        let out = read();
        let destroyed = result::destroy_program(prog);
        let out = out?;
        destroyed.map_err(nvrtc_err("nvrtcDestroyProgram"))?;
        // A failure that is not a compile error (bad option, out of memory) says so only in the
        // result code; keep it in the log so it is never silently dropped.
        match compiled {
            Err(e) if e.0 != sys::nvrtcResult::NVRTC_ERROR_COMPILATION => RawOutput {
                log: format!("{}\n(nvrtcCompileProgram returned {e:?})", out.log),
                ..out
            },
            _ => out,
        }
    };
    Ok(out)
}

/// The cubin NVRTC produced for a real architecture (empty for a virtual one). cudarc's
/// `result` module has no wrapper for it, so this calls `sys` the way `result::get_ptx` does.
///
/// # Safety
/// `prog` must be a live, compiled program.
unsafe fn get_cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, CudaError> {
    let err = |call: &'static str, code: sys::nvrtcResult| CudaError::Nvrtc {
        call,
        detail: format!("{code:?}"),
    };
    let mut size = 0usize;
    let code = sys::nvrtcGetCUBINSize(prog, &mut size);
    if code != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(err("nvrtcGetCUBINSize", code));
    }
    let mut cubin = vec![0u8; size];
    if size > 0 {
        let code = sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr().cast::<c_char>());
        if code != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(err("nvrtcGetCUBIN", code));
        }
    }
    Ok(cubin)
}

/// NVRTC hands back NUL-terminated C strings as `Vec<c_char>`.
fn c_chars_to_string(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_parses_and_prints() {
        assert_eq!("sm_80".parse::<Arch>().unwrap(), Arch::Sm80);
        assert_eq!("90".parse::<Arch>().unwrap(), Arch::Sm90);
        assert_eq!("9.0".parse::<Arch>().unwrap(), Arch::Sm90);
        assert_eq!("sm_100".parse::<Arch>().unwrap(), Arch::Sm(10, 0));
        assert_eq!("sm_86".parse::<Arch>().unwrap().to_string(), "sm_86");
        assert!("sm_x".parse::<Arch>().is_err());
        assert!("9".parse::<Arch>().is_err());
        assert_eq!(Arch::from_capability(9, 0), Arch::Sm90);
    }

    #[test]
    fn strict_options_turn_spills_into_errors() {
        let args = nvrtc_args(Arch::Sm90, &CompileOptions::strict(), Some(Path::new("/x")));
        assert!(args.contains(&"--gpu-architecture=sm_90".to_string()));
        assert!(args.contains(&"--ptxas-options=-v".to_string()));
        assert!(args.contains(&"--ptxas-options=--warn-on-spills".to_string()));
        assert!(args.contains(&"--ptxas-options=-Werror".to_string()));
        assert!(args.contains(&"--include-path=/x".to_string()));
    }
}
