//! `build`: cross-builds the kernel images and the Windows 7 control tool,
//! then lays out `target/package/`.
//!
//! Kernel images: Debian's Rust 1.96 (`/usr/bin/cargo`), `-Zbuild-std=core,alloc`,
//! target `x86_64-pc-windows-msvc`, linked by `lld-link-22` as native WDM
//! drivers, imports by `raw-dylib`. Tool: target `x86_64-win7-windows-gnu`
//! with `-Zbuild-std=std,panic_abort` and the mingw linker.
use crate::resources;
use crate::setup;
use crate::util::{self, root, step, target};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Linker flags that make a cdylib a Windows 7 kernel driver.
const KERNEL_LINK_ARGS: &[&str] = &[
    "/DRIVER:WDM",
    "/SUBSYSTEM:NATIVE,6.01",
    "/ENTRY:DriverEntry",
    "/NODEFAULTLIB",
    "/INCREMENTAL:NO",
    "/RELEASE",
    "/MAP",
];

/// One payload image: the package file name, the counter-filter features,
/// and what it is for.
pub struct Variant {
    pub file: &'static str,
    pub features: &'static str,
    pub purpose: &'static str,
}

/// Every payload image the tests and the demo use. The first is the
/// shipped `payload.sys`.
pub const PAYLOAD_VARIANTS: &[Variant] = &[
    Variant { file: "payload.sys", features: "", purpose: "example counter filter, version 1" },
    Variant { file: "payload_v2.sys", features: "v2", purpose: "version 2 of the same filter (upgrade target)" },
    Variant { file: "payload_noexport.sys", features: "fault-no-export", purpose: "lacks the registration export" },
    Variant { file: "payload_badmagic.sys", features: "fault-bad-magic", purpose: "descriptor with the wrong magic" },
    Variant {
        file: "payload_badabi.sys",
        features: "fault-bad-abi",
        purpose: "descriptor with another ABI major version",
    },
    Variant { file: "payload_entryfail.sys", features: "fault-entry-fails", purpose: "DriverEntry fails" },
    Variant { file: "payload_regfail.sys", features: "fault-register-fails", purpose: "filter registration fails" },
    Variant {
        file: "payload_hang.sys",
        features: "fault-hang-teardown",
        purpose: "teardown outlasts the loader's bound",
    },
    Variant { file: "payload_old.sys", features: "no-handover", purpose: "version 1 without the handover entries" },
    Variant {
        file: "payload_v2_old.sys",
        features: "v2,no-handover",
        purpose: "version 2 without the handover entries",
    },
    Variant {
        file: "payload_v2_schema2.sys",
        features: "v2,state-schema-2",
        purpose: "version 2 whose state is another schema (its import is refused)",
    },
];

/// Where the package goes.
pub fn package_dir() -> PathBuf {
    target().join("package").join("x64")
}

/// Where the test-only payload images go.
pub fn test_payload_dir() -> PathBuf {
    target().join("package").join("test-payloads")
}

/// Environment for Debian's toolchain, free of the rustup proxies and of
/// anything the outer `cargo` exported.
fn debian_cargo() -> Command {
    debian_command("/usr/bin/cargo")
}

/// A program of Debian's toolchain in that environment.
fn debian_command(program: &str) -> Command {
    let mut c = Command::new(program);
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO",
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
    ] {
        c.env_remove(var);
    }
    c.env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin").env("RUSTC_BOOTSTRAP", "1").current_dir(root());
    c
}

/// Debian's `cargo-clippy` and `cargo-fmt`, called directly: `cargo clippy`
/// would find rustup's proxies in `~/.cargo/bin` before `/usr/bin`.
fn debian_tool(tool: &str) -> Command {
    let mut c = debian_command(&format!("/usr/bin/{tool}"));
    if tool == "cargo-clippy" {
        c.arg("clippy");
    }
    c
}

/// The lint gates `cargo xtask test` runs with Debian's Rust 1.96 (the
/// toolchain that builds the images): clippy for the kernel target over
/// kernel-sys and both drivers, clippy for the Windows 7 target over
/// loaderctl (type-checking only: no linker runs), and `cargo fmt --check`.
/// Warnings are errors.
pub fn lint_commands() -> Vec<(&'static str, Command)> {
    let mut kernel = debian_tool("cargo-clippy");
    kernel
        .env("CARGO_TARGET_DIR", target().join("kernel"))
        .args(["--quiet", "-p", "kernel-sys", "-p", "loader-driver", "-p", "payload-driver", "-p", "counter-filter"])
        .args(["-p", "change-tracker", "-p", "change-set"])
        .args(["--target", "x86_64-pc-windows-msvc", "--profile", "kernel"])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem", "--", "-D", "warnings"]);
    let mut tool = debian_tool("cargo-clippy");
    tool.env("CARGO_TARGET_DIR", target().join("tool"))
        .args(["--quiet", "-p", "loaderctl", "--target", "x86_64-win7-windows-gnu", "--profile", "tool"])
        .args(["-Zbuild-std=std,panic_abort", "--", "-D", "warnings"]);
    let mut fmt = debian_tool("cargo-fmt");
    fmt.args(["--all", "--check"]);
    // The test world (tests/fltmgr, tests/payloads), each image's features.
    let mut world = Vec::new();
    for features in ["", "naive-filter/payload,bench-filter/slow,bench-filter/no-handover"] {
        let mut c = debian_tool("cargo-clippy");
        c.env("CARGO_TARGET_DIR", target().join("kernel"))
            .args(["--quiet", "-p", "fltmgr-sim", "-p", "naive-filter", "-p", "bench-filter"])
            .args(["--target", "x86_64-pc-windows-msvc", "--profile", "kernel"])
            .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"]);
        if !features.is_empty() {
            c.args(["--features", features]);
        }
        c.args(["--", "-D", "warnings"]);
        world.push(("clippy, kernel target (test world: fltmgr-sim, naive-filter, bench-filter)", c));
    }
    let mut world_tool = debian_tool("cargo-clippy");
    world_tool
        .env("CARGO_TARGET_DIR", target().join("tool"))
        .args(["--quiet", "-p", "fltsimctl", "--target", "x86_64-win7-windows-gnu", "--profile", "tool"])
        .args(["-Zbuild-std=std,panic_abort", "--", "-D", "warnings"]);
    world.push(("clippy, Windows 7 target (test world: fltsimctl)", world_tool));
    let mut all = vec![
        ("clippy, kernel target (kernel-sys, loader-driver, payload-driver, counter-filter)", kernel),
        ("clippy, Windows 7 target (loaderctl)", tool),
        ("cargo fmt --check", fmt),
    ];
    all.extend(world);
    // The C path (issue 11): serialpayload.lib's Rust side.
    let mut c_path = debian_tool("cargo-clippy");
    c_path
        .env("CARGO_TARGET_DIR", target().join("kernel"))
        .args(["--quiet", "-p", "serialpayload", "--target", "x86_64-pc-windows-msvc", "--profile", "kernel"])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem", "--", "-D", "warnings"]);
    all.push(("clippy, kernel target (serialpayload: the C minifilter drop-in)", c_path));
    all
}

fn kernel_cargo(package: &str, features: &str) -> Command {
    let mut c = debian_cargo();
    let rustflags: Vec<String> = KERNEL_LINK_ARGS.iter().map(|a| format!("-Clink-arg={a}")).collect();
    c.env("CARGO_TARGET_DIR", target().join("kernel"))
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER", "lld-link-22")
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_RUSTFLAGS", rustflags.join(" "))
        .args(["build", "--quiet", "-p", package, "--target", "x86_64-pc-windows-msvc", "--profile", "kernel"])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"]);
    if !features.is_empty() {
        c.args(["--features", features]);
    }
    c
}

fn kernel_output(crate_name: &str) -> PathBuf {
    target().join("kernel/x86_64-pc-windows-msvc/kernel").join(format!("{crate_name}.dll"))
}

/// Where the linker map of a kernel image goes (the image checks read the
/// entry point's symbol from it).
pub fn map_dir() -> PathBuf {
    target().join("package").join("maps")
}

/// Copies the image and its linker map.
fn take_kernel_output(crate_name: &str, dest: &Path) -> Result<(), String> {
    copy(&kernel_output(crate_name), dest)?;
    let deps = target().join("kernel/x86_64-pc-windows-msvc/kernel/deps");
    let map = std::fs::read_dir(&deps)
        .map_err(|e| format!("cannot list {}: {e}", deps.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "map")
                && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(crate_name))
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let file = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match map {
        Some(m) => copy(&m, &map_dir().join(format!("{file}.map"))),
        None => Err(format!("no linker map for {crate_name}")),
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// Where the size-analysis build of the kernel images goes
/// ([`size_build`]): the same profile and link arguments as the package,
/// plus `-Csave-temps`, which keeps the one LTO object each image is linked
/// from (one COMDAT section per function, so sizes per symbol can be read).
pub fn size_build_dir() -> PathBuf {
    target().join("sizes")
}

/// Builds loader.sys and payload.sys again for `cargo xtask bench`'s size
/// breakdown. Its own target directory, so the package build's cache stays.
pub fn size_build() -> Result<(), String> {
    for package in ["loader-driver", "counter-filter"] {
        step(&format!("building {package} for the size breakdown (-Csave-temps)"));
        let mut c = kernel_cargo(package, "");
        let mut flags: Vec<String> = KERNEL_LINK_ARGS.iter().map(|a| format!("-Clink-arg={a}")).collect();
        flags.push("-Csave-temps".into());
        c.env("CARGO_TARGET_DIR", size_build_dir())
            .env("CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_RUSTFLAGS", flags.join(" "));
        util::run(&mut c)?;
    }
    Ok(())
}

/// The test world's kernel images (never in `x64/`): package, features,
/// file under `test-payloads/`, crate name, and what it is for.
pub const TEST_WORLD_IMAGES: &[(&str, &str, &str, &str, &str)] = &[
    ("naive-filter", "", "naive.sys", "naive_filter", "the naive minifilter image, for the Windows 7 race"),
    ("naive-filter", "payload", "naive_payload.sys", "naive_filter", "the same logic as a payload"),
    ("bench-filter", "", "bench_bare.sys", "bench_filter", "one callback, bare image (wrapper overhead)"),
    ("bench-filter", "wrapped", "bench_wrapped.sys", "bench_filter", "the same callback behind the wrapper"),
    (
        "bench-filter",
        "no-handover",
        "bench_wrapped_old.sys",
        "bench_filter",
        "the same, as a 1.1 payload (no owner word)",
    ),
    ("bench-filter", "slow", "slow_payload.sys", "bench_filter", "payload with a blocking read callback"),
];

/// Where the test world's Filter Manager (`fltmgr.sys`) and its tool
/// (`fltsimctl.exe`) go: test infrastructure, never `target/package/x64/`.
pub fn test_fltmgr_dir() -> PathBuf {
    target().join("package").join("test-fltmgr")
}

/// The test world: the simulated Filter Manager, its tool, and the test
/// images that exercise it (`tests/fltmgr`, `tests/payloads`).
fn build_test_world(tests: &Path) -> Result<(), String> {
    step("building the test world's fltmgr.sys (a Filter Manager for Wine; test only)");
    util::run(&mut kernel_cargo("fltmgr-sim", ""))?;
    take_kernel_output("fltmgr_sim", &test_fltmgr_dir().join("fltmgr.sys"))?;
    for (package, features, file, crate_name, purpose) in TEST_WORLD_IMAGES {
        step(&format!("building {file} ({purpose})"));
        util::run(&mut kernel_cargo(package, features))?;
        take_kernel_output(crate_name, &tests.join(file))?;
    }
    step("building fltsimctl.exe (x86_64-win7-windows-gnu; test only)");
    let mut tool = debian_cargo();
    tool.env("CARGO_TARGET_DIR", target().join("tool"))
        .env("CARGO_TARGET_X86_64_WIN7_WINDOWS_GNU_LINKER", "x86_64-w64-mingw32-gcc")
        .args(["build", "--quiet", "-p", "fltsimctl", "--target", "x86_64-win7-windows-gnu", "--profile", "tool"])
        .arg("-Zbuild-std=std,panic_abort");
    util::run(&mut tool)?;
    copy(&target().join("tool/x86_64-win7-windows-gnu/tool/fltsimctl.exe"), &test_fltmgr_dir().join("fltsimctl.exe"))
}

/// Builds everything and returns the package directory.
pub fn run() -> Result<PathBuf, String> {
    setup::ensure_packages()?;
    let pkg = package_dir();
    let tests = test_payload_dir();

    let res = resources::for_image(&resources::Image {
        file: "loader.sys",
        description: "SerialLoader: loads and serializes minifilter payloads",
        kind: resources::FileKind::Driver,
        messages: true,
    })?;
    step("building loader.sys (x86_64-pc-windows-msvc, native WDM driver)");
    util::run(kernel_cargo("loader-driver", "").env(resources::RESOURCE_ENV, &res))?;
    take_kernel_output("loader_driver", &pkg.join("loader.sys"))?;

    for v in PAYLOAD_VARIANTS {
        let description = if v.file == "payload.sys" {
            "CounterFilter: example minifilter payload for SerialLoader".to_owned()
        } else {
            format!("CounterFilter test payload: {}", v.purpose)
        };
        let image = resources::Image {
            file: v.file,
            description: &description,
            kind: resources::FileKind::Driver,
            messages: false,
        };
        let res = resources::for_image(&image)?;
        step(&format!("building {} ({})", v.file, v.purpose));
        util::run(kernel_cargo("counter-filter", v.features).env(resources::RESOURCE_ENV, &res))?;
        let dest = if v.file == "payload.sys" { pkg.join(v.file) } else { tests.join(v.file) };
        take_kernel_output("counter_filter", &dest)?;
    }

    for (file, features, purpose) in [
        ("tracker.sys", "", "ChangeTracker v1 (example payload: written ranges, carried across upgrades)"),
        ("tracker_v2.sys", "v2", "ChangeTracker v2 (upgrade target)"),
    ] {
        let description = format!("ChangeTracker: example minifilter payload for SerialLoader ({purpose})");
        let image =
            resources::Image { file, description: &description, kind: resources::FileKind::Driver, messages: false };
        let res = resources::for_image(&image)?;
        step(&format!("building {file} ({purpose})"));
        util::run(kernel_cargo("change-tracker", features).env(resources::RESOURCE_ENV, &res))?;
        take_kernel_output("change_tracker", &tests.join(file))?;
    }

    let res = resources::for_image(&resources::Image {
        file: "loaderctl.exe",
        description: "SerialLoader control tool",
        kind: resources::FileKind::Program,
        messages: false,
    })?;
    step("building loaderctl.exe (x86_64-win7-windows-gnu)");
    let mut tool = debian_cargo();
    tool.env("CARGO_TARGET_DIR", target().join("tool"))
        .env(resources::RESOURCE_ENV, &res)
        .env("CARGO_TARGET_X86_64_WIN7_WINDOWS_GNU_LINKER", "x86_64-w64-mingw32-gcc")
        .args(["build", "--quiet", "-p", "loaderctl", "--target", "x86_64-win7-windows-gnu", "--profile", "tool"])
        .arg("-Zbuild-std=std,panic_abort");
    util::run(&mut tool)?;
    copy(&target().join("tool/x86_64-win7-windows-gnu/tool/loaderctl.exe"), &pkg.join("loaderctl.exe"))?;

    for inf in ["loader.inf", "payload.inf"] {
        copy(&root().join("inf").join(inf), &pkg.join(inf))?;
    }
    build_test_world(&tests)?;
    // The C path (issue 11): serialpayload.lib and the example C minifilter.
    crate::cbuild::build(&tests, &map_dir(), || kernel_cargo("serialpayload", ""))?;
    print_package(&pkg)?;
    Ok(pkg)
}

/// Lists the package with sizes.
pub fn print_package(pkg: &Path) -> Result<(), String> {
    println!("package {}:", pkg.display());
    let mut entries: Vec<_> = std::fs::read_dir(pkg)
        .map_err(|e| format!("cannot list {}: {e}", pkg.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let len = e.metadata().map_or(0, |m| m.len());
        println!("  {:<16} {:>9} bytes", e.file_name().to_string_lossy(), len);
    }
    Ok(())
}
