//! `loaderctl status` output: a table in the style of `fltmc`. Pure
//! formatting of a [`LoaderStatus`] with the run's [`Clock`]; never talks to
//! the device. (`--json` is `json.rs`.)

use crate::exitcode::{status_label, status_text};
use crate::timefmt::{elapsed_ticks, format_duration, Clock};
use shared_abi::control::{HandoverMode, LoaderStatus, OpKind, SlotState, SlotStatus, SLOT_NONE};
use shared_abi::payload::PayloadPhase;
use shared_abi::{NtStatus, Slot};
use std::fmt::Write as _;

/// `A`, `B`, `none`, or `#7` for an index the tool does not know.
#[must_use]
pub fn slot_label(slot: u32) -> String {
    match Slot::from_word(slot) {
        Some(s) => s.letter().to_string(),
        None if slot == SLOT_NONE => "none".to_owned(),
        None => format!("#{slot}"),
    }
}

/// A NUL-padded UTF-16 name as text.
#[must_use]
pub fn utf16_text(name: &[u16]) -> String {
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    String::from_utf16_lossy(&name[..end])
}

/// `CounterFilter v2 (service CounterFilterB)`-style description of a slot.
#[must_use]
pub fn describe_slot(which: Slot, slot: &SlotStatus) -> String {
    let label = which.letter();
    let service = utf16_text(&slot.service);
    let name = utf16_text(&slot.name);
    // Payload names may already carry their version ("CounterFilter v2").
    let version = format!("v{}", slot.payload_version);
    // An empty or failed slot holds no payload: whatever name it last
    // reported may not be what its image is now.
    let loaded = !matches!(SlotState(slot.state), SlotState::EMPTY | SlotState::FAILED);
    let payload = if !loaded || name.is_empty() || slot.payload_version == 0 {
        String::new()
    } else if name.split_whitespace().last() == Some(version.as_str()) {
        name
    } else {
        format!("{name} {version}")
    };
    let mut out = format!("slot {label}");
    match (service.is_empty(), payload.is_empty()) {
        (true, true) => {}
        (false, true) => write!(out, " ({service})").unwrap_or(()),
        (true, false) => write!(out, " ({payload})").unwrap_or(()),
        (false, false) => write!(out, " ({service}: {payload})").unwrap_or(()),
    }
    out
}

/// `during upgrade of slot B`, `in a control request`, ...: where an error happened.
#[must_use]
pub fn error_context(op: u32, slot: u32) -> String {
    let op = OpKind(op);
    let what = match op {
        OpKind::CONTROL => "in a control request".to_owned(),
        OpKind::NONE => "outside any operation".to_owned(),
        _ => format!("during {}", op.name()),
    };
    if slot == SLOT_NONE || op == OpKind::CONTROL {
        what
    } else {
        format!("{what} of slot {}", slot_label(slot))
    }
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s
    }
}

/// Lays out rows in columns separated by two spaces, with a dashed rule under the header.
#[must_use]
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = String>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, &mut header.iter().map(|h| (*h).to_owned()));
    line(&mut out, &mut widths.iter().map(|w| "-".repeat(*w)));
    for row in rows {
        line(&mut out, &mut row.iter().cloned());
    }
    out
}

/// The `status` table.
#[must_use]
pub fn status_table(clock: &Clock<'_>, st: &LoaderStatus) -> String {
    let rows: Vec<Vec<String>> = (0u32..)
        .zip(st.slots.iter())
        .map(|(i, s)| {
            // An empty slot's payload fields describe one already gone.
            let empty = SlotState(s.state) == SlotState::EMPTY;
            vec![
                slot_label(i),
                or_dash(utf16_text(&s.service)),
                if empty { "-".to_owned() } else { or_dash(utf16_text(&s.name)) },
                if empty || s.payload_version == 0 { "-".to_owned() } else { s.payload_version.to_string() },
                SlotState(s.state).name().to_owned(),
                if empty { "-".to_owned() } else { clock.stamp(s.registered_since) },
            ]
        })
        .collect();
    let mut out = columns(&["Slot", "Service", "Name", "Version", "State", "Registered since"], &rows);
    out.push('\n');
    let field = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "{:<16}{value}", format!("{label}:"));
    };
    field(&mut out, "Active slot", &slot_label(st.active_slot));
    field(&mut out, "Persisted slot", &slot_label(st.persisted_slot));
    field(&mut out, "Busy", if st.busy != 0 { "yes (a control operation is running)" } else { "no" });
    let err = &st.last_error;
    if err.status == 0 {
        field(&mut out, "Last error", "none");
    } else {
        let status = NtStatus(err.status);
        field(&mut out, "Last error", &format!("{}: {}", status_label(status), status_text(status)));
        let _ = writeln!(out, "{:<16}{} at {}", "", error_context(err.op, err.slot), clock.stamp(err.time));
    }
    let pool = &st.loader_pool;
    field(
        &mut out,
        "Loader pool",
        &format!(
            "{} allocs, {} frees ({} outstanding)",
            pool.allocs,
            pool.frees,
            i128::from(pool.allocs) - i128::from(pool.frees)
        ),
    );
    field(&mut out, "Unload bound", &format!("{} ms", st.unload_timeout_ms));
    let h = &st.handover;
    let mode = HandoverMode(h.mode);
    if mode == HandoverMode::NOT_YET {
        field(&mut out, "Handover", mode.name());
    } else {
        field(
            &mut out,
            "Handover",
            &format!(
                "{} (owner generation {}; {} exactly-once handover(s), {} state transfer(s), {} refused{})",
                mode.name(),
                h.owner_generation,
                h.exact_handovers,
                h.state_transfers,
                h.refused,
                if h.last_status == 0 {
                    String::new()
                } else {
                    format!("; last: {}", shared_abi::NtStatus(h.last_status))
                }
            ),
        );
    }
    field(&mut out, "Loader time", &clock.stamp(st.now));
    for (i, s) in (0u32..).zip(st.slots.iter()) {
        out.push('\n');
        out.push_str(&slot_details(clock, st, i, s));
    }
    out
}

fn slot_details(clock: &Clock<'_>, st: &LoaderStatus, index: u32, s: &SlotStatus) -> String {
    let mut out = String::new();
    let label = slot_label(index);
    let state = SlotState(s.state);
    if s.state_since == 0 {
        let _ = writeln!(out, "Slot {label}: {}", state.name());
    } else {
        let _ = writeln!(
            out,
            "Slot {label}: {} for {} (since {})",
            state.name(),
            format_duration(elapsed_ticks(s.state_since, st.now)),
            clock.stamp(s.state_since)
        );
    }
    if s.last_op != 0 {
        let status = NtStatus(s.last_status);
        let _ = writeln!(out, "  last operation: {} -> {}", OpKind(s.last_op).name(), status_label(status));
    }
    if s.report_time == 0 {
        let _ = writeln!(out, "  last report:    none");
    } else {
        let r = &s.report;
        let _ = writeln!(
            out,
            "  last report:    {} ago, phase {}",
            format_duration(elapsed_ticks(s.report_time, st.now)),
            PayloadPhase(r.phase).name()
        );
        let _ = writeln!(
            out,
            "  instances {}, open contexts {}, creates {}, reads {}, writes {}, pool outstanding {}",
            r.instances, r.open_contexts, r.creates, r.reads, r.writes, r.pool_outstanding
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::timefmt::tests::clock;
    use crate::timefmt::Shown;

    #[test]
    fn table_shows_slots_active_slot_and_last_error_in_local_time() {
        let text = status_table(&clock(60, Shown::Local), &fixtures::after_failed_upgrade());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Slot  Service         Name           Version  State   Registered since");
        assert!(lines[1].starts_with("----  --------------  "));
        assert_eq!(lines[2], "A     CounterFilterA  CounterFilter  1        active  2026-11-21 06:00:00 +01:00");
        assert_eq!(lines[3], "B     CounterFilterB  -              -        failed  -");
        assert!(text.contains("\nActive slot:    A\n"), "{text}");
        assert!(text.contains("\nPersisted slot: A\n"));
        assert!(text.contains("\nBusy:           no\n"));
        assert!(text.contains(
            "Last error:     STATUS_PROCEDURE_NOT_FOUND (0xC000007A): the payload image lacks the required export\n"
        ));
        assert!(text.contains("during upgrade of slot B at 2026-11-21 06:10:00 +01:00\n"), "{text}");
        assert!(text.contains("Loader pool:    10 allocs, 9 frees (1 outstanding)\n"));
        assert!(text.contains("Loader time:    2026-11-21 06:20:00 +01:00\n"), "{text}");
        assert!(text.contains("\nHandover:       no upgrade yet\n"), "{text}");
        assert!(text.contains("Slot A: active for 20 min 00 s (since 2026-11-21 06:00:00 +01:00)\n"));
        assert!(text.contains("  last report:    5 s ago, phase filtering\n"));
        assert!(text.contains("  instances 3, open contexts 2, creates 120, reads 40, writes 7, pool outstanding 5\n"));
        assert!(text.contains("  last operation: upgrade -> STATUS_PROCEDURE_NOT_FOUND (0xC000007A)\n"));
    }

    #[test]
    fn utc_switch_shows_utc() {
        let text = status_table(&clock(60, Shown::Utc), &fixtures::after_failed_upgrade());
        assert!(text.contains("active  2026-11-21 05:00:00 UTC\n"), "{text}");
        assert!(text.contains("Loader time:    2026-11-21 05:20:00 UTC\n"), "{text}");
        assert!(!text.contains("+01:00"));
    }

    #[test]
    fn empty_slots_do_not_show_the_payload_that_left() {
        let mut st = fixtures::healthy_b();
        st.slots[0] = st.slots[1];
        st.slots[0].service = shared_abi::payload::utf16_name("CounterFilterA");
        st.slots[0].state = SlotState::EMPTY.0;
        st.slots[1].state_since = 0;
        let text = status_table(&clock(0, Shown::Local), &st);
        assert!(text.contains("\nA     CounterFilterA  -              -        empty   -\n"), "{text}");
        assert!(text.contains("\nSlot B: active\n"), "{text}");
        assert_eq!(describe_slot(Slot::A, &st.slots[0]), "slot A (CounterFilterA)");
    }

    #[test]
    fn table_of_an_idle_loader_has_no_error() {
        let text = status_table(&clock(0, Shown::Local), &fixtures::empty_loader());
        assert!(text.contains("\nActive slot:    none\n"), "{text}");
        assert!(text.contains("\nLast error:     none\n"));
        assert!(text.contains("A     -        -     -        empty  -\n"), "{text}");
    }

    #[test]
    fn slot_descriptions() {
        let st = fixtures::after_failed_upgrade();
        assert_eq!(describe_slot(Slot::A, &st.slots[0]), "slot A (CounterFilterA: CounterFilter v1)");
        assert_eq!(describe_slot(Slot::B, &st.slots[1]), "slot B (CounterFilterB)");
        assert_eq!(slot_label(7), "#7");
        assert_eq!(error_context(OpKind::UPGRADE.0, 1), "during upgrade of slot B");
        assert_eq!(error_context(OpKind::CONTROL.0, SLOT_NONE), "in a control request");
        assert_eq!(error_context(OpKind::STOP.0, SLOT_NONE), "during stop");
        let mut named = st.slots[0];
        named.name = shared_abi::payload::utf16_name("CounterFilter v1");
        assert_eq!(describe_slot(Slot::A, &named), "slot A (CounterFilterA: CounterFilter v1)");
        named.service = [0; 32];
        assert_eq!(describe_slot(Slot::A, &named), "slot A (CounterFilter v1)");
    }
}
