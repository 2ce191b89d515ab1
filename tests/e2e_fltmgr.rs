//! End-to-end scenarios on the test world's Filter Manager (issue 10): real
//! minifilter callbacks under Wine, the Windows 7 unload race on real
//! images, filtering measured across upgrades, and what the verifier sees.
//!
//! Every session runs the simulated `fltmgr.sys` (see `tests/src/fltsim.rs`);
//! the scenarios drive it with `fltsimctl.exe` and the loader with
//! `loaderctl.exe`, and assert on what those show. Run after `cargo xtask
//! build`, one test at a time (each owns the Wine session).
use loader_tests::e2e::{
    assert_no_violations, filter, json_line, line, sim, sim_ok, slot_state, start_loader, status, total, wait_active,
    wait_status,
};
use loader_tests::fltsim;
use loader_tests::wine::{WineSession, LOADER_SERVICE};
use std::time::{Duration, Instant};

/// The bound on a payload's teardown used here (ms).
const UNLOAD_BOUND_MS: u32 = 2000;
/// Tries of the race, each way.
const RACE_TRIES: u32 = 200;
/// Upgrades of the storm in the suite (`cargo xtask bench` runs 1,000).
const STORM_UPGRADES: u32 = 40;

/// Scenario 1: the seed's race on real images. The naive image, started
/// with the race armed, tears half-built state down and starts filtering on
/// an unregistered filter; the same logic as a payload of the loader, with
/// the same race armed, never does.
#[test]
fn the_windows7_race_breaks_the_naive_image_and_not_the_loader_payload() {
    let s = start_loader(0, UNLOAD_BOUND_MS);
    wait_active(&s, 0, 1);
    fltsim::install_filter_service(&s, "NaiveFilter", "naive.sys", "370100").unwrap();
    let tries = RACE_TRIES.to_string();
    let bound = Duration::from_mins(15);
    let r = fltsim::fltsimctl_bounded(&s, &["race-naive", "--service", "NaiveFilter", "--tries", &tries], bound);
    assert_eq!(r.code, 0, "race-naive failed:\n{}", r.all());
    let naive_line = line(&r.stdout, "race: naive-image ");
    println!("{naive_line}");
    let naive = json_line(&r.stdout);
    assert_eq!(naive["tries"], RACE_TRIES, "{naive}");
    assert!(naive["failures"].as_u64() >= Some(1), "the race never broke the naive image: {naive}");
    assert!(naive["half_built_teardowns"].as_u64() >= Some(1), "no teardown of half-built state recorded: {naive}");
    let c = sim(&s);
    assert_eq!(filter(&c, "NaiveFilter")["version"], 0x200, "the XP-size 0x0200 registration was not the one taken");

    s.set_slot_image(1, "naive_payload.sys").unwrap();
    let r = fltsim::fltsimctl_bounded(
        &s,
        &["race-loader", "--service", "CounterFilterB", "--slot", "B", "--tries", &tries],
        bound,
    );
    assert_eq!(r.code, 0, "race-loader failed:\n{}", r.all());
    let loader_line = line(&r.stdout, "race: loader-payload ");
    println!("{loader_line}");
    let payload = json_line(&r.stdout);
    assert_eq!(payload["tries"], RACE_TRIES, "{payload}");
    assert_eq!(payload["failures"], 0, "the payload misbehaved under the race: {payload}\n{}", s.log());
    assert_eq!(loader_line, format!("race: loader-payload tries={RACE_TRIES} failures=0"));
    // The loader is still serving, on slot A.
    wait_active(&s, 0, 1);
}

/// Scenario 2: after known numbers of creates, reads and writes, `loaderctl
/// status` shows exactly those numbers (the counter filter counts in its
/// post-operation callbacks and publishes from there).
#[test]
fn the_counter_filter_counts_exactly_what_was_injected() {
    let s = start_loader(0, UNLOAD_BOUND_MS);
    wait_active(&s, 0, 1);
    fltsim::reset(&s).unwrap();
    fltsim::inject(&s, "create", 120, 3).unwrap();
    fltsim::inject(&s, "read", 75, 2).unwrap();
    fltsim::inject(&s, "write", 33, 1).unwrap();
    let st = status(&s);
    let report = &st["slots"][0]["report"];
    assert_eq!(report["creates"], 120, "{report}");
    assert_eq!(report["reads"], 75, "{report}");
    assert_eq!(report["writes"], 33, "{report}");
    assert_eq!(report["instances"], 2, "one instance per simulated volume: {report}");
    let table = s.loaderctl(&["status"]);
    assert!(table.stdout.contains("creates 120, reads 75, writes 33"), "status table:\n{}", table.stdout);
    let c = sim(&s);
    let f = filter(&c, "CounterFilterA");
    for (op, n) in [("create", 120), ("read", 75), ("write", 33)] {
        assert_eq!(f["pre"][op], n, "{op}: {f:#}");
        assert_eq!(f["post"][op], n, "{op}: {f:#}");
    }
    assert_eq!(f["processed"], 228, "{f:#}");
    assert_eq!(total(&c, "unfiltered"), 0, "{c:#}");
    assert_no_violations(&c, "counting");
}

/// Scenario 3 (short; `cargo xtask bench` runs 1,000 upgrades): 4 threads
/// inject creates, reads and writes without pause while the loader upgrades.
#[test]
fn upgrades_under_an_io_storm_are_measured() {
    let s = start_loader(0, UNLOAD_BOUND_MS);
    wait_active(&s, 0, 1);
    s.set_slot_image(1, "payload_v2.sys").unwrap();
    let upgrades = STORM_UPGRADES.to_string();
    let r =
        fltsim::fltsimctl_bounded(&s, &["storm", "--upgrades", &upgrades, "--threads", "4"], Duration::from_mins(10));
    assert_eq!(r.code, 0, "storm failed:\n{}\n{}", r.all(), s.log());
    println!("{}", line(&r.stdout, "storm: "));
    let storm = json_line(&r.stdout);
    assert_eq!(storm["upgrades"], STORM_UPGRADES, "{storm}");
    assert!(storm["ops"].as_u64() > Some(u64::from(STORM_UPGRADES)), "the storm delivered too little: {storm}");
    assert_eq!(storm["violations"], 0, "{storm}");
    let c = sim(&s);
    assert_no_violations(&c, "storm");
    // Every instance set up was torn down, but the active payload's (the
    // counts began with slot A's two instances attached).
    let attached = c["instances"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(total(&c, "instance_setups") + 2, total(&c, "teardown_completes") + attached, "{c:#}");
    assert!(status(&s)["active_slot"]["name"].is_string(), "no active slot after the storm");
}

/// Scenario 4: a non-mandatory unload (`fltmc unload`) of the active slot
/// while the loader owns it. The payload refuses it with
/// `STATUS_FLT_DO_NOT_DETACH` (the loader manages the payload); the filter
/// stays registered and filtering, and the loader's status stays true.
#[test]
fn a_non_mandatory_unload_of_the_active_slot_is_refused_and_status_stays_true() {
    let s = start_loader(0, UNLOAD_BOUND_MS);
    wait_active(&s, 0, 1);
    fltsim::inject(&s, "create", 10, 1).unwrap();
    let r = fltsim::unload(&s, "CounterFilterA");
    assert_eq!(r.code, 1, "the unload was not refused:\n{}", r.all());
    assert!(r.all().contains("STATUS_FLT_DO_NOT_DETACH"), "{}", r.all());
    let c = sim(&s);
    let f = filter(&c, "CounterFilterA");
    assert_eq!(f["state"], "filtering", "{f:#}");
    assert_eq!(f["instances"], 2, "{f:#}");
    assert_eq!(total(&c, "unload_refused"), 1, "{c:#}");
    // The loader's status is unchanged and still true: slot A active, and
    // it still counts what it filters.
    let st = wait_active(&s, 0, 1);
    assert_eq!(st["slots"][0]["report"]["creates"], 10, "{st:#}");
    assert_eq!(slot_state(&st, 1), "empty");
    fltsim::inject(&s, "create", 5, 1).unwrap();
    assert_eq!(status(&s)["slots"][0]["report"]["creates"], 15);
    // A detach (no InstanceQueryTeardown registered) is refused the same way.
    let r = fltsim::fltsimctl(&s, &["detach", "CounterFilterA", "--volume", "mup"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("STATUS_FLT_DO_NOT_DETACH"), "{}", r.all());
    assert_no_violations(&sim(&s), "refused unload");
}

/// Scenario 5: a payload whose pre-read callback blocks is unloaded during
/// a storm. `FltUnregisterFilter` waits for the callbacks in flight,
/// instance teardowns match the instances attached, and the verifier
/// records no violation. (An upgrade away from it would not show the wait:
/// the exactly-once handover drains the old generation's operations before
/// its unregistration, which `e2e_handover.rs` measures.)
#[test]
fn unregister_waits_for_callbacks_in_flight_during_a_storm() {
    let mut s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.install(0, 10_000).unwrap();
    s.set_slot_image(0, "slow_payload.sys").unwrap();
    s.clean_reboot().unwrap();
    fltsim::reset(&s).unwrap();
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_active(&s, 0, 1);
    sim_ok(&s, &["inject", "--op", "mix", "--threads", "4", "--continuous"]);
    // Reads are in flight (each blocks 20 ms) when the unload retires it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while filter(&sim(&s), "CounterFilterA")["in_flight"].as_u64() == Some(0) {
        assert!(Instant::now() < deadline, "no callback ever in flight");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = s.loaderctl(&["unload"]);
    assert_eq!(r.code, 0, "unload of the slow payload: {}", r.all());
    wait_status(&s, 30, "no payload", |st| st["active_slot"]["name"].is_null() && slot_state(st, 0) == "empty");
    sim_ok(&s, &["inject-stop"]);
    let c = sim(&s);
    let slow = filter(&c, "CounterFilterA");
    assert_eq!(slow["state"], "unregistered", "{slow:#}");
    assert!(slow["drained"].as_u64() >= Some(1), "FltUnregisterFilter found nothing in flight: {slow:#}");
    assert!(total(&c, "unregister_waits") >= 1, "{c:#}");
    // Counted from before the loader started: the slow payload's instances
    // (one per simulated volume) were all set up and all torn down.
    assert_eq!(c["instances"].as_array().map_or(0, Vec::len), 0, "{c:#}");
    assert!(total(&c, "instance_setups") >= 2, "{c:#}");
    assert_eq!(total(&c, "instance_setups"), total(&c, "teardown_completes"), "{c:#}");
    assert_eq!(total(&c, "teardown_starts"), total(&c, "teardown_completes"), "{c:#}");
    assert_no_violations(&c, "retiring the slow payload during the storm");
    s.stop();
}

/// Scenario 6 (short; the benchmark has the figures): the same callback,
/// bare and behind the payload wrapper, each sees every operation once.
#[test]
fn the_same_callback_bare_and_behind_the_wrapper_sees_every_operation() {
    let s = start_loader(0, UNLOAD_BOUND_MS);
    wait_active(&s, 0, 1);
    s.set_slot_image(1, "bench_wrapped.sys").unwrap();
    assert_eq!(s.loaderctl(&["upgrade"]).code, 0);
    wait_active(&s, 1, 1);
    fltsim::reset(&s).unwrap();
    let wrapped = fltsim::inject(&s, "read", 2000, 1).unwrap();
    assert_eq!(s.loaderctl(&["unload"]).code, 0);
    wait_status(&s, 30, "no payload", |st| st["active_slot"]["name"].is_null());
    fltsim::install_filter_service(&s, "BenchBare", "bench_bare.sys", "370300").unwrap();
    let (ok, out) = s.sc(&["start", "BenchBare"]);
    assert!(ok, "sc start BenchBare: {out}");
    let bare = fltsim::inject(&s, "read", 2000, 1).unwrap();
    let ns = |out: &str| out.split_whitespace().find_map(|w| w.strip_prefix("ns_per_op=")).map(str::to_owned);
    println!("overhead: bare={} ns/op wrapped={} ns/op (2000 reads each)", ns(&bare).unwrap(), ns(&wrapped).unwrap());
    let c = sim(&s);
    for name in ["CounterFilterB", "BenchBare"] {
        let f = filter(&c, name);
        assert_eq!(f["pre"]["read"], 2000, "{name}: {f:#}");
        assert_eq!(f["post"]["read"], 2000, "{name}: {f:#}");
    }
    let (ok, out) = s.sc(&["stop", "BenchBare"]);
    assert!(ok, "sc stop BenchBare: {out}");
    assert_eq!(filter(&sim(&s), "BenchBare")["state"], "unregistered");
    assert_no_violations(&sim(&s), "bench");
}

/// Seed 002 on real callbacks: a file kept open on the Mup volume
/// (`\TSCLIENT\SCARD\2`) holds the payload's stream context, so its instance
/// teardown drains until the file closes; the loader reports the slot stuck
/// meanwhile, and it empties once the file is closed.
#[test]
fn an_open_file_keeps_the_teardown_draining_until_it_closes() {
    let mut s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.install(0, UNLOAD_BOUND_MS).unwrap();
    s.set_slot_image(0, "slow_payload.sys").unwrap();
    s.set_slot_image(1, "payload_v2.sys").unwrap();
    s.clean_reboot().unwrap();
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_active(&s, 0, 1);
    let opened = sim_ok(&s, &["open", "--volume", "mup", "--name", "\\TSCLIENT\\SCARD\\2"]);
    let id = opened
        .split_whitespace()
        .find_map(|w| w.strip_prefix("id="))
        .unwrap_or_else(|| panic!("no id: {opened}"))
        .to_owned();
    let st = wait_status(&s, 15, "the stream context reported", |st| st["slots"][0]["report"]["open_contexts"] == 1);
    assert_eq!(slot_state(&st, 0), "active");
    let c = sim(&s);
    assert_eq!(c["files"][0]["contexts"], 1, "{c:#}");
    assert_eq!(total(&c, "names_allocated"), total(&c, "names_freed"), "{c:#}");
    // Upgrading away: the new payload goes active, the old one is stuck.
    let r = s.loaderctl(&["upgrade"]);
    assert_eq!(r.code, 8, "expected the old slot to be reported stuck:\n{}", r.all());
    let st = status(&s);
    assert_eq!(slot_state(&st, 0), "stuck", "{st:#}");
    assert_eq!(st["slots"][0]["report"]["open_contexts"], 1, "{st:#}");
    let c = sim(&s);
    assert_eq!(filter(&c, "CounterFilterA")["state"], "unregistering", "{c:#}");
    // The file closes: the teardown completes and the slot empties.
    sim_ok(&s, &["close", "--id", &id]);
    wait_status(&s, 30, "slot A to finish", |st| slot_state(st, 0) == "empty");
    let c = sim(&s);
    assert_eq!(filter(&c, "CounterFilterA")["state"], "unregistered", "{c:#}");
    assert_eq!(total(&c, "contexts_allocated"), total(&c, "contexts_freed"), "{c:#}");
    assert_no_violations(&c, "draining");
    s.stop();
}

/// The simulator's registration rules, seen from outside: the altitude
/// from `Instances\DefaultInstance`, a taken altitude refused with
/// `STATUS_FLT_INSTANCE_ALTITUDE_COLLISION`, one instance per volume, and
/// the listing `fltmc` would show.
#[test]
fn registration_takes_the_altitude_from_the_registry_and_refuses_a_taken_one() {
    let s = start_loader(0, UNLOAD_BOUND_MS);
    wait_active(&s, 0, 1);
    let table = sim_ok(&s, &["filters"]);
    assert!(table.contains("CounterFilterA") && table.contains("370030"), "{table}");
    let instances = sim_ok(&s, &["instances"]);
    assert!(instances.contains("\\Device\\Mup") && instances.contains("\\Device\\HarddiskVolume1"), "{instances}");
    // Another filter at slot A's altitude.
    fltsim::install_filter_service(&s, "BenchBare", "bench_bare.sys", "370030").unwrap();
    let (ok, _) = s.sc(&["start", "BenchBare"]);
    assert!(!ok, "a filter at a taken altitude started");
    assert!(
        s.log().contains("FltRegisterFilter refused: STATUS_FLT_INSTANCE_ALTITUDE_COLLISION"),
        "no collision logged:\n{}",
        s.log()
    );
    let c = sim(&s);
    assert_eq!(total(&c, "registrations_refused"), 1, "{c:#}");
    assert_eq!(filter(&c, "CounterFilterA")["state"], "filtering");
    assert_no_violations(&c, "registration");
}

/// The foreign stop (`tests/src/fltsim.rs`): a mandatory unload of the
/// active payload through the simulator, as `sc stop CounterFilterA` does
/// on Windows: `FilterUnloadCallback` (mandatory), the payload's own
/// `DriverUnload`, the image unloaded; the verifier sees no callback after.
#[test]
fn a_mandatory_unload_through_the_simulator_reaches_the_payload() {
    let s = start_loader(0, UNLOAD_BOUND_MS);
    wait_active(&s, 0, 1);
    let said = fltsim::mandatory_unload(&s, "CounterFilterA").unwrap();
    assert!(said.contains("STATUS_SUCCESS"), "{said}");
    let c = sim(&s);
    let f = filter(&c, "CounterFilterA");
    assert_eq!(f["state"], "unregistered", "{f:#}");
    assert_eq!(f["unload_callback_done"], true, "{f:#}");
    assert_eq!(total(&c, "hooked_unloads"), 1, "{c:#}");
    assert!(s.log().contains("payload: FilterUnloadCallback (flags 0x1)"), "{}", s.log());
    // Operations after it reach no payload, and nothing calls into the
    // unloaded image.
    fltsim::reset(&s).unwrap();
    fltsim::inject(&s, "mix", 60, 2).unwrap();
    let c = sim(&s);
    assert_eq!(total(&c, "unfiltered"), 60, "{c:#}");
    assert_no_violations(&c, "after the foreign stop");
}
