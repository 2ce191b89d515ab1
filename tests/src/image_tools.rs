//! What the image checks (`tests/images.rs`, `tests/images_x86.rs`) read
//! besides the PE headers: a symbol's RVA from an lld-link map, and the
//! disassembly of an image.
use std::path::Path;

/// The RVA of `symbol` according to the lld-link map at `map`. Map lines
/// are `<section>:<offset>  <symbol>  <VA>  <object>`; the VA follows the
/// symbol's name.
#[must_use]
pub fn map_symbol_rva(map: &Path, symbol: &str) -> u32 {
    let text = std::fs::read_to_string(map).unwrap_or_else(|e| panic!("{} missing: {e}", map.display()));
    let base = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Preferred load address is "))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("map states the preferred load address");
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = cols.iter().position(|c| *c == symbol) {
            if let Some(va) = cols.get(i + 1).and_then(|v| u64::from_str_radix(v, 16).ok()) {
                return u32::try_from(va - base).expect("rva fits");
            }
        }
    }
    panic!("{symbol} not found in {}", map.display());
}

/// `llvm-objdump -d -M intel` of `path`, as (mnemonic, operands) pairs.
#[must_use]
pub fn disassemble(path: &Path) -> Vec<(String, String)> {
    let tool = ["llvm-objdump-22", "llvm-objdump"]
        .into_iter()
        .find(|t| std::process::Command::new(t).arg("--version").output().is_ok())
        .expect("llvm-objdump (Debian package llvm-22, installed by `cargo xtask setup`)");
    let out = std::process::Command::new(tool)
        .args(["-d", "--no-show-raw-insn", "-M", "intel"])
        .arg(path)
        .output()
        .expect("run llvm-objdump");
    assert!(out.status.success(), "llvm-objdump failed on {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "   140001000:      \tmov\trax, qword ptr [rip + 8] # 0x..."
            let (_, insn) = l.split_once(':')?;
            let insn = insn.trim();
            if insn.is_empty() || insn.starts_with('<') {
                return None;
            }
            let (mnemonic, operands) = insn.split_once(char::is_whitespace).unwrap_or((insn, ""));
            Some((mnemonic.to_owned(), operands.trim().to_owned()))
        })
        .collect()
}
