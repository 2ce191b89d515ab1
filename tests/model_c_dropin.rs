//! The C drop-in (payload-c, issue 11): an unchanged C minifilter relinked
//! with `serialpayload.lib`, modelled as the library's glue does it
//! (`loader_tests::c_dropin`, over the same `loader_protocol::payload`
//! functions), raced against the Windows 7 adversaries on the three paths
//! the library interposes:
//! - registration interposed: the filter's `DriverEntry` runs inside the
//!   registration entry, its `FltRegisterFilter` lands in the library;
//! - unload through the interposed `FilterUnloadCallback` (`sc stop`,
//!   `fltmc unload`, against the loader's upgrade and stop);
//! - unload through a chained `DriverUnload` (a filter that stores its own).
//!
//! Every protocol run must be clean of every property (no call into an
//! unmapped image, no teardown of half-built state, every registration
//! unregistered exactly once, no deadlock, and the rest); the property
//! printed is the one the race is aimed at.
//! Twins: a library whose `FilterUnloadCallback` forwards to the filter's
//! at once; the protocol's teardown without the settle wait under the
//! library; the same C filter loaded directly (the seed's race); a library
//! `DriverUnload` that calls the filter's before the teardown.
//! One finding is pinned: a filter that stores `DriverUnload` in its own
//! `DriverEntry` opens a window the library cannot serialize (the README's
//! contract forbids it).
use loader_protocol::Mutation;
use loader_tests::c_dropin::{CFilter, GlueVariant, SetsDriverUnload};
use loader_tests::explore::{check, Expect};
use loader_tests::scenario::{Adversary, Race};
use loader_tests::world::{Config, Violation};
use shared_abi::Slot;

fn relinked() -> Config {
    Config::c_relinked(CFilter::wdk())
}

fn chaining(at: SetsDriverUnload) -> Config {
    Config::c_relinked(CFilter::wdk().sets_driver_unload(at))
}

/// The upgrade races run at preemption bound 2. At 3 each takes one to
/// seven minutes (1.2 to 4 million interleavings): the library's glue adds
/// its lock to an upgrade the Rust payload's suite already explores at 3.
/// Every window of the glue itself is explored at 3 by the load and stop
/// races here; `MODEL_PREEMPTIONS=3` runs these at 3 too.
fn upgrade(config: Config) -> Config {
    Config { preemption_bound: Some(2), ..config }
}

// --- Registration interposed -------------------------------------------

#[test]
fn registration_interposed_load_against_sc_stop() {
    let race = Race::Load(Adversary::Stop(Slot::A));
    check("c-dropin/register/load-vs-stop", Violation::HalfBuiltTeardown, race, relinked(), Expect::Clean);
}

#[test]
fn registration_interposed_load_against_fltmc_unload_then_sc_stop() {
    let race = Race::Load(Adversary::FltmcThenStop(Slot::A));
    check("c-dropin/register/load-vs-fltmc", Violation::RegistrationNotOnce, race, relinked(), Expect::Clean);
}

#[test]
fn registration_interposed_load_against_a_concurrent_control_unload() {
    let race = Race::Load(Adversary::ControlUnload);
    check("c-dropin/register/load-vs-control-unload", Violation::Deadlock, race, relinked(), Expect::Clean);
}

#[test]
fn registration_interposed_upgrade_against_sc_stop_of_the_new_payload() {
    let race = Race::Upgrade(Adversary::Stop(Slot::B));
    let name = "c-dropin/register/upgrade-vs-stop-new";
    check(name, Violation::RegistrationNotOnce, race, upgrade(relinked()), Expect::Clean);
}

#[test]
fn registration_interposed_failing_against_sc_stop() {
    let mut config = relinked();
    config.register_fails[Slot::A] = true;
    let race = Race::Load(Adversary::Stop(Slot::A));
    check("c-dropin/register/register-fails-vs-stop", Violation::Deadlock, race, config, Expect::Clean);
}

// --- Unload through the interposed FilterUnloadCallback ----------------

#[test]
fn filter_unload_callback_upgrade_against_sc_stop_of_the_old_payload() {
    let race = Race::Upgrade(Adversary::Stop(Slot::A));
    check("c-dropin/callback/upgrade-vs-stop-old", Violation::UnmappedCall, race, upgrade(relinked()), Expect::Clean);
}

#[test]
fn filter_unload_callback_loader_stop_against_sc_stop() {
    let race = Race::StopAgainst(Adversary::Stop(Slot::A));
    check("c-dropin/callback/loader-stop-vs-stop", Violation::UnmappedCall, race, relinked(), Expect::Clean);
}

#[test]
fn filter_unload_callback_upgrade_against_fltmc_unload_then_sc_stop_of_the_new_payload() {
    let race = Race::Upgrade(Adversary::FltmcThenStop(Slot::B));
    let name = "c-dropin/callback/upgrade-vs-fltmc-new";
    check(name, Violation::RegistrationNotOnce, race, upgrade(relinked()), Expect::Clean);
}

// --- Unload through a chained DriverUnload -----------------------------

#[test]
fn chained_driver_unload_loader_stop_against_sc_stop() {
    let race = Race::StopAgainst(Adversary::Stop(Slot::A));
    let config = chaining(SetsDriverUnload::BeforeRegister);
    check("c-dropin/chained/loader-stop-vs-stop", Violation::HalfBuiltTeardown, race, config, Expect::Clean);
}

#[test]
fn chained_driver_unload_set_after_register_loader_stop_against_sc_stop() {
    let race = Race::StopAgainst(Adversary::Stop(Slot::A));
    let config = chaining(SetsDriverUnload::AfterRegister);
    let name = "c-dropin/chained-after-register/loader-stop-vs-stop";
    check(name, Violation::HalfBuiltTeardown, race, config, Expect::Clean);
}

#[test]
fn chained_driver_unload_upgrade_against_sc_stop_of_the_old_payload() {
    let race = Race::Upgrade(Adversary::Stop(Slot::A));
    let config = upgrade(chaining(SetsDriverUnload::BeforeRegister));
    check("c-dropin/chained/upgrade-vs-stop-old", Violation::HalfBuiltTeardown, race, config, Expect::Clean);
}

#[test]
fn chained_driver_unload_load_against_a_concurrent_control_unload() {
    let race = Race::Load(Adversary::ControlUnload);
    let config = chaining(SetsDriverUnload::AfterRegister);
    check("c-dropin/chained/load-vs-control-unload", Violation::HalfBuiltTeardown, race, config, Expect::Clean);
}

#[test]
fn chained_driver_unload_foreign_stop_then_loader_stop() {
    let race = Race::ForeignStopThenLoaderStop;
    let config = chaining(SetsDriverUnload::BeforeRegister);
    check("c-dropin/chained/foreign-stop-then-reload", Violation::SlotState, race, config, Expect::Clean);
}

/// Finding (documented in the README as the contract "do not write
/// `DriverObject->DriverUnload`"): while the filter's own `DriverEntry`
/// runs, between its store of `DriverUnload` and the library putting its
/// own back (at the interposed `FltRegisterFilter`, or after `DriverEntry`
/// returned), `DriverUnload` is the filter's, and an `sc stop` landing
/// there calls it directly: it frees the globals under the running
/// `DriverEntry`. The library cannot close the window without trapping
/// the store; the model pins that it is there.
#[test]
fn finding_sc_stop_reaches_a_driver_unload_the_filter_stores_in_driver_entry() {
    let race = Race::Load(Adversary::Stop(Slot::A));
    let config = chaining(SetsDriverUnload::BeforeRegister);
    let name = "c-dropin/finding/driver-unload-stored-before-register";
    check(name, Violation::HalfBuiltTeardown, race, config, Expect::Caught);
    let config = chaining(SetsDriverUnload::AfterRegister);
    let name = "c-dropin/finding/driver-unload-stored-after-register";
    check(name, Violation::HalfBuiltTeardown, race, config, Expect::Caught);
}

// --- Twins ---------------------------------------------------------------

#[test]
fn twin_forwarding_filter_unload_callback_is_caught() {
    let config = Config::c_relinked(CFilter::wdk().linked_with(GlueVariant::ForwardingUnloadCallback));
    let race = Race::Load(Adversary::Stop(Slot::A));
    check("c-dropin/twin-forwarding-unload-callback", Violation::HalfBuiltTeardown, race, config, Expect::Caught);
}

#[test]
fn twin_teardown_skipping_the_settle_wait_is_caught() {
    let config = Config { mutation: Mutation::TeardownSkipsSettleWait, ..relinked() };
    let race = Race::Load(Adversary::Stop(Slot::A));
    check("c-dropin/mutant-teardown-skips-settle-wait", Violation::RegistrationNotOnce, race, config, Expect::Caught);
}

#[test]
fn twin_plain_c_filter_loaded_directly_is_caught() {
    let config = Config::c_plain(CFilter::wdk());
    let race = Race::Load(Adversary::Stop(Slot::A));
    check("c-dropin/twin-plain-c-filter", Violation::HalfBuiltTeardown, race, config, Expect::Caught);
}

#[test]
fn twin_chaining_driver_unload_before_the_teardown_is_caught() {
    let filter = CFilter::wdk()
        .sets_driver_unload(SetsDriverUnload::BeforeRegister)
        .linked_with(GlueVariant::ChainBeforeTeardown);
    let race = Race::StopAgainst(Adversary::Stop(Slot::A));
    let name = "c-dropin/twin-chain-before-teardown";
    check(name, Violation::HalfBuiltTeardown, race, Config::c_relinked(filter), Expect::Caught);
}
