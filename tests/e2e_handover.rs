//! End-to-end scenarios of the exactly-once handover (issue 12) on the test
//! world's Filter Manager: upgrades and rollbacks under an I/O storm with no
//! operation unfiltered or processed twice, the payload's state carried
//! across every switch with nothing lost, a refused state import rolling
//! the upgrade back, and payloads built before the handover still
//! upgrading (and saying so).
//!
//! Run after `cargo xtask build`, one test at a time (each owns its Wine
//! session). `cargo xtask bench` runs the long storm (1,000 switches).
use loader_tests::e2e::status;
use loader_tests::fltsim;
use loader_tests::wine::{WineSession, LOADER_SERVICE};
use serde_json::Value;
use std::fmt::Write as _;
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
    let r = fltsim::fltsimctl_bounded(s, &args, Duration::from_mins(15));
    assert_eq!(r.code, 0, "storm failed:\n{}\n{}", r.all(), s.log());
    let line = |prefix: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{}", r.stdout))
            .to_owned()
    };
    let json =
        r.stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in:\n{}", r.stdout));
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
    // How often the old generation met a full table of marks and waited
    // for room (pressure, not a fault: still exactly once).
    let unmarked = v["unmarked"].as_u64().unwrap_or_else(|| panic!("no unmarked count: {v}"));
    println!("marks: unmarked={unmarked} (waits for room in the table of marks)");
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

/// The change tracker (the second example payload) under a storm of writes
/// to one file (write `n` to byte range `n % 1000`): every write is
/// recorded by exactly one generation and carried across every switch, and
/// the tracked set is the set written (1 file, 1,000 ranges, no overflow).
#[test]
fn the_change_tracker_records_every_write_across_switches_under_a_storm() {
    let s = start_loader("tracker.sys", "tracker_v2.sys");
    let n = "20";
    let r = fltsim::fltsimctl_bounded(
        &s,
        &["storm", "--upgrades", n, "--threads", "4", "--rollbacks", "--writes"],
        Duration::from_mins(15),
    );
    assert_eq!(r.code, 0, "storm failed:\n{}\n{}", r.all(), s.log());
    let line = |p: &str| r.stdout.lines().find(|l| l.starts_with(p)).unwrap_or_else(|| panic!("no {p}:\n{}", r.stdout));
    println!("{}", line("storm: "));
    println!("{}", line("handover: "));
    let json = r.stdout.lines().rev().find(|l| l.starts_with('{')).expect("JSON");
    let v: Value = serde_json::from_str(json).expect("JSON");
    assert_eq!((v["unfiltered"].as_u64(), v["double"].as_u64()), (Some(0), Some(0)), "{v}");
    assert_eq!(v["state_transfers"], 20, "{v}");
    assert_eq!(v["lost_updates"], 0, "writes delivered but not recorded: {v}");
    assert_eq!(v["violations"], 0, "{v}");
    // The tracked set is the set written: one file, every range of it, no
    // overflow.
    println!("{}", line("tracked: "));
    assert_eq!(v["written_ranges"], 1000, "{v}");
    assert_eq!((v["tracked_files"].as_u64(), v["tracked_overflows"].as_u64()), (Some(1), Some(0)), "{v}");
    assert_eq!(v["tracked_ranges"], v["written_ranges"], "{v}");
}

/// The tracked set is exactly the set of writes: six rounds of 600 writes,
/// each round to a file of its own, each write to a byte range of its own
/// with a gap after it, a switch (upgrade or rollback) between rounds. At
/// the end the tracker shows 6 files, 3,600 ranges and 3,600 writes
/// recorded, and no overflow.
#[test]
fn the_tracked_set_is_exactly_the_writes_across_upgrades_and_rollbacks() {
    let s = start_loader("tracker.sys", "tracker_v2.sys");
    for round in 0..6 {
        let name = format!("\\round{round}.dat");
        let r = fltsim::fltsimctl_bounded(
            &s,
            &["inject", "--op", "write", "--count", "600", "--threads", "4", "--unique-offsets", "--name", &name],
            Duration::from_mins(5),
        );
        assert_eq!(r.code, 0, "round {round}: {}", r.all());
        let verb = if round % 2 == 0 { "upgrade" } else { "rollback" };
        let sw = s.loaderctl(&[verb]);
        assert_eq!(sw.code, 0, "{verb} after round {round}: {}", sw.all());
    }
    let st = wait_for(&s, 30, "the tracker settled", |st| st["busy"] == false);
    let active = usize::try_from(st["active_slot"]["raw"].as_u64().expect("an active slot")).expect("an index");
    let report = &st["slots"][active]["report"];
    assert_eq!(report["creates"], 6, "files tracked: {report}");
    assert_eq!(report["reads"], 3600, "ranges tracked: {report}");
    assert_eq!(report["writes"], 3600, "writes recorded: {report}");
    assert_eq!(report["open_contexts"], 0, "overflows: {report}");
}

/// The set a shutdown persisted (`HKLM\Software\SerialLoader\ChangeTracker`)
/// is restored at the next start. (Wine never sends `IRP_MJ_SHUTDOWN`, so
/// the test writes what the shutdown hook writes, with the tracker's own
/// encoder, and the start does the rest.)
#[test]
fn the_change_tracker_restores_the_set_its_last_shutdown_persisted() {
    let s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.install(0, UNLOAD_BOUND_MS).unwrap_or_else(|e| panic!("install: {e}"));
    s.set_slot_image(0, "tracker.sys").unwrap();
    s.set_slot_image(1, "tracker_v2.sys").unwrap();
    let mut set = Box::new(change_set::TrackedSet::new());
    for file in 1..=3u64 {
        for i in 0..5u64 {
            set.record(file * 0x1000, i * 4096, 512);
        }
    }
    let mut blob = vec![0u8; set.encoded_len()];
    set.encode(&mut blob).unwrap();
    let hex: String = blob.iter().fold(String::new(), |mut h, b| {
        let _ = write!(h, "{b:02x}");
        h
    });
    s.reg_add("HKLM\\Software\\SerialLoader\\ChangeTracker", "TrackedSet", "REG_BINARY", &hex)
        .unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    let st = wait_for(&s, 30, "slot A active with the restored set", |st| {
        st["active_slot"]["name"] == "A" && st["slots"][0]["report"]["reads"] == 15
    });
    let report = &st["slots"][0]["report"];
    assert_eq!((report["creates"].as_u64(), report["writes"].as_u64()), (Some(3), Some(15)), "{report}");
    assert!(s.log().contains("restored the set persisted at the last shutdown"), "{}", s.log());
    // And it travels on with the next upgrade.
    assert_eq!(s.loaderctl(&["upgrade"]).code, 0);
    let st = wait_for(&s, 30, "slot B active with the carried set", |st| {
        st["active_slot"]["name"] == "B" && st["busy"] == false
    });
    assert_eq!(st["slots"][1]["report"]["reads"], 15, "{:#}", st["slots"][1]["report"]);
}
