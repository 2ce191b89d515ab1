//! The C path of `build` (issue 11): `serialpayload.lib` and the example
//! legacy C minifilter built twice from the same source.
//!
//! - `serialpayload.lib`: the `serialpayload` staticlib (`payload-c/`) as
//!   rustc builds it for `x86_64-pc-windows-msvc`, reduced to the
//!   library's own objects (rustc also bundles import members for every
//!   kernel-sys declaration, `fltmgr.sys!FltRegisterFilter` among them,
//!   which would compete with the interposers), plus the renamed imports of
//!   `payload-c/serialpayload_imports.def`. Shipped with `serialpayload.h`
//!   in `target/package/serialpayload/`.
//! - Import libraries for the C link, made from `tests/kernel-imports.txt`
//!   with `llvm-dlltool-22`: an import outside the Windows 7 allowlist does
//!   not link.
//! - `payload-c/example/Makefile` (clang-22, lld-link-22): `c_legacy.sys`
//!   (a), `c_relinked.sys` (b) and `c_relinked_v2.sys` into
//!   `target/package/test-payloads/`, their linker maps into `maps/`.
use crate::util::{self, root, step, target};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The C images: the Makefile's output, the package file, what it is for.
pub const C_IMAGES: &[(&str, &str, &str)] = &[
    ("legacy", "c_legacy.sys", "the example C minifilter, built plainly (a)"),
    ("relinked", "c_relinked.sys", "the same source relinked with serialpayload.lib (b)"),
    ("relinked_v2", "c_relinked_v2.sys", "(b) with descriptor version 2 (upgrade target)"),
];

fn work_dir() -> PathBuf {
    target().join("c")
}

/// Where the library and its header are shipped.
pub fn sdk_dir() -> PathBuf {
    target().join("package").join("serialpayload")
}

/// Builds the library, the import libraries and the example's images.
pub fn build(tests: &Path, maps: &Path, kernel_cargo: impl FnOnce() -> Result<Command, String>) -> Result<(), String> {
    let work = work_dir();
    let _ = std::fs::remove_dir_all(&work);
    for dir in [work.join("lib"), work.join("rustlib"), work.join("out")] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    step("building serialpayload.lib (payload-c: the C minifilter drop-in, Rust staticlib)");
    util::run(&mut kernel_cargo()?)?;
    let lib = library(&work)?;
    for (from, name) in
        [(lib.clone(), "serialpayload.lib"), (root().join("payload-c/include/serialpayload.h"), "serialpayload.h")]
    {
        copy(&from, &sdk_dir().join(name))?;
    }
    step("import libraries for the C link, from tests/kernel-imports.txt (llvm-dlltool-22)");
    let imports = import_libraries(&work)?;
    step("building the example C minifilter twice: plain (a) and relinked with serialpayload.lib (b, b v2)");
    let mut make = Command::new("make");
    make.current_dir(root().join("payload-c/example"))
        .arg("--no-print-directory")
        .arg(format!("OUT={}", work.join("out").display()))
        .arg(format!("SERIALPAYLOAD_LIB={}", lib.display()))
        .arg(format!("SERIALPAYLOAD_INCLUDE={}", root().join("payload-c/include").display()))
        .arg(format!("FLTMGR_HEADERS={}", root().join("payload-c/fltmgr-headers").display()))
        .arg(format!("IMPORT_LIBS={}", imports.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ")));
    util::run(&mut make)?;
    for (stem, file, _) in C_IMAGES {
        copy(&work.join("out").join(format!("{stem}.sys")), &tests.join(file))?;
        copy(&work.join("out").join(format!("{stem}.map")), &maps.join(format!("{file}.map")))?;
    }
    Ok(())
}

/// rustc's staticlib reduced to the library's objects, plus the renamed
/// imports: `target/c/lib/serialpayload.lib`.
fn library(work: &Path) -> Result<PathBuf, String> {
    let rustlib = target().join("kernel/x86_64-pc-windows-msvc/kernel/serialpayload.lib");
    let extract = work.join("rustlib");
    util::run(Command::new("llvm-ar-22").current_dir(&extract).arg("x").arg(&rustlib))?;
    let mut objects: Vec<String> = std::fs::read_dir(&extract)
        .map_err(|e| format!("cannot list {}: {e}", extract.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| Path::new(n).extension().is_some_and(|x| x.eq_ignore_ascii_case("o")))
        .collect();
    objects.sort();
    if !objects.iter().any(|o| o.starts_with("serialpayload-")) {
        return Err(format!("{} holds no serialpayload object", rustlib.display()));
    }
    let renamed = work.join("rustlib/serialpayload_imports.lib");
    util::run(
        Command::new("llvm-dlltool-22")
            .args(["-m", "i386:x86-64", "-d"])
            .arg(root().join("payload-c/serialpayload_imports.def"))
            .arg("-l")
            .arg(&renamed),
    )?;
    let out = work.join("lib/serialpayload.lib");
    let mut lib = Command::new("llvm-lib-22");
    lib.current_dir(&extract).arg(format!("/out:{}", out.display())).args(&objects).arg("serialpayload_imports.lib");
    util::run(&mut lib)?;
    Ok(out)
}

/// One import library per DLL of the allowlist (`ntoskrnl.lib`,
/// `fltmgr.lib`, `hal.lib`), with data exports marked `DATA`.
fn import_libraries(work: &Path) -> Result<Vec<PathBuf>, String> {
    let list = std::fs::read_to_string(root().join("tests/kernel-imports.txt"))
        .map_err(|e| format!("cannot read tests/kernel-imports.txt: {e}"))?;
    let mut libs = Vec::new();
    for dll in ["ntoskrnl.exe", "fltmgr.sys", "hal.dll"] {
        let mut def = format!("LIBRARY {dll}\nEXPORTS\n");
        for line in list.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // dll name arch convention first [note]: the x64 link takes
            // the rows for all architectures and for x64.
            if let [file, name, arch, convention, _first, ..] = cols.as_slice() {
                if file.eq_ignore_ascii_case(dll) && (*arch == "all" || *arch == "x64") {
                    let data = *convention == "data";
                    let _ = writeln!(def, "{name}{}", if data { " DATA" } else { "" });
                }
            }
        }
        let stem = dll.split('.').next().unwrap_or(dll);
        let def_path = work.join("lib").join(format!("{stem}.def"));
        std::fs::write(&def_path, def).map_err(|e| format!("cannot write {}: {e}", def_path.display()))?;
        let lib = work.join("lib").join(format!("{stem}.lib"));
        util::run(
            Command::new("llvm-dlltool-22").args(["-m", "i386:x86-64", "-d"]).arg(&def_path).arg("-l").arg(&lib),
        )?;
        libs.push(lib);
    }
    Ok(libs)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}
