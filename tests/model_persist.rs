//! Property: `Parameters\ActiveSlot` only ever names a slot whose last
//! registration succeeded, whatever fails and whenever the power goes (the
//! value changes only when written, so every write is checked). A failed
//! write leaves the loader running on what it has.
//! Twin: persisting the new slot before its registration (a power cut then
//! boots a payload that never registered).
use loader_protocol::Mutation;
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Violation};
use shared_abi::Slot;

const PROPERTY: Violation = Violation::PersistedBadSlot;

#[test]
fn protocol_a_failed_upgrade_never_persists_the_new_slot() {
    let mut config = Config::protocol();
    config.register_fails[Slot::B] = true;
    check(
        "persist/protocol/upgrade-register-fails",
        PROPERTY,
        Race::Upgrade(Adversary::Stop(Slot::B)),
        config,
        Expect::Clean,
    );
}

#[test]
fn protocol_persisting_fails() {
    let mut config = Config::protocol();
    config.persist_fails = true;
    check("persist/protocol/persist-fails", PROPERTY, Race::UpgradeRollbackDeviceOpen, config, Expect::Clean);
}

#[test]
fn twin_persist_before_switch_is_caught() {
    let mut config = Config::mutant(Mutation::PersistBeforeSwitch);
    config.register_fails[Slot::B] = true;
    let race = Race::Upgrade(Adversary::Stop(Slot::B));
    check("persist/mutant-persist-before-switch", PROPERTY, race, config, Expect::Caught);
}
