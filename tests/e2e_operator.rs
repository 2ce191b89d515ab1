//! End-to-end checks of the operator's side under Wine: installation from
//! the real INFs and back, the event-log calls, and `loaderctl` as an
//! administrator meets it (entry points, local times, JSON, progress,
//! instances, diagnose).
//!
//! Run with `cargo xtask e2e` (or `cargo test -p loader-tests --test
//! e2e_operator -- --test-threads=1` after `cargo xtask build`). Each
//! scenario owns the Wine session.
use loader_tests::wine::{WineSession, LOADER_SERVICE};
use serde_json::Value;
use std::time::{Duration, Instant};

fn slot_state(st: &Value, slot: usize) -> String {
    st["slots"][slot]["state"]["name"].as_str().unwrap_or("?").to_owned()
}

/// Polls `status --json` until `pred` holds or `secs` pass.
fn wait_status(s: &WineSession, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = s.loaderctl(&["status", "--json"]);
        if r.code == 0 {
            if let Ok(st) = serde_json::from_str::<Value>(&r.stdout) {
                if pred(&st) {
                    return st;
                }
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last:\n{}\nlog:\n{}", r.all(), s.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_active(s: &WineSession, slot: usize, version: u64) -> Value {
    wait_status(s, 30, &format!("slot {slot} active with v{version}"), |st| {
        st["active_slot"]["raw"].as_u64() == u64::try_from(slot).ok()
            && slot_state(st, slot) == "active"
            && st["slots"][slot]["payload_version"].as_u64() == Some(version)
    })
}

fn reg_value(s: &WineSession, key: &str, name: &str) -> Option<String> {
    let r = s.wine(&["reg", "query", key, "/v", name]);
    let line = r.stdout.lines().find(|l| l.trim_start().starts_with(name))?.to_owned();
    let mut parts = line.split_whitespace();
    parts.next();
    let kind = parts.next()?;
    Some(format!("{kind} {}", parts.collect::<Vec<_>>().join(" ")))
}

/// The two debug lines the loader prints for an event: the header (its
/// symbol, Event ID and severity) and the text Event Viewer would show,
/// rendered here by the same table.
fn event_lines(id: loader_events::MessageId, strings: &[&str]) -> (String, String) {
    let m = loader_events::message(id).expect("a message of the table");
    let mut text = String::new();
    loader_events::render(m.text, loader_events::EVENT_SOURCE, strings, &mut text).expect("render");
    let header = format!("event {} (Event ID {}, {}): ", m.symbol, id.code(), id.severity().name());
    (header, format!("loader:   text: {text}\n"))
}

/// Waits (bounded) until the driver log has the event with these strings,
/// and returns what became of the entry (the header's verdict).
fn wait_event(s: &WineSession, id: loader_events::MessageId, strings: &[&str]) -> String {
    let (header, text) = event_lines(id, strings);
    s.wait_log(&text, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}\nlog:\n{}", s.log()));
    let log = s.log();
    let at = log.find(&text).expect("found");
    let start = log[..at].rfind(&header).unwrap_or_else(|| panic!("no {header:?} before {text:?}"));
    log[start + header.len()..].lines().next().unwrap_or_default().to_owned()
}

/// Installation exactly as an administrator does it, then uninstallation:
/// the registry below `Services` and the drivers folder are what they were.
/// In between, the installation as shipped boots: the loader is a
/// system-start service and comes up by itself with slot A.
#[test]
fn installing_from_the_infs_then_uninstalling_leaves_the_machine_as_before() {
    let mut s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.uninstall_leftovers().expect("no earlier installation left");
    let before = s.install_state().expect("state before");
    for file in ["loader.sys", "payload_a.sys", "payload_b.sys"] {
        assert!(!before.drivers.contains_key(file), "{file} is there before the installation");
    }
    assert!(!before.registry.keys().any(|k| k.ends_with("\\SerialLoader")), "an event source or service is left");

    s.install_from_infs().expect("install from the INFs");
    let svc = format!("HKLM\\System\\CurrentControlSet\\Services\\{LOADER_SERVICE}");
    // What the INFs say, as the service manager and setupapi wrote it.
    assert_eq!(reg_value(&s, &svc, "Start").as_deref(), Some("REG_DWORD 0x1"), "SERVICE_SYSTEM_START");
    assert_eq!(reg_value(&s, &svc, "Type").as_deref(), Some("REG_DWORD 0x1"), "SERVICE_KERNEL_DRIVER");
    assert_eq!(reg_value(&s, &svc, "Group").as_deref(), Some("REG_SZ FSFilter Activity Monitor"));
    assert_eq!(reg_value(&s, &svc, "DependOnService").as_deref(), Some("REG_MULTI_SZ FltMgr"), "restated Dependencies");
    let image_path = reg_value(&s, &svc, "ImagePath").expect("ImagePath");
    assert!(image_path.to_ascii_lowercase().ends_with("\\system32\\drivers\\loader.sys"), "{image_path}");
    assert_eq!(reg_value(&s, &format!("{svc}\\Parameters"), "SlotB").as_deref(), Some("REG_SZ CounterFilterB"));
    assert_eq!(reg_value(&s, &format!("{svc}\\Parameters"), "UnloadTimeoutMs").as_deref(), Some("REG_DWORD 0x1388"));
    let b = "HKLM\\System\\CurrentControlSet\\Services\\CounterFilterB";
    assert_eq!(reg_value(&s, b, "Type").as_deref(), Some("REG_DWORD 0x2"), "SERVICE_FILE_SYSTEM_DRIVER");
    assert_eq!(reg_value(&s, b, "Start").as_deref(), Some("REG_DWORD 0x3"), "demand start");
    assert_eq!(
        reg_value(&s, &format!("{b}\\Instances\\CounterFilterB Instance"), "Altitude").as_deref(),
        Some("REG_SZ 370031")
    );
    let source = format!("HKLM\\{}", loader_events::EVENT_SOURCE_KEY);
    assert_eq!(
        reg_value(&s, &source, "EventMessageFile").as_deref(),
        Some(format!("REG_EXPAND_SZ {}", loader_events::EVENT_MESSAGE_FILE).as_str()),
        "event source"
    );
    assert_eq!(reg_value(&s, &source, "TypesSupported").as_deref(), Some("REG_DWORD 0x7"));
    let installed = s.install_state().expect("state installed");
    let package = loader_tests::arch::package_dir();
    for (file, from) in
        [("loader.sys", "loader.sys"), ("payload_a.sys", "payload.sys"), ("payload_b.sys", "payload.sys")]
    {
        let want = std::fs::read(package.join(from)).expect("package file").len() as u64;
        assert_eq!(installed.drivers.get(file).map(|f| f.0), Some(want), "{file} not installed from {from}");
    }
    let added = before.diff(&installed);
    println!("the installation added or changed {} things:\n  {}", added.len(), added.join("\n  "));

    // Boot the installation as shipped: the loader starts by itself.
    s.clean_reboot().expect("reboot");
    let st = wait_active(&s, 0, 1);
    assert_eq!(st["persisted_slot"]["raw"], 0);
    let how = wait_event(
        &s,
        loader_events::LOADER_STARTED,
        &[env!("CARGO_PKG_VERSION"), "CounterFilterA", "CounterFilterB", "A"],
    );
    assert_eq!(how, "not written: IoAllocateErrorLogEntry returned NULL", "Wine 8 keeps no error log");

    // Uninstall: everything the installation created is gone again.
    s.uninstall_from_infs().expect("uninstall from the INFs");
    wait_event(&s, loader_events::LOADER_STOPPED, &[]);
    let after = s.install_state().expect("state after");
    let diff = before.diff(&after);
    assert!(diff.is_empty(), "after the uninstall the machine differs from before:\n  {}", diff.join("\n  "));
    let survivors = s.stop();
    assert!(survivors.is_empty(), "Wine processes survived the session's end: {survivors:?}");
}

/// Every event the loader writes is written at its moment; Wine 8 keeps no
/// error log (its `IoAllocateErrorLogEntry` returns NULL), so the entry is
/// skipped and only the driver's debug line shows the call happened.
#[test]
fn every_event_is_written_at_its_moment_and_wine_records_none() {
    use loader_events as ev;
    let s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.install(0, 2000).expect("install");
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_active(&s, 0, 1);
    let skipped = "not written: IoAllocateErrorLogEntry returned NULL";
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(wait_event(&s, ev::LOADER_STARTED, &[v, "CounterFilterA", "CounterFilterB", "A"]), skipped);
    assert_eq!(wait_event(&s, ev::PAYLOAD_LOADED, &["CounterFilter v1", "A", "CounterFilterA"]), skipped);

    s.set_slot_image(1, "payload_v2.sys").unwrap();
    assert_eq!(s.loaderctl(&["upgrade"]).code, 0);
    wait_event(&s, ev::PAYLOAD_UPGRADED, &["CounterFilter v2", "B", "CounterFilterB", "A"]);

    s.set_slot_image(0, "payload_noexport.sys").unwrap();
    assert_eq!(s.loaderctl(&["upgrade"]).code, 5);
    let refused =
        ["upgrade", "A", "CounterFilterA", "STATUS_PROCEDURE_NOT_FOUND (0xC000007A)", "slot B, CounterFilter v2"];
    assert_eq!(wait_event(&s, ev::OPERATION_REFUSED, &refused), skipped);

    s.set_slot_image(0, "payload.sys").unwrap();
    assert_eq!(s.loaderctl(&["rollback"]).code, 0);
    wait_event(&s, ev::PAYLOAD_ROLLED_BACK, &["CounterFilter v1", "A", "CounterFilterA", "B"]);

    assert_eq!(s.loaderctl(&["unload"]).code, 0);
    wait_event(&s, ev::PAYLOAD_UNLOADED, &["A", "CounterFilterA"]);

    // A payload whose teardown outlasts the bound: stuck.
    s.set_slot_image(1, "payload_hang.sys").unwrap();
    assert_eq!(s.loaderctl(&["load"]).code, 0);
    wait_active(&s, 0, 1);
    assert_eq!(s.loaderctl(&["upgrade"]).code, 0);
    wait_active(&s, 1, 1);
    s.set_slot_image(0, "payload_v2.sys").unwrap();
    assert_eq!(s.loaderctl(&["upgrade"]).code, 8);
    wait_event(&s, ev::PAYLOAD_STUCK, &["B", "CounterFilterB", "2000"]);
    wait_status(&s, 30, "the stuck slot to finish", |st| slot_state(st, 1) == "empty");

    let (ok, out) = s.sc(&["stop", LOADER_SERVICE]);
    assert!(ok, "sc stop: {out}");
    wait_event(&s, ev::LOADER_STOPPED, &[]);

    // A configuration the loader cannot use.
    let params = format!("HKLM\\System\\CurrentControlSet\\Services\\{LOADER_SERVICE}\\Parameters");
    let r = s.wine(&["reg", "add", &params, "/v", "ActiveSlot", "/t", "REG_DWORD", "/d", "7", "/f"]);
    assert_eq!(r.code, 0, "{}", r.all());
    s.wait_service_state(LOADER_SERVICE, "STOPPED", Duration::from_secs(30)).unwrap();
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_event(&s, ev::CONFIG_INVALID, &["STATUS_INVALID_PARAMETER (0xC000000D)"]);

    let log = s.log();
    let events = log.matches("loader: event SLDR_").count();
    assert_eq!(log.matches(skipped).count(), events, "an entry was written where Wine has no error log:\n{log}");
    assert!(events >= 11, "{events} events");
    println!("{events} event-log calls, every one skipped by Wine 8 (IoAllocateErrorLogEntry returned NULL)");
}

/// Minutes east of UTC in an ISO 8601 time's offset (`+05:30` → 330).
fn offset_minutes(iso: &str) -> i64 {
    if iso.ends_with('Z') {
        return 0;
    }
    let (_, hhmm) = iso.split_at(iso.len() - 6);
    let h: i64 = hhmm[1..3].parse().expect("hours");
    let m: i64 = hhmm[4..6].parse().expect("minutes");
    if hhmm.starts_with('-') {
        -(h * 60 + m)
    } else {
        h * 60 + m
    }
}

/// Minutes since midnight of an ISO 8601 time (`...T14:03:07+01:00` → 843).
fn clock_minutes(iso: &str) -> i64 {
    let t = iso.split('T').nth(1).expect("a time");
    t[0..2].parse::<i64>().expect("hour") * 60 + t[3..5].parse::<i64>().expect("minute")
}

/// `/?`, `-?` and `--help` print the usage; a bare `loaderctl` shows the
/// status; times are the machine's local time with its offset (from the
/// Windows API, with Wine's zone from `TZ`), `--utc` switches to UTC; the
/// JSON carries `schema_version` and both times.
#[test]
fn loaderctl_meets_the_administrators_habits() {
    let s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.install(0, 2000).expect("install");
    // Before the loader runs: help works, the status says it is not running.
    for flag in ["/?", "-?", "--help"] {
        let r = s.loaderctl(&[flag]);
        assert_eq!(r.code, 0, "loaderctl {flag}: {}", r.all());
        assert!(r.stdout.contains("Usage: loaderctl [OPTIONS] [COMMAND]"), "{flag}:\n{}", r.stdout);
        assert!(r.stdout.contains("instances") && r.stdout.contains("--utc") && r.stdout.contains("Exit codes:"));
    }
    let r = s.loaderctl(&[]);
    assert_eq!(r.code, 3, "bare loaderctl with no loader: {}", r.all());
    assert!(
        r.stderr.contains("STATUS_OBJECT_NAME_NOT_FOUND") && r.stderr.contains("sc start SerialLoader"),
        "{}",
        r.all()
    );

    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_active(&s, 0, 1);
    let india = [("TZ", "Asia/Kolkata")];
    let bare = s.loaderctl_env(&india, &[]);
    assert_eq!(bare.code, 0, "{}", bare.all());
    assert!(bare.stdout.starts_with("Slot  Service"), "a bare loaderctl shows the status:\n{}", bare.stdout);
    let row = bare.stdout.lines().find(|l| l.starts_with("A ")).expect("slot A's row").to_owned();
    assert!(
        row.contains("active") && row.ends_with(" +05:30"),
        "registered-since in local time with its offset: {row}"
    );
    assert!(bare.stdout.contains("Loader time:    2"), "{}", bare.stdout);
    let utc = s.loaderctl_env(&india, &["--utc"]);
    let row = utc.stdout.lines().find(|l| l.starts_with("A ")).expect("slot A's row").to_owned();
    assert!(row.ends_with(" UTC"), "--utc: {row}");
    let west = s.loaderctl_env(&[("TZ", "Etc/GMT+3")], &["status"]);
    assert!(west.stdout.lines().any(|l| l.starts_with("A ") && l.ends_with(" -03:00")), "{}", west.stdout);

    let json = s.loaderctl_env(&india, &["status", "--json"]);
    assert_eq!(json.code, 0, "{}", json.all());
    let v: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["command"], "status");
    let first_keys: Vec<usize> = ["\"schema_version\"", "\"command\"", "\"loaderctl_version\"", "\"abi\"", "\"now\""]
        .iter()
        .map(|k| json.stdout.find(k).expect(k))
        .collect();
    assert!(first_keys.windows(2).all(|w| w[0] < w[1]), "keys out of the documented order:\n{}", json.stdout);
    let (utc_now, local_now) = (v["now"]["utc"].as_str().unwrap(), v["now"]["local"].as_str().unwrap());
    assert!(utc_now.ends_with('Z') && local_now.ends_with("+05:30"), "{utc_now} / {local_now}");
    assert_eq!(offset_minutes(local_now), 330);
    assert_eq!((clock_minutes(utc_now) + 330) % 1440, clock_minutes(local_now), "{utc_now} vs {local_now}");
    let survivors = s.stop();
    assert!(survivors.is_empty(), "{survivors:?}");
}

/// A long upgrade shows its phases as they happen when asked for
/// (`--progress always`; on a console that is the default); on a pipe and
/// with `--json` it prints none.
#[test]
fn a_long_upgrade_shows_its_phases_and_a_pipe_gets_none() {
    let s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    // The old payload's teardown takes 8 s, within the 20 s bound.
    s.install(0, 20_000).expect("install");
    s.set_slot_image(0, "payload_hang.sys").unwrap();
    s.set_slot_image(1, "payload_v2.sys").unwrap();
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_active(&s, 0, 1);
    let r = s.loaderctl(&["--progress", "always", "upgrade"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let phases: Vec<(f64, String)> = r
        .stdout
        .lines()
        .filter_map(|l| {
            let (t, text) = l.trim_start().split_once(" s  ")?;
            Some((t.trim().parse().ok()?, text.to_owned()))
        })
        .collect();
    // A quiet stretch (the 8 s teardown) gets a "still waiting" line.
    assert!(phases.iter().any(|(_, t)| t.starts_with("... still waiting after: retiring")), "{}", r.stdout);
    let phases: Vec<(f64, String)> = phases.into_iter().filter(|(_, t)| !t.starts_with("...")).collect();
    let texts: Vec<&str> = phases.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "loading slot B (CounterFilterB): ZwLoadDriver runs its DriverEntry",
            "DriverEntry returned; the loader calls the payload's registration",
            "registered: slot B filters",
            "switched: slot B is the active slot",
            "retiring the old payload in slot A (teardown, then ZwUnloadDriver)",
            "slot A is unloaded",
            "persisted: Parameters\\ActiveSlot = B",
        ],
        "{}",
        r.stdout
    );
    // The phases came as they happened: the retirement took its 8 s.
    let retiring = phases[4].0;
    let unloaded = phases[5].0;
    assert!(unloaded - retiring >= 5.0, "retiring at {retiring} s, unloaded at {unloaded} s:\n{}", r.stdout);
    assert!(r.stdout.contains("upgrade: now active: slot B"), "{}", r.stdout);

    // Back, on a pipe (the harness's stdout is a file): no progress lines.
    s.set_slot_image(0, "payload_hang.sys").unwrap();
    let r = s.loaderctl(&["upgrade"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains(" s  "), "progress on a pipe:\n{}", r.stdout);
    let r = s.loaderctl(&["--json", "--progress", "always", "rollback"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v: Value = serde_json::from_str(&r.stdout).expect("only one JSON document");
    assert_eq!(v["command"], "rollback");
    assert_eq!(v["status"]["name"], "STATUS_SUCCESS");
    assert_eq!(v["active_after"]["name"], "B");
}

/// Seed 002 under the test Filter Manager: a file on `\TSCLIENT\SCARD` kept
/// open holds the payload's stream context, so its instance on the Mup
/// volume cannot finish its teardown. `instances` shows it detaching;
/// `diagnose` names the file, its volume and how long it has been held,
/// and the instance that refuses its teardown. When the file closes, the
/// payload unloads and `diagnose` says all is well.
#[test]
#[allow(clippy::many_single_char_names)] // s(ession), r(esult), d(iagnose), j(son), v(alue), i(nstances)
fn diagnose_names_the_open_file_that_keeps_the_payload_loaded() {
    use loader_tests::fltsim;
    let mut s = WineSession::start().unwrap_or_else(|e| panic!("Wine session: {e}"));
    s.install(0, 2000).expect("install");
    s.set_slot_image(0, "slow_payload.sys").unwrap();
    s.set_slot_image(1, "payload_v2.sys").unwrap();
    s.clean_reboot().unwrap();
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_active(&s, 0, 1);

    let r = s.loaderctl(&["instances"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for volume in ["\\Device\\HarddiskVolume1", "\\Device\\Mup"] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with("A ") && l.contains(volume) && l.contains("370030") && l.ends_with("yes")),
            "slot A attached on {volume}:\n{}",
            r.stdout
        );
    }
    assert!(r.stdout.lines().any(|l| l.starts_with("B ") && l.contains("370031") && l.ends_with("no")), "{}", r.stdout);
    assert!(r.stdout.contains("Source: the test Filter Manager"), "{}", r.stdout);

    let opened = fltsim::fltsimctl(&s, &["open", "--volume", "mup", "--name", "\\TSCLIENT\\SCARD\\2"]);
    assert_eq!(opened.code, 0, "{}", opened.all());
    let id = opened.stdout.split_whitespace().find_map(|w| w.strip_prefix("id=")).expect("id").to_owned();
    wait_status(&s, 15, "the stream context reported", |st| st["slots"][0]["report"]["open_contexts"] == 1);
    let r = s.loaderctl(&["--progress", "always", "upgrade"]);
    assert_eq!(r.code, 8, "the old slot should be stuck:\n{}", r.all());
    assert!(
        r.stdout.contains("s  slot A did not finish unloading within the loader's bound: it is stuck"),
        "the progress does not say the old slot is stuck:\n{}",
        r.stdout
    );
    assert!(!r.stdout.contains("slot A is unloaded"), "{}", r.stdout);
    std::thread::sleep(Duration::from_millis(1500));

    let d = s.loaderctl(&["diagnose"]);
    assert_eq!(d.code, 8, "{}", d.all());
    let text = &d.stdout;
    assert!(text.contains("Slot A (CounterFilterA") && text.contains("is STUCK"), "{text}");
    assert!(
        text.contains("    \\Device\\Mup\\TSCLIENT\\SCARD\\2: open, 1 stream context(s); held for at least "),
        "the file and its volume are not named:\n{text}"
    );
    assert!(text.contains("CounterFilterA on \\Device\\Mup: "), "the refusing instance is not named:\n{text}");
    assert!(
        text.contains("Why: an open file keeps a filter instance draining: \\Device\\Mup\\TSCLIENT\\SCARD\\2"),
        "{text}"
    );
    let j = s.loaderctl(&["diagnose", "--json"]);
    let v: Value = serde_json::from_str(&j.stdout).expect("JSON");
    assert_eq!(v["held"][0]["volume"], "\\Device\\Mup", "{v:#}");
    assert_eq!(v["held"][0]["file"], "\\TSCLIENT\\SCARD\\2");
    assert!(v["held"][0]["held_at_least_ms"].as_u64().unwrap() >= 1000, "{v:#}");
    assert_eq!(v["refusing"][0]["filter"], "CounterFilterA");
    let i = s.loaderctl(&["instances"]);
    assert!(
        i.stdout.lines().any(|l| l.starts_with("A ") && l.contains("\\Device\\Mup") && !l.ends_with("yes")),
        "{}",
        i.stdout
    );

    // The file closes: the teardown completes, the payload unloads.
    let closed = fltsim::fltsimctl(&s, &["close", "--id", &id]);
    assert_eq!(closed.code, 0, "{}", closed.all());
    wait_status(&s, 30, "slot A to finish", |st| slot_state(st, 0) == "empty");
    let d = s.loaderctl(&["diagnose"]);
    assert_eq!(d.code, 0, "{}", d.all());
    assert!(d.stdout.starts_with("Healthy: slot B"), "{}", d.stdout);
    s.stop();
}
