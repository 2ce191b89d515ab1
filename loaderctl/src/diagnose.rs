//! `loaderctl diagnose`: why a payload is not unloading, naming the
//! culprit, or that nothing is wrong. Pure text from a [`LoaderStatus`]
//! plus what the Filter Manager shows when it can be asked.
//!
//! From the loader: which slot is stuck or retiring, since when, and the
//! payload's last report (phase, instances, open contexts); a slot whose
//! teardown finished but whose driver did not go (seed 000: the unload
//! "succeeded" and the image is still mapped). From the Filter Manager
//! (under Wine, the test world's; see `instances.rs`): the volume and name
//! of every open file holding a context on a volume where the payload's
//! instance is still tearing down (seed 002: `\TSCLIENT\SCARD\...`), and the
//! instances that have not let their volume go. On Windows, loaderctl
//! checks the loaded-driver list for an image that should be gone.
//! Durations are measured against the loader's `now`.

use crate::exitcode::{status_label, status_text, Exit};
use crate::json::{DiagnoseDoc, HeldDoc, RefusingDoc, SCHEMA_VERSION};
use crate::render::{describe_slot, error_context, slot_label, utf16_text};
use crate::timefmt::{elapsed_ticks, format_duration, Clock};
use fltsim_abi as sim;
use shared_abi::control::{LoaderStatus, OpKind, SlotState, SlotStatus};
use shared_abi::payload::PayloadPhase;
use shared_abi::{NtStatus, Slot};
use std::fmt::Write as _;

/// A slot's image that is still loaded although the slot is empty or its
/// teardown finished (from the loaded-driver list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StillMapped {
    pub slot: Slot,
    pub image: String,
}

/// What `diagnose` knows besides the loader's status.
#[derive(Default)]
pub struct Facts<'a> {
    /// The test Filter Manager's snapshot (under Wine).
    pub filter_manager: Option<&'a sim::Snapshot>,
    /// Images of slots that should be gone but are in the loaded-driver list.
    pub still_mapped: Vec<StillMapped>,
}

/// The explanation, its exit code (8 when a payload cannot unload) and the
/// same as a document.
pub struct Diagnosis {
    pub text: String,
    pub exit: Exit,
    pub doc: DiagnoseDoc,
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// What the Filter Manager shows for the filter `service` (a slot's).
struct Culprits {
    held: Vec<HeldDoc>,
    refusing: Vec<RefusingDoc>,
}

fn volume_name(volume: u32) -> String {
    sim::VOLUME_NAMES
        .get(usize::try_from(volume).unwrap_or(usize::MAX))
        .map_or_else(|| format!("volume {volume}"), |v| (*v).to_owned())
}

fn culprits(snap: &sim::Snapshot, slot: Slot, service: &str, held_ms: u64) -> Culprits {
    let instances = usize::try_from(snap.instance_count).unwrap_or(0).min(snap.instances.len());
    let refusing: Vec<RefusingDoc> = snap
        .instances
        .iter()
        .take(instances)
        .filter(|i| utf16_text(sim::units(&i.filter)).eq_ignore_ascii_case(service))
        .filter(|i| i.state == sim::INSTANCE_TEARING_DOWN || i.contexts > 0 || i.in_flight > 0)
        .filter(|i| i.state != sim::INSTANCE_FREE)
        .map(|i| RefusingDoc {
            slot: slot.letter().to_string(),
            filter: service.to_owned(),
            volume: volume_name(i.volume),
            state: sim::INSTANCE_STATE_NAMES.get(usize::try_from(i.state).unwrap_or(0)).copied().unwrap_or("unknown"),
            contexts: i.contexts,
            callbacks_in_flight: i.in_flight,
        })
        .collect();
    let files = usize::try_from(snap.file_count).unwrap_or(0).min(snap.files.len());
    let held = snap
        .files
        .iter()
        .take(files)
        .filter(|f| f.id != 0 && f.contexts > 0)
        .filter(|f| refusing.iter().any(|r| r.volume == volume_name(f.volume) && r.contexts > 0))
        .map(|f| HeldDoc {
            slot: slot.letter().to_string(),
            filter: service.to_owned(),
            volume: volume_name(f.volume),
            file: utf16_text(sim::units(&f.name)),
            contexts: f.contexts,
            held_at_least_ms: held_ms,
        })
        .collect();
    Culprits { held, refusing }
}

struct Writer<'c, 'z> {
    clock: &'c Clock<'z>,
    st: &'c LoaderStatus,
    paragraphs: Vec<String>,
}

impl Writer<'_, '_> {
    fn para(&mut self, text: String) {
        self.paragraphs.push(text);
    }

    fn ago(&self, ticks: u64) -> String {
        format_duration(elapsed_ticks(ticks, self.st.now))
    }
}

/// The lingering case: teardown finished, the driver did not go.
fn lingers(s: &SlotStatus) -> bool {
    SlotState(s.state) == SlotState::STUCK
        && s.report_time != 0
        && PayloadPhase(s.report.phase) == PayloadPhase::TORN_DOWN
}

fn explain_unloading(w: &mut Writer<'_, '_>, facts: &Facts<'_>, index: Slot, s: &SlotStatus, doc: &mut DiagnoseDoc) {
    let st = w.st;
    let what = capitalise(&describe_slot(index, s));
    let waited = w.ago(s.state_since);
    let since = w.clock.stamp(s.state_since);
    let mut text = if SlotState(s.state) == SlotState::STUCK {
        format!(
            "{what} is STUCK: its teardown did not finish within the loader's bound of {} ms, and it has been stuck for {waited} (since {since}).",
            st.unload_timeout_ms
        )
    } else {
        format!(
            "{what} is retiring: its teardown began {waited} ago (since {since}) and is still within the loader's bound of {} ms.",
            st.unload_timeout_ms
        )
    };
    let r = &s.report;
    if s.report_time == 0 {
        text.push_str("\n  It has never reported its state, so the loader cannot tell what it still holds.");
    } else {
        let _ = write!(
            text,
            "\n  It last reported {} ago: phase {}, {} filter instance(s) attached, {} open context(s), {} pool allocation(s) not freed.",
            w.ago(s.report_time),
            PayloadPhase(r.phase).name(),
            r.instances,
            r.open_contexts,
            r.pool_outstanding
        );
    }
    let service = utf16_text(&s.service);
    let held_ms = elapsed_ticks(s.state_since, st.now) / 10_000;
    let found = facts.filter_manager.map(|snap| culprits(snap, index, &service, held_ms));
    if let Some(c) = &found {
        if !c.held.is_empty() {
            text.push_str("\n  What it still holds (the Filter Manager's view):");
            for h in &c.held {
                let _ = write!(
                    text,
                    "\n    {}{}: open, {} stream context(s); held for at least {} (it was open when the teardown began)",
                    h.volume,
                    h.file,
                    h.contexts,
                    format_duration(h.held_at_least_ms * 10_000)
                );
            }
        }
        if !c.refusing.is_empty() {
            text.push_str("\n  Instances that have not finished their teardown:");
            for r in &c.refusing {
                let _ = write!(
                    text,
                    "\n    {} on {}: {}, {} context(s) still referenced, {} callback(s) in flight",
                    r.filter, r.volume, r.state, r.contexts, r.callbacks_in_flight
                );
            }
        }
    }
    let phase = PayloadPhase(r.phase);
    let mapped = facts.still_mapped.iter().find(|m| m.slot == index);
    let why = if lingers(s) || mapped.is_some() {
        let image = mapped.map_or_else(|| "its image".to_owned(), |m| format!("its image {}", m.image));
        format!(
            "  Why: its teardown finished and ZwUnloadDriver returned success, but the driver did not go: {image} is still mapped, because something still holds a reference to its driver object (an open handle to one of its devices, or another driver's reference). The loader looks it up again at the next status, load or upgrade; a restart clears it."
        )
    } else if let Some(h) = found.as_ref().and_then(|c| c.held.first()) {
        format!(
            "  Why: an open file keeps a filter instance draining: {}{} still holds a stream context of {}. Close what holds it open (for a redirected \\TSCLIENT path, the remote session's device redirection; otherwise the program that opened it: Resource Monitor or handle.exe shows which); the teardown then completes and the payload unloads.",
            h.volume, h.file, h.filter
        )
    } else if s.report_time != 0 && r.open_contexts > 0 {
        "  Why: an open file is keeping a filter instance draining. Close the programs that hold files open on the filtered volumes (Resource Monitor or handle.exe shows which), then run `loaderctl status` again.".to_owned()
    } else if s.report_time != 0 && r.instances > 0 {
        "  Why: filter instances are still attached while their volumes drain outstanding I/O; this usually clears once that I/O completes.".to_owned()
    } else if s.report_time != 0 && phase != PayloadPhase::TEARING_DOWN && phase != PayloadPhase::TORN_DOWN {
        "  Why: the payload has not started its teardown; it may be waiting for its registration to settle.".to_owned()
    } else {
        "  Why: the payload reports nothing left open; its unload routine itself is slow or blocked.".to_owned()
    };
    text.push('\n');
    text.push_str(&why);
    if Slot::from_word(st.active_slot).is_some_and(|a| a != index) {
        let _ = write!(
            text,
            "\n  The active payload in slot {} is not affected; the old image stays in memory until its teardown completes, and a restart clears it if it never does.",
            slot_label(st.active_slot)
        );
    }
    if let Some(c) = found {
        doc.held.extend(c.held);
        doc.refusing.extend(c.refusing);
    }
    w.para(text);
}

/// The diagnosis of `st` with `facts`.
#[must_use]
pub fn diagnose(clock: &Clock<'_>, st: &LoaderStatus, facts: &Facts<'_>) -> Diagnosis {
    let mut w = Writer { clock, st, paragraphs: Vec::new() };
    let mut doc = DiagnoseDoc {
        schema_version: SCHEMA_VERSION,
        command: "diagnose",
        healthy: true,
        exit_code: 0,
        findings: Vec::new(),
        held: Vec::new(),
        refusing: Vec::new(),
        still_mapped: facts.still_mapped.iter().map(|m| format!("slot {}: {}", m.slot, m.image)).collect(),
        filter_manager: facts.filter_manager.map(|_| "test-filter-manager"),
    };
    let mut exit = Exit::Success;
    let mut findings = 0;

    for (i, s) in Slot::ALL.into_iter().zip(st.slots.iter()) {
        let state = SlotState(s.state);
        if state == SlotState::STUCK || state == SlotState::RETIRING {
            findings += 1;
            if state == SlotState::STUCK {
                exit = Exit::TeardownStuck;
            }
            explain_unloading(&mut w, facts, i, s, &mut doc);
        }
    }

    // An image the loader counts as gone that is still loaded (Windows: the
    // loaded-driver list), for a slot not already explained above.
    for m in &facts.still_mapped {
        let s = &st.slots[m.slot.index()];
        if matches!(SlotState(s.state), SlotState::STUCK | SlotState::RETIRING) {
            continue;
        }
        findings += 1;
        exit = Exit::TeardownStuck;
        w.para(format!(
            "{} is {}, but its image {} is still loaded: its unload returned success while something still holds a reference to the driver (seed 000). A later load of this slot fails with STATUS_IMAGE_ALREADY_LOADED until it goes; a restart clears it.",
            capitalise(&describe_slot(m.slot, s)),
            SlotState(s.state).name(),
            m.image
        ));
    }

    if st.busy != 0 {
        findings += 1;
        w.para(
            "A control operation is running in the loader right now; other requests get STATUS_DEVICE_BUSY until it ends."
                .to_owned(),
        );
    }

    for (i, s) in Slot::ALL.into_iter().zip(st.slots.iter()) {
        if SlotState(s.state) == SlotState::STOPPED {
            let text = format!(
                "{} was stopped from outside the loader (`sc stop` of its service, or another unload of its driver), {} ago; nothing of it filters. `loaderctl load` loads it again.",
                capitalise(&describe_slot(i, s)),
                w.ago(s.state_since)
            );
            w.para(text);
        }
        if SlotState(s.state) == SlotState::FAILED {
            let status = NtStatus(s.last_status);
            w.para(format!(
                "{} failed its last {}: {}: {}. Nothing of it is loaded, so it cannot block an unload.",
                capitalise(&describe_slot(i, s)),
                OpKind(s.last_op).name(),
                status_label(status),
                status_text(status)
            ));
        }
    }

    if findings == 0 {
        match Slot::from_word(st.active_slot) {
            Some(i) => w.para(format!(
                "Healthy: {} is active and no payload is waiting to unload.",
                describe_slot(i, &st.slots[i.index()])
            )),
            None => w.para(
                "Healthy: no payload is loaded and none is waiting to unload; `loaderctl load` starts the persisted slot."
                    .to_owned(),
            ),
        }
    }

    let e = &st.last_error;
    if e.status != 0 {
        let status = NtStatus(e.status);
        let text = format!(
            "The loader's last error was {} {}, {} ago ({}).",
            status_label(status),
            error_context(e.op, e.slot),
            w.ago(e.time),
            clock.stamp(e.time)
        );
        w.para(text);
    }
    let text = w.paragraphs.iter().fold(String::new(), |mut t, p| {
        t.push_str(p);
        t.push('\n');
        t
    });
    doc.findings = w.paragraphs;
    doc.healthy = findings == 0;
    doc.exit_code = exit.code();
    Diagnosis { text, exit, doc }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::instances::tests::snapshot_a_on_both_volumes;
    use crate::timefmt::tests::clock;
    use crate::timefmt::Shown;

    fn run(st: &LoaderStatus, facts: &Facts<'_>) -> Diagnosis {
        diagnose(&clock(60, Shown::Local), st, facts)
    }

    #[test]
    fn stuck_slot_is_explained_with_duration_and_report() {
        let d = run(&fixtures::stuck_old_slot(), &Facts::default());
        let text = &d.text;
        assert_eq!(d.exit, Exit::TeardownStuck);
        assert!(
            text.contains(
                "Slot A (CounterFilterA: CounterFilter v1) is STUCK: its teardown did not finish within the loader's bound of 5000 ms, and it has been stuck for 5 min 00 s (since 2026-11-21 06:15:00 +01:00)."
            ),
            "{text}"
        );
        assert!(text.contains(
            "It last reported 4 min 57 s ago: phase tearing-down, 1 filter instance(s) attached, 1 open context(s)"
        ));
        assert!(text.contains("an open file is keeping a filter instance draining"));
        assert!(text.contains("The active payload in slot B is not affected"));
        assert!(text.contains("last error was STATUS_IO_TIMEOUT (0xC00000B5) during upgrade of slot A, 4 min 55 s ago"));
        assert!(!text.contains("Healthy"));
        assert!(!d.doc.healthy);
        assert_eq!(d.doc.exit_code, 8);
    }

    /// Seed 002: the Filter Manager shows the open file on the Mup volume
    /// that holds the stream context, and the instance still tearing down.
    #[test]
    fn the_open_file_and_the_draining_instance_are_named() {
        let mut snap = snapshot_a_on_both_volumes();
        snap.file_count = 2;
        snap.files[0].id = 3;
        snap.files[0].volume = sim::VOLUME_MUP;
        snap.files[0].contexts = 1;
        snap.files[0].name = sim::utf16("\\TSCLIENT\\SCARD\\2");
        snap.files[1].id = 4;
        snap.files[1].volume = sim::VOLUME_C;
        snap.files[1].contexts = 0;
        snap.files[1].name = sim::utf16("\\closed-ish.txt");
        let d = run(&fixtures::stuck_old_slot(), &Facts { filter_manager: Some(&snap), still_mapped: Vec::new() });
        let text = &d.text;
        assert!(text.contains("What it still holds (the Filter Manager's view):\n    \\Device\\Mup\\TSCLIENT\\SCARD\\2: open, 1 stream context(s); held for at least 5 min 00 s"), "{text}");
        assert!(text.contains("Instances that have not finished their teardown:\n    CounterFilterA on \\Device\\Mup: tearing-down, 1 context(s) still referenced, 0 callback(s) in flight"), "{text}");
        assert!(text.contains("Why: an open file keeps a filter instance draining: \\Device\\Mup\\TSCLIENT\\SCARD\\2 still holds a stream context of CounterFilterA."), "{text}");
        assert!(!text.contains("closed-ish"), "a file without a context is not a culprit");
        assert_eq!(d.doc.held.len(), 1);
        assert_eq!(d.doc.held[0].file, "\\TSCLIENT\\SCARD\\2");
        assert_eq!(d.doc.held[0].held_at_least_ms, 300_000);
        assert_eq!(d.doc.refusing.len(), 1);
        assert_eq!(d.doc.filter_manager, Some("test-filter-manager"));
    }

    /// Seed 000: the teardown finished, the unload "succeeded", the driver stayed.
    #[test]
    fn an_image_still_mapped_after_a_successful_unload_is_named() {
        let mut st = fixtures::stuck_old_slot();
        st.slots[0].report.phase = PayloadPhase::TORN_DOWN.0;
        st.slots[0].report.open_contexts = 0;
        let d = run(&st, &Facts::default());
        assert!(d.text.contains("its teardown finished and ZwUnloadDriver returned success, but the driver did not go: its image is still mapped"), "{}", d.text);
        let mut healthy = fixtures::healthy_b();
        healthy.slots[0].state = SlotState::EMPTY.0;
        let facts = Facts {
            filter_manager: None,
            still_mapped: vec![StillMapped { slot: Slot::A, image: "payload_a.sys".into() }],
        };
        let d = run(&healthy, &facts);
        assert_eq!(d.exit, Exit::TeardownStuck);
        assert!(
            d.text.starts_with("Slot A (CounterFilterA) is empty, but its image payload_a.sys is still loaded"),
            "{}",
            d.text
        );
        assert_eq!(d.doc.still_mapped, ["slot A: payload_a.sys"]);
    }

    #[test]
    fn retiring_slot_is_not_yet_a_failure() {
        let mut st = fixtures::stuck_old_slot();
        st.slots[0].state = SlotState::RETIRING.0;
        st.slots[0].report.open_contexts = 0;
        let d = run(&st, &Facts::default());
        assert_eq!(d.exit, Exit::Success);
        assert!(d.text.contains("is retiring: its teardown began 5 min 00 s ago"), "{}", d.text);
        assert!(d.text.contains("filter instances are still attached"));
    }

    #[test]
    fn silent_payload_is_called_out() {
        let mut st = fixtures::stuck_old_slot();
        st.slots[0].report_time = 0;
        let d = run(&st, &Facts::default());
        assert!(d.text.contains("It has never reported its state"), "{}", d.text);
        assert!(d.text.contains("its unload routine itself is slow or blocked"));
    }

    #[test]
    fn healthy_systems_say_so() {
        let d = run(&fixtures::healthy_b(), &Facts::default());
        assert_eq!(d.exit, Exit::Success);
        assert_eq!(
            d.text,
            "Healthy: slot B (CounterFilterB: CounterFilter v2) is active and no payload is waiting to unload.\n"
        );
        assert!(d.doc.healthy);
        let d = run(&fixtures::empty_loader(), &Facts::default());
        assert!(d.text.starts_with("Healthy: no payload is loaded"), "{}", d.text);
    }

    #[test]
    fn failed_slot_is_mentioned_but_healthy() {
        let d = run(&fixtures::after_failed_upgrade(), &Facts::default());
        assert_eq!(d.exit, Exit::Success);
        assert!(
            d.text.contains("Slot B (CounterFilterB) failed its last upgrade: STATUS_PROCEDURE_NOT_FOUND"),
            "{}",
            d.text
        );
        assert!(d.text.contains("Healthy: slot A"));
    }
}
