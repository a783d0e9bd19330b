//! Build script. Does nothing unless the `emulator` feature is on; then it compiles every
//! registered `.cu` source as C++ for the host emulator (kernels/emu, docs/emulator.md).
//!
//! The source list is read from src/cuda/sources.rs (each `KernelSource`'s name and its
//! `include_str!` files, in order), so a kernel family added there runs on the emulator with no
//! change here. Each source becomes one C++ translation unit: the shim header, then the source
//! text in its own namespace (rows.cuh's helpers are repeated in several sources), then a table
//! with one trampoline per `extern "C" __global__` kernel. Kernel names are found in the
//! preprocessed text, since several families define their kernels through macros.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "emulator")]
    if let Err(e) = emulator::build() {
        panic!("building the host emulator failed: {e}");
    }
}

#[cfg(feature = "emulator")]
mod emulator {

    use std::env;
    use std::fmt::Write as _;
    use std::fs;
    use std::path::{Path, PathBuf};

    /// One registered source: its name and the files concatenated into it.
    struct Source {
        name: String,
        files: Vec<PathBuf>,
    }

    /// The `KernelSource { name: "...", src: ... include_str!("...") ... }` entries of sources.rs.
    fn parse_sources(text: &str, dir: &Path) -> Result<Vec<Source>, String> {
        let mut out = Vec::new();
        for block in text.split("KernelSource {").skip(1) {
            let Some(name_at) = block.find("name:") else {
                continue;
            };
            // The struct definition also reads "KernelSource {", with `name: &'static str`.
            if !block[name_at + "name:".len()..].trim_start().starts_with('"') {
                continue;
            }
            let name = quoted(&block[name_at..]).ok_or("a KernelSource name is not a string literal")?;
            // The entry ends at its closing "},".
            let end = block.find("},").unwrap_or(block.len());
            let mut files = Vec::new();
            let mut rest = &block[..end];
            while let Some(at) = rest.find("include_str!(") {
                rest = &rest[at + "include_str!(".len()..];
                let file = quoted(rest).ok_or("include_str! without a string literal")?;
                files.push(dir.join(file));
            }
            if files.is_empty() {
                return Err(format!("{name}: no include_str! files"));
            }
            out.push(Source { name, files });
        }
        if out.is_empty() {
            return Err("no KernelSource entries found in sources.rs".into());
        }
        Ok(out)
    }

    /// The first string literal in `s` (the sources use no escapes).
    fn quoted(s: &str) -> Option<String> {
        let start = s.find('"')? + 1;
        let len = s[start..].find('"')?;
        Some(s[start..start + len].to_string())
    }

    /// The source text as C++ for the shim: CUDA headers dropped (the shim provides them),
    /// `extern "C"` marked, `extern __shared__ T name[];` turned into a pointer to the launch's
    /// dynamic shared buffer.
    fn rewrite(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with("#include <cuda") || t.starts_with("#include \"cuda") {
                out.push_str("// (CUDA header provided by cuda_emu.h)\n");
                continue;
            }
            out.push_str(&rewrite_extern_shared(
                &line.replace("extern \"C\"", "KEMU_EXTERN_C"),
            ));
            out.push('\n');
        }
        out
    }

    fn rewrite_extern_shared(line: &str) -> String {
        let Some(at) = line.find("extern __shared__") else {
            return line.to_string();
        };
        let rest = &line[at + "extern __shared__".len()..];
        let Some(semi) = rest.find(';') else {
            return line.to_string();
        };
        let decl = rest[..semi].replace("[]", " ");
        let mut words: Vec<&str> = decl
            .split_whitespace()
            .filter(|w| !w.starts_with("__align__"))
            .collect();
        let Some(name) = words.pop() else {
            return line.to_string();
        };
        let ty = words.join(" ");
        format!(
            "{}{ty}* const {name} = reinterpret_cast<{ty}*>(::kemu::dynamic_smem());{}",
            &line[..at],
            &rest[semi + 1..]
        )
    }

    /// Kernel names: the identifier before the first `(` after each `KEMU_EXTERN_C_MARK
    /// KEMU_GLOBAL_MARK` in the preprocessed unit.
    fn kernel_names(preprocessed: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut rest = preprocessed;
        while let Some(at) = rest.find("KEMU_EXTERN_C_MARK") {
            rest = &rest[at + "KEMU_EXTERN_C_MARK".len()..];
            let head = rest.trim_start();
            if !head.starts_with("KEMU_GLOBAL_MARK") {
                continue;
            }
            let Some(paren) = head.find('(') else { break };
            let before = head[..paren].trim_end();
            let name: String = before
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    fn ident(name: &str) -> String {
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    }

    fn base_build(emu_dir: &Path, gen_dir: &Path) -> cc::Build {
        let mut b = cc::Build::new();
        b.cpp(true)
            .std("c++17")
            .opt_level(2)
            .debug(false)
            .warnings(false)
            .include(emu_dir)
            .include(gen_dir)
            // `#pragma unroll` is a CUDA pragma; g++ ignores it.
            .flag("-Wno-unknown-pragmas");
        b
    }

    pub fn build() -> Result<(), String> {
        let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
        let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
        let cuda_dir = manifest.join("src/cuda");
        let emu_dir = manifest.join("emu");
        let gen_dir = out.join("emu");
        fs::create_dir_all(&gen_dir).map_err(|e| e.to_string())?;
        let sources_rs = cuda_dir.join("sources.rs");
        println!("cargo:rerun-if-changed={}", sources_rs.display());
        for f in ["cuda_emu.h", "runtime.cpp", "ptx.cpp"] {
            println!("cargo:rerun-if-changed={}", emu_dir.join(f).display());
        }
        let text = fs::read_to_string(&sources_rs).map_err(|e| format!("{}: {e}", sources_rs.display()))?;
        let mut sources = parse_sources(&text, &cuda_dir)?;
        // The emulator's own test kernels (kernels/tests/emulator.rs); not an NVRTC source.
        println!("cargo:rerun-if-changed={}", emu_dir.join("selftest.cu").display());
        sources.push(Source {
            name: "emu_selftest.cu".to_string(),
            files: vec![emu_dir.join("selftest.cu")],
        });

        let mut units = Vec::new();
        let mut registry = String::from("#include \"cuda_emu.h\"\nnamespace kemu {\n");
        for src in &sources {
            let id = ident(&src.name);
            let mut body = format!("namespace kemu_{id} {{\n#line 1 \"{}\"\n", src.name);
            for f in &src.files {
                println!("cargo:rerun-if-changed={}", f.display());
                let t = fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
                body.push_str(&rewrite(&t));
            }
            body.push_str("}\n");
            let body_file = gen_dir.join(format!("{id}.inc"));
            fs::write(&body_file, &body).map_err(|e| e.to_string())?;

            let scan_file = gen_dir.join(format!("scan_{id}.cpp"));
            fs::write(
                &scan_file,
                format!("#include \"cuda_emu.h\"\n#include \"{id}.inc\"\n"),
            )
            .map_err(|e| e.to_string())?;
            let expanded = base_build(&emu_dir, &gen_dir)
                .file(&scan_file)
                .define("KEMU_SCAN", None)
                .try_expand()
                .map_err(|e| format!("preprocessing {}: {e}", src.name))?;
            let names = kernel_names(&String::from_utf8_lossy(&expanded));
            if names.is_empty() {
                return Err(format!("{}: no extern \"C\" __global__ kernels found", src.name));
            }

            let mut unit = format!("#include \"cuda_emu.h\"\n#include \"{id}.inc\"\nnamespace kemu {{\n");
            let _ = writeln!(unit, "static const Entry entries_{id}[] = {{");
            for n in &names {
                let f = format!("&::kemu_{id}::{n}");
                let _ = writeln!(
                unit,
                "    {{\"{n}\", [](void** a) {{ ::kemu::invoke({f}, a); }}, param_count({f}), param_sizes({f})}},"
            );
            }
            let _ = writeln!(unit, "}};\nextern const Unit unit_{id};");
            let _ = writeln!(
                unit,
                "const Unit unit_{id} = {{\"{}\", entries_{id}, {}}};\n}}",
                src.name,
                names.len()
            );
            let unit_file = gen_dir.join(format!("unit_{id}.cpp"));
            fs::write(&unit_file, unit).map_err(|e| e.to_string())?;
            units.push(unit_file);
            let _ = writeln!(registry, "extern const Unit unit_{id};");
        }
        registry.push_str("extern const Unit* const g_units[] = {\n");
        for src in &sources {
            let _ = writeln!(registry, "    &unit_{},", ident(&src.name));
        }
        let _ = writeln!(
            registry,
            "}};\nextern const size_t g_unit_count = {};\n}}",
            sources.len()
        );
        let registry_file = gen_dir.join("registry.cpp");
        fs::write(&registry_file, registry).map_err(|e| e.to_string())?;

        base_build(&emu_dir, &gen_dir)
            .files(&units)
            .file(&registry_file)
            .file(emu_dir.join("runtime.cpp"))
            .file(emu_dir.join("ptx.cpp"))
            .try_compile("kernels_emu")
            .map_err(|e| e.to_string())
    }
}
