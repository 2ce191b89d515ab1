//! `--json`: every document loaderctl prints for scripts, as typed structs.
//!
//! Keys come out in the order the fields are declared here, and that order
//! is part of the contract (docs/cli.md documents every field in this
//! order; a test pins it). Every document starts with `schema_version`
//! and `command`. Adding a field at the end of a struct keeps the schema
//! version; removing, renaming, reordering or retyping one bumps it.
use crate::exitcode::{status_name, status_text};
use crate::render::{slot_label, utf16_text};
use crate::timefmt::Clock;
use serde::Serialize;
use shared_abi::control::{HandoverMode, LoaderStatus, OpKind, SlotState, SlotStatus, SLOT_NONE};
use shared_abi::payload::PayloadPhase;
use shared_abi::NtStatus;

/// The version of every document's layout.
pub const SCHEMA_VERSION: u32 = 1;

/// A point in time: the raw system time (100-ns ticks since 1601 UTC, 0 =
/// never) and the same instant in UTC and in the machine's local time.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Time {
    pub raw: u64,
    pub utc: Option<String>,
    pub local: Option<String>,
}

impl Time {
    #[must_use]
    pub fn new(clock: &Clock<'_>, ticks: u64) -> Time {
        Time { raw: ticks, utc: clock.iso_utc(ticks), local: clock.iso_local(ticks) }
    }
}

/// An `NTSTATUS`: the signed value, its hex, symbolic name and plain text.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub raw: i32,
    pub hex: String,
    pub name: Option<&'static str>,
    pub text: Option<&'static str>,
}

impl Status {
    #[must_use]
    pub fn new(status: NtStatus) -> Status {
        Status {
            raw: status.0,
            hex: format!("0x{:08X}", status.bits()),
            name: status_name(status),
            text: if status.0 == 0 { None } else { Some(status_text(status)) },
        }
    }
}

/// A numbered value and its name (`unknown` for a value this version does
/// not know).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub raw: u32,
    pub name: &'static str,
}

/// A slot word: 0 = A, 1 = B, 4294967295 = none (`name` null).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct SlotRef {
    pub raw: u32,
    pub name: Option<String>,
}

impl SlotRef {
    #[must_use]
    pub fn new(slot: u32) -> SlotRef {
        SlotRef { raw: slot, name: if slot == SLOT_NONE { None } else { Some(slot_label(slot)) } }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Abi {
    pub major: u16,
    pub minor: u16,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorDoc {
    pub status: Status,
    pub op: Named,
    pub slot: SlotRef,
    pub time: Time,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct PoolDoc {
    pub tag: PoolTag,
    pub allocs: u64,
    pub frees: u64,
    pub outstanding: i128,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct PoolTag {
    pub raw: u32,
    pub name: String,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ReportDoc {
    pub phase: Named,
    pub instances: u32,
    pub open_contexts: u32,
    pub creates: u64,
    pub reads: u64,
    pub writes: u64,
    pub pool_outstanding: i64,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct SlotDoc {
    pub slot: SlotRef,
    pub service: String,
    pub name: String,
    pub payload_version: u32,
    pub state: Named,
    pub state_since: Time,
    pub registered_since: Time,
    pub last_status: Status,
    pub last_op: Named,
    pub report_time: Time,
    pub report: ReportDoc,
}

/// `loaderctl status --json`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct StatusDoc {
    pub schema_version: u32,
    pub command: &'static str,
    pub loaderctl_version: &'static str,
    pub abi: Abi,
    pub now: Time,
    pub active_slot: SlotRef,
    pub persisted_slot: SlotRef,
    pub busy: bool,
    pub unload_timeout_ms: u32,
    pub last_error: ErrorDoc,
    pub loader_pool: PoolDoc,
    pub slots: Vec<SlotDoc>,
    /// The last upgrade's handover (ABI 1.2; zero from an older loader).
    pub handover: HandoverDoc,
}

/// How the last upgrade or rollback handed the operations over.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct HandoverDoc {
    /// `no upgrade yet`, `exactly once`, `none (payload too old)`,
    /// `not exact (old generation did not drain)`.
    pub mode: Named,
    pub last_status: Status,
    pub owner_generation: u32,
    pub state_transfers: u32,
    pub refused: u32,
    pub unmarked: u32,
    pub last_state_bytes: u32,
    pub exact_handovers: u32,
}

fn slot_state(s: &SlotStatus) -> Named {
    Named { raw: s.state, name: SlotState(s.state).name() }
}

fn slot_doc(clock: &Clock<'_>, index: u32, s: &SlotStatus) -> SlotDoc {
    let r = &s.report;
    SlotDoc {
        slot: SlotRef::new(index),
        service: utf16_text(&s.service),
        name: utf16_text(&s.name),
        payload_version: s.payload_version,
        state: slot_state(s),
        state_since: Time::new(clock, s.state_since),
        registered_since: Time::new(clock, s.registered_since),
        last_status: Status::new(NtStatus(s.last_status)),
        last_op: Named { raw: s.last_op, name: OpKind(s.last_op).name() },
        report_time: Time::new(clock, s.report_time),
        report: ReportDoc {
            phase: Named { raw: r.phase, name: PayloadPhase(r.phase).name() },
            instances: r.instances,
            open_contexts: r.open_contexts,
            creates: r.creates,
            reads: r.reads,
            writes: r.writes,
            pool_outstanding: r.pool_outstanding,
        },
    }
}

impl StatusDoc {
    #[must_use]
    pub fn new(clock: &Clock<'_>, st: &LoaderStatus) -> StatusDoc {
        let e = &st.last_error;
        let p = &st.loader_pool;
        StatusDoc {
            schema_version: SCHEMA_VERSION,
            command: "status",
            loaderctl_version: env!("CARGO_PKG_VERSION"),
            abi: Abi { major: st.abi_major, minor: st.abi_minor },
            now: Time::new(clock, st.now),
            active_slot: SlotRef::new(st.active_slot),
            persisted_slot: SlotRef::new(st.persisted_slot),
            busy: st.busy != 0,
            unload_timeout_ms: st.unload_timeout_ms,
            last_error: ErrorDoc {
                status: Status::new(NtStatus(e.status)),
                op: Named { raw: e.op, name: OpKind(e.op).name() },
                slot: SlotRef::new(e.slot),
                time: Time::new(clock, e.time),
            },
            loader_pool: PoolDoc {
                tag: PoolTag { raw: p.tag, name: String::from_utf8_lossy(&p.tag.to_le_bytes()).into_owned() },
                allocs: p.allocs,
                frees: p.frees,
                outstanding: i128::from(p.allocs) - i128::from(p.frees),
            },
            slots: (0u32..).zip(st.slots.iter()).map(|(i, s)| slot_doc(clock, i, s)).collect(),
            handover: HandoverDoc {
                mode: Named { raw: st.handover.mode, name: HandoverMode(st.handover.mode).name() },
                last_status: Status::new(NtStatus(st.handover.last_status)),
                owner_generation: st.handover.owner_generation,
                state_transfers: st.handover.state_transfers,
                refused: st.handover.refused,
                unmarked: st.handover.unmarked,
                last_state_bytes: st.handover.last_state_bytes,
                exact_handovers: st.handover.exact_handovers,
            },
        }
    }
}

/// The outcome of `load`, `upgrade`, `rollback`, `unload` with `--json`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ChangeDoc {
    pub schema_version: u32,
    pub command: &'static str,
    /// The loaderctl exit code (docs/cli.md, "Exit codes").
    pub exit_code: u8,
    /// The operation's `NTSTATUS` (the request's, or the loader's reply's).
    pub status: Status,
    /// A sentence for a person when it failed, else null.
    pub message: Option<String>,
    /// The new payload is active, but the retired one has not unloaded yet.
    pub old_slot_stuck: bool,
    /// It took effect, but `Parameters\ActiveSlot` could not be written.
    pub not_persisted: bool,
    pub active_before: SlotRef,
    /// The active slot afterwards (null when the status could not be read).
    pub active_after: Option<SlotRef>,
}

/// One filter instance (`loaderctl instances --json`).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct InstanceDoc {
    /// The loader's slot whose service the filter is (`A`, `B`), or null.
    pub slot: Option<String>,
    pub filter: String,
    /// The volume's device name; null when the instance is not attached.
    pub volume: Option<String>,
    /// The volume's drive letter (`C:`), when it has one.
    pub volume_dos: Option<String>,
    pub altitude: String,
    pub instance: String,
    pub attached: bool,
    /// `attached`, `attaching`, `detaching`, or `not-attached`.
    pub state: &'static str,
}

/// `loaderctl instances --json`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct InstancesDoc {
    pub schema_version: u32,
    pub command: &'static str,
    /// `fltlib` (the Filter Manager's own enumeration, as fltmc uses) or
    /// `test-filter-manager` (Wine with the test world's Filter Manager).
    pub source: &'static str,
    pub instances: Vec<InstanceDoc>,
}

/// A file (or context) a payload still holds (`diagnose --json`).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct HeldDoc {
    pub slot: String,
    pub filter: String,
    pub volume: String,
    /// The file name on that volume.
    pub file: String,
    pub contexts: u32,
    /// Held at least this long: since the payload's teardown began.
    pub held_at_least_ms: u64,
}

/// An instance that does not let its volume go.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct RefusingDoc {
    pub slot: String,
    pub filter: String,
    pub volume: String,
    pub state: &'static str,
    pub contexts: u32,
    pub callbacks_in_flight: u32,
}

/// `loaderctl diagnose --json`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct DiagnoseDoc {
    pub schema_version: u32,
    pub command: &'static str,
    /// No payload is stuck or retiring, and nothing lingers.
    pub healthy: bool,
    pub exit_code: u8,
    /// The explanation, one paragraph per string, as the text output.
    pub findings: Vec<String>,
    /// Files whose contexts a payload still holds (Filter Manager view).
    pub held: Vec<HeldDoc>,
    /// Instances that refuse or have not finished their teardown.
    pub refusing: Vec<RefusingDoc>,
    /// Slots whose driver is gone from the loader's view but whose image is
    /// still mapped (seed 000).
    pub still_mapped: Vec<String>,
    /// Where the Filter Manager facts came from (`test-filter-manager`), or
    /// null when none were available.
    pub filter_manager: Option<&'static str>,
}

/// `serde_json` text of a document, pretty and newline-terminated.
#[must_use]
pub fn text<T: Serialize>(doc: &T) -> String {
    serde_json::to_string_pretty(doc).map_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"), |s| s + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::timefmt::tests::clock;
    use crate::timefmt::Shown;
    use serde_json::Value;

    /// The keys of a JSON object, in the order they were written (the
    /// tests build `serde_json` with `preserve_order`).
    fn keys_in_order(text: &str, object_path: &[&str]) -> Vec<String> {
        let v: Value = serde_json::from_str(text).expect("JSON");
        let mut node = &v;
        for p in object_path {
            node = &node[*p];
        }
        node.as_object().expect("an object").keys().cloned().collect()
    }

    #[test]
    fn status_keys_come_in_the_documented_order() {
        let doc = text(&StatusDoc::new(&clock(60, Shown::Local), &fixtures::after_failed_upgrade()));
        assert_eq!(
            keys_in_order(&doc, &[]),
            [
                "schema_version",
                "command",
                "loaderctl_version",
                "abi",
                "now",
                "active_slot",
                "persisted_slot",
                "busy",
                "unload_timeout_ms",
                "last_error",
                "loader_pool",
                "slots",
                "handover"
            ]
        );
        let v: Value = serde_json::from_str(&doc).unwrap();
        let slot = serde_json::to_string(&v["slots"][0]).unwrap();
        assert_eq!(
            keys_in_order(&slot, &[]),
            [
                "slot",
                "service",
                "name",
                "payload_version",
                "state",
                "state_since",
                "registered_since",
                "last_status",
                "last_op",
                "report_time",
                "report"
            ]
        );
        assert_eq!(keys_in_order(&doc, &["now"]), ["raw", "utc", "local"]);
        assert_eq!(keys_in_order(&doc, &["last_error", "status"]), ["raw", "hex", "name", "text"]);
        assert_eq!(
            keys_in_order(&slot, &["report"]),
            ["phase", "instances", "open_contexts", "creates", "reads", "writes", "pool_outstanding"]
        );
    }

    #[test]
    fn status_values_have_raw_numbers_names_and_both_times() {
        let st = fixtures::after_failed_upgrade();
        let v: Value = serde_json::from_str(&text(&StatusDoc::new(&clock(60, Shown::Local), &st))).unwrap();
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        assert_eq!(v["command"], "status");
        assert_eq!(v["active_slot"]["raw"], 0);
        assert_eq!(v["active_slot"]["name"], "A");
        assert_eq!(v["busy"], false);
        assert_eq!(v["last_error"]["status"]["name"], "STATUS_PROCEDURE_NOT_FOUND");
        assert_eq!(v["last_error"]["status"]["hex"], "0xC000007A");
        assert_eq!(v["last_error"]["status"]["raw"], i64::from(NtStatus::PROCEDURE_NOT_FOUND.0));
        assert_eq!(v["last_error"]["op"]["name"], "upgrade");
        assert_eq!(v["last_error"]["slot"]["name"], "B");
        assert_eq!(v["last_error"]["time"]["utc"], "2026-11-21T05:10:00Z");
        assert_eq!(v["last_error"]["time"]["local"], "2026-11-21T06:10:00+01:00");
        assert_eq!(v["loader_pool"]["tag"]["name"], "SLdr");
        assert_eq!(v["loader_pool"]["outstanding"], 1);
        let a = &v["slots"][0];
        assert_eq!(a["slot"]["name"], "A");
        assert_eq!(a["service"], "CounterFilterA");
        assert_eq!(a["state"]["name"], "active");
        assert_eq!(a["registered_since"]["raw"], st.slots[0].registered_since);
        assert_eq!(a["report"]["phase"]["name"], "filtering");
        assert_eq!(a["report"]["open_contexts"], 2);
        assert_eq!(v["slots"][1]["registered_since"]["utc"], Value::Null);
        let empty: Value =
            serde_json::from_str(&text(&StatusDoc::new(&clock(0, Shown::Utc), &fixtures::empty_loader()))).unwrap();
        assert_eq!(empty["active_slot"]["raw"], u64::from(SLOT_NONE));
        assert_eq!(empty["active_slot"]["name"], Value::Null);
        assert_eq!(empty["last_error"]["status"]["text"], Value::Null);
        assert_eq!(empty["last_error"]["status"]["name"], "STATUS_SUCCESS");
    }
}
