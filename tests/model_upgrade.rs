//! Property: an upgrade ends with exactly one active payload (the new one,
//! which registered), or with a reported failure and the old payload still
//! active and registered; a retirement that does not finish in time leaves
//! the old slot STUCK and the new one active.
//! Twin: a loader that switches to the new slot even though its
//! registration failed.
use loader_protocol::Mutation;
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Violation};
use shared_abi::Slot;

const PROPERTY: Violation = Violation::UpgradeOutcome;

#[test]
fn protocol_upgrade_against_sc_stop_of_the_new_payload() {
    check(
        "upgrade/protocol/vs-stop-new",
        PROPERTY,
        Race::Upgrade(Adversary::Stop(Slot::B)),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn protocol_upgrade_whose_registration_fails_rolls_back() {
    let mut config = Config::protocol();
    config.register_fails[Slot::B] = true;
    check("upgrade/protocol/register-fails", PROPERTY, Race::Upgrade(Adversary::Stop(Slot::B)), config, Expect::Clean);
}

#[test]
fn protocol_upgrade_to_a_bad_descriptor_rolls_back() {
    let mut config = Config::protocol();
    config.bad_descriptor[Slot::B] = true;
    check("upgrade/protocol/bad-descriptor", PROPERTY, Race::Upgrade(Adversary::Stop(Slot::B)), config, Expect::Clean);
}

#[test]
fn protocol_upgrade_with_the_old_payload_draining() {
    check("upgrade/protocol/old-draining", PROPERTY, Race::UpgradeOldDraining, Config::protocol(), Expect::Clean);
}

#[test]
fn protocol_upgrade_and_rollback_while_a_device_handle_defers_the_old_unload() {
    let mut config = Config::protocol();
    config.device_open[Slot::A] = true;
    check("upgrade/protocol/rollback-device-open", PROPERTY, Race::UpgradeRollbackDeviceOpen, config, Expect::Clean);
}

#[test]
fn twin_activating_a_failed_upgrade_is_caught() {
    let mut config = Config::mutant(Mutation::ActivateFailedUpgrade);
    config.register_fails[Slot::B] = true;
    check(
        "upgrade/mutant-activate-failed-upgrade",
        PROPERTY,
        Race::Upgrade(Adversary::Stop(Slot::B)),
        config,
        Expect::Caught,
    );
}
