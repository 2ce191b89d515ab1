//! `test`, `model`, `e2e`, `bench` and `fuzz`: run suites and tally them.
//!
//! libtest's `test result:` lines are summed; a suite that is a plain
//! program (the stress simulator, a fuzz target) counts as one test. `test`
//! ends with exactly one line `N passed, N failed` and fails if N failed > 0.
use crate::build::{self, Arch};
use crate::setup;
use crate::util::{describe, root, step, target};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
}

impl Tally {
    /// Runs a libtest-style command, echoing its output and summing its
    /// `test result:` lines. A command that fails without reporting a failed
    /// test counts as one failure, so nothing can fail silently.
    fn libtest(&mut self, label: &str, cmd: &mut Command) {
        step(label);
        let shown = describe(cmd);
        let child = cmd.stdout(Stdio::piped()).spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return self.fail(label, &format!("cannot start `{shown}`: {e}")),
        };
        let (mut passed, mut failed) = (0u64, 0u64);
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("{line}");
                if let Some(rest) = line.trim_start().strip_prefix("test result: ") {
                    passed += count_before(rest, " passed");
                    failed += count_before(rest, " failed");
                }
            }
        }
        let ok = child.wait().is_ok_and(|s| s.success());
        self.passed += passed;
        self.failed += failed;
        if failed > 0 {
            self.failures.push(format!("{label}: {failed} failed"));
        } else if !ok {
            self.fail(label, &format!("`{shown}` failed"));
        } else if passed == 0 {
            self.fail(label, "ran no test");
        }
    }

    /// Runs a plain program as one test.
    fn program(&mut self, label: &str, cmd: &mut Command) {
        step(label);
        let shown = describe(cmd);
        match cmd.status() {
            Ok(s) if s.success() => self.passed += 1,
            Ok(s) => self.fail(label, &format!("`{shown}` exited with {s}")),
            Err(e) => self.fail(label, &format!("cannot start `{shown}`: {e}")),
        }
    }

    fn fail(&mut self, label: &str, why: &str) {
        self.failed += 1;
        self.failures.push(format!("{label}: {why}"));
    }

    fn finish(self) -> Result<(), String> {
        if !self.failures.is_empty() {
            println!("failures:");
            for f in &self.failures {
                println!("  {f}");
            }
        }
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            Ok(())
        } else {
            Err(format!("{} test(s) failed", self.failed))
        }
    }
}

/// `"12 passed; 0 failed; ..."` → the number before `suffix`.
fn count_before(text: &str, suffix: &str) -> u64 {
    text.split(';')
        .find_map(|part| part.trim().strip_suffix(suffix.trim_start()))
        .and_then(|rest| rest.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The host toolchain's cargo (rustup's), with the outer cargo's overrides removed.
fn host_cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root()).env_remove("RUSTFLAGS").env_remove("CARGO_TARGET_DIR");
    c
}

fn host_unit_tests(t: &mut Tally) {
    let mut c = host_cargo();
    c.args(["test", "-p", "shared-abi", "-p", "loader-parsers", "-p", "loader-protocol", "-p", "kernel-sys"]).args([
        "-p",
        "loaderctl",
        "-p",
        "xtask",
    ]);
    c.args(["-p", "fltsim-abi"]);
    c.args(["-p", "loader-events", "-p", "change-set"]);
    t.libtest("host unit tests", &mut c);
    let mut harness = host_cargo();
    harness.args(["test", "-p", "loader-tests", "--lib"]);
    t.libtest("host unit tests of the test harness", &mut harness);
}

fn loader_test(t: &mut Tally, label: &str, test: &str, extra: &[&str]) {
    loader_test_on(t, Arch::X64, label, test, extra);
}

/// A test binary of `loader-tests` with the end-to-end harness pointed at
/// `arch` (`SERIAL_LOADER_ARCH`: its package and its Wine prefix).
fn loader_test_on(t: &mut Tally, arch: Arch, label: &str, test: &str, extra: &[&str]) {
    let mut c = host_cargo();
    c.env("SERIAL_LOADER_ARCH", arch.name()).args(["test", "-p", "loader-tests", "--test", test]);
    if !extra.is_empty() {
        c.arg("--").args(extra);
    }
    t.libtest(label, &mut c);
}

/// The model suites: loom over every interleaving, then the stress simulator.
fn model_suites(t: &mut Tally) {
    let mut loom = host_cargo();
    loom.env("RUSTFLAGS", "--cfg loom").env("CARGO_TARGET_DIR", target().join("loom")).args([
        "test",
        "--release",
        "-p",
        "loader-tests",
        "--test",
        "model_*",
        "--",
        "--nocapture",
        "--test-threads=1",
    ]);
    t.libtest("model: loom suite (all interleavings, bounded preemption)", &mut loom);
    let mut stress = host_cargo();
    stress.args(["run", "--release", "-p", "loader-tests", "--bin", "stress"]);
    t.program("model: randomized stress simulator", &mut stress);
}

/// Every end-to-end scenario on `arch` (the C minifilters only on x64:
/// their drop-in library is x64 code).
fn e2e_suite(t: &mut Tally, arch: Arch) {
    let a = arch.name();
    let args = ["--test-threads=1", "--nocapture"];
    loader_test_on(t, arch, &format!("{a} end-to-end suite under Wine"), "e2e", &args);
    let label = format!("{a} end-to-end suite under Wine: the test world's Filter Manager");
    loader_test_on(t, arch, &label, "e2e_fltmgr", &args);
    let label = format!("{a} end-to-end suite under Wine: the operator's side (INF install, events, loaderctl)");
    loader_test_on(t, arch, &label, "e2e_operator", &args);
    if arch == Arch::X64 {
        let label =
            format!("{a} end-to-end suite under Wine: C minifilters, plain and relinked with serialpayload.lib");
        loader_test_on(t, arch, &label, "e2e_c", &args);
    }
    let label =
        format!("{a} end-to-end suite under Wine: the exactly-once handover (storm, state, refusal, old payloads)");
    loader_test_on(t, arch, &label, "e2e_handover", &args);
}

/// The x86 subset `cargo xtask test` runs beside the whole x64 suite:
/// lifecycle, failure injection, the Windows 7 race and a 200-cycle soak
/// (`cargo xtask e2e --arch x86` runs every x86 scenario).
fn e2e_x86_subset(t: &mut Tally) {
    let args = ["--test-threads=1", "--nocapture", "lifecycle_", "failure", "teardown_that_never_ends", "soak_"];
    loader_test_on(t, Arch::X86, "x86 end-to-end subset under Wine: lifecycle, failure injection, soak", "e2e", &args);
    let args = ["--test-threads=1", "--nocapture", "the_windows7_race"];
    loader_test_on(t, Arch::X86, "x86 end-to-end subset under Wine: the Windows 7 race", "e2e_fltmgr", &args);
}

fn fuzz_targets(t: &mut Tally, seconds: u64) {
    let fuzz_dir = root().join("fuzz");
    if !fuzz_dir.join("Cargo.toml").exists() {
        t.fail("fuzz", "fuzz/Cargo.toml is missing");
        return;
    }
    if let Err(e) = crate::setup::ensure_cargo_fuzz() {
        t.fail("fuzz", &e);
        return;
    }
    for target_name in crate::setup::fuzz_targets() {
        // New inputs go to target/ (first corpus dir); the checked-in seeds
        // under fuzz/corpus/ are read only.
        let work = target().join("fuzz-corpus").join(&target_name);
        if let Err(e) = std::fs::create_dir_all(&work) {
            t.fail("fuzz", &format!("cannot create {}: {e}", work.display()));
            return;
        }
        let mut c = Command::new("cargo");
        c.current_dir(&fuzz_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTUP_TOOLCHAIN")
            .args(["+nightly", "fuzz", "run", &target_name])
            .arg(&work)
            .arg(format!("corpus/{target_name}"))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1");
        t.program(&format!("fuzz {target_name} for {seconds} s"), &mut c);
    }
}

/// The lint gate: clippy over the host crates. The workspace denies
/// `clippy::all`, and the parsers of outside bytes deny indexing, unwrap,
/// expect, panics and unchecked arithmetic, so a panic path there fails here.
fn lint_gate(t: &mut Tally) {
    let mut c = host_cargo();
    c.args([
        "clippy",
        "--quiet",
        "-p",
        "shared-abi",
        "-p",
        "loader-parsers",
        "-p",
        "loader-protocol",
        "-p",
        "kernel-sys",
    ])
    .args(["-p", "loaderctl", "-p", "loader-tests", "-p", "xtask", "-p", "loader-events"])
    .args(["--all-targets", "--", "-D", "warnings"]);
    t.program("lint gate (host clippy; panic-free parsers)", &mut c);
    for (label, mut cmd) in build::lint_commands() {
        t.program(&format!("lint gate ({label})"), &mut cmd);
    }
}

pub fn test_all() -> Result<(), String> {
    build::run()?;
    setup::ensure_wine_prefix()?;
    let mut t = Tally::default();
    lint_gate(&mut t);
    host_unit_tests(&mut t);
    loader_test(&mut t, "image checks on the built .sys files", "images", &[]);
    loader_test(&mut t, "image checks on the x86 package", "images_x86", &[]);
    loader_test(&mut t, "calling conventions of the kernel bindings", "conventions", &[]);
    loader_test(&mut t, "INF checks", "inf", &[]);
    model_suites(&mut t);
    e2e_suite(&mut t, Arch::X64);
    e2e_x86_subset(&mut t);
    let fuzz_seconds = if std::env::var_os("CI").is_some() { 15 } else { 10 };
    fuzz_targets(&mut t, fuzz_seconds);
    t.finish()
}

/// `cargo xtask lint`: the lint gates alone (after a build, which writes
/// the x86 target spec they use).
pub fn lint_only() -> Result<(), String> {
    build::run()?;
    let mut t = Tally::default();
    lint_gate(&mut t);
    t.finish()
}

pub fn model_only() -> Result<(), String> {
    let mut t = Tally::default();
    model_suites(&mut t);
    t.finish()
}

/// `cargo xtask e2e [--arch x64|x86]`: every scenario on both
/// architectures (or the one named), with a total per architecture.
pub fn e2e_only(args: &[String]) -> Result<(), String> {
    let arches: Vec<Arch> = match args {
        [] => Arch::ALL.to_vec(),
        [flag, value] if flag == "--arch" => {
            vec![Arch::parse(value).ok_or_else(|| format!("--arch {value}: expected x64 or x86"))?]
        }
        other => return Err(format!("e2e: unexpected arguments {other:?} (usage: e2e [--arch x64|x86])")),
    };
    build::run()?;
    setup::ensure_wine_prefix()?;
    let mut totals = Vec::new();
    let mut failed = false;
    for arch in arches {
        let mut t = Tally::default();
        e2e_suite(&mut t, arch);
        let (passed, failures) = (t.passed, t.failed);
        failed |= t.finish().is_err();
        totals.push(format!("{}: {passed} passed, {failures} failed", arch.name()));
    }
    for line in &totals {
        println!("e2e {line}");
    }
    if failed {
        Err("end-to-end failures (see above)".into())
    } else {
        Ok(())
    }
}

pub fn bench() -> Result<(), String> {
    build::run()?;
    build::size_build()?;
    setup::ensure_wine_prefix()?;
    let mut c = host_cargo();
    c.args(["test", "--release", "-p", "loader-tests", "--test", "bench", "--", "--nocapture", "--test-threads=1"]);
    crate::util::run(&mut c)?;
    // The x86 figures beside them: sizes and the upgrade IOCTL median.
    let mut x86 = host_cargo();
    x86.env("SERIAL_LOADER_ARCH", "x86").args(["test", "--release", "-p", "loader-tests", "--test", "bench"]).args([
        "--",
        "--nocapture",
        "--test-threads=1",
        "--exact",
        "arch_sizes_and_upgrade_median",
    ]);
    crate::util::run(&mut x86)
}

pub fn fuzz(seconds: u64) -> Result<(), String> {
    let mut t = Tally::default();
    fuzz_targets(&mut t, seconds);
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::count_before;

    #[test]
    fn reads_libtest_summaries() {
        let line = "ok. 12 passed; 3 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(count_before(line, " passed"), 12);
        assert_eq!(count_before(line, " failed"), 3);
        assert_eq!(count_before("FAILED. 0 passed; 1 failed;", " failed"), 1);
    }
}
