//! The kernel import allowlist (`tests/kernel-imports.txt`) and the
//! declarations of `kernel-sys/src/imports.rs`, read as text: what the
//! image checks (`tests/images.rs`, `tests/images_x86.rs`) and the
//! calling-convention check (`tests/conventions.rs`) compare.
use std::collections::BTreeMap;

/// The allowlist, as checked in.
pub const ALLOWLIST: &str = include_str!("../kernel-imports.txt");
/// The bindings, as checked in.
pub const BINDINGS: &str = include_str!("../../kernel-sys/src/imports.rs");

/// An image architecture.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    X64,
    X86,
}

impl Arch {
    /// `x64` or `x86`, as the allowlist's `arch` column says it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Arch::X64 => "x64",
            Arch::X86 => "x86",
        }
    }

    /// Whether an `arch` column value (`all`, `x64`, `x86`) covers `self`.
    #[must_use]
    pub fn covered_by(self, column: &str) -> bool {
        column == "all" || column == self.name()
    }
}

/// One allowlist row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub dll: String,
    pub name: String,
    /// `all`, `x64` or `x86`.
    pub arch: String,
    /// The x86 convention: `stdcall`, `fastcall`, `cdecl`, `data`, `helper`,
    /// or `-` (an x64-only row).
    pub convention: String,
    /// The first Windows version that exports it (major, minor).
    pub first: (u32, u32),
}

/// Every routine row of the allowlist (not the `never` lines).
#[must_use]
pub fn rows() -> Vec<Row> {
    ALLOWLIST
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("never"))
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [dll, name, arch, convention, first, ..] = cols.as_slice() else {
                panic!("malformed allowlist line: {line}");
            };
            assert!(["all", "x64", "x86"].contains(arch), "bad arch column: {line}");
            assert!(
                ["stdcall", "fastcall", "cdecl", "data", "helper", "-"].contains(convention),
                "bad convention column: {line}"
            );
            assert!(
                *convention != "-" || *arch == "x64",
                "only an x64-only row may leave the x86 convention out: {line}"
            );
            let (major, minor) = first.split_once('.').unwrap_or_else(|| panic!("version like 5.2: {line}"));
            Row {
                dll: dll.to_ascii_lowercase(),
                name: (*name).to_owned(),
                arch: (*arch).to_owned(),
                convention: (*convention).to_owned(),
                first: (major.parse().expect("major"), minor.parse().expect("minor")),
            }
        })
        .collect()
}

/// The rows for `arch`, by name.
#[must_use]
pub fn allowlist(arch: Arch) -> BTreeMap<String, Row> {
    let mut map = BTreeMap::new();
    for row in rows().into_iter().filter(|r| arch.covered_by(&r.arch)) {
        let name = row.name.clone();
        assert!(map.insert(name.clone(), row).is_none(), "{name} is listed twice for {}", arch.name());
    }
    map
}

/// The names that must never be imported on `arch`, with the reason.
#[must_use]
pub fn never_imported(arch: Arch) -> BTreeMap<String, String> {
    ALLOWLIST
        .lines()
        .filter_map(|l| l.trim().strip_prefix("never"))
        .filter_map(|rest| {
            let (column, rest) = rest.trim().split_once(char::is_whitespace).expect("never <arch> <name> <reason>");
            let (name, reason) = rest.trim().split_once(char::is_whitespace).expect("never <arch> <name> <reason>");
            arch.covered_by(column).then(|| (name.to_owned(), reason.trim().to_owned()))
        })
        .collect()
}

/// Which architectures an `extern` block of the bindings is compiled for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlockCfg {
    Both,
    X86Only,
    NotX86,
}

impl BlockCfg {
    #[must_use]
    pub fn includes(self, arch: Arch) -> bool {
        match self {
            BlockCfg::Both => true,
            BlockCfg::X86Only => arch == Arch::X86,
            BlockCfg::NotX86 => arch == Arch::X64,
        }
    }
}

/// One declaration of the bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    pub name: String,
    /// The DLL of its `#[link]` attribute.
    pub dll: String,
    /// `system`, `fastcall` or `C`.
    pub abi: String,
    pub cfg: BlockCfg,
    /// A `static` (an imported variable), not a `fn`.
    pub data: bool,
    /// The declaration takes no parameters.
    pub no_params: bool,
    /// Its block asks for undecorated import names on x86.
    pub undecorated_on_x86: bool,
}

/// Every `fn` and `static` inside an `extern` block of `source`, with the
/// block's ABI, DLL and `cfg`. A small reader for this file's own style (one
/// block attribute set, `extern "<abi>" {`, declarations one per item).
#[must_use]
pub fn declarations(source: &str) -> Vec<Declaration> {
    let mut out = Vec::new();
    let mut attrs = String::new();
    let mut block: Option<(String, String, BlockCfg, bool)> = None;
    let mut item = String::new();
    for line in source.lines() {
        let t = line.trim();
        if let Some((abi, dll, cfg, undecorated)) = &block {
            if t == "}" {
                block = None;
                continue;
            }
            if t.starts_with("//") || t.starts_with("#[") {
                continue;
            }
            item.push_str(t);
            item.push(' ');
            if !t.ends_with(';') {
                continue;
            }
            let text = std::mem::take(&mut item);
            let data = text.contains("static ");
            let key = if data { "static " } else { "fn " };
            let Some(at) = text.find(key) else { continue };
            let rest = &text[at + key.len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let no_params = rest[name.len()..].trim_start().starts_with("()");
            out.push(Declaration {
                name,
                dll: dll.clone(),
                abi: abi.clone(),
                cfg: *cfg,
                data,
                no_params,
                undecorated_on_x86: *undecorated,
            });
            continue;
        }
        // Attributes, possibly over several lines (an open `#[` continues).
        let open = attrs.matches('[').count() > attrs.matches(']').count();
        if t.starts_with("#[") || open {
            attrs.push_str(t);
            attrs.push(' ');
            continue;
        }
        if let Some(rest) = t.strip_prefix("extern \"") {
            let abi: String = rest.chars().take_while(|c| *c != '"').collect();
            let text = std::mem::take(&mut attrs);
            let dll = text
                .split("name = \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("extern block without #[link(name = ...)]: {text}"))
                .to_ascii_lowercase();
            let cfg = if text.contains("#[cfg(target_arch = \"x86\")]") {
                BlockCfg::X86Only
            } else if text.contains("#[cfg(not(target_arch = \"x86\"))]") {
                BlockCfg::NotX86
            } else {
                BlockCfg::Both
            };
            // An x86 block needs undecorated names: either its own `link`
            // says so, or (a block for both) its x86 `cfg_attr` does.
            let undecorated = text.contains("import_name_type = \"undecorated\"");
            block = Some((abi, dll, cfg, undecorated));
            continue;
        }
        attrs.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_sees_blocks_their_abi_cfg_and_items() {
        let src = r#"
#[cfg(target_arch = "x86")]
#[link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")]
extern "fastcall" {
    /// doc
    pub fn KfAcquireSpinLock(lock: *mut u32) -> u8;
}
#[cfg_attr(
    target_arch = "x86",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")
)]
#[cfg_attr(not(target_arch = "x86"), link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    pub fn KeWaitForSingleObject(
        object: *mut u8,
    ) -> i32;
    pub static IoDriverObjectType: *mut u8;
}
#[cfg(target_arch = "x86")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")]
extern "C" {
    pub fn _aulldiv();
}
"#;
        let d = declarations(src);
        let names: Vec<(&str, &str, &str, BlockCfg, bool, bool)> =
            d.iter().map(|d| (d.name.as_str(), d.dll.as_str(), d.abi.as_str(), d.cfg, d.data, d.no_params)).collect();
        assert_eq!(
            names,
            [
                ("KfAcquireSpinLock", "hal.dll", "fastcall", BlockCfg::X86Only, false, false),
                ("KeWaitForSingleObject", "ntoskrnl.exe", "system", BlockCfg::Both, false, false),
                ("IoDriverObjectType", "ntoskrnl.exe", "system", BlockCfg::Both, true, false),
                ("_aulldiv", "ntoskrnl.exe", "C", BlockCfg::X86Only, false, true),
            ]
        );
        assert!(d.iter().all(|d| d.undecorated_on_x86));
    }

    #[test]
    fn the_allowlist_parses_and_never_lines_are_per_architecture() {
        let x64 = allowlist(Arch::X64);
        let x86 = allowlist(Arch::X86);
        assert!(x64.contains_key("KeAcquireSpinLockRaiseToDpc") && !x86.contains_key("KeAcquireSpinLockRaiseToDpc"));
        assert!(x86.contains_key("KfAcquireSpinLock") && !x64.contains_key("KfAcquireSpinLock"));
        assert!(never_imported(Arch::X64).contains_key("KeQuerySystemTime"));
        assert!(!never_imported(Arch::X86).contains_key("KeQuerySystemTime"));
        for arch in [Arch::X64, Arch::X86] {
            let allowed = allowlist(arch);
            assert!(never_imported(arch).keys().all(|n| !allowed.contains_key(n)), "allowed and banned on {arch:?}");
        }
    }
}
