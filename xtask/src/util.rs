//! Small process and path helpers shared by the verbs.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map_or(here.clone(), Path::to_path_buf)
}

/// `target/` under the root.
pub fn target() -> PathBuf {
    root().join("target")
}

/// Runs a command, streaming its output; fails with its description.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = describe(cmd);
    let status = cmd.status().map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// Runs a command and captures stdout+stderr; returns (success, combined output).
pub fn capture(cmd: &mut Command) -> Result<(bool, String), String> {
    let shown = describe(cmd);
    let out = cmd.output().map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `--seconds N` from the arguments, or the default.
pub fn seconds_arg(args: &[String], default: u64) -> u64 {
    args.iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prints a step heading.
pub fn step(text: &str) {
    println!("==> {text}");
}
