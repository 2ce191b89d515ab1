//! The loader's significant events, written to the System event log with
//! the messages of `loader_events` (the message table in this image).
//!
//! Owns: which event an operation's outcome is, and its insertion strings.
//! Every event is also printed to the debug log with its rendered text and
//! whether the entry was written (under Wine 8 it never is: its
//! `IoAllocateErrorLogEntry` returns NULL, so only the debug line shows
//! that the call happened).
//!
//! Must never: block, allocate, or be called after [`close`]. Callers run
//! at `PASSIVE_LEVEL` (`DriverEntry`, `DriverUnload`, the operation thread);
//! the writer itself accepts up to `DISPATCH_LEVEL`.
use crate::log;
use crate::platform;
use core::fmt::Write as _;
use kernel_sys::wrap::driver::DriverObject;
use kernel_sys::wrap::eventlog::{self, NotWritten};
use loader_events::{self as msg, MessageId, Text};
use loader_parsers::control::ControlCommand;
use loader_protocol::OpOutcome;
use shared_abi::control::{LoaderStatus, SlotStatus, REPLY_OLD_SLOT_STUCK};
use shared_abi::{NtStatus, Slot};

// The message table's room for strings is the kernel's.
const _: () = assert!(msg::MAX_STRING_UNITS == kernel_sys::errlog::MAX_STRING_UNITS);
const _: () = assert!(msg::ERROR_LOG_MAXIMUM_SIZE == kernel_sys::errlog::ERROR_LOG_MAXIMUM_SIZE);

/// One insertion string.
type Field = Text<64>;

/// Files the events under this driver. `DriverEntry`, first thing.
pub fn open(driver: DriverObject) {
    eventlog::open(driver);
}

/// No event after this. `DriverUnload`, last thing before returning.
pub fn close() {
    eventlog::close();
}

fn field(args: core::fmt::Arguments<'_>) -> Field {
    let mut t = Field::new();
    let _ = t.write_fmt(args);
    t
}

/// Writes event `id` with `strings`, and prints it to the debug log.
fn emit(id: MessageId, status: NtStatus, strings: &[&str]) {
    let outcome = eventlog::write(id.as_status(), status, u32::from(id.code()), strings);
    let Some(m) = msg::message(id) else { return };
    let mut text: Text<300> = Text::new();
    let _ = msg::render(m.text, msg::EVENT_SOURCE, strings, &mut text);
    let how = match outcome {
        Ok(w) if w.truncated => "written to the System log (strings cut to fit)",
        Ok(_) => "written to the System log",
        Err(NotWritten::NotAllocated) => "not written: IoAllocateErrorLogEntry returned NULL",
        Err(NotWritten::IrqlTooHigh) => "not written: IRQL above DISPATCH_LEVEL",
        Err(NotWritten::Closed) => "not written: the event log is closed",
    };
    // Two lines: the verdict cannot be cut off by a long text.
    log!("event {} (Event ID {}, {}): {how}", m.symbol, id.code(), id.severity().name());
    log!("  text: {}", text.as_str());
}

fn slot_text(slot: Option<Slot>) -> Field {
    match slot {
        Some(s) => field(format_args!("{s}")),
        None => field(format_args!("none")),
    }
}

fn service(st: &LoaderStatus, slot: Slot) -> Field {
    let mut t = Field::new();
    let units = &st.slots[slot.index()].service;
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    for c in char::decode_utf16(units.iter().take(end).copied()) {
        let _ = t.write_char(c.unwrap_or('?'));
    }
    t
}

/// `CounterFilter v2`: the payload's name with its version (once).
fn payload(s: &SlotStatus) -> Field {
    let mut name = Field::new();
    let end = s.name.iter().position(|&u| u == 0).unwrap_or(s.name.len());
    for c in char::decode_utf16(s.name.iter().take(end).copied()) {
        let _ = name.write_char(c.unwrap_or('?'));
    }
    let version = field(format_args!("v{}", s.payload_version));
    if name.as_str().is_empty() {
        return field(format_args!("payload {}", version.as_str()));
    }
    if name.as_str().split_whitespace().last() == Some(version.as_str()) {
        name
    } else {
        field(format_args!("{} {}", name.as_str(), version.as_str()))
    }
}

/// `slot A, CounterFilter v1`, or `none`.
fn active_text(st: &LoaderStatus) -> Field {
    match Slot::from_word(st.active_slot) {
        Some(a) => field(format_args!("slot {a}, {}", payload(&st.slots[a.index()]).as_str())),
        None => field(format_args!("none")),
    }
}

/// The loader's start: the configuration it read (`Ok(slot to start
/// with)`) or why it cannot use it.
pub fn started(config: Result<Option<Slot>, NtStatus>) {
    match config {
        Ok(first) => {
            let st = platform::status();
            let (a, b) = (service(&st, Slot::A), service(&st, Slot::B));
            let first = slot_text(first);
            emit(
                msg::LOADER_STARTED,
                NtStatus::SUCCESS,
                &[env!("CARGO_PKG_VERSION"), a.as_str(), b.as_str(), first.as_str()],
            );
        }
        Err(e) => {
            let status = field(format_args!("{e}"));
            emit(msg::CONFIG_INVALID, e, &[status.as_str()]);
        }
    }
}

/// The loader's stop, after every payload was retired.
pub fn stopped() {
    emit(msg::LOADER_STOPPED, NtStatus::SUCCESS, &[]);
}

/// What an operation did, from the status before and after it.
pub fn after_operation(command: ControlCommand, before: &LoaderStatus, out: &OpOutcome) {
    let after = platform::status();
    let was_active = Slot::from_word(before.active_slot);
    let target = match command {
        ControlCommand::Upgrade { slot } => slot.or(was_active.map(Slot::other)),
        ControlCommand::Rollback => was_active.map(Slot::other),
        ControlCommand::Load => Slot::from_word(before.persisted_slot).or(Some(Slot::A)),
        ControlCommand::Unload => was_active,
        ControlCommand::QueryStatus => return,
    };
    if out.flags & REPLY_OLD_SLOT_STUCK != 0 {
        // The old payload (or, for unload, the one retired) did not go.
        let old = match command {
            ControlCommand::Unload => was_active,
            _ => was_active.filter(|&w| Some(w) != out.active),
        };
        if let Some(old) = old {
            stuck(&after, old);
        }
        if !out.status.is_success() {
            return;
        }
    }
    if !out.status.is_success() {
        let op = match command {
            ControlCommand::Upgrade { .. } => "upgrade",
            ControlCommand::Rollback => "rollback",
            ControlCommand::Load => "load",
            _ => "unload",
        };
        refused(op, &after, target, out.status);
        return;
    }
    match (command, out.active) {
        (ControlCommand::Upgrade { .. } | ControlCommand::Rollback, Some(new)) => {
            let id = if matches!(command, ControlCommand::Rollback) {
                msg::PAYLOAD_ROLLED_BACK
            } else {
                msg::PAYLOAD_UPGRADED
            };
            let (p, svc) = (payload(&after.slots[new.index()]), service(&after, new));
            let (new_slot, old_slot) = (slot_text(Some(new)), slot_text(was_active.or(Some(new.other()))));
            emit(id, out.status, &[p.as_str(), new_slot.as_str(), svc.as_str(), old_slot.as_str()]);
        }
        (ControlCommand::Load, Some(new)) => loaded(&after, new, out.status),
        (ControlCommand::Unload, _) => {
            if let Some(old) = was_active {
                let (s, svc) = (slot_text(Some(old)), service(&after, old));
                emit(msg::PAYLOAD_UNLOADED, out.status, &[s.as_str(), svc.as_str()]);
            }
        }
        _ => {}
    }
}

/// The initial load's outcome (the service's start).
pub fn after_start(slot: Option<Slot>, out: &OpOutcome) {
    let Some(slot) = slot else { return };
    let st = platform::status();
    if out.status.is_success() {
        loaded(&st, out.active.unwrap_or(slot), out.status);
    } else {
        refused("load at start", &st, Some(slot), out.status);
    }
}

fn loaded(st: &LoaderStatus, slot: Slot, status: NtStatus) {
    let (p, s, svc) = (payload(&st.slots[slot.index()]), slot_text(Some(slot)), service(st, slot));
    emit(msg::PAYLOAD_LOADED, status, &[p.as_str(), s.as_str(), svc.as_str()]);
}

fn refused(op: &str, st: &LoaderStatus, target: Option<Slot>, status: NtStatus) {
    let slot = slot_text(target);
    let svc = target.map_or_else(|| field(format_args!("-")), |t| service(st, t));
    let why = field(format_args!("{status}"));
    let active = active_text(st);
    emit(msg::OPERATION_REFUSED, status, &[op, slot.as_str(), svc.as_str(), why.as_str(), active.as_str()]);
}

fn stuck(st: &LoaderStatus, slot: Slot) {
    let (s, svc) = (slot_text(Some(slot)), service(st, slot));
    let bound = field(format_args!("{}", st.unload_timeout_ms));
    emit(msg::PAYLOAD_STUCK, NtStatus::IO_TIMEOUT, &[s.as_str(), svc.as_str(), bound.as_str()]);
}
