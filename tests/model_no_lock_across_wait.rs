//! Property: no lock is held across a wait. Every critical section is a
//! closure (`with_state`) and every blocking primitive of the model checks
//! that the calling thread is not inside one.
//! Twin: a teardown that waits on "settled" inside its critical section.
use loader_protocol::Mutation;
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Violation};
use shared_abi::Slot;

const PROPERTY: Violation = Violation::LockAcrossWait;

#[test]
fn protocol_load_against_sc_stop() {
    check(
        "lock-across-wait/protocol/load-vs-stop",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn protocol_upgrade_with_the_old_payload_draining() {
    check(
        "lock-across-wait/protocol/upgrade-old-draining",
        PROPERTY,
        Race::UpgradeOldDraining,
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn twin_wait_under_lock_is_caught() {
    let config = Config::mutant(Mutation::WaitUnderLock);
    check(
        "lock-across-wait/mutant-wait-under-lock",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        config,
        Expect::Caught,
    );
}
