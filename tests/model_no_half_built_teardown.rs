//! Property: no teardown of half-initialized state (seed 003: the unload
//! path's `StopWorkerQueues` ran while `DriverEntry` was still inside
//! `SetupWorkerQueues`). The payload builds nothing in `DriverEntry`; a
//! teardown that meets a registration in progress waits for the loader to
//! settle it and cleans up only what the registration published.
//! Twin: the seed's own minifilter, registering in `DriverEntry`.
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Design, Violation};
use shared_abi::Slot;

const PROPERTY: Violation = Violation::HalfBuiltTeardown;

#[test]
fn protocol_load_against_sc_stop() {
    check(
        "half-built-teardown/protocol/load-vs-stop",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn protocol_load_against_fltmc_unload_then_sc_stop() {
    let race = Race::Load(Adversary::FltmcThenStop(Slot::A));
    check("half-built-teardown/protocol/load-vs-fltmc", PROPERTY, race, Config::protocol(), Expect::Clean);
}

#[test]
fn twin_naive_seed_minifilter_is_caught() {
    let config = Config::naive(Design::NaiveSeed);
    check("half-built-teardown/naive-seed", PROPERTY, Race::Load(Adversary::Stop(Slot::A)), config, Expect::Caught);
}
