//! `cargo xtask <verb>`: the one entry point for building, testing and
//! demonstrating the loader on a Debian 12 machine.
//!
//! It hides the two cross toolchains (Debian's Rust 1.96 with build-std for
//! the kernel images and the Windows 7 tool), `RUSTC_BOOTSTRAP`, the per-target
//! flags and the Wine prefix. Every verb first runs whatever part of `setup`
//! is missing, so nobody has to run `setup` by hand.
#![allow(clippy::missing_panics_doc)]

mod build;
mod cbuild;
mod demo;
mod resources;
mod setup;
mod testrun;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <verb> [options]

verbs:
  setup              install what this machine lacks (Debian packages) and prepare the Wine prefix
  build              cross-build loader.sys, payload.sys (+ test variants) and loaderctl.exe into target/package/
  test               run every test: host unit tests, model (loom + stress), image checks, INF checks,
                     the Wine end-to-end suite and a short fuzz pass; ends with `N passed, N failed`
  lint               the lint gates of `test` alone (clippy for host, x64 and x86 kernel and Windows 7 targets; fmt --check)
  model              the loom model suite and the randomized stress simulator
  e2e [--arch A]     the end-to-end suite under Wine, on x64 and x86 (or on A only); a total per architecture
  bench              upgrade-latency benchmark under Wine (prints figures)
  fuzz [--seconds N] run every fuzz target for N seconds (default 60)
  demo               build, install into Wine, and narrate a live load / upgrade / rollback story
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(verb) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match verb.as_str() {
        "setup" => setup::run_all(),
        "build" => build::run().map(|_| ()),
        "test" => testrun::test_all(),
        "model" => testrun::model_only(),
        "lint" => testrun::lint_only(),
        "e2e" => testrun::e2e_only(rest),
        "bench" => testrun::bench(),
        "fuzz" => testrun::fuzz(util::seconds_arg(rest, 60)),
        "demo" => demo::run(),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown verb `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
