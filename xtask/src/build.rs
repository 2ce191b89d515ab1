//! `build`: cross-builds the kernel images and the Windows 7 control tool,
//! then lays out `target/package/`.
//!
//! Two architectures, each into its own directory ([`Arch`]):
//! - x64 (`target/package/x64/`): kernel images for `x86_64-pc-windows-msvc`,
//!   subsystem 5.02 (XP x64 and Server 2003 up to Windows 10), and
//!   `loaderctl.exe` for `x86_64-win7-windows-gnu`;
//! - x86 (`target/package/x86/`): kernel images for
//!   `i686-kernel-windows-msvc`, a target spec derived from rustc's
//!   `i686-pc-windows-msvc` with SSE, MMX and x87 code generation off
//!   ([`x86_kernel_target`]), subsystem 5.01 (XP up to Windows 10), and
//!   `loaderctl.exe` for `i686-win7-windows-gnu`.
//!
//! Kernel images: Debian's Rust 1.96 (`/usr/bin/cargo`), `-Zbuild-std=core,alloc`,
//! linked by `lld-link-22` as native WDM drivers, imports by `raw-dylib`.
//! Tool: `-Zbuild-std=std,panic_abort` and the MinGW-w64 linker.
use crate::resources;
use crate::setup;
use crate::util::{self, root, step, target};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Linker flags that make a cdylib a kernel driver (plus the subsystem,
/// per architecture: [`Arch::subsystem`]).
const KERNEL_LINK_ARGS: &[&str] =
    &["/DRIVER:WDM", "/ENTRY:DriverEntry", "/NODEFAULTLIB", "/INCREMENTAL:NO", "/RELEASE", "/MAP"];

/// The two architectures the package is built for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    X64,
    X86,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X64, Arch::X86];

    /// `x64` or `x86`: the package directory's name and `--arch`'s value.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X64 => "x64",
            Arch::X86 => "x86",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The kernel target's name (for x86, the stem of the generated spec).
    pub fn kernel_triple(self) -> &'static str {
        match self {
            Arch::X64 => "x86_64-pc-windows-msvc",
            Arch::X86 => "i686-kernel-windows-msvc",
        }
    }

    /// `--target`'s value: the built-in triple, or the spec file's path.
    fn kernel_target_arg(self) -> Result<String, String> {
        match self {
            Arch::X64 => Ok(self.kernel_triple().to_owned()),
            Arch::X86 => x86_kernel_target().map(|p| p.display().to_string()),
        }
    }

    /// `/SUBSYSTEM:NATIVE,<version>`: the oldest kernel each image loads on
    /// (XP x64 / Server 2003 is NT 5.2; XP is NT 5.1).
    pub fn subsystem(self) -> &'static str {
        match self {
            Arch::X64 => "/SUBSYSTEM:NATIVE,5.02",
            Arch::X86 => "/SUBSYSTEM:NATIVE,5.01",
        }
    }

    /// The user-mode tools' target and linker.
    pub fn tool_triple(self) -> &'static str {
        match self {
            Arch::X64 => "x86_64-win7-windows-gnu",
            Arch::X86 => "i686-win7-windows-gnu",
        }
    }

    fn tool_linker(self) -> &'static str {
        match self {
            Arch::X64 => "x86_64-w64-mingw32-gcc",
            Arch::X86 => "i686-w64-mingw32-gcc",
        }
    }

    /// `CARGO_TARGET_<TRIPLE>_<what>` for a triple.
    fn env(triple: &str, what: &str) -> String {
        format!("CARGO_TARGET_{}_{what}", triple.to_ascii_uppercase().replace('-', "_"))
    }

    fn kernel_dir(self) -> PathBuf {
        match self {
            Arch::X64 => target().join("kernel"),
            Arch::X86 => target().join("kernel-x86"),
        }
    }
}

/// The x86 kernel target spec, written next to the build from rustc's own
/// `i686-pc-windows-msvc` spec, with floating point in software: the x86
/// kernel does not save the FPU/XMM state of kernel code (only x64 saves
/// XMM registers, and only for the volatile ones), so an SSE `movups` in a
/// `memcpy` or an x87 load in a driver silently corrupts the state of the
/// user thread it interrupted. `x86-softfloat` is the ABI rustc pairs with
/// `+soft-float`; `tests/images.rs` disassembles every x86 image and finds no
/// SSE, MMX or x87 instruction.
pub fn x86_kernel_target() -> Result<PathBuf, String> {
    let (ok, text) = util::capture(
        debian_command("/usr/bin/rustc")
            .args(["-Zunstable-options", "--target", "i686-pc-windows-msvc"])
            .args(["--print", "target-spec-json"]),
    )?;
    if !ok {
        return Err(format!("rustc could not print the i686-pc-windows-msvc spec:\n{text}"));
    }
    let mut spec: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("rustc's target spec is not JSON: {e}"))?;
    let obj = spec.as_object_mut().ok_or("rustc's target spec is not an object")?;
    obj.insert("rustc-abi".into(), "x86-softfloat".into());
    obj.insert("features".into(), "-mmx,-sse,-sse2,-x87,+soft-float".into());
    // Pentium Pro: `cmpxchg8b` and `cmov`, nothing newer; XP's floor.
    obj.insert("cpu".into(), "pentiumpro".into());
    obj.remove("metadata");
    let dir = target().join("targets");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{}.json", Arch::X86.kernel_triple()));
    let body = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())?;
    // Rewritten only on a change, so cargo's fingerprint of the spec holds.
    if std::fs::read_to_string(&path).ok().as_deref() != Some(body.as_str()) {
        std::fs::write(&path, body).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(path)
}

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

/// Where the package goes: `target/package/<arch>/`.
pub fn package_dir(arch: Arch) -> PathBuf {
    target().join("package").join(arch.name())
}

/// Where the test-only payload images go (x64: `target/package/test-payloads/`,
/// x86: `target/package/x86/test-payloads/`).
pub fn test_payload_dir(arch: Arch) -> PathBuf {
    match arch {
        Arch::X64 => target().join("package").join("test-payloads"),
        Arch::X86 => package_dir(arch).join("test-payloads"),
    }
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
    // The x86 kernel target (its spec was written by the build that runs
    // before the lint gate): the per-architecture code paths and layouts.
    let mut kernel_x86 = debian_tool("cargo-clippy");
    let spec = target().join("targets").join(format!("{}.json", Arch::X86.kernel_triple()));
    kernel_x86
        .env("CARGO_TARGET_DIR", Arch::X86.kernel_dir())
        .args(["--quiet", "-p", "kernel-sys", "-p", "loader-driver", "-p", "payload-driver", "-p", "counter-filter"])
        .args(["-p", "change-tracker", "-p", "fltmgr-sim", "-p", "naive-filter", "-p", "bench-filter"])
        .arg("--target")
        .arg(&spec)
        .args(["--profile", "kernel", "-Zjson-target-spec"])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem", "--", "-D", "warnings"]);
    let mut all = vec![
        ("clippy, kernel target (kernel-sys, loader-driver, payload-driver, counter-filter)", kernel),
        ("clippy, x86 kernel target (kernel-sys, the drivers, the test world)", kernel_x86),
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

fn kernel_rustflags(arch: Arch) -> Vec<String> {
    KERNEL_LINK_ARGS.iter().chain(&[arch.subsystem()]).map(|a| format!("-Clink-arg={a}")).collect()
}

fn kernel_cargo(arch: Arch, package: &str, features: &str) -> Result<Command, String> {
    let mut c = debian_cargo();
    let triple = arch.kernel_triple();
    c.env("CARGO_TARGET_DIR", arch.kernel_dir())
        .env(Arch::env(triple, "LINKER"), "lld-link-22")
        .env(Arch::env(triple, "RUSTFLAGS"), kernel_rustflags(arch).join(" "))
        .args(["build", "--quiet", "-p", package, "--target", &arch.kernel_target_arg()?, "--profile", "kernel"])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"]);
    if arch == Arch::X86 {
        c.arg("-Zjson-target-spec");
    }
    if !features.is_empty() {
        c.args(["--features", features]);
    }
    Ok(c)
}

fn kernel_output(arch: Arch, crate_name: &str) -> PathBuf {
    arch.kernel_dir().join(arch.kernel_triple()).join("kernel").join(format!("{crate_name}.dll"))
}

/// Where the linker map of a kernel image goes (the image checks read the
/// entry point's symbol from it): `target/package/maps/` for x64,
/// `target/package/maps/x86/` for x86.
pub fn map_dir(arch: Arch) -> PathBuf {
    match arch {
        Arch::X64 => target().join("package").join("maps"),
        Arch::X86 => target().join("package").join("maps").join("x86"),
    }
}

/// Copies the image and its linker map.
fn take_kernel_output(arch: Arch, crate_name: &str, dest: &Path) -> Result<(), String> {
    copy(&kernel_output(arch, crate_name), dest)?;
    let deps = arch.kernel_dir().join(arch.kernel_triple()).join("kernel/deps");
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
        Some(m) => copy(&m, &map_dir(arch).join(format!("{file}.map"))),
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
        let mut c = kernel_cargo(Arch::X64, package, "")?;
        let mut flags = kernel_rustflags(Arch::X64);
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
/// (`fltsimctl.exe`) go: test infrastructure, never a package's own files
/// (x64: `target/package/test-fltmgr/`, x86: `target/package/x86/test-fltmgr/`).
pub fn test_fltmgr_dir(arch: Arch) -> PathBuf {
    match arch {
        Arch::X64 => target().join("package").join("test-fltmgr"),
        Arch::X86 => package_dir(arch).join("test-fltmgr"),
    }
}

/// A user-mode tool for Windows 7 (`loaderctl`, `fltsimctl`) of `arch`;
/// returns the built `.exe`.
fn build_tool(arch: Arch, package: &str, resource: Option<&Path>) -> Result<PathBuf, String> {
    let triple = arch.tool_triple();
    let mut tool = debian_cargo();
    tool.env("CARGO_TARGET_DIR", target().join("tool"))
        .env(Arch::env(triple, "LINKER"), arch.tool_linker())
        .args(["build", "--quiet", "-p", package, "--target", triple, "--profile", "tool"])
        .arg("-Zbuild-std=std,panic_abort");
    if let Some(res) = resource {
        tool.env(resources::RESOURCE_ENV, res);
    }
    util::run(&mut tool)?;
    Ok(target().join("tool").join(triple).join("tool").join(format!("{package}.exe")))
}

/// The test world: the simulated Filter Manager, its tool, and the test
/// images that exercise it (`tests/fltmgr`, `tests/payloads`).
fn build_test_world(arch: Arch, tests: &Path) -> Result<(), String> {
    let a = arch.name();
    step(&format!("building the test world's {a} fltmgr.sys (a Filter Manager for Wine; test only)"));
    util::run(&mut kernel_cargo(arch, "fltmgr-sim", "")?)?;
    take_kernel_output(arch, "fltmgr_sim", &test_fltmgr_dir(arch).join("fltmgr.sys"))?;
    for (package, features, file, crate_name, purpose) in TEST_WORLD_IMAGES {
        step(&format!("building {a} {file} ({purpose})"));
        util::run(&mut kernel_cargo(arch, package, features)?)?;
        take_kernel_output(arch, crate_name, &tests.join(file))?;
    }
    step(&format!("building {a} fltsimctl.exe ({}; test only)", arch.tool_triple()));
    copy(&build_tool(arch, "fltsimctl", None)?, &test_fltmgr_dir(arch).join("fltsimctl.exe"))
}

/// Builds everything, both architectures, and returns the x64 package
/// directory.
pub fn run() -> Result<PathBuf, String> {
    setup::ensure_packages()?;
    for arch in Arch::ALL {
        build_arch(arch)?;
    }
    for arch in Arch::ALL {
        print_package(&package_dir(arch))?;
    }
    Ok(package_dir(Arch::X64))
}

/// One architecture's package, test payloads and test world.
fn build_arch(arch: Arch) -> Result<(), String> {
    let pkg = package_dir(arch);
    let tests = test_payload_dir(arch);
    let a = arch.name();

    let res = resources::for_image(&resources::Image {
        file: "loader.sys",
        description: "SerialLoader: loads and serializes minifilter payloads",
        kind: resources::FileKind::Driver,
        messages: true,
    })?;
    step(&format!("building {a} loader.sys ({}, native WDM driver, {})", arch.kernel_triple(), arch.subsystem()));
    util::run(kernel_cargo(arch, "loader-driver", "")?.env(resources::RESOURCE_ENV, &res))?;
    take_kernel_output(arch, "loader_driver", &pkg.join("loader.sys"))?;

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
        step(&format!("building {a} {} ({})", v.file, v.purpose));
        util::run(kernel_cargo(arch, "counter-filter", v.features)?.env(resources::RESOURCE_ENV, &res))?;
        let dest = if v.file == "payload.sys" { pkg.join(v.file) } else { tests.join(v.file) };
        take_kernel_output(arch, "counter_filter", &dest)?;
    }

    for (file, features, purpose) in [
        ("tracker.sys", "", "ChangeTracker v1 (example payload: written ranges, carried across upgrades)"),
        ("tracker_v2.sys", "v2", "ChangeTracker v2 (upgrade target)"),
    ] {
        let description = format!("ChangeTracker: example minifilter payload for SerialLoader ({purpose})");
        let image =
            resources::Image { file, description: &description, kind: resources::FileKind::Driver, messages: false };
        let res = resources::for_image(&image)?;
        step(&format!("building {a} {file} ({purpose})"));
        util::run(kernel_cargo(arch, "change-tracker", features)?.env(resources::RESOURCE_ENV, &res))?;
        take_kernel_output(arch, "change_tracker", &tests.join(file))?;
    }

    let res = resources::compile_program(
        &resources::Image {
            file: "loaderctl.exe",
            description: "SerialLoader control tool",
            kind: resources::FileKind::Program,
            messages: false,
        },
        arch,
    )?;
    step(&format!("building {a} loaderctl.exe ({})", arch.tool_triple()));
    copy(&build_tool(arch, "loaderctl", Some(&res))?, &pkg.join("loaderctl.exe"))?;

    for inf in ["loader.inf", "payload.inf"] {
        copy(&root().join("inf").join(inf), &pkg.join(inf))?;
    }
    build_test_world(arch, &tests)?;
    // The C path (issue 11): serialpayload.lib and the example C minifilter
    // (x64 only: its interposers are x64 code).
    if arch == Arch::X64 {
        crate::cbuild::build(&tests, &map_dir(arch), || kernel_cargo(arch, "serialpayload", ""))?;
    }
    Ok(())
}

/// Lists the package with sizes.
pub fn print_package(pkg: &Path) -> Result<(), String> {
    println!("package {}:", pkg.display());
    let mut entries: Vec<_> = std::fs::read_dir(pkg)
        .map_err(|e| format!("cannot list {}: {e}", pkg.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let len = e.metadata().map_or(0, |m| m.len());
        println!("  {:<16} {:>9} bytes", e.file_name().to_string_lossy(), len);
    }
    Ok(())
}
