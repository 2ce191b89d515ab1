//! The verbs: each asks the loader (never a file of its own; seed 001) and
//! prints progress and outcome. Written against [`Control`], so the tests
//! drive them with a fake loader. Safe code only.

use crate::diagnose::diagnose;
use crate::exitcode::{status_label, status_token, Exit, Failure, RequestKind};
use crate::render::{describe_slot, slot_label, status_json_text, status_table};
use crate::transport::{Control, Input, Outcome, Output};
use crate::wire;
use shared_abi::control::{
    IoctlCode, LoaderStatus, SlotStatus, IOCTL_LOADER_LOAD, IOCTL_LOADER_QUERY_STATUS, IOCTL_LOADER_ROLLBACK,
    IOCTL_LOADER_UNLOAD, IOCTL_LOADER_UPGRADE, REPLY_NOT_PERSISTED, REPLY_OLD_SLOT_STUCK,
};
use shared_abi::{NtStatus, Slot};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Size of the status snapshot the loader writes (512, asserted in `shared_abi`).
#[allow(clippy::cast_possible_truncation)]
pub(crate) const STATUS_BYTES: u32 = wire::STATUS_LEN as u32;
/// Size of a mutating request's reply (16).
#[allow(clippy::cast_possible_truncation)]
pub(crate) const REPLY_BYTES: u32 = wire::REPLY_LEN as u32;

/// Where the verbs write: standard output and standard error.
pub struct Console<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// Print "still waiting" lines while a request takes long.
    pub ticker: bool,
}

/// A state-changing verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Load,
    Upgrade,
    Rollback,
    Unload,
}

impl Change {
    fn verb(self) -> &'static str {
        match self {
            Change::Load => "load",
            Change::Upgrade => "upgrade",
            Change::Rollback => "rollback",
            Change::Unload => "unload",
        }
    }
    pub(crate) fn code(self) -> IoctlCode {
        match self {
            Change::Load => IOCTL_LOADER_LOAD,
            Change::Upgrade => IOCTL_LOADER_UPGRADE,
            Change::Rollback => IOCTL_LOADER_ROLLBACK,
            Change::Unload => IOCTL_LOADER_UNLOAD,
        }
    }
    pub(crate) fn kind(self) -> RequestKind {
        match self {
            Change::Unload => RequestKind::Query,
            _ => RequestKind::LoadsPayload,
        }
    }
}

/// Reads and decodes the loader's status snapshot.
pub fn query_status(ctl: &dyn Control, verb: &str) -> Result<LoaderStatus, Failure> {
    let input = Input::Bytes(wire::encode_request(&wire::request(None)).to_vec());
    let outcome = ctl.control(IOCTL_LOADER_QUERY_STATUS, &input, Output::Len(STATUS_BYTES));
    // A newer loader (same major, later minor) may have more to say than
    // fits; what it wrote is still a complete snapshot of this version.
    let truncated = outcome.status == NtStatus::BUFFER_OVERFLOW && outcome.output.len() == STATUS_BYTES as usize;
    let abi_mismatch = |s: NtStatus| {
        Failure {
        exit: Exit::Internal,
        message: format!(
            "{verb} failed: {}: the loader speaks another ABI version than this loaderctl; use the loaderctl shipped with the loader",
            status_label(s)
        ),
    }
    };
    if outcome.status == NtStatus::REVISION_MISMATCH {
        return Err(abi_mismatch(outcome.status));
    }
    if !outcome.status.is_success() && !truncated {
        return Err(Failure::from_status(verb, RequestKind::Query, outcome.status));
    }
    wire::decode_status(&outcome.output).map_err(|s| {
        if s == NtStatus::REVISION_MISMATCH {
            abi_mismatch(s)
        } else {
            Failure::malformed_reply(verb, s)
        }
    })
}

/// `status` and `status --json`.
pub fn cmd_status(ctl: &dyn Control, json: bool, con: &mut Console<'_>) -> Result<Exit, Failure> {
    let st = query_status(ctl, "status")?;
    let text = if json { status_json_text(&st) + "\n" } else { status_table(&st) };
    write_all(con.out, &text)?;
    Ok(Exit::Success)
}

/// `diagnose`.
pub fn cmd_diagnose(ctl: &dyn Control, con: &mut Console<'_>) -> Result<Exit, Failure> {
    let st = query_status(ctl, "diagnose")?;
    let (text, exit) = diagnose(&st);
    write_all(con.out, &text)?;
    Ok(exit)
}

/// The status of `slot`.
pub(crate) fn slot_status(st: &LoaderStatus, slot: Slot) -> &SlotStatus {
    &st.slots[slot.index()]
}

/// The active slot described, or `none`.
pub(crate) fn describe_active(st: &LoaderStatus) -> String {
    match Slot::from_word(st.active_slot) {
        Some(i) => describe_slot(i, slot_status(st, i)),
        None => "none".to_owned(),
    }
}

/// The line saying what is about to be asked.
fn intro(change: Change, st: &LoaderStatus, slot: Option<Slot>) -> String {
    let active = Slot::from_word(st.active_slot);
    let verb = change.verb();
    match change {
        Change::Upgrade => {
            let target = slot.or(active.map(Slot::other));
            match (target, active) {
                (Some(t), Some(_)) => format!(
                    "{verb}: asking the loader to load {}, register it, then retire slot {} ...",
                    describe_slot(t, slot_status(st, t)),
                    slot_label(st.active_slot)
                ),
                (Some(t), None) => {
                    format!("{verb}: asking the loader to load {} ...", describe_slot(t, slot_status(st, t)))
                }
                _ => format!("{verb}: asking the loader to load the inactive slot ..."),
            }
        }
        Change::Load => match slot.or(Slot::from_word(st.persisted_slot)) {
            Some(t) => format!("{verb}: asking the loader to load {} ...", describe_slot(t, slot_status(st, t))),
            None => format!("{verb}: asking the loader to load the persisted slot ..."),
        },
        Change::Rollback => match active {
            Some(a) => format!(
                "{verb}: asking the loader to switch back from slot {} to {} ...",
                slot_label(st.active_slot),
                describe_slot(a.other(), slot_status(st, a.other()))
            ),
            None => format!("{verb}: asking the loader to switch back to the previous slot ..."),
        },
        Change::Unload => match active {
            Some(a) => format!("{verb}: asking the loader to retire {} ...", describe_slot(a, slot_status(st, a))),
            None => format!("{verb}: asking the loader to retire the active payload ..."),
        },
    }
}

/// Runs `f` while printing a "still waiting" line every two seconds.
fn with_ticker<T>(verb: &str, enabled: bool, f: impl FnOnce() -> T) -> T {
    if !enabled {
        return f();
    }
    let (done, wait) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let start = Instant::now();
            while let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(Duration::from_secs(2)) {
                eprintln!("{verb}: still waiting for the loader ({} s) ...", start.elapsed().as_secs());
            }
        });
        let result = f();
        drop(done);
        result
    })
}

/// The outcome of a mutating request: `Success` or `TeardownStuck` (the
/// new payload is active but the old one is not gone) with the loader's
/// status, or the failure to report.
pub(crate) fn judge_reply(verb: &str, kind: RequestKind, outcome: &Outcome) -> Result<(Exit, NtStatus), Failure> {
    if !outcome.status.is_success() {
        return Err(Failure::from_status(verb, kind, outcome.status));
    }
    let reply = wire::decode_reply(&outcome.output).map_err(|s| Failure::malformed_reply(verb, s))?;
    let status = NtStatus(reply.status);
    if !status.is_success() {
        return Err(Failure::from_status(verb, kind, status));
    }
    let exit = if reply.flags & REPLY_OLD_SLOT_STUCK != 0 { Exit::TeardownStuck } else { Exit::Success };
    if reply.flags & REPLY_NOT_PERSISTED != 0 {
        eprintln!(
            "warning: {verb} took effect, but the loader could not write Parameters\\ActiveSlot: after a restart it loads what was persisted before (see `loaderctl status`, last error)"
        );
    }
    Ok((exit, status))
}

/// `load`, `upgrade`, `rollback`, `unload`.
pub fn cmd_change(
    ctl: &dyn Control,
    change: Change,
    slot: Option<Slot>,
    con: &mut Console<'_>,
) -> Result<Exit, Failure> {
    let verb = change.verb();
    let before = query_status(ctl, verb)?;
    if let (Change::Upgrade, Some(target)) = (change, slot) {
        if Slot::from_word(before.active_slot) == Some(target) {
            return Err(Failure {
                exit: Exit::Usage,
                message: format!(
                    "slot {target} is already active: `upgrade` loads the other slot (use `loaderctl upgrade --slot {}`, or `loaderctl upgrade`)",
                    target.other()
                ),
            });
        }
    }
    say(con, &format!("{verb}: currently active: {}", describe_active(&before)))?;
    say(con, &intro(change, &before, slot))?;

    let input = Input::Bytes(wire::encode_request(&wire::request(slot)).to_vec());
    let outcome = with_ticker(verb, con.ticker, || ctl.control(change.code(), &input, Output::Len(REPLY_BYTES)));

    let result = judge_reply(verb, change.kind(), &outcome);
    if let Ok((_, status)) = &result {
        say(con, &format!("{verb}: the loader answered {}", status_label(*status)))?;
    }
    let result = result.map(|(exit, _)| exit);

    // Whatever happened, show where the loader stands now.
    match query_status(ctl, verb) {
        Ok(after) => {
            let now = describe_active(&after);
            let line = if result.is_ok() {
                format!("{verb}: now active: {now}")
            } else {
                format!("{verb}: still active: {now}")
            };
            say(con, &line)?;
            if result == Ok(Exit::TeardownStuck) {
                let old = Slot::from_word(before.active_slot)
                    .filter(|&b| Some(b) != Slot::from_word(after.active_slot))
                    .map_or_else(|| "the old payload".to_owned(), |b| describe_slot(b, slot_status(&after, b)));
                let _ = writeln!(
                    con.err,
                    "warning: the new payload is active, but {old} has not finished unloading; run `loaderctl diagnose` to see why"
                );
            }
        }
        Err(f) => {
            let _ = writeln!(con.err, "warning: could not re-read the status afterwards: {}", f.message);
        }
    }
    result
}

/// A request for the hidden `raw` verb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRequest {
    pub code: u32,
    pub input: Input,
    pub output: Output,
    pub show_output: bool,
}

/// `raw`: sends any request and prints `status=STATUS_NAME bytes=N`.
pub fn cmd_raw(ctl: &dyn Control, req: &RawRequest, con: &mut Console<'_>) -> Result<Exit, Failure> {
    let outcome = ctl.control(IoctlCode(req.code), &req.input, req.output);
    let mut text = format!("status={} bytes={}\n", status_token(outcome.status), outcome.bytes);
    if req.show_output {
        text.push_str("output=");
        for b in &outcome.output {
            let _ = write!(text, "{b:02x}");
        }
        text.push('\n');
    }
    write_all(con.out, &text)?;
    Ok(Exit::Success)
}

/// `len` bytes of deterministic garbage (xorshift), for `raw --input-len`.
#[must_use]
pub fn garbage(len: u32) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9 ^ len;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

pub(crate) fn say(con: &mut Console<'_>, line: &str) -> Result<(), Failure> {
    write_all(con.out, &format!("{line}\n"))
}

pub(crate) fn write_all(w: &mut dyn Write, text: &str) -> Result<(), Failure> {
    w.write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .map_err(|e| Failure { exit: Exit::Internal, message: format!("cannot write the output: {e}") })
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
