//! Property: no call into an unmapped image. The loader calls a payload's
//! entries only while it holds a reference on its driver object, taken right
//! after `ZwLoadDriver`, so a racing `sc stop` cannot unmap it under them.
//! And no payload calls the loader's services once the loader's own unload
//! returned: a teardown that meets another one in progress waits until that
//! one finished.
//! Twins: the loader drops that reference before the registration call (the
//! seed's two-driver proposal without a reference); a second teardown that
//! returns before the first one finished.
use loader_protocol::Mutation;
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Violation};
use shared_abi::Slot;

const PROPERTY: Violation = Violation::UnmappedCall;

#[test]
fn protocol_load_against_sc_stop() {
    check(
        "unmapped-call/protocol/load-vs-stop",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn protocol_upgrade_against_sc_stop_of_the_old_payload() {
    check(
        "unmapped-call/protocol/upgrade-vs-stop-old",
        PROPERTY,
        Race::Upgrade(Adversary::Stop(Slot::A)),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn twin_reference_released_early_is_caught() {
    let config = Config::mutant(Mutation::ReleaseImageEarly);
    check(
        "unmapped-call/mutant-release-image-early",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        config,
        Expect::Caught,
    );
}

#[test]
fn protocol_loader_stop_against_sc_stop() {
    let race = Race::StopAgainst(Adversary::Stop(Slot::A));
    check("unmapped-call/protocol/loader-stop-vs-stop", PROPERTY, race, Config::protocol(), Expect::Clean);
}

#[test]
fn twin_second_teardown_returning_early_is_caught() {
    let config = Config::mutant(Mutation::SecondTeardownReturnsEarly);
    let race = Race::StopAgainst(Adversary::Stop(Slot::A));
    check("unmapped-call/mutant-second-teardown-returns-early", PROPERTY, race, config, Expect::Caught);
}
