//! What the end-to-end suites (`tests/e2e*.rs`) ask of a Wine session, in
//! one place: start the loader, read its status (`loaderctl status
//! --json`), wait (bounded) for a state, and read the test world's Filter
//! Manager (`fltsimctl`). Every helper panics with what it saw, since a
//! failed read here is a failed scenario.
use crate::fltsim;
use crate::wine::{WineSession, LOADER_SERVICE};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A fresh session with the package installed from its INFs (slot
/// `active_slot` persisted, teardowns bounded by `unload_bound_ms`) and the
/// loader started.
#[must_use]
pub fn start_loader(active_slot: u32, unload_bound_ms: u32) -> WineSession {
    let s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.install(active_slot, unload_bound_ms).unwrap_or_else(|e| panic!("install: {e}"));
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start {LOADER_SERVICE} failed: {out}");
    s
}

/// `loaderctl status --json`, parsed.
#[must_use]
pub fn status(s: &WineSession) -> Value {
    let r = s.loaderctl(&["status", "--json"]);
    assert_eq!(r.code, 0, "loaderctl status --json failed: {}", r.all());
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", r.stdout))
}

/// The state name of `slot` (`active`, `empty`, `stuck`, ...).
#[must_use]
pub fn slot_state(st: &Value, slot: usize) -> String {
    st["slots"][slot]["state"]["name"].as_str().unwrap_or("?").to_owned()
}

/// The active slot's index, if one is active.
#[must_use]
pub fn active_slot(st: &Value) -> Option<u64> {
    st["active_slot"]["name"].as_str().map(|_| st["active_slot"]["raw"].as_u64().unwrap_or(99))
}

/// Polls `status` until `pred` holds or `secs` pass; returns the last status.
pub fn wait_status(s: &WineSession, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
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

/// Waits (30 s) until `slot` is the active slot, active, with `version`.
#[allow(clippy::must_use_candidate)] // most callers only wait
pub fn wait_active(s: &WineSession, slot: usize, version: u64) -> Value {
    wait_status(s, 30, &format!("slot {slot} active with v{version}"), |st| {
        active_slot(st) == u64::try_from(slot).ok()
            && slot_state(st, slot) == "active"
            && st["slots"][slot]["payload_version"].as_u64() == Some(version)
    })
}

/// The test world's Filter Manager's snapshot (`fltsimctl counters`).
#[must_use]
pub fn sim(s: &WineSession) -> Value {
    let text = fltsim::counters(s).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("counters are not JSON ({e}):\n{text}"))
}

/// The registration of `name` the simulator shows last (highest generation).
#[must_use]
pub fn filter<'a>(c: &'a Value, name: &str) -> &'a Value {
    c["filters"]
        .as_array()
        .and_then(|fs| fs.iter().filter(|f| f["name"] == name).max_by_key(|f| f["generation"].as_u64()))
        .unwrap_or_else(|| panic!("the simulator shows no filter {name}:\n{c:#}"))
}

/// One of the simulator's totals.
#[must_use]
pub fn total(c: &Value, key: &str) -> u64 {
    c["totals"][key].as_u64().unwrap_or_else(|| panic!("no total {key}:\n{c:#}"))
}

/// The simulator's verifier recorded nothing.
pub fn assert_no_violations(c: &Value, what: &str) {
    assert_eq!(total(c, "violations"), 0, "{what}: the verifier recorded violations:\n{:#}", c["violations"]);
}

/// The JSON line a `fltsimctl` loop prints after its summary line.
#[must_use]
pub fn json_line(out: &str) -> Value {
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON line in:\n{out}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The first line of `out` that starts with `prefix`.
#[must_use]
pub fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line {prefix:?} in:\n{out}"))
}

/// `fltsimctl <args>`, which must succeed; its standard output.
#[allow(clippy::must_use_candidate)] // most callers only need it to succeed
pub fn sim_ok(s: &WineSession, args: &[&str]) -> String {
    let r = fltsim::fltsimctl(s, args);
    assert_eq!(r.code, 0, "fltsimctl {args:?} failed:\n{}", r.all());
    r.stdout
}
