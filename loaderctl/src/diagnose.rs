//! `loaderctl diagnose`: reads a status snapshot and explains in plain words
//! why a payload is not unloading, or that nothing is wrong. Pure text from a
//! [`LoaderStatus`]; durations are measured against the loader's `now`.

use crate::exitcode::{status_label, status_text, Exit};
use crate::render::{describe_slot, error_context, slot_label};
use crate::timefmt::{elapsed_ticks, format_duration, format_system_time};
use shared_abi::control::{LoaderStatus, OpKind, SlotState, SlotStatus};
use shared_abi::payload::PayloadPhase;
use shared_abi::{NtStatus, Slot};
use std::fmt::Write as _;

/// The explanation and the exit code (8 when a teardown is stuck, else 0).
#[must_use]
pub fn diagnose(st: &LoaderStatus) -> (String, Exit) {
    let mut out = String::new();
    let mut exit = Exit::Success;
    let mut findings = 0;

    for (i, s) in Slot::ALL.into_iter().zip(st.slots.iter()) {
        let state = SlotState(s.state);
        if state == SlotState::STUCK || state == SlotState::RETIRING {
            findings += 1;
            if state == SlotState::STUCK {
                exit = Exit::TeardownStuck;
            }
            explain_unloading(&mut out, st, i, s);
        }
    }

    if st.busy != 0 {
        findings += 1;
        let _ = writeln!(
            out,
            "A control operation is running in the loader right now; other requests get STATUS_DEVICE_BUSY until it ends."
        );
    }

    for (i, s) in Slot::ALL.into_iter().zip(st.slots.iter()) {
        if SlotState(s.state) == SlotState::STOPPED {
            let _ = writeln!(
                out,
                "{} was stopped from outside the loader (`sc stop` of its service, or another unload of its driver), {} ago; nothing of it filters. `loaderctl load` loads it again.",
                capitalise(&describe_slot(i, s)),
                format_duration(elapsed_ticks(s.state_since, st.now))
            );
        }
        if SlotState(s.state) == SlotState::FAILED {
            let status = NtStatus(s.last_status);
            let _ = writeln!(
                out,
                "{} failed its last {}: {}: {}. Nothing of it is loaded, so it cannot block an unload.",
                capitalise(&describe_slot(i, s)),
                OpKind(s.last_op).name(),
                status_label(status),
                status_text(status)
            );
        }
    }

    if findings == 0 {
        match Slot::from_word(st.active_slot) {
            Some(i) => {
                let _ = writeln!(
                    out,
                    "Healthy: {} is active and no payload is waiting to unload.",
                    describe_slot(i, &st.slots[i.index()])
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "Healthy: no payload is loaded and none is waiting to unload; `loaderctl load` starts the persisted slot."
                );
            }
        }
    }

    let e = &st.last_error;
    if e.status != 0 {
        let status = NtStatus(e.status);
        let _ = writeln!(
            out,
            "The loader's last error was {} {}, {} ago ({} UTC).",
            status_label(status),
            error_context(e.op, e.slot),
            format_duration(elapsed_ticks(e.time, st.now)),
            format_system_time(e.time)
        );
    }
    (out, exit)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

fn explain_unloading(out: &mut String, st: &LoaderStatus, index: Slot, s: &SlotStatus) {
    let what = describe_slot(index, s);
    let waited = format_duration(elapsed_ticks(s.state_since, st.now));
    if SlotState(s.state) == SlotState::STUCK {
        let _ = writeln!(
            out,
            "{} is STUCK: its teardown did not finish within the loader's bound of {} ms, and it has been stuck for {waited} (since {} UTC).",
            capitalise(&what),
            st.unload_timeout_ms,
            format_system_time(s.state_since)
        );
    } else {
        let _ = writeln!(
            out,
            "{} is retiring: its teardown began {waited} ago (since {} UTC) and is still within the loader's bound of {} ms.",
            capitalise(&what),
            format_system_time(s.state_since),
            st.unload_timeout_ms
        );
    }

    let r = &s.report;
    if s.report_time == 0 {
        let _ = writeln!(out, "  It has never reported its state, so the loader cannot tell what it still holds.");
    } else {
        let _ = writeln!(
            out,
            "  It last reported {} ago: phase {}, {} filter instance(s) attached, {} open context(s), {} pool allocation(s) not freed.",
            format_duration(elapsed_ticks(s.report_time, st.now)),
            PayloadPhase(r.phase).name(),
            r.instances,
            r.open_contexts,
            r.pool_outstanding
        );
    }

    let phase = PayloadPhase(r.phase);
    let advice = if s.report_time != 0 && r.open_contexts > 0 {
        "  Why: an open file is keeping a filter instance draining. Close the programs that hold files open on the filtered volumes (Resource Monitor or handle.exe shows which), then run `loaderctl status` again."
    } else if s.report_time != 0 && r.instances > 0 {
        "  Why: filter instances are still attached while their volumes drain outstanding I/O; this usually clears once that I/O completes."
    } else if s.report_time != 0 && phase != PayloadPhase::TEARING_DOWN && phase != PayloadPhase::TORN_DOWN {
        "  Why: the payload has not started its teardown; it may be waiting for its registration to settle."
    } else {
        "  Why: the payload reports nothing left open; its unload routine itself is slow or blocked."
    };
    let _ = writeln!(out, "{advice}");
    if Slot::from_word(st.active_slot).is_some_and(|a| a != index) {
        let _ = writeln!(
            out,
            "  The active payload in slot {} is not affected; the old image stays in memory until its teardown completes, and a restart clears it if it never does.",
            slot_label(st.active_slot)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn stuck_slot_is_explained_with_duration_and_report() {
        let (text, exit) = diagnose(&fixtures::stuck_old_slot());
        assert_eq!(exit, Exit::TeardownStuck);
        assert!(
            text.contains(
                "Slot A (CounterFilterA: CounterFilter v1) is STUCK: its teardown did not finish within the loader's bound of 5000 ms, and it has been stuck for 5 min 00 s (since 2026-11-21 05:15:00 UTC)."
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
    }

    #[test]
    fn retiring_slot_is_not_yet_a_failure() {
        let mut st = fixtures::stuck_old_slot();
        st.slots[0].state = SlotState::RETIRING.0;
        st.slots[0].report.open_contexts = 0;
        let (text, exit) = diagnose(&st);
        assert_eq!(exit, Exit::Success);
        assert!(text.contains("is retiring: its teardown began 5 min 00 s ago"), "{text}");
        assert!(text.contains("filter instances are still attached"));
    }

    #[test]
    fn silent_payload_is_called_out() {
        let mut st = fixtures::stuck_old_slot();
        st.slots[0].report_time = 0;
        let (text, _) = diagnose(&st);
        assert!(text.contains("It has never reported its state"), "{text}");
        assert!(text.contains("its unload routine itself is slow or blocked"));
    }

    #[test]
    fn healthy_systems_say_so() {
        let (text, exit) = diagnose(&fixtures::healthy_b());
        assert_eq!(exit, Exit::Success);
        assert_eq!(
            text,
            "Healthy: slot B (CounterFilterB: CounterFilter v2) is active and no payload is waiting to unload.\n"
        );
        let (text, _) = diagnose(&fixtures::empty_loader());
        assert!(text.starts_with("Healthy: no payload is loaded"), "{text}");
    }

    #[test]
    fn failed_slot_is_mentioned_but_healthy() {
        let (text, exit) = diagnose(&fixtures::after_failed_upgrade());
        assert_eq!(exit, Exit::Success);
        assert!(text.contains("Slot B (CounterFilterB) failed its last upgrade: STATUS_PROCEDURE_NOT_FOUND"), "{text}");
        assert!(text.contains("Healthy: slot A"));
    }
}
