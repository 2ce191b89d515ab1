//! `demo`: the README's first command. Builds everything, installs it into
//! the Wine prefix, and tells the story of the product in plain words:
//! load, live upgrade, a refused broken upgrade, rollback, stop.
use crate::{build, setup};
use loader_tests::wine::{WineSession, LOADER_SERVICE};
use std::time::{Duration, Instant};

fn say(step: &str) {
    println!();
    println!("\u{2500}\u{2500} {step}");
}

fn show(s: &WineSession, args: &[&str]) -> i32 {
    println!("$ loaderctl {}", args.join(" "));
    let r = s.loaderctl(args);
    print!("{}", r.stdout);
    eprint!("{}", r.stderr);
    if r.code != 0 {
        println!("(loaderctl exited with code {})", r.code);
    }
    r.code
}

/// Waits until `status --json` says `slot` is the active slot.
fn wait_active(s: &WineSession, slot: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let r = s.loaderctl(&["status", "--json"]);
        let active =
            serde_json::from_str::<serde_json::Value>(&r.stdout).ok().and_then(|v| v["active_slot"]["raw"].as_u64());
        if r.code == 0 && active == Some(slot) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("slot {slot} did not become active; see {}", s.log_path().display()))
}

fn print_driver_log(s: &WineSession, from_line: usize) -> usize {
    let log = s.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("loader: ") || l.contains("payload")).collect();
    for l in lines.iter().skip(from_line) {
        let text = l.split_once("00000001: ").map_or(*l, |(_, t)| t);
        println!("    | {text}");
    }
    lines.len()
}

pub fn run() -> Result<(), String> {
    say("Building loader.sys, payload.sys (and test variants) and loaderctl.exe for Windows 7 x64");
    build::run()?;
    setup::ensure_wine_prefix()?;

    say("Starting Wine: its winedevice.exe hosts the real .sys images, as the Windows kernel would");
    let s = WineSession::start()?;
    say("Installing the services as loader.inf and payload.inf describe: SerialLoader, and the payload slots CounterFilterA / CounterFilterB (both holding CounterFilter v1)");
    s.install(0, 3000)?;

    say("Starting the loader. It loads slot A with ZwLoadDriver, and only after the payload's DriverEntry has returned does it call the payload's registration entry");
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    if !ok {
        return Err(format!("sc start {LOADER_SERVICE} failed: {out}"));
    }
    wait_active(&s, 0)?;
    show(&s, &["status"]);
    let mut seen = print_driver_log(&s, 0);

    say("File I/O under Wine never reaches a driver, so the test world's Filter Manager (a fltmgr.sys for Wine, never shipped) delivers operations itself: 120 creates, 80 reads and 40 writes on 2 threads. CounterFilter v1 counts each one in its post-operation callback and reports to the loader");
    for (op, n) in [("create", 120), ("read", 80), ("write", 40)] {
        loader_tests::fltsim::inject(&s, op, n, 2)?;
    }
    show(&s, &["status"]);

    say("An administrator installs CounterFilter v2 into the inactive slot B and upgrades live: v2 is loaded and registered, then v1 is retired, then slot B is recorded as active");
    s.set_slot_image(1, "payload_v2.sys")?;
    show(&s, &["upgrade"]);
    wait_active(&s, 1)?;
    show(&s, &["status"]);
    seen = print_driver_log(&s, seen);

    say("Now a broken v3 goes into slot A: it lacks the registration export. The loader checks the image before running any of its code, refuses it, and v2 keeps filtering");
    s.set_slot_image(0, "payload_noexport.sys")?;
    let code = show(&s, &["upgrade"]);
    if code == 0 {
        return Err("the broken upgrade was accepted".into());
    }
    show(&s, &["status"]);
    seen = print_driver_log(&s, seen);

    say("Rolling back: v1 goes back into slot A, and `loaderctl rollback` switches to it");
    s.set_slot_image(0, "payload.sys")?;
    show(&s, &["rollback"]);
    wait_active(&s, 0)?;
    show(&s, &["status"]);
    seen = print_driver_log(&s, seen);

    say(
        "Stopping the loader: it retires its payload first (teardown waits on the loader's event), then unloads itself",
    );
    let (ok, out) = s.sc(&["stop", LOADER_SERVICE]);
    if !ok {
        return Err(format!("sc stop {LOADER_SERVICE} failed: {out}"));
    }
    std::thread::sleep(Duration::from_millis(500));
    print_driver_log(&s, seen);
    say(&format!("Done. The whole driver log of this run is in {}", s.log_path().display()));
    s.stop();
    Ok(())
}
