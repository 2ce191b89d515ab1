//! Property: an unload that reaches the payload finds what its teardown
//! needs ready: `DriverEntry` prepares "teardown finished" and publishes
//! `DriverUnload` as its last act (shared code: `payload::driver_entry`,
//! which the payload driver and this model both call).
//! Twin: `DriverUnload` published before the event is prepared.
use loader_protocol::Mutation;
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Violation};
use shared_abi::Slot;

const PROPERTY: Violation = Violation::UninitialisedEvent;

#[test]
fn protocol_load_against_sc_stop() {
    check(
        "driver-entry-order/protocol/load-vs-stop",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn twin_publish_unload_first_is_caught() {
    let config = Config::mutant(Mutation::PublishUnloadFirst);
    check(
        "driver-entry-order/mutant-publish-unload-first",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        config,
        Expect::Caught,
    );
}
