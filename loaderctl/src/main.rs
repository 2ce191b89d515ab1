//! `loaderctl`: the administrator's tool for the serialized loader.
//!
//! It keeps no state of its own (seed 001): every verb asks the loader
//! driver through `\\.\SerialLoader`. This file owns the command line and
//! dispatch only. `device.rs` (the control device), `os.rs` (time zone,
//! fltlib, registry) and `plain.rs` (one struct read) are the only modules
//! allowed `unsafe`.
#![deny(unsafe_code)]

mod cycle;
#[cfg(windows)]
#[allow(unsafe_code)]
mod device;
mod diagnose;
mod exitcode;
#[cfg(test)]
mod fixtures;
mod fm;
mod instances;
mod json;
mod ops;
#[cfg(windows)]
#[allow(unsafe_code)]
mod os;
#[allow(unsafe_code)]
mod plain;
mod progress;
mod render;
mod timefmt;
mod transport;
mod wire;

use clap::{Args, Parser, Subcommand, ValueEnum};
use exitcode::{Exit, Failure, EXIT_CODES_HELP};
use ops::{Change, Console, ProgressSink, RawRequest};
use shared_abi::Slot;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;
use timefmt::{Clock, Shown};
use transport::{Input, Output};

/// Largest buffer `raw` will pass.
const RAW_MAX_LEN: u32 = 16 * 1024 * 1024;

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "loaderctl",
    bin_name = "loaderctl",
    version,
    about = "Control tool for the serialized minifilter loader (service SerialLoader).\n\
             It keeps no state: every command asks the loader driver. Without a command it shows the status.\n\
             Times are the machine's local time with its UTC offset (--utc for UTC).",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    /// Print one JSON document for scripts instead of text (docs/cli.md).
    #[arg(long, global = true)]
    json: bool,
    /// Show times in UTC instead of local time.
    #[arg(long, global = true)]
    utc: bool,
    /// Progress lines of long operations: `auto` shows them on a console only.
    #[arg(long, global = true, hide = true, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// Control device to open instead of `\\.\SerialLoader`.
    #[arg(long, global = true, hide = true, value_name = "PATH")]
    device: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// When progress lines are printed.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ProgressMode {
    /// On a console, not on a pipe or a file (and never with --json).
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug, PartialEq, Eq)]
enum Command {
    /// Show both slots, the active payload, and the loader's last error (the default).
    Status,
    /// Load the inactive slot's payload, switch to it, then retire the old one.
    Upgrade {
        /// Slot to load (A or B); default: the inactive slot.
        #[arg(long, value_parser = parse_slot, value_name = "A|B")]
        slot: Option<Slot>,
    },
    /// Switch back to the previously active slot.
    Rollback,
    /// Load the persisted slot's payload when none is active.
    Load,
    /// Retire the active payload; the loader keeps running.
    Unload,
    /// List the payloads' filter instances: volume, altitude, instance, attached (like fltmc instances).
    Instances,
    /// Explain why a payload is not unloading and what holds it, or confirm that all is well.
    Diagnose,
    /// Run N upgrades back to back and print their latency (soak test and benchmark).
    #[command(hide = true)]
    Cycle {
        /// Number of upgrades.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        count: u32,
    },
    /// Send an arbitrary control request (for tests); prints `status=NAME bytes=N`.
    #[command(hide = true)]
    Raw(RawArgs),
}

/// Bytes given in hex on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HexBytes(Vec<u8>);

#[derive(Args, Debug, PartialEq, Eq)]
struct RawArgs {
    /// The control code, hex (0x...) or decimal.
    #[arg(long, value_parser = parse_u32)]
    code: u32,
    /// Input bytes in hex (spaces, ':' and '-' are ignored).
    #[arg(long, value_parser = parse_hex, conflicts_with_all = ["input_len", "null_input"])]
    input_hex: Option<HexBytes>,
    /// Input of N bytes of garbage; with --null-input, the length a null pointer claims.
    #[arg(long, value_parser = clap::value_parser!(u32).range(..=i64::from(RAW_MAX_LEN)))]
    input_len: Option<u32>,
    /// Pass a null input pointer.
    #[arg(long)]
    null_input: bool,
    /// Output buffer length (default 512); with --null-output, the length a null pointer claims.
    #[arg(long, value_parser = clap::value_parser!(u32).range(..=i64::from(RAW_MAX_LEN)))]
    output_len: Option<u32>,
    /// Pass a null output pointer.
    #[arg(long)]
    null_output: bool,
    /// Also print the returned bytes as `output=HEX`.
    #[arg(long)]
    show_output: bool,
}

impl RawArgs {
    fn request(&self) -> RawRequest {
        let input = match (&self.input_hex, self.null_input, self.input_len) {
            (Some(HexBytes(b)), _, _) => Input::Bytes(b.clone()),
            (None, true, len) => Input::Null { len: len.unwrap_or(0) },
            (None, false, Some(len)) => Input::Bytes(ops::garbage(len)),
            (None, false, None) => Input::Bytes(Vec::new()),
        };
        let output = if self.null_output {
            Output::Null { len: self.output_len.unwrap_or(0) }
        } else {
            Output::Len(self.output_len.unwrap_or(512))
        };
        RawRequest { code: self.code, input, output, show_output: self.show_output }
    }
}

fn parse_slot(s: &str) -> Result<Slot, String> {
    Slot::from_name(s).ok_or_else(|| "a slot is A or B".to_owned())
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("`{s}` is not a 32-bit number (decimal, or hex with 0x)"))
}

fn parse_hex(s: &str) -> Result<HexBytes, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !matches!(b, b' ' | b':' | b'-')).collect();
    let pairs = digits.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err("hex input needs an even number of digits".to_owned());
    }
    let nibble = |d: u8| char::from(d).to_digit(16).and_then(|v| u8::try_from(v).ok());
    pairs
        .map(|p| match (nibble(p[0]), nibble(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(format!("`{s}` is not hex")),
        })
        .collect::<Result<Vec<u8>, String>>()
        .map(HexBytes)
}

/// `/?` and `-?`, the Windows habits, mean `--help`.
fn windows_help_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter().map(|a| if a == "/?" || a == "-?" { OsString::from("--help") } else { a }).collect()
}

fn run(cli: &Cli) -> Result<Exit, Failure> {
    let command = cli.command.as_ref().unwrap_or(&Command::Status);
    if cli.json && matches!(command, Command::Cycle { .. } | Command::Raw(_)) {
        return Err(Failure { exit: Exit::Usage, message: "--json is not available for this command".to_owned() });
    }
    #[cfg(windows)]
    device::install_ctrl_c_notice();
    let ctl = transport::open(cli.device.as_deref())?;
    let ctl = ctl.as_ref();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let clock = Clock { zone: timefmt::system_zone(), shown: if cli.utc { Shown::Utc } else { Shown::Local } };
    let changes = matches!(command, Command::Upgrade { .. } | Command::Load | Command::Rollback | Command::Unload);
    let show_progress = changes
        && !cli.json
        && match cli.progress {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stdout().is_terminal(),
        };
    // A second handle: the request waits on the first (its file object is
    // synchronous, so a status query on it would queue behind the request).
    let progress = if show_progress {
        transport::open(cli.device.as_deref()).ok().map(|second| ProgressSink {
            second,
            out: Box::new(std::io::stdout()),
            timing: progress::TIMING,
        })
    } else {
        None
    };
    let con = &mut Console { out: &mut out, err: &mut err, clock, json: cli.json, progress };
    let fm = fm::SystemFilterManager;
    match command {
        Command::Status => ops::cmd_status(ctl, con),
        Command::Instances => ops::cmd_instances(ctl, &fm, con),
        Command::Diagnose => ops::cmd_diagnose(ctl, &fm, con),
        Command::Upgrade { slot } => ops::cmd_change(ctl, Change::Upgrade, *slot, con),
        Command::Load => ops::cmd_change(ctl, Change::Load, None, con),
        Command::Rollback => ops::cmd_change(ctl, Change::Rollback, None, con),
        Command::Unload => ops::cmd_change(ctl, Change::Unload, None, con),
        Command::Cycle { count } => cycle::cmd_cycle(ctl, *count, con),
        Command::Raw(args) => ops::cmd_raw(ctl, &args.request(), con),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(windows_help_flags(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage.code() } else { 0 });
        }
    };
    let exit = run(&cli).unwrap_or_else(|f| {
        eprintln!("error: {}", f.message);
        f.exit
    });
    ExitCode::from(exit.code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("loaderctl").chain(args.iter().copied()))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verbs_parse() {
        assert_eq!(parse(&["status"]).expect("ok").command, Some(Command::Status));
        let json = parse(&["status", "--json"]).expect("ok");
        assert_eq!((json.command, json.json), (Some(Command::Status), true));
        let front = parse(&["--json", "--utc", "instances"]).expect("ok");
        assert_eq!((front.command, front.json, front.utc), (Some(Command::Instances), true, true));
        assert_eq!(parse(&["upgrade"]).expect("ok").command, Some(Command::Upgrade { slot: None }));
        assert_eq!(
            parse(&["upgrade", "--slot", "B"]).expect("ok").command,
            Some(Command::Upgrade { slot: Some(Slot::B) })
        );
        assert_eq!(
            parse(&["upgrade", "--slot", "a"]).expect("ok").command,
            Some(Command::Upgrade { slot: Some(Slot::A) })
        );
        assert_eq!(parse(&["load"]).expect("ok").command, Some(Command::Load));
        assert_eq!(parse(&["rollback"]).expect("ok").command, Some(Command::Rollback));
        assert_eq!(parse(&["unload", "--progress", "always"]).expect("ok").progress, ProgressMode::Always);
        assert_eq!(parse(&["diagnose"]).expect("ok").command, Some(Command::Diagnose));
        assert_eq!(parse(&["cycle", "--count", "1000"]).expect("ok").command, Some(Command::Cycle { count: 1000 }));
        assert_eq!(parse(&["cycle"]).expect("ok").command, Some(Command::Cycle { count: 100 }));
        assert_eq!(parse(&["cycle", "--count", "0"]).expect_err("zero").exit_code(), 2);
        assert_eq!(parse(&["status", "--device", "\\\\.\\Nope"]).expect("ok").device.as_deref(), Some("\\\\.\\Nope"));
    }

    /// A bare `loaderctl` shows the status, as a bare `fltmc` lists filters.
    #[test]
    fn no_command_means_status() {
        let cli = parse(&[]).expect("a bare loaderctl is valid");
        assert_eq!(cli.command, None);
        let cli = parse(&["--utc"]).expect("ok");
        assert!(cli.utc && cli.command.is_none());
    }

    /// `/?`, `-?` and `--help` print the usage and exit 0.
    #[test]
    fn windows_help_flags_print_the_usage() {
        for flag in ["/?", "-?", "--help", "-h"] {
            let args = windows_help_flags(["loaderctl", flag].map(OsString::from));
            let e = Cli::try_parse_from(args).expect_err("help");
            assert!(!e.use_stderr(), "{flag}");
            assert_eq!(e.exit_code(), 0, "{flag}");
            let text = e.to_string();
            assert!(text.contains("Usage: loaderctl [OPTIONS] [COMMAND]"), "{flag}: {text}");
            assert!(text.contains("instances") && text.contains("--utc") && text.contains("--json"), "{text}");
        }
        let e = Cli::try_parse_from(windows_help_flags(["loaderctl", "upgrade", "/?"].map(OsString::from)))
            .expect_err("help");
        assert!(e.to_string().contains("Usage: loaderctl upgrade"), "{e}");
        // Only a whole `/?` is a help flag.
        assert_eq!(
            windows_help_flags(["x", "/??", "a/?"].map(OsString::from)),
            ["x", "/??", "a/?"].map(OsString::from)
        );
    }

    #[test]
    fn usage_errors_exit_2() {
        for bad in [
            &["upgrade", "--slot", "C"][..],
            &["frobnicate"],
            &["status", "--jsn"],
            &["rollback", "--slot", "A"],
            &["load", "--slot", "A"],
            &["status", "--progress", "sometimes"],
        ] {
            let e = parse(bad).expect_err("usage error");
            assert!(e.use_stderr(), "{bad:?}");
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        let help = parse(&["--help"]).expect_err("help");
        assert!(!help.use_stderr());
        let text = help.to_string();
        assert!(text.contains("Exit codes:"), "{text}");
        assert!(text.contains("  8  teardown stuck"));
        assert!(!text.contains("raw"), "raw is hidden: {text}");
        assert!(!text.contains("cycle"), "cycle is hidden: {text}");
        assert!(!text.contains("--progress"), "--progress is hidden: {text}");
    }

    #[test]
    fn raw_arguments() {
        let raw = |args: &[&str]| -> RawRequest {
            let mut all = vec!["raw"];
            all.extend_from_slice(args);
            match parse(&all).expect("ok").command {
                Some(Command::Raw(r)) => r.request(),
                other => panic!("{other:?}"),
            }
        };
        let r = raw(&["--code", "0x226000"]);
        assert_eq!(r.code, 0x0022_6000);
        assert_eq!(r.input, Input::Bytes(Vec::new()));
        assert_eq!(r.output, Output::Len(512));
        let r = raw(&["--code", "2252804", "--input-hex", "10 00 00 00:01-00", "--output-len", "3"]);
        assert_eq!(r.code, 2_252_804);
        assert_eq!(r.input, Input::Bytes(vec![0x10, 0, 0, 0, 1, 0]));
        assert_eq!(r.output, Output::Len(3));
        let r = raw(&["--code", "1", "--input-len", "7"]);
        assert_eq!(r.input, Input::Bytes(ops::garbage(7)));
        let r = raw(&["--code", "1", "--null-input", "--input-len", "16", "--null-output"]);
        assert_eq!(r.input, Input::Null { len: 16 });
        assert_eq!(r.output, Output::Null { len: 0 });
        let r = raw(&["--code", "1", "--null-output", "--output-len", "512", "--show-output"]);
        assert_eq!(r.output, Output::Null { len: 512 });
        assert!(r.show_output);
        for bad in [
            &["raw", "--code", "0xZZ"][..],
            &["raw", "--code", "1", "--input-hex", "123"],
            &["raw", "--code", "1", "--input-hex", "00", "--input-len", "4"],
            &["raw", "--code", "1", "--output-len", "99999999"],
            &["raw"],
        ] {
            assert_eq!(parse(bad).expect_err("usage").exit_code(), 2, "{bad:?}");
        }
    }
}
