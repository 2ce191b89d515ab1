//! Host check: every binding in `kernel-sys/src/imports.rs` is declared with
//! the calling convention, DLL and architectures the allowlist
//! (`tests/kernel-imports.txt`) records for it, and every allowlisted
//! routine a Rust image may import is declared for the architectures it is
//! listed for.
//!
//! On x86 a wrong convention is a corrupt stack on the first call: a
//! `__fastcall` export called as `__stdcall` reads its arguments from the
//! stack while the callee reads ECX/EDX, and the callee pops what the caller
//! never pushed. The x64 images cannot show it (one convention there), and
//! Wine's own exports are declared by the same table of conventions, so a
//! binding can be checked only against the table.
use loader_tests::imports::{allowlist, declarations, rows, Arch, BINDINGS};

/// Allowlisted names no Rust image declares: the C minifilter's imports,
/// which its own headers declare.
const NOT_RUST: [&str; 1] = ["memset"];

fn expected_abi(convention: &str) -> &'static str {
    match convention {
        "stdcall" => "system",
        "fastcall" => "fastcall",
        // A variable sits in an `extern "C"` block of the bindings too.
        "cdecl" | "helper" | "data" => "C",
        other => panic!("no ABI for convention {other}"),
    }
}

#[test]
fn every_binding_has_the_listed_convention_dll_and_architectures() {
    let decls = declarations(BINDINGS);
    assert!(decls.len() > 40, "the reader found only {} declarations", decls.len());
    let mut checked = 0;
    for arch in [Arch::X64, Arch::X86] {
        let allowed = allowlist(arch);
        for d in decls.iter().filter(|d| d.cfg.includes(arch)) {
            let row = allowed.get(&d.name).unwrap_or_else(|| {
                panic!("{} is declared for {arch:?} but kernel-imports.txt does not list it for {arch:?}", d.name)
            });
            assert_eq!(d.dll, row.dll, "{}: declared in a block for {}, listed for {}", d.name, d.dll, row.dll);
            assert_eq!(d.data, row.convention == "data", "{}: a variable in one, a routine in the other", d.name);
            if arch == Arch::X86 {
                assert!(d.undecorated_on_x86, "{}: its x86 block does not import undecorated names", d.name);
                assert_eq!(
                    d.abi,
                    expected_abi(&row.convention),
                    "{}: declared extern \"{}\", but its x86 convention is {}",
                    d.name,
                    d.abi,
                    row.convention
                );
                if row.convention == "helper" {
                    assert!(d.no_params, "{}: a compiler helper is declared without parameters", d.name);
                }
            } else {
                assert_ne!(d.abi, "fastcall", "{}: x64 has no fastcall", d.name);
            }
            checked += 1;
        }
    }
    println!("{checked} declarations (x64 + x86) match kernel-imports.txt");
}

#[test]
fn every_listed_routine_is_declared_for_its_architectures() {
    let decls = declarations(BINDINGS);
    for row in rows().into_iter().filter(|r| !NOT_RUST.contains(&r.name.as_str())) {
        for arch in [Arch::X64, Arch::X86].into_iter().filter(|a| a.covered_by(&row.arch)) {
            let found = decls.iter().filter(|d| d.name == row.name && d.cfg.includes(arch)).count();
            assert_eq!(found, 1, "{} is listed for {arch:?} but declared {found} times for it", row.name);
        }
    }
}

#[test]
fn the_check_catches_a_fastcall_export_declared_stdcall() {
    // The mutation this file exists for: ObfDereferenceObject moved into a
    // plain `extern "system"` block for both architectures.
    let broken = BINDINGS.replacen(
        "extern \"fastcall\" {\n    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;",
        "extern \"fastcall\" {",
        1,
    );
    assert_ne!(broken, BINDINGS, "the mutation did not apply (imports.rs changed shape?)");
    let broken = broken.replacen(
        "extern \"system\" {\n    pub fn KeInitializeEvent",
        "extern \"system\" {\n    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;\n    pub fn KeInitializeEvent",
        1,
    );
    let decls = declarations(&broken);
    let d = decls
        .iter()
        .find(|d| d.name == "ObfDereferenceObject" && d.cfg.includes(Arch::X86))
        .expect("the mutated declaration");
    let row = allowlist(Arch::X86).remove("ObfDereferenceObject").expect("listed");
    assert_ne!(d.abi, expected_abi(&row.convention), "the mutation must be visible as a convention mismatch");
}

/// Every function the kernel, the Filter Manager or the loader calls in a
/// kernel image of this project (`DriverEntry`, dispatch routines, filter
/// callbacks, thread start routines, the payload ABI's entries) is
/// `extern "system"`: `__stdcall` on x86, what those callers use. A
/// function or function-pointer type declared `extern "C"` (`__cdecl` on
/// x86: the caller pops, so a kernel caller would leave the stack off by its
/// arguments) or `extern "fastcall"` has no place in the kernel crates'
/// sources, outside the import bindings.
#[test]
fn kernel_crates_define_no_cdecl_or_fastcall_functions() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs = [
        "kernel-sys/src",
        "loader-driver/src",
        "payload-driver",
        "payload-c/src",
        "tests/fltmgr/src",
        "tests/payloads",
    ];
    let mut files = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = dirs.iter().map(|d| root.join(d)).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") && !path.ends_with("kernel-sys/src/imports.rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 30, "only {} kernel sources found", files.len());
    let mut bad = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("extern \"C\" fn")
                || code.contains("extern \"fastcall\" fn")
                || code.contains("extern \"cdecl\"")
            {
                bad.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(bad.is_empty(), "functions the kernel would call with the wrong convention on x86: {bad:#?}");
    println!("{} kernel sources: every function and callback type is extern \"system\"", files.len());
}
