//! Property: what the loader shows is what is. Checked after every
//! operation and at every quiescent moment: an EMPTY slot has no driver,
//! image reference or worker; STUCK means something of the slot remains;
//! an ACTIVE slot's payload is mapped, registered and was not being torn
//! down when it became active; a reply without "stuck" left its old slot
//! vacant. The bounded waits expire at any moment here.
//! Twins: the loader ignoring a payload's report that it was stopped from
//! outside (defect 7); the loader switching to a payload that reported a
//! teardown meanwhile (activating a payload already being torn down);
//! resetting "retired" before joining the slot's old
//! worker; a timed-out retirement that lingers reported as success; the
//! orphan left loaded after a failed reference (defect 1).
use loader_protocol::Mutation;
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Timeouts, Violation};
use shared_abi::Slot;

const PROPERTY: Violation = Violation::SlotState;

fn any_moment(mut c: Config) -> Config {
    c.timeouts = Timeouts::AnyMoment;
    c
}

#[test]
fn protocol_foreign_stop_is_shown_and_load_reloads() {
    let race = Race::ForeignStopThenLoaderStop;
    check("slot-state/protocol/foreign-stop", PROPERTY, race, Config::protocol(), Expect::Clean);
}

#[test]
fn twin_ignoring_the_foreign_teardown_is_caught() {
    let config = Config::mutant(Mutation::IgnoreForeignTeardown);
    let race = Race::ForeignStopThenLoaderStop;
    check("slot-state/mutant-ignore-foreign-teardown", PROPERTY, race, config, Expect::Caught);
}

#[test]
fn protocol_load_against_sc_stop_never_activates_a_payload_being_torn_down() {
    let race = Race::Load(Adversary::Stop(Slot::A));
    check("slot-state/protocol/load-vs-stop", PROPERTY, race, any_moment(Config::protocol()), Expect::Clean);
}

#[test]
fn twin_switch_ignoring_the_teardown_report_is_caught() {
    let config = any_moment(Config::mutant(Mutation::SwitchIgnoresTeardownReport));
    let race = Race::Load(Adversary::Stop(Slot::A));
    check("slot-state/mutant-switch-ignores-teardown-report", PROPERTY, race, config, Expect::Caught);
}

#[test]
fn protocol_upgrade_against_sc_stop_of_the_new_payload_with_timeouts() {
    let race = Race::Upgrade(Adversary::Stop(Slot::B));
    check("slot-state/protocol/upgrade-vs-stop-new", PROPERTY, race, any_moment(Config::protocol()), Expect::Clean);
}

#[test]
fn protocol_a_timed_out_retirement_then_the_same_slot_reused() {
    let race = Race::RetireTimeoutThenReuse;
    check("slot-state/protocol/timeout-then-reuse", PROPERTY, race, any_moment(Config::protocol()), Expect::Clean);
}

#[test]
fn twin_reset_before_join_is_caught() {
    let config = any_moment(Config::mutant(Mutation::ResetBeforeJoin));
    check("slot-state/mutant-reset-before-join", PROPERTY, Race::RetireTimeoutThenReuse, config, Expect::Caught);
}

#[test]
fn protocol_a_timed_out_retirement_whose_driver_lingers() {
    let mut config = any_moment(Config::protocol());
    config.device_open[Slot::A] = true;
    check("slot-state/protocol/timeout-lingering", PROPERTY, Race::UpgradeRollbackDeviceOpen, config, Expect::Clean);
}

#[test]
fn twin_timeout_lingering_reported_ok_is_caught() {
    let mut config = any_moment(Config::mutant(Mutation::TimeoutLingeringIsOk));
    config.device_open[Slot::A] = true;
    check(
        "slot-state/mutant-timeout-lingering-is-ok",
        PROPERTY,
        Race::UpgradeRollbackDeviceOpen,
        config,
        Expect::Caught,
    );
}

#[test]
fn protocol_a_failed_reference_leaves_nothing_loaded() {
    let mut config = Config::protocol();
    config.reference_fails[Slot::A] = true;
    check("slot-state/protocol/reference-fails", PROPERTY, Race::Load(Adversary::ControlUnload), config, Expect::Clean);
}

#[test]
fn twin_no_unload_after_a_failed_reference_is_caught() {
    let mut config = Config::mutant(Mutation::NoUnloadAfterFailedReference);
    config.reference_fails[Slot::A] = true;
    let race = Race::Load(Adversary::ControlUnload);
    check("slot-state/mutant-no-unload-after-failed-reference", PROPERTY, race, config, Expect::Caught);
}
