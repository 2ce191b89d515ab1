//! End-to-end scenarios of the exactly-once handover (issue 12) on the test
//! world's Filter Manager: upgrades and rollbacks under an I/O storm with no
//! operation unfiltered or processed twice, the payload's state carried
//! across every switch with nothing lost, a refused state import rolling
//! the upgrade back, and payloads built before the handover still
//! upgrading (and saying so).
//!
//! Run after `cargo xtask build`, one test at a time (each owns its Wine
//! session). `cargo xtask bench` runs the long storm (1,000 switches).
use loader_tests::fltsim;
use loader_tests::wine::{WineSession, LOADER_SERVICE};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The bound on a payload's teardown used here (ms).
const UNLOAD_BOUND_MS: u32 = 2000;
/// Switches of the storm in the suite (upgrades alternating with rollbacks).
const SWITCHES: u32 = 100;

fn start_loader(a: &str, b: &str) -> WineSession {
    let s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.install(0, UNLOAD_BOUND_MS).unwrap_or_else(|e| panic!("install: {e}"));
    s.set_slot_image(0, a).unwrap_or_else(|e| panic!("slot A image: {e}"));
    s.set_slot_image(1, b).unwrap_or_else(|e| panic!("slot B image: {e}"));
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start {LOADER_SERVICE} failed: {out}");
    wait_for(&s, 30, "slot A active", |st| st["active_slot"]["name"] == "A" && st["busy"] == false);
    s
}

fn status(s: &WineSession) -> Value {
    let r = s.loaderctl(&["status", "--json"]);
    assert_eq!(r.code, 0, "loaderctl status --json failed: {}", r.all());
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", r.stdout))
}

fn wait_for(s: &WineSession, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let st = status(s);
        if pred(&st) {
            return st;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last status:\n{st:#}\nlog:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `fltsimctl storm` and returns its `storm:` and `handover:` lines
/// and its JSON.
fn storm(s: &WineSession, switches: u32, rollbacks: bool) -> (String, String, Value) {
    let n = switches.to_string();
    let mut args = vec!["storm", "--upgrades", &n, "--threads", "4"];
    if rollbacks {
        args.push("--rollbacks");
    }
    let r = fltsim::fltsimctl_bounded(s, &args, Duration::from_secs(900));
    assert_eq!(r.code, 0, "storm failed:\n{}\n{}", r.all(), s.log());
    let line = |prefix: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{}", r.stdout))
            .to_owned()
    };
    let json = r.stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in:\n{}", r.stdout));
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    (line("storm: "), line("handover: "), v)
}

/// The heart of issue 12: 100 switches (upgrades alternating with
/// rollbacks) while 4 threads inject creates, reads and writes without
/// pause. Every operation is processed by exactly one generation (the
/// verifier counts those no payload processed and those two processed),
/// every switch carries the counter filter's totals across, and the active
/// payload's totals at the end account for every operation delivered.
#[test]
fn switches_under_a_storm_hand_over_exactly_once_and_carry_the_state() {
    let s = start_loader("payload.sys", "payload_v2.sys");
    let (storm_line, handover_line, v) = storm(&s, SWITCHES, true);
    println!("{storm_line}");
    println!("{handover_line}");
    assert_eq!(v["upgrades"], SWITCHES, "{v}");
    assert!(v["ops"].as_u64() > Some(u64::from(SWITCHES) * 100), "the storm delivered too little: {v}");
    assert_eq!(v["unfiltered"], 0, "operations no generation processed: {storm_line}");
    assert_eq!(v["double"], 0, "operations two generations processed: {storm_line}");
    assert_eq!(v["max_gap_ops"], 0, "{storm_line}");
    assert_eq!(v["violations"], 0, "{v}");
    assert_eq!(v["exact_handovers"], SWITCHES, "every switch was an exact handover: {v}");
    assert_eq!(v["state_transfers"], SWITCHES, "every switch carried the state: {handover_line}");
    assert_eq!(v["lost_updates"], 0, "{handover_line}: {v}");
    assert_eq!(v["refused"], 0, "{handover_line}");
    // The loader's own pool (the state blobs) is back to zero.
    let st = status(&s);
    let pool = &st["loader_pool"];
    assert_eq!(pool["allocs"], pool["frees"], "state blobs left allocated: {pool}");
    let c: Value = serde_json::from_str(&fltsim::counters(&s).unwrap()).unwrap();
    assert_eq!(c["totals"]["violations"], 0, "{:#}", c["violations"]);
}

/// A state the new payload cannot read (another schema) is refused by its
/// import: the upgrade is rolled back before the switch, the old payload
/// stays active with its totals, and status names the refusal.
#[test]
fn a_refused_state_import_rolls_the_upgrade_back_and_keeps_the_state() {
    let s = start_loader("payload.sys", "payload_v2_schema2.sys");
    fltsim::reset(&s).unwrap();
    fltsim::inject(&s, "write", 40, 2).unwrap();
    let before = wait_for(&s, 15, "the 40 writes counted", |st| st["slots"][0]["report"]["writes"] == 40);
    let r = s.loaderctl(&["upgrade"]);
    assert_ne!(r.code, 0, "the upgrade into a payload refusing the state succeeded:\n{}", r.all());
    assert!(r.all().contains("STATUS_REVISION_MISMATCH"), "the refusal is not named:\n{}", r.all());
    let st = wait_for(&s, 30, "slot A active again, slot B retired", |st| {
        st["active_slot"]["name"] == "A" && st["busy"] == false && st["slots"][1]["state"]["name"] == "empty"
    });
    assert_eq!(st["slots"][0]["report"]["writes"], before["slots"][0]["report"]["writes"], "the totals changed");
    assert_eq!(st["last_error"]["status"]["name"], "STATUS_REVISION_MISMATCH", "{st:#}");
    fltsim::inject(&s, "write", 5, 1).unwrap();
    wait_for(&s, 15, "slot A still counting", |st| st["slots"][0]["report"]["writes"] == 45);
    let c: Value = serde_json::from_str(&fltsim::counters(&s).unwrap()).unwrap();
    assert_eq!(c["totals"]["unfiltered"], 0, "{c:#}");
    assert_eq!(c["totals"]["double"], 0, "{c:#}");
}

/// Payloads built before the handover (no quiesce entry, ABI 1.1) still
/// upgrade; the loader says there was no exact handover. The storm shows
/// why it matters: both filtered for a moment.
#[test]
fn payloads_too_old_for_the_handover_still_upgrade_and_say_so() {
    let s = start_loader("payload_old.sys", "payload_v2_old.sys");
    let (storm_line, handover_line, v) = storm(&s, 4, false);
    println!("{storm_line}");
    println!("{handover_line}");
    assert_eq!(v["upgrades"], 4, "{v}");
    assert_eq!(v["handover_mode"], 2, "the loader did not report \"none (payload too old)\": {v}");
    assert_eq!(v["exact_handovers"], 0, "{v}");
    assert_eq!(v["state_transfers"], 0, "{v}");
    assert_eq!(v["violations"], 0, "{v}");
    let st = status(&s);
    assert_eq!(st["active_slot"]["name"], "A", "{st:#}");
}
