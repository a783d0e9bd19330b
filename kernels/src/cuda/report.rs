//! The per-kernel table printed by the compile check and `cargo xtask ptx`.

use super::compile::Compiled;

const HEADER: [&str; 10] = [
    "source",
    "arch",
    "kernel",
    "regs",
    "smem B",
    "stack B",
    "spill st B",
    "spill ld B",
    "cmem B",
    "ptx B",
];

/// An aligned text table, one row per kernel and architecture, then one line per module with
/// its whole PTX and cubin sizes.
pub fn stats_table(modules: &[Compiled]) -> String {
    let mut rows: Vec<[String; 10]> = vec![HEADER.map(str::to_string)];
    for m in modules {
        for k in &m.kernels {
            rows.push([
                m.source.to_string(),
                m.arch.to_string(),
                k.name.clone(),
                k.registers.to_string(),
                k.shared_bytes.to_string(),
                k.stack_bytes.to_string(),
                k.spill_store_bytes.to_string(),
                k.spill_load_bytes.to_string(),
                k.const_bytes.to_string(),
                k.ptx_bytes.to_string(),
            ]);
        }
    }
    let mut widths = [0usize; 10];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, (cell, w)) in row.iter().zip(widths).enumerate() {
            // Names read left to right, numbers compare best right-aligned.
            if c < 3 {
                line.push_str(&format!("{cell:<w$}  "));
            } else {
                line.push_str(&format!("{cell:>w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    for m in modules {
        let spilling = m.kernels.iter().filter(|k| k.spills()).count();
        out.push_str(&format!(
            "{} {}: {} kernels, {} spilling, PTX {} B, cubin {} B\n",
            m.source,
            m.arch,
            m.kernels.len(),
            spilling,
            m.ptx.len(),
            m.cubin.len()
        ));
    }
    out
}
