//! NVRTC and the CUDA headers from PyPI, so that a machine with no CUDA toolkit (CI, laptops)
//! can still compile and check every kernel.
//!
//! The wheels are pinned to CUDA 13.0: newer NVRTC emits PTX that the GPU machines' driver
//! (580, CUDA 13.0) cannot load. `nvidia-cuda-nvrtc` holds libnvrtc and its builtins library;
//! `nvidia-cuda-runtime` holds the headers (cuda_bf16.h, cuda_fp16.h) that NVRTC does not
//! carry. Both unpack into `nvidia/cu13/{lib,include}`.
//!
//! Layout under the workspace root:
//!   .cache/cuda-wheels/   the downloaded .whl files (kept, so a re-extract needs no network)
//!   .cache/cuda/          the unpacked files, plus PINNED naming the versions they came from

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::progress;

struct Wheel {
    package: &'static str,
    version: &'static str,
    /// Only to tell the user what the wait is for.
    size: &'static str,
}

const WHEELS: [Wheel; 2] = [
    Wheel {
        package: "nvidia-cuda-nvrtc",
        version: "13.0.88",
        size: "90 MB",
    },
    Wheel {
        package: "nvidia-cuda-runtime",
        version: "13.0.96",
        size: "2 MB",
    },
];

/// Files whose presence means the unpacked cache is usable. The builtins library must sit
/// beside libnvrtc: libnvrtc opens it by name at its first compile.
const EXPECTED: [&str; 4] = [
    "nvidia/cu13/lib/libnvrtc.so.13",
    "nvidia/cu13/lib/libnvrtc-builtins.so.13.0",
    "nvidia/cu13/include/cuda_bf16.h",
    "nvidia/cu13/include/cuda_fp16.h",
];

/// Where the unpacked NVRTC library and the CUDA headers are.
pub struct CudaDirs {
    pub lib: PathBuf,
    pub include: PathBuf,
}

impl Wheel {
    fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// pip names files `nvidia_cuda_nvrtc-13.0.88-py3-none-<platform>.whl`.
    fn file_prefix(&self) -> String {
        format!("{}-{}-", self.package.replace('-', "_"), self.version)
    }

    fn find_in(&self, dir: &Path) -> Option<PathBuf> {
        let prefix = self.file_prefix();
        fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(&prefix) && name.ends_with(".whl")
        })
    }
}

fn pinned_stamp() -> String {
    WHEELS.iter().map(|w| w.requirement() + "\n").collect()
}

fn cache_is_complete(dir: &Path) -> bool {
    let stamp_ok = fs::read_to_string(dir.join("PINNED")).is_ok_and(|s| s == pinned_stamp());
    stamp_ok && EXPECTED.iter().all(|f| dir.join(f).is_file())
}

/// Makes sure the pinned wheels are downloaded and unpacked under `root/.cache`, and returns
/// the folders to use. Does nothing (but say so) when the cache is already complete.
pub fn ensure(root: &Path, quiet: bool) -> Result<CudaDirs, String> {
    let cache = root.join(".cache");
    let unpacked = cache.join("cuda");
    let dirs = CudaDirs {
        lib: unpacked.join("nvidia/cu13/lib"),
        include: unpacked.join("nvidia/cu13/include"),
    };
    if cache_is_complete(&unpacked) {
        if !quiet {
            progress(&format!(
                "NVRTC {} and CUDA headers {} already in {}",
                WHEELS[0].version,
                WHEELS[1].version,
                unpacked.display()
            ));
        }
        return Ok(dirs);
    }

    let wheel_dir = cache.join("cuda-wheels");
    fs::create_dir_all(&wheel_dir).map_err(|e| format!("cannot create {}: {e}", wheel_dir.display()))?;
    let missing: Vec<&Wheel> = WHEELS
        .iter()
        .filter(|w| w.find_in(&wheel_dir).is_none())
        .collect();
    let python = if missing.is_empty() {
        find_python(false)?
    } else {
        let python = find_python(true)?;
        download(&python, &missing, &wheel_dir)?;
        python
    };

    let mut files = Vec::new();
    for w in &WHEELS {
        let file = w.find_in(&wheel_dir).ok_or_else(|| {
            format!(
                "pip reported success but no {}*.whl is in {}",
                w.file_prefix(),
                wheel_dir.display()
            )
        })?;
        files.push(file);
    }
    unpack(&python, &files, &unpacked)?;
    progress(&format!("CUDA files ready in {}", unpacked.display()));
    Ok(dirs)
}

/// `python3` (or `python`, if that is Python 3). `need_pip` also checks that pip is there.
fn find_python(need_pip: bool) -> Result<String, String> {
    let mut found = None;
    for candidate in ["python3", "python"] {
        let out = Command::new(candidate).arg("--version").output();
        match out {
            Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).contains(" 3.") => {
                found = Some(candidate.to_string());
                break;
            }
            _ => continue,
        }
    }
    let python = found.ok_or_else(|| {
        "python3 was not found on PATH. The NVRTC wheels are fetched with pip: install Python 3 \
         with pip (e.g. `apt-get install python3 python3-pip`), or run `cargo xtask test \
         --no-fetch` to skip the NVRTC compile checks"
            .to_string()
    })?;
    if need_pip {
        let pip_ok = Command::new(&python)
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !pip_ok {
            return Err(format!(
                "`{python} -m pip` is not available. Install pip (`{python} -m ensurepip --user` \
                 or `apt-get install python3-pip`), or run `cargo xtask test --no-fetch` to skip \
                 the NVRTC compile checks"
            ));
        }
    }
    Ok(python)
}

/// pip tags the wheels `manylinux2010_x86_64.manylinux_2_12_x86_64` (nvrtc) and
/// `manylinux2014_x86_64.manylinux_2_17_x86_64` (runtime). With `--platform`, pip does not
/// widen one manylinux tag to older ones, so every tag is listed.
fn platform_tags() -> Result<&'static [&'static str], String> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Ok(&[
            "manylinux_2_17_x86_64",
            "manylinux2014_x86_64",
            "manylinux_2_12_x86_64",
            "manylinux2010_x86_64",
        ]),
        ("linux", "aarch64") => Ok(&["manylinux_2_17_aarch64", "manylinux2014_aarch64"]),
        (os, arch) => Err(format!(
            "the NVRTC wheels are fetched for Linux x86_64 and aarch64 only, not {os} {arch}; \
             run with --no-fetch and provide NVRTC yourself (LD_LIBRARY_PATH, CUDA_INCLUDE_DIR)"
        )),
    }
}

fn download(python: &str, wheels: &[&Wheel], dest: &Path) -> Result<(), String> {
    for w in wheels {
        progress(&format!("downloading {} ({}) from PyPI", w.requirement(), w.size));
    }
    let mut cmd = Command::new(python);
    // --platform and --only-binary make pip fetch the Linux wheel whatever this interpreter is,
    // and never try to build anything; --no-deps because these wheels are self-contained.
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]);
    cmd.args(["--disable-pip-version-check", "--dest"]).arg(dest);
    for tag in platform_tags()? {
        cmd.args(["--platform", tag]);
    }
    cmd.args(wheels.iter().map(|w| w.requirement()));
    let status = cmd
        .status()
        .map_err(|e| format!("could not run {python} -m pip: {e}"))?;
    if !status.success() {
        let wanted: Vec<String> = wheels.iter().map(|w| w.requirement()).collect();
        return Err(format!(
            "pip could not download {} ({status}). pip's message is above. Check \
             that pypi.org is reachable (or that PIP_INDEX_URL points to a mirror that has these \
             versions), then rerun; or run `cargo xtask test --no-fetch` to skip the NVRTC \
             compile checks",
            wanted.join(" ")
        ));
    }
    Ok(())
}

/// Unpacks into a sibling folder and renames it into place, so an interrupted run never leaves
/// a half-filled cache that looks complete.
fn unpack(python: &str, wheels: &[PathBuf], dest: &Path) -> Result<(), String> {
    progress(&format!("unpacking {} wheels", wheels.len()));
    // Per process, so that two runs unpacking at once do not write into the same folder.
    let partial = dest.with_extension(format!("partial-{}", std::process::id()));
    remove_dir_if_present(&partial)?;
    // Only nvidia/...: the dist-info is pip's bookkeeping. The `.alt` libraries (a second build
    // of libnvrtc, 110 MB) and static archives are never loaded by this project.
    let script = r#"
import sys, zipfile
dest = sys.argv[1]
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        keep = [n for n in z.namelist()
                if n.startswith("nvidia/") and ".alt." not in n and not n.endswith(".a")]
        z.extractall(dest, members=keep)
"#;
    let status = Command::new(python)
        .args(["-c", script])
        .arg(&partial)
        .args(wheels)
        .status()
        .map_err(|e| format!("could not run {python}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "unpacking the wheels failed (see the Python error above). A download may be \
             corrupt: delete {} and rerun",
            wheels[0].parent().unwrap_or(Path::new(".")).display()
        ));
    }
    let absent: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|f| !partial.join(f).is_file())
        .collect();
    if !absent.is_empty() {
        return Err(format!(
            "the wheels unpacked but lack {}; has the wheel layout changed? (looked in {})",
            absent.join(", "),
            partial.display()
        ));
    }
    fs::write(partial.join("PINNED"), pinned_stamp())
        .map_err(|e| format!("cannot write {}: {e}", partial.join("PINNED").display()))?;
    remove_dir_if_present(dest)?;
    fs::rename(&partial, dest)
        .map_err(|e| format!("cannot move {} to {}: {e}", partial.display(), dest.display()))
}

fn remove_dir_if_present(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(format!("cannot remove {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_match_what_pip_saves() {
        let nvrtc = &WHEELS[0];
        assert_eq!(nvrtc.requirement(), "nvidia-cuda-nvrtc==13.0.88");
        let saved = "nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl";
        assert!(saved.starts_with(&nvrtc.file_prefix()));
        assert_eq!(
            pinned_stamp(),
            "nvidia-cuda-nvrtc==13.0.88\nnvidia-cuda-runtime==13.0.96\n"
        );
    }

    /// A cache from other pinned versions, or with a file missing, is not "complete".
    #[test]
    fn cache_completeness_needs_the_stamp_and_every_file() {
        let dir = std::env::temp_dir().join(format!("xtask-cache-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for f in EXPECTED {
            let path = dir.join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"").unwrap();
        }
        assert!(!cache_is_complete(&dir), "no stamp yet");
        fs::write(dir.join("PINNED"), "nvidia-cuda-nvrtc==13.1.0\n").unwrap();
        assert!(!cache_is_complete(&dir), "stamp for other versions");
        fs::write(dir.join("PINNED"), pinned_stamp()).unwrap();
        assert!(cache_is_complete(&dir));
        fs::remove_file(dir.join(EXPECTED[1])).unwrap();
        assert!(!cache_is_complete(&dir), "builtins library missing");
        fs::remove_dir_all(&dir).unwrap();
    }
}
