//! The verbs: each asks the loader (never a file of its own; seed 001) and
//! prints progress and outcome, as text or as one JSON document. Written
//! against [`Control`], so the tests drive them with a fake loader. Safe
//! code only.

use crate::diagnose::{diagnose, Facts};
use crate::exitcode::{status_label, status_token, Exit, Failure, RequestKind};
use crate::instances::{self, Row, SlotFilter, Source};
use crate::json::{self, ChangeDoc, InstancesDoc, SlotRef, Status, StatusDoc, SCHEMA_VERSION};
use crate::progress::{self, Plan, Timing, Watcher};
use crate::render::{describe_slot, slot_label, status_table, utf16_text};
use crate::timefmt::Clock;
use crate::transport::{Control, Input, Outcome, Output};
use crate::wire;
use fltsim_abi as sim;
use shared_abi::control::{
    IoctlCode, LoaderStatus, SlotStatus, IOCTL_LOADER_LOAD, IOCTL_LOADER_QUERY_STATUS, IOCTL_LOADER_ROLLBACK,
    IOCTL_LOADER_UNLOAD, IOCTL_LOADER_UPGRADE, REPLY_NOT_PERSISTED, REPLY_OLD_SLOT_STUCK,
};
use shared_abi::{NtStatus, Slot};
use std::fmt::Write as _;
use std::io::Write;

/// Size of the status snapshot the loader writes (512, asserted in `shared_abi`).
#[allow(clippy::cast_possible_truncation)]
pub(crate) const STATUS_BYTES: u32 = wire::STATUS_LEN as u32;
/// Size of a mutating request's reply (16).
#[allow(clippy::cast_possible_truncation)]
pub(crate) const REPLY_BYTES: u32 = wire::REPLY_LEN as u32;

/// Progress of a long operation: a second handle to poll and where to print.
pub struct ProgressSink {
    pub second: Box<dyn Control + Send>,
    pub out: Box<dyn Write + Send>,
    pub timing: Timing,
}

/// Where and how the verbs write.
pub struct Console<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// How times are shown (local with offset, or UTC).
    pub clock: Clock<'a>,
    /// One JSON document on standard output instead of text.
    pub json: bool,
    /// Progress of long operations (never with `--json`, nor on a pipe).
    pub progress: Option<ProgressSink>,
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
    pub(crate) fn verb(self) -> &'static str {
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

/// `status` (also a bare `loaderctl`).
pub fn cmd_status(ctl: &dyn Control, con: &mut Console<'_>) -> Result<Exit, Failure> {
    let st = query_status(ctl, "status")?;
    let text = if con.json { json::text(&StatusDoc::new(&con.clock, &st)) } else { status_table(&con.clock, &st) };
    write_all(con.out, &text)?;
    Ok(Exit::Success)
}

/// What the Filter Manager can be asked, for `instances` and `diagnose`.
pub trait FilterManager {
    /// The instances of these filters, and where that came from; `Err`
    /// with a sentence when nothing can enumerate them here.
    fn instances(&self, filters: &[SlotFilter]) -> Result<(Source, Vec<Row>), String>;
    /// The test Filter Manager's snapshot, when it is the one running.
    fn snapshot(&self) -> Option<sim::Snapshot>;
    /// A slot filter's configured default instance (name, altitude).
    fn default_instance(&self, service: &str) -> Option<(String, String)>;
    /// The file names of the kernel modules loaded now, where the platform
    /// can tell (Windows, not Wine).
    fn loaded_drivers(&self) -> Option<Vec<String>>;
    /// The image file name of a service (`payload_a.sys`).
    fn image_of(&self, service: &str) -> Option<String>;
}

fn slot_filters(fm: &dyn FilterManager, st: &LoaderStatus) -> Vec<SlotFilter> {
    Slot::ALL
        .into_iter()
        .zip(st.slots.iter())
        .filter_map(|(slot, s)| {
            let service = utf16_text(&s.service);
            (!service.is_empty()).then(|| SlotFilter { slot, default_instance: fm.default_instance(&service), service })
        })
        .collect()
}

/// `instances`.
pub fn cmd_instances(ctl: &dyn Control, fm: &dyn FilterManager, con: &mut Console<'_>) -> Result<Exit, Failure> {
    let st = query_status(ctl, "instances")?;
    let filters = slot_filters(fm, &st);
    let (source, mut rows) =
        fm.instances(&filters).map_err(|why| Failure { exit: Exit::Internal, message: format!("instances: {why}") })?;
    instances::add_unattached(&mut rows, &filters);
    let text = if con.json {
        json::text(&InstancesDoc {
            schema_version: SCHEMA_VERSION,
            command: "instances",
            source: source.name(),
            instances: rows.iter().map(Row::doc).collect(),
        })
    } else {
        instances::table(&rows, source)
    };
    write_all(con.out, &text)?;
    Ok(Exit::Success)
}

/// `diagnose`.
pub fn cmd_diagnose(ctl: &dyn Control, fm: &dyn FilterManager, con: &mut Console<'_>) -> Result<Exit, Failure> {
    let st = query_status(ctl, "diagnose")?;
    let snapshot = fm.snapshot();
    let mut facts = Facts { filter_manager: snapshot.as_ref(), still_mapped: Vec::new() };
    if let Some(loaded) = fm.loaded_drivers() {
        for (slot, s) in Slot::ALL.into_iter().zip(st.slots.iter()) {
            let gone = matches!(
                shared_abi::control::SlotState(s.state),
                shared_abi::control::SlotState::EMPTY | shared_abi::control::SlotState::STOPPED
            );
            let Some(image) = fm.image_of(&utf16_text(&s.service)) else { continue };
            if gone && loaded.iter().any(|l| l.eq_ignore_ascii_case(&image)) {
                facts.still_mapped.push(crate::diagnose::StillMapped { slot, image });
            }
        }
    }
    let d = diagnose(&con.clock, &st, &facts);
    let text = if con.json { json::text(&d.doc) } else { d.text };
    write_all(con.out, &text)?;
    Ok(d.exit)
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

/// A reply's meaning.
pub(crate) struct Judged {
    pub exit: Exit,
    pub status: NtStatus,
    pub flags: u32,
}

/// The outcome of a mutating request: `Success` or `TeardownStuck` (the
/// new payload is active but the old one is not gone) with the loader's
/// status and reply flags, or the failure to report.
pub(crate) fn judge_reply(verb: &str, kind: RequestKind, outcome: &Outcome) -> Result<Judged, (Failure, NtStatus)> {
    if !outcome.status.is_success() {
        return Err((Failure::from_status(verb, kind, outcome.status), outcome.status));
    }
    let reply = wire::decode_reply(&outcome.output).map_err(|s| (Failure::malformed_reply(verb, s), s))?;
    let status = NtStatus(reply.status);
    if !status.is_success() {
        return Err((Failure::from_status(verb, kind, status), status));
    }
    let exit = if reply.flags & REPLY_OLD_SLOT_STUCK != 0 { Exit::TeardownStuck } else { Exit::Success };
    Ok(Judged { exit, status, flags: reply.flags })
}

/// Sends the request, watching its progress on the second handle when
/// the console shows progress.
fn send(
    ctl: &dyn Control,
    change: Change,
    input: &Input,
    plan: Plan,
    con: &mut Console<'_>,
) -> (Outcome, Option<Watcher>) {
    let request = || ctl.control(change.code(), input, Output::Len(REPLY_BYTES));
    match con.progress.take() {
        Some(sink) => {
            let watcher = Watcher::new(plan, sink.out);
            let (outcome, watcher) = progress::watch(sink.second, watcher, sink.timing, request);
            (outcome, Some(watcher))
        }
        None => (request(), None),
    }
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
    let text = !con.json;
    if text {
        say(con, &format!("{verb}: currently active: {}", describe_active(&before)))?;
        say(con, &intro(change, &before, slot))?;
    }

    let input = Input::Bytes(wire::encode_request(&wire::request(slot)).to_vec());
    let plan = Plan::new(change, &before, slot);
    let (outcome, watcher) = send(ctl, change, &input, plan, con);

    let judged = judge_reply(verb, change.kind(), &outcome);
    let after = query_status(ctl, verb);
    if let (Some(w), Ok(after)) = (watcher, &after) {
        w.finish(after);
    }
    let (result, status, flags) = match judged {
        Ok(j) => (Ok(j.exit), j.status, j.flags),
        Err((f, s)) => (Err(f), s, 0),
    };

    if con.json {
        let exit = match &result {
            Ok(e) => *e,
            Err(f) => f.exit,
        };
        let doc = ChangeDoc {
            schema_version: SCHEMA_VERSION,
            command: verb,
            exit_code: exit.code(),
            status: Status::new(status),
            message: result.as_ref().err().map(|f| f.message.clone()),
            old_slot_stuck: flags & REPLY_OLD_SLOT_STUCK != 0,
            not_persisted: flags & REPLY_NOT_PERSISTED != 0,
            active_before: SlotRef::new(before.active_slot),
            active_after: after.as_ref().ok().map(|a| SlotRef::new(a.active_slot)),
        };
        write_all(con.out, &json::text(&doc))?;
        if let Err(f) = &result {
            let _ = writeln!(con.err, "error: {}", f.message);
        }
        return Ok(exit);
    }

    if result.is_ok() {
        say(con, &format!("{verb}: the loader answered {}", status_label(status)))?;
    }
    if flags & REPLY_NOT_PERSISTED != 0 {
        let _ = writeln!(
            con.err,
            "warning: {verb} took effect, but the loader could not write Parameters\\ActiveSlot: after a restart it loads what was persisted before (see `loaderctl status`, last error)"
        );
    }
    // Whatever happened, show where the loader stands now.
    match after {
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
                    .filter(|&b| Some(b) != Slot::from_word(after.active_slot) || change == Change::Unload)
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
