//! `setup`: installs what a fresh Debian 12 machine lacks, idempotently, and
//! prepares the isolated Wine prefix under `target/wine/`.
//!
//! Each part checks before it acts, so every other verb can call it cheaply.
use crate::util::{capture, run, step, target};
use std::path::PathBuf;
use std::process::Command;

/// Debian packages the build and the tests need.
pub const PACKAGES: &[&str] = &[
    "rustc-web",            // Rust 1.96: the toolchain that matches rust-web-src
    "cargo-web",            // its cargo
    "rust-web-src",         // library source for -Zbuild-std
    "rust-web-clippy",      // clippy for the kernel and Windows 7 targets
    "rustfmt-web",          // cargo fmt --check
    "lld-22",               // lld-link-22, the PE linker
    "llvm-22",              // llvm tools (objdump for inspection)
    "wine",                 // the embedded kernel emulation
    "wine64",               // 64-bit winedevice.exe
    "gcc-mingw-w64-x86-64", // linker for the Windows 7 user-mode tool
    "gcc-mingw-w64-i686",   // the same for the x86 tool (i686-win7-windows-gnu)
    // 32-bit Wine (Debian's i386 architecture): a WINEARCH=win32 prefix whose
    // winedevice.exe hosts the x86 kernel images.
    "wine32:i386",
    // windres and windmc: the VERSIONINFO resources and loader.sys's event message table
    "binutils-mingw-w64-x86-64",
    // The C path (issue 11): clang for the MSVC target compiles the C minifilters,
    // against MinGW-w64's DDK headers; make runs the example's Makefile.
    "clang-22",
    "mingw-w64-common",
    "make",
];

pub fn run_all() -> Result<(), String> {
    ensure_packages()?;
    ensure_wine_prefix()?;
    println!("setup: complete");
    Ok(())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs the missing Debian packages (one `apt-get` run), as root or via sudo.
pub fn ensure_packages() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing Debian packages: {}", missing.join(" ")));
    let is_root = capture(Command::new("id").arg("-u")).is_ok_and(|(_, o)| o.trim() == "0");
    // wine32 comes from the i386 architecture, which dpkg must know first.
    let foreign = capture(Command::new("dpkg").arg("--print-foreign-architectures")).map(|(_, o)| o)?;
    if !foreign.split_whitespace().any(|a| a == "i386") {
        step("adding Debian's i386 architecture (for wine32)");
        let mut add = if is_root { Command::new("dpkg") } else { Command::new("sudo") };
        if !is_root {
            add.arg("dpkg");
        }
        run(add.args(["--add-architecture", "i386"]))?;
    }
    let apt = |args: &[&str]| -> Command {
        let mut c = if is_root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        c
    };
    run(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&missing);
    run(&mut install)?;
    if let Some(p) = PACKAGES.iter().find(|p| !installed(p)) {
        return Err(format!("package {p} is still not installed"));
    }
    Ok(())
}

/// The Wine prefix the end-to-end suite and the demo use (x64).
pub fn wine_prefix() -> PathBuf {
    target().join("wine").join("prefix")
}

/// The 32-bit Wine prefix of the x86 suite (`WINEARCH=win32`).
pub fn wine_prefix_x86() -> PathBuf {
    target().join("wine-x86").join("prefix")
}

/// Creates both Wine prefixes once (`wineboot -i`, about 5 s each).
pub fn ensure_wine_prefix() -> Result<(), String> {
    ensure_prefix(&wine_prefix(), "win64")?;
    ensure_prefix(&wine_prefix_x86(), "win32")
}

fn ensure_prefix(prefix: &std::path::Path, winearch: &str) -> Result<(), String> {
    let marker = prefix.join(".serial-loader-ready");
    if marker.exists() {
        return Ok(());
    }
    step(&format!("preparing Wine prefix {} ({winearch})", prefix.display()));
    std::fs::create_dir_all(prefix).map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
    // The loader of the prefix's own architecture: Debian's `wine` wrapper
    // would start the 32-bit one whenever wine32 is installed.
    let loader = if winearch == "win32" { "/usr/lib/wine/wine" } else { "/usr/lib/wine/wine64" };
    // Wine now and then cannot map its shared user data where it must
    // (address-space randomisation put something there) and exits with
    // code 1 before any Windows code ran; `err+virtual` makes it say so,
    // and only that failure is tried again (at most 3 times).
    let mut tries = 0;
    loop {
        tries += 1;
        let (ok, out) = capture(
            Command::new(loader)
                .env("WINELOADER", loader)
                .args(["wineboot", "-i"])
                .env("WINEPREFIX", prefix)
                .env("WINEARCH", winearch)
                .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
                .env("WINEDEBUG", "-all,err+virtual"),
        )?;
        if ok {
            break;
        }
        if tries < 3 && out.contains("failed to map the shared user data") {
            eprintln!("setup: wineboot never started (failed to map the shared user data); starting it again");
            continue;
        }
        return Err(format!("wineboot failed:\n{out}"));
    }
    // Wait for the session to end so the registry is flushed to disk.
    let _ = capture(Command::new("wineserver").arg("-w").env("WINEPREFIX", prefix));
    std::fs::write(&marker, b"ok\n").map_err(|e| e.to_string())?;
    Ok(())
}

/// Installs `cargo-fuzz` once (from crates.io) for the rustup nightly toolchain.
pub fn ensure_cargo_fuzz() -> Result<(), String> {
    let have = Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    step("installing cargo-fuzz");
    run(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))
}

/// The fuzz targets, from `fuzz/fuzz_targets/*.rs`.
pub fn fuzz_targets() -> Vec<String> {
    let dir = crate::util::root().join("fuzz").join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".rs")).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
