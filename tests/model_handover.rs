//! Property (issue 12): an upgrade hands the operations over exactly once.
//! While both generations are attached and the loader switches, every
//! operation in flight is processed by exactly one generation, its post
//! callback runs in the generation that processed its pre callback, and
//! the new generation's state ends up with every operation either one
//! processed. Checked on the protocol's own `Plan` and `decide`
//! (`loader_protocol::handover`), with a table of marks with room to spare,
//! with room for one and with none (the old generation then processes the
//! operation itself), and every callback reads the owner word exactly once.
//! Twins: break-before-make (unfiltered operations), make-before-break
//! without an owner (double processing), the owner word and marks without
//! the count of operations in flight (double processing), the count taken
//! after the one load instead of before it (double processing: why the
//! count comes first), the final state exported before the old
//! generation is quiesced (lost updates), and the first draft's rule,
//! exactly once but with a second load of the owner word to process (an
//! extra load: the cost rule is checked, not assumed), and an old
//! generation that processes an operation itself when the table of marks is
//! full instead of waiting for room (double processing).
use loader_tests::handover_model::{check, Config, Design, Violation};

fn config(design: Design, mark_room: usize) -> Config {
    Config { design, operations: 2, mark_room }
}

#[test]
fn protocol_hands_over_exactly_once() {
    let (runs, _) = check("handover/protocol", config(Design::Protocol, 4), Violation::Double, true);
    assert!(runs > 0);
}

#[test]
fn protocol_hands_over_exactly_once_with_room_for_one_mark() {
    let (runs, _) = check("handover/protocol-one-mark", config(Design::Protocol, 1), Violation::Unfiltered, true);
    assert!(runs > 0);
}

#[test]
fn protocol_hands_over_exactly_once_with_no_room_for_marks() {
    let (runs, _) = check("handover/protocol-no-marks", config(Design::Protocol, 0), Violation::Double, true);
    assert!(runs > 0);
}

#[test]
fn twin_break_before_make_is_caught() {
    let (_, hits) =
        check("handover/twin-break-before-make", config(Design::BreakBeforeMake, 4), Violation::Unfiltered, false);
    assert!(hits > 0, "break-before-make left no operation unfiltered");
}

#[test]
fn twin_no_owner_is_caught() {
    let (_, hits) = check("handover/twin-no-owner", config(Design::NoOwner, 4), Violation::Double, false);
    assert!(hits > 0, "make-before-break without an owner processed nothing twice");
}

#[test]
fn twin_export_before_quiesce_is_caught() {
    let (_, hits) = check(
        "handover/twin-export-before-quiesce",
        config(Design::ExportBeforeQuiesce, 4),
        Violation::LostUpdate,
        false,
    );
    assert!(hits > 0, "exporting before the quiesce lost no update");
}

#[test]
fn twin_no_in_flight_count_is_caught() {
    let (_, hits) = check("handover/twin-no-count", config(Design::NoCount, 4), Violation::Double, false);
    assert!(hits > 0, "without the count no operation was processed twice");
}

#[test]
fn twin_count_after_load_is_caught() {
    let (_, hits) =
        check("handover/twin-count-after-load", config(Design::CountAfterLoad, 4), Violation::Double, false);
    assert!(hits > 0, "counting in after the one load processed nothing twice");
}

#[test]
fn twin_two_loads_is_caught() {
    let (_, hits) = check("handover/twin-two-loads", config(Design::TwoLoads, 4), Violation::ExtraLoad, false);
    assert!(hits > 0, "the two-load rule read the owner word once per callback");
}

#[test]
fn twin_old_processes_when_full_is_caught() {
    let (_, hits) = check(
        "handover/twin-old-processes-when-full",
        config(Design::OldProcessesWhenFull, 0),
        Violation::Double,
        false,
    );
    assert!(hits > 0, "an old generation processing for want of room processed nothing twice");
}
