//! End-to-end scenarios of the C path (issue 11): the example legacy C
//! minifilter (`payload-c/example/legacyfilter.c`) built plainly
//! (`c_legacy.sys`, started by its own service) and relinked with
//! `serialpayload.lib` (`c_relinked.sys`, `c_relinked_v2.sys`, loaded by the
//! loader into a slot), on the test world's Filter Manager under Wine.
//!
//! Run after `cargo xtask build`, one test at a time (each owns the Wine
//! session; `cargo xtask test` and `cargo xtask e2e` run them so).
use loader_tests::e2e::{
    assert_no_violations, filter, json_line, line, sim, slot_state, start_loader, total, wait_active, wait_status,
};
use loader_tests::fltsim;
use loader_tests::wine::WineSession;
use serde_json::Value;
use std::time::Duration;

/// The bound on a payload's teardown used here (ms).
const UNLOAD_BOUND_MS: u32 = 2000;
/// Tries of the race, each way.
const RACE_TRIES: u32 = 200;
/// The plain image's service and its altitude (not a slot's).
const LEGACY_SERVICE: &str = "CLegacyFilter";
const LEGACY_ALTITUDE: &str = "370200";

/// What one filter's registration saw of the injected I/O.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    pre_create: u64,
    post_create: u64,
    pre_read: u64,
    processed: u64,
}

fn seen(f: &Value) -> Seen {
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v} in {f:#}"));
    Seen {
        pre_create: n(&f["pre"]["create"]),
        post_create: n(&f["post"]["create"]),
        pre_read: n(&f["pre"]["read"]),
        processed: n(&f["processed"]),
    }
}

/// The same I/O for every measurement: creates on both volumes, reads.
fn inject_workload(s: &WineSession) {
    fltsim::inject(s, "create", 60, 2).unwrap();
    let r = fltsim::fltsimctl(s, &["inject", "--op", "create", "--count", "15", "--volume", "mup"]);
    assert_eq!(r.code, 0, "inject on mup: {}", r.all());
    fltsim::inject(s, "read", 40, 1).unwrap();
}

/// The seed's race on the C minifilter. Built plainly and started by its
/// service under the armed Windows 7 race, its `FilterUnloadCallback`
/// unregisters the filter while its `DriverEntry` goes on to
/// `FltStartFiltering`: the verifier records it. The same source relinked
/// with serialpayload.lib, loaded by the loader under the same race, never
/// misbehaves.
#[test]
fn the_windows7_race_breaks_the_c_legacy_image_and_not_the_relinked_payload() {
    let s = start_loader(0, UNLOAD_BOUND_MS);
    wait_active(&s, 0, 1);
    fltsim::install_filter_service(&s, LEGACY_SERVICE, "c_legacy.sys", LEGACY_ALTITUDE).unwrap();
    let tries = RACE_TRIES.to_string();
    let bound = Duration::from_mins(15);
    let r = fltsim::fltsimctl_bounded(
        &s,
        &["race-naive", "--service", LEGACY_SERVICE, "--tries", &tries, "--label", "c-legacy-image"],
        bound,
    );
    assert_eq!(r.code, 0, "race-naive on the C legacy image failed:\n{}", r.all());
    let legacy_line = line(&r.stdout, "race: c-legacy-image ");
    println!("{legacy_line}");
    let legacy = json_line(&r.stdout);
    assert_eq!(legacy["tries"], RACE_TRIES, "{legacy}");
    assert!(legacy["failures"].as_u64() >= Some(1), "the race never broke the C legacy image: {legacy}");
    assert!(legacy["violations"].as_u64() >= Some(1), "no violation recorded for the C legacy image: {legacy}");
    let c = sim(&s);
    assert_eq!(filter(&c, LEGACY_SERVICE)["version"], 0x202, "the C image registers the Windows 7 layout");

    s.set_slot_image(1, "c_relinked.sys").unwrap();
    let before = total(&sim(&s), "violations");
    let r = fltsim::fltsimctl_bounded(
        &s,
        &[
            "race-loader",
            "--service",
            "CounterFilterB",
            "--slot",
            "B",
            "--tries",
            &tries,
            "--label",
            "c-relinked-payload",
        ],
        bound,
    );
    assert_eq!(r.code, 0, "race-loader on the relinked payload failed:\n{}", r.all());
    let payload_line = line(&r.stdout, "race: c-relinked-payload ");
    println!("{payload_line}");
    let payload = json_line(&r.stdout);
    assert_eq!(payload["tries"], RACE_TRIES, "{payload}");
    assert_eq!(payload["failures"], 0, "the relinked payload misbehaved under the race: {payload}\n{}", s.log());
    assert_eq!(payload_line, format!("race: c-relinked-payload tries={RACE_TRIES} failures=0"));
    assert_eq!(total(&sim(&s), "violations"), before, "the relinked payload's tries added violations");
    // The race reached the library's FilterUnloadCallback, which ran the
    // filter's own callback only once the registration had settled.
    let log = s.log();
    assert!(log.contains("serialpayload") || log.contains("LegacyFilter (C)"), "no line of the library in the log");
    assert!(
        log.contains("the filter's FilterUnloadCallback (mandatory)"),
        "the filter's own callback never ran:\n{log}"
    );
    wait_active(&s, 0, 1);
}

/// The relinked payload filters what the plain image filters, upgrades to
/// its v2 and rolls back, and every stream context it allocated is freed.
#[test]
fn the_relinked_payload_counts_like_the_plain_image_upgrades_and_rolls_back() {
    let s = start_loader(0, UNLOAD_BOUND_MS);
    wait_active(&s, 0, 1);
    // (a) plain, started by its own service, no race.
    fltsim::install_filter_service(&s, LEGACY_SERVICE, "c_legacy.sys", LEGACY_ALTITUDE).unwrap();
    let (ok, out) = s.sc(&["start", LEGACY_SERVICE]);
    assert!(ok, "sc start {LEGACY_SERVICE}: {out}");
    fltsim::reset(&s).unwrap();
    inject_workload(&s);
    let c = sim(&s);
    let plain = seen(filter(&c, LEGACY_SERVICE));
    assert!(plain.pre_create >= 60 && plain.pre_create == plain.post_create, "{plain:?}");
    assert_eq!(plain.pre_read, 0, "the filter registers no read callback: {plain:?}");
    assert!(total(&c, "contexts_allocated") >= 1, "the C filter made no stream context:\n{c:#}");
    let (ok, out) = s.sc(&["stop", LEGACY_SERVICE]);
    assert!(ok, "sc stop {LEGACY_SERVICE}: {out}");
    let c = sim(&s);
    assert_eq!(filter(&c, LEGACY_SERVICE)["state"], "unregistered", "{c:#}");
    assert_eq!(filter(&c, LEGACY_SERVICE)["contexts"], 0, "{c:#}");
    assert_no_violations(&c, "the plain C image");

    // (b) relinked, in slot B, through the loader.
    s.set_slot_image(1, "c_relinked.sys").unwrap();
    let r = s.loaderctl(&["upgrade"]);
    assert_eq!(r.code, 0, "upgrade to the relinked payload: {}", r.all());
    let st = wait_active(&s, 1, 1);
    assert_eq!(slot_state(&st, 0), "empty", "{st:#}");
    fltsim::reset(&s).unwrap();
    inject_workload(&s);
    let c = sim(&s);
    let relinked = seen(filter(&c, "CounterFilterB"));
    println!("behaviour: plain {plain:?}, relinked {relinked:?}");
    assert_eq!(relinked, plain, "the relinked payload does not count what the plain image counted");
    assert!(total(&c, "contexts_allocated") >= 1, "the relinked payload made no stream context:\n{c:#}");

    // Upgrade to (b) v2 in slot A, then roll back to slot B (v1 again).
    s.set_slot_image(0, "c_relinked_v2.sys").unwrap();
    let r = s.loaderctl(&["upgrade"]);
    assert_eq!(r.code, 0, "upgrade to v2: {}", r.all());
    wait_active(&s, 0, 2);
    let c = sim(&s);
    let old = filter(&c, "CounterFilterB");
    assert_eq!(old["state"], "unregistered", "{old:#}");
    assert_eq!(old["contexts"], 0, "the retired v1 left stream contexts: {old:#}");
    fltsim::inject(&s, "create", 25, 1).unwrap();
    assert_eq!(filter(&sim(&s), "CounterFilterA")["pre"]["create"], 25);
    let r = s.loaderctl(&["rollback"]);
    assert_eq!(r.code, 0, "rollback: {}", r.all());
    wait_active(&s, 1, 1);
    let c = sim(&s);
    let v2 = filter(&c, "CounterFilterA");
    assert_eq!(v2["state"], "unregistered", "{v2:#}");
    assert_eq!(v2["contexts"], 0, "the rolled-back v2 left stream contexts: {v2:#}");
    assert_no_violations(&c, "upgrade and rollback of the relinked payload");

    // Unloading the payload brings the verifier's context count back to 0.
    assert_eq!(s.loaderctl(&["unload"]).code, 0);
    wait_status(&s, 30, "no payload", |st| st["active_slot"]["name"].is_null());
    let c = sim(&s);
    assert_eq!(total(&c, "contexts_allocated"), total(&c, "contexts_freed"), "{c:#}");
    assert_eq!(filter(&c, "CounterFilterB")["contexts"], 0, "{c:#}");
    assert_no_violations(&c, "the whole C scenario");
    let log = s.log();
    assert!(log.contains("the filter's FilterUnloadCallback (mandatory)"), "{log}");
}
