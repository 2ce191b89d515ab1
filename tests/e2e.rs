//! End-to-end suite: the real `loader.sys`, `payload.sys` (and its fault
//! builds) and `loaderctl.exe` under Wine, driven only through `loaderctl`
//! and the service manager, asserting on what a user sees and on the
//! drivers' debug log.
//!
//! Run with `cargo xtask e2e` (it builds the package and the Wine prefix
//! first). Scenarios run one at a time: each owns the Wine session.
use loader_tests::wine::{CtlResult, WineSession, LOADER_SERVICE};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The bound on a payload's teardown used by the suite (ms).
const UNLOAD_BOUND_MS: u32 = 2000;

fn start_loader(active_slot: u32) -> WineSession {
    let s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.install(active_slot, UNLOAD_BOUND_MS).unwrap_or_else(|e| panic!("install: {e}"));
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start {LOADER_SERVICE} failed: {out}");
    s
}

fn status(s: &WineSession) -> Value {
    let r = s.loaderctl(&["status", "--json"]);
    assert_eq!(r.code, 0, "loaderctl status --json failed: {}", r.all());
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", r.stdout))
}

fn slot_state(st: &Value, slot: usize) -> String {
    st["slots"][slot]["state"]["name"].as_str().unwrap_or("?").to_owned()
}

fn active_slot(st: &Value) -> Option<u64> {
    st["active_slot"]["name"].as_str().map(|_| st["active_slot"]["raw"].as_u64().unwrap_or(99))
}

/// Polls `status` until `pred` holds or `secs` pass; returns the last status.
fn wait_status(s: &WineSession, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
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

fn wait_active(s: &WineSession, slot: u64, version: u64) -> Value {
    wait_status(s, 30, &format!("slot {slot} active with v{version}"), |st| {
        active_slot(st) == Some(slot)
            && slot_state(st, slot as usize) == "active"
            && st["slots"][slot as usize]["payload_version"].as_u64() == Some(version)
    })
}

fn expect_code(r: &CtlResult, code: i32, what: &str) {
    assert_eq!(r.code, code, "{what}: expected exit code {code}, got {}:\n{}", r.code, r.all());
}

/// Index of the first log line containing `needle` (after `from`).
fn log_pos(log: &str, needle: &str) -> Option<usize> {
    log.find(needle)
}

#[test]
fn lifecycle_start_upgrade_upgrade_back_stop() {
    let s = start_loader(0);
    // Starting the loader service loads and registers slot A.
    let st = wait_active(&s, 0, 1);
    assert_eq!(st["slots"][0]["name"], "CounterFilter v1");
    assert_ne!(st["slots"][0]["registered_since"]["raw"].as_u64(), Some(0), "registered_since unset");
    assert_eq!(slot_state(&st, 1), "empty");
    let table = s.loaderctl(&["status"]);
    expect_code(&table, 0, "status");
    assert!(table.stdout.contains("CounterFilterA") && table.stdout.contains("active"), "table:\n{}", table.stdout);

    // The payload's DriverEntry finished before its registration began.
    let log = s.log();
    let entry = log_pos(&log, "payload: DriverEntry done").expect("payload DriverEntry logged");
    let registered = log_pos(&log, "registration entry returned").expect("registration logged");
    assert!(entry < registered, "registration before DriverEntry returned:\n{log}");

    // Upgrade v1 (A) → v2 (B).
    s.set_slot_image(1, "payload_v2.sys").unwrap();
    let r = s.loaderctl(&["upgrade"]);
    expect_code(&r, 0, "upgrade to v2");
    let st = wait_active(&s, 1, 2);
    assert_eq!(st["slots"][1]["name"], "CounterFilter v2");
    let st = wait_status(&s, 15, "slot A retired", |st| slot_state(st, 0) == "empty");
    assert_eq!(st["persisted_slot"]["raw"], 1, "active slot not persisted");
    assert_eq!(s.parameter("ActiveSlot"), Some(1), "Parameters\\ActiveSlot not written");

    // And back: v2 (B) → v1 (A).
    let r = s.loaderctl(&["upgrade"]);
    expect_code(&r, 0, "upgrade back to v1");
    wait_active(&s, 0, 1);
    wait_status(&s, 15, "slot B retired", |st| slot_state(st, 1) == "empty");
    assert_eq!(s.parameter("ActiveSlot"), Some(0));

    // Stopping the loader unloads the payload first, then itself.
    let (ok, out) = s.sc(&["stop", LOADER_SERVICE]);
    assert!(ok, "sc stop failed: {out}");
    std::thread::sleep(Duration::from_millis(500));
    let log = s.log();
    let payload_gone = log.rfind("payload: DriverUnload").expect("payload unloaded");
    let loader_gone = log.rfind("loader: unloaded").expect("loader unloaded");
    assert!(payload_gone < loader_gone, "loader left before its payload:\n{log}");
    let r = s.loaderctl(&["status"]);
    expect_code(&r, 3, "status after the loader stopped");
}

/// One failure-injection case: the image put in slot B, the status the
/// upgrade must fail with, and loaderctl's exit code for that class.
fn refused_upgrade(s: &WineSession, image: &str, status_name: &str, code: i32) {
    s.set_slot_image(1, image).unwrap();
    let r = s.loaderctl(&["upgrade"]);
    expect_code(&r, code, &format!("upgrade to {image}"));
    assert!(r.all().contains(status_name), "{image}: message lacks {status_name}:\n{}", r.all());
    // The previous payload is still the active one, and status says why.
    let st =
        wait_status(s, 15, "slot B back to empty", |st| slot_state(st, 1) == "empty" || slot_state(st, 1) == "failed");
    assert_eq!(active_slot(&st), Some(0), "{image}: active slot changed:\n{st:#}");
    assert_eq!(slot_state(&st, 0), "active", "{image}: v1 no longer active");
    assert_eq!(st["slots"][0]["payload_version"], 1);
    assert_eq!(st["last_error"]["status"]["name"], status_name, "{image}: last error:\n{st:#}");
    assert_eq!(st["persisted_slot"]["raw"], 0, "{image}: a failed upgrade was persisted");
}

#[test]
fn failure_injection_keeps_the_previous_payload_active() {
    let s = start_loader(0);
    wait_active(&s, 0, 1);
    refused_upgrade(&s, "payload_noexport.sys", "STATUS_PROCEDURE_NOT_FOUND", 5);
    refused_upgrade(&s, "payload_badmagic.sys", "STATUS_INVALID_IMAGE_FORMAT", 5);
    refused_upgrade(&s, "payload_badabi.sys", "STATUS_REVISION_MISMATCH", 5);
    refused_upgrade(&s, "payload_regfail.sys", "STATUS_FLT_INSTANCE_ALTITUDE_COLLISION", 6);
    // After all that the loader still serves, and a good upgrade still works.
    s.set_slot_image(1, "payload_v2.sys").unwrap();
    expect_code(&s.loaderctl(&["upgrade"]), 0, "upgrade to v2 after the failures");
    wait_active(&s, 1, 2);
    let log = s.log();
    assert!(log.contains("STATUS_PROCEDURE_NOT_FOUND"), "log lacks the missing-export reason");
}

/// Its own session: after a DriverEntry fails, Wine 8 keeps that image
/// mapped under the slot's path, so a later load of the same slot would run
/// it again (Windows unmaps an image whose DriverEntry failed).
#[test]
fn driver_entry_failure_keeps_the_previous_payload_active() {
    let s = start_loader(0);
    wait_active(&s, 0, 1);
    refused_upgrade(&s, "payload_entryfail.sys", "STATUS_INSUFFICIENT_RESOURCES", 6);
    // The loader still serves requests and v1 still filters.
    let st = status(&s);
    assert_eq!(slot_state(&st, 0), "active");
    assert!(s.log().contains("DriverEntry fails on purpose"), "the fault build did not run");
}

#[test]
fn teardown_that_never_ends_is_reported_not_waited_for() {
    let s = start_loader(0);
    wait_active(&s, 0, 1);
    // A payload whose teardown outlasts the bound (an open file keeps it draining).
    s.set_slot_image(1, "payload_hang.sys").unwrap();
    expect_code(&s.loaderctl(&["upgrade"]), 0, "upgrade to the hanging payload");
    wait_active(&s, 1, 1);
    // Retiring it: the new payload goes active, the old one is reported stuck.
    s.set_slot_image(0, "payload_v2.sys").unwrap();
    let started = Instant::now();
    let r = s.loaderctl(&["upgrade"]);
    let took = started.elapsed();
    expect_code(&r, 8, "upgrade away from the hanging payload");
    assert!(took < Duration::from_secs(7), "the caller was held {took:?}, beyond the bound");
    let st = status(&s);
    assert_eq!(active_slot(&st), Some(0));
    assert_eq!(slot_state(&st, 1), "stuck", "old slot not reported stuck:\n{st:#}");
    assert_eq!(st["slots"][1]["report"]["open_contexts"], 1, "what the payload holds is not shown");
    let d = s.loaderctl(&["diagnose"]);
    assert!(d.stdout.contains("CounterFilterB"), "diagnose does not name the payload:\n{}", d.all());
    assert!(d.stdout.to_lowercase().contains("open"), "diagnose does not say what it holds:\n{}", d.all());
    // The loader keeps serving meanwhile, and the slot clears once the file closes.
    expect_code(&s.loaderctl(&["status"]), 0, "status while a slot is stuck");
    let st = wait_status(&s, 30, "stuck slot to finish", |st| slot_state(st, 1) == "empty");
    assert_eq!(st["slots"][1]["report"]["pool_outstanding"], 0, "the retired payload leaked pool");
}

#[test]
fn malformed_control_requests_get_clean_errors_and_the_loader_keeps_serving() {
    let s = start_loader(0);
    wait_active(&s, 0, 1);
    let codes = shared_abi::control::ALL_IOCTLS.iter().map(|c| c.0).chain([0x0022_0000, 0x0022_2003, 0xDEAD_BEEF]);
    let shapes: [&[&str]; 6] = [
        &["--null-input", "--null-output"],
        &["--input-len", "3", "--output-len", "4"],
        &["--input-len", "4096", "--output-len", "8"],
        &["--input-len", "16", "--null-output"],
        &["--input-hex", "10000000ffff0000ffffffff00000000", "--output-len", "16"],
        &["--input-hex", "1000000001000000ff00000000000000", "--output-len", "16"],
    ];
    let mut checked = 0;
    for code in codes {
        for shape in shapes {
            let hex = format!("0x{code:08X}");
            let mut args = vec!["raw", "--code", hex.as_str()];
            args.extend_from_slice(shape);
            let r = s.loaderctl(&args);
            let out = r.all();
            let name = out
                .split_whitespace()
                .find_map(|w| w.strip_prefix("status="))
                .unwrap_or_else(|| panic!("raw {args:?}: no status in output:\n{out}"));
            assert!(name.starts_with("STATUS_"), "raw {args:?}: status not symbolic: {name}");
            assert_ne!(name, "STATUS_SUCCESS", "raw {args:?} was accepted:\n{out}");
            checked += 1;
        }
        // The loader still answers, and still has its payload.
        let st = status(&s);
        assert_eq!(slot_state(&st, 0), "active", "after code 0x{code:08X}");
    }
    println!("malformed requests checked: {checked}");
}

#[test]
fn soak_1000_upgrade_cycles_leak_nothing() {
    let s = start_loader(0);
    wait_active(&s, 0, 1);
    s.set_slot_image(1, "payload_v2.sys").unwrap();
    // Warm up, then measure the device process.
    let warm = s.loaderctl(&["cycle", "--count", "20"]);
    expect_code(&warm, 0, "warm-up cycles");
    let before = s.device_process_usage().expect("winedevice.exe running");
    let r = s.loaderctl(&["cycle", "--count", "1000"]);
    expect_code(&r, 0, "1000 upgrade cycles");
    let after = s.device_process_usage().expect("winedevice.exe running");
    let st = status(&s);
    let p = &st["loader_pool"];
    assert_eq!(p["outstanding"], 0, "loader pool not back to zero: {p}");
    for slot in 0..2 {
        let rep = &st["slots"][slot]["report"];
        if slot_state(&st, slot) == "empty" {
            assert_eq!(rep["pool_outstanding"], 0, "retired slot {slot} leaked pool: {rep}");
        } else {
            assert_eq!(rep["pool_outstanding"], 1, "active slot {slot} should hold exactly its table: {rep}");
        }
    }
    let rss_growth = after.0.saturating_sub(before.0);
    let fd_growth = after.2.saturating_sub(before.2);
    println!(
        "soak: 1000 cycles; winedevice RSS {} kB -> {} kB (+{rss_growth} kB), VM {} kB -> {} kB, handles(fds) {} -> {} (+{fd_growth}); loader pool allocs={} frees={}",
        before.0, after.0, before.1, after.1, before.2, after.2, p["allocs"], p["frees"]
    );
    assert!(fd_growth <= 16, "winedevice.exe handles grew by {fd_growth}");
    assert!(rss_growth <= 16 * 1024, "winedevice.exe RSS grew by {rss_growth} kB");
}

#[test]
fn power_loss_during_an_upgrade_comes_back_on_a_consistent_slot() {
    let mut s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    // A long bound, so the upgrade below is still retiring the old payload
    // (the new one registered, the switch not yet persisted) when power goes.
    s.install(0, 20_000).unwrap();
    s.set_slot_image(0, "payload_hang.sys").unwrap();
    s.set_slot_image(1, "payload_v2.sys").unwrap();
    // The installation is on disk, as on a machine that has booted since.
    s.clean_reboot().unwrap();
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_active(&s, 0, 1);
    let mut upgrade = s.spawn_loaderctl(&["upgrade"]).expect("loaderctl upgrade");
    // Wait until v2 registered while v1's teardown is still running. (Under
    // Wine, winedevice.exe dispatches one IRP at a time, so a status request
    // would queue behind the upgrade; the drivers' log shows the point.)
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = s.log();
        if log.contains("slot B registration entry returned STATUS_SUCCESS") {
            assert!(!log.contains("teardown (asked by the loader)"), "v1 retired too early:\n{log}");
            break;
        }
        assert!(Instant::now() < deadline, "v2 never registered:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The switch is not persisted before the old payload is retired.
    assert_eq!(s.parameter("ActiveSlot"), Some(0), "persisted before the old payload was retired");
    s.reboot().unwrap();
    let _ = upgrade.kill();
    let _ = upgrade.wait();
    // After the reboot the loader comes back on the persisted slot, whose
    // image is installed and registers fine: consistent, nothing half-done.
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start after reboot: {out}");
    let st = wait_active(&s, 0, 1);
    assert_eq!(slot_state(&st, 1), "empty");
    assert_eq!(st["persisted_slot"]["raw"], 0);

    // (That a *completed* upgrade survives a power loss rests on the
    // ZwFlushKey at the commit point; wineserver's flush is a no-op, so Wine
    // cannot show it. See docs/architecture.md.)
}

#[test]
fn control_requests_cannot_name_a_driver_and_nothing_is_loaded() {
    let s = start_loader(0);
    wait_active(&s, 0, 1);
    let loads_before = s.log().matches("ZwLoadDriver").count();
    let upgrade = format!("0x{:08X}", shared_abi::control::IOCTL_LOADER_UPGRADE.0);
    // The slot field is the only selector: anything but 0, 1 or SLOT_NONE is refused.
    for slot in ["02000000", "ff000000", "00000100"] {
        let hex = format!("1000000001000000{slot}00000000");
        let r = s.loaderctl(&["raw", "--code", &upgrade, "--input-hex", &hex, "--output-len", "16"]);
        assert!(r.all().contains("status=STATUS_INVALID_PARAMETER"), "slot {slot}: {}", r.all());
    }
    // A request carrying a service name or a path instead of a slot.
    let mut name = Vec::new();
    for text in ["EvilDriver", "\\??\\C:\\evil.sys"] {
        name.clear();
        for u in text.encode_utf16().chain(std::iter::once(0)) {
            name.extend_from_slice(&u.to_le_bytes());
        }
        let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let r = s.loaderctl(&["raw", "--code", &upgrade, "--input-hex", &hex, "--output-len", "16"]);
        let out = r.all();
        assert!(out.contains("status=STATUS_"), "{text}: {out}");
        assert!(!out.contains("status=STATUS_SUCCESS"), "{text} was accepted: {out}");
    }
    let loads_after = s.log().matches("ZwLoadDriver").count();
    assert_eq!(loads_before, loads_after, "a refused request loaded a driver:\n{}", s.log());
    assert_eq!(slot_state(&status(&s), 1), "empty");
}
