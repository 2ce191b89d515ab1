//! Property: no deadlock, including against `FltMgr`'s unload path and an
//! instance that keeps draining. loom reports any state where every thread
//! is blocked; the std build reports a wait longer than a few seconds.
//! Twins: the loader not signalling "settled" when registration fails (a
//! waiting teardown hangs); a failed registration waiting on "settled"
//! from inside the registration call (self-deadlock).
use loader_protocol::Mutation;
use loader_tests::explore::{check, check_deadlock_twin, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Violation};
use shared_abi::Slot;

const PROPERTY: Violation = Violation::Deadlock;

#[test]
fn protocol_load_against_fltmc_unload_then_sc_stop() {
    let race = Race::Load(Adversary::FltmcThenStop(Slot::A));
    check("deadlock/protocol/load-vs-fltmc", PROPERTY, race, Config::protocol(), Expect::Clean);
}

#[test]
fn protocol_load_against_a_concurrent_control_unload() {
    check(
        "deadlock/protocol/load-vs-control-unload",
        PROPERTY,
        Race::Load(Adversary::ControlUnload),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn protocol_upgrade_with_the_old_payload_draining() {
    check(
        "deadlock/protocol/upgrade-old-draining",
        PROPERTY,
        Race::UpgradeOldDraining,
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn twin_no_settle_on_failed_registration_is_caught() {
    let config = Config::mutant(Mutation::NoSettleOnFailure);
    let name = "deadlock/mutant-no-settle-on-failure";
    check_deadlock_twin(
        name,
        "twin_no_settle_on_failed_registration_is_caught",
        Race::Load(Adversary::Stop(Slot::A)),
        config,
    );
}

#[test]
fn twin_register_waiting_on_settle_is_caught() {
    let mut config = Config::mutant(Mutation::RegisterWaitsOnSettle);
    config.register_fails[Slot::A] = true;
    let name = "deadlock/mutant-register-waits-on-settle";
    check_deadlock_twin(
        name,
        "twin_register_waiting_on_settle_is_caught",
        Race::Load(Adversary::Stop(Slot::A)),
        config,
    );
}
