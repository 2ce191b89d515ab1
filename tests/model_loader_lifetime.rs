//! Property: no code of the loader runs after the loader's own unload
//! returned (its image is gone then), and no payload is called through an
//! image the loader does not hold. The loader's stop joins every retire
//! worker; the shutdown hook runs as an operation, serialized with the stop.
//! Twins: a stop that does not join the retire workers; a shutdown hook
//! called without serializing with the stop.
use loader_protocol::Mutation;
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Violation};

const PROPERTY: Violation = Violation::UnmappedCall;

#[test]
fn protocol_stop_with_a_retirement_draining() {
    check(
        "loader-lifetime/protocol/stop-while-draining",
        PROPERTY,
        Race::UpgradeOldDraining,
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn twin_stop_skipping_the_join_is_caught() {
    let config = Config::mutant(Mutation::StopSkipsJoin);
    check("loader-lifetime/mutant-stop-skips-join", PROPERTY, Race::UpgradeOldDraining, config, Expect::Caught);
}

#[test]
fn protocol_shutdown_against_the_loader_stop() {
    check(
        "loader-lifetime/protocol/shutdown-vs-stop",
        PROPERTY,
        Race::StopAgainst(Adversary::Shutdown),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn protocol_shutdown_against_an_upgrade() {
    check(
        "loader-lifetime/protocol/shutdown-vs-upgrade",
        PROPERTY,
        Race::Upgrade(Adversary::Shutdown),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn twin_unserialized_shutdown_is_caught() {
    let config = Config::mutant(Mutation::ShutdownUnserialized);
    check(
        "loader-lifetime/mutant-shutdown-unserialized",
        PROPERTY,
        Race::StopAgainst(Adversary::Shutdown),
        config,
        Expect::Caught,
    );
}
