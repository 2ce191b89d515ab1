//! Property: every successful registration is unregistered exactly once, and
//! no freed filter is used. The filter handle is published under the lock
//! and taken out (once) by whichever teardown unregisters it; a teardown that
//! meets a registration in progress waits until the loader settled it.
//! Twins: teardown without the settle wait; the loader signalling "settled"
//! before the registration call; the seed's "register last" mitigation.
use loader_protocol::Mutation;
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Design, Violation};
use shared_abi::Slot;

const PROPERTY: Violation = Violation::RegistrationNotOnce;

#[test]
fn protocol_load_against_sc_stop() {
    check(
        "registration-once/protocol/load-vs-stop",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        Config::protocol(),
        Expect::Clean,
    );
}

#[test]
fn protocol_upgrade_against_fltmc_unload_then_sc_stop_of_the_new_payload() {
    let race = Race::Upgrade(Adversary::FltmcThenStop(Slot::B));
    check("registration-once/protocol/upgrade-vs-fltmc-new", PROPERTY, race, Config::protocol(), Expect::Clean);
}

#[test]
fn protocol_loader_stop_against_sc_stop() {
    let race = Race::StopAgainst(Adversary::Stop(Slot::A));
    check("registration-once/protocol/loader-stop-vs-stop", PROPERTY, race, Config::protocol(), Expect::Clean);
}

#[test]
fn twin_teardown_skipping_the_settle_wait_is_caught() {
    let config = Config::mutant(Mutation::TeardownSkipsSettleWait);
    check(
        "registration-once/mutant-teardown-skips-settle-wait",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        config,
        Expect::Caught,
    );
}

#[test]
fn twin_settle_signalled_before_register_is_caught() {
    let config = Config::mutant(Mutation::SettleBeforeRegister);
    check(
        "registration-once/mutant-settle-before-register",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        config,
        Expect::Caught,
    );
}

#[test]
fn twin_naive_register_last_is_caught() {
    let config = Config::naive(Design::NaiveRegisterLast);
    check(
        "registration-once/naive-register-last",
        PROPERTY,
        Race::Load(Adversary::Stop(Slot::A)),
        config,
        Expect::Caught,
    );
}
