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

/// As [`show`], with the progress lines a console shows (the demo's
/// output is a console; the harness's capture is not).
fn show_live(s: &WineSession, args: &[&str]) -> i32 {
    println!("$ loaderctl {}", args.join(" "));
    let mut all = vec!["--progress", "always"];
    all.extend_from_slice(args);
    let r = s.loaderctl(&all);
    print!("{}", r.stdout);
    eprint!("{}", r.stderr);
    if r.code != 0 {
        println!("(loaderctl exited with code {})", r.code);
    }
    r.code
}

fn show(s: &WineSession, args: &[&str]) -> i32 {
    println!("{}", std::iter::once("$ loaderctl").chain(args.iter().copied()).collect::<Vec<_>>().join(" "));
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
        // "0168:warn:debugstr:vDbgPrintExWithPrefix 0000004d:00000008: loader: ..." -> "loader: ..."
        let text = l.split_once("vDbgPrintExWithPrefix ").and_then(|(_, t)| t.split_once(": ")).map_or(*l, |(_, t)| t);
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
    s.uninstall_leftovers()?;
    let before = s.install_state()?;
    say("Installing from the INFs, as an administrator does: `rundll32 setupapi.dll,InstallHinfSection DefaultInstall 132 payload.inf`, then the same for loader.inf. They create SerialLoader (system start) and the payload slots CounterFilterA / CounterFilterB (both holding CounterFilter v1), the loader's Parameters and its System event log source");
    s.install_from_infs()?;

    say("Starting the loader. It loads slot A with ZwLoadDriver, and only after the payload's DriverEntry has returned does it call the payload's registration entry");
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    if !ok {
        return Err(format!("sc start {LOADER_SERVICE} failed: {out}"));
    }
    wait_active(&s, 0)?;
    say("A bare `loaderctl` shows the status, as a bare `fltmc` lists filters; times are local, with the UTC offset (run the demo with TZ=... to see another zone)");
    show(&s, &[]);
    let mut seen = print_driver_log(&s, 0);
    say("The payload's filter instances, like `fltmc instances` (under Wine, from the test Filter Manager)");
    show(&s, &["instances"]);

    say("File I/O under Wine never reaches a driver, so the test world's Filter Manager (a fltmgr.sys for Wine, never shipped) delivers operations itself: 120 creates, 80 reads and 40 writes on 2 threads. CounterFilter v1 counts each one in its post-operation callback and reports to the loader");
    for (op, n) in [("create", 120), ("read", 80), ("write", 40)] {
        loader_tests::fltsim::inject(&s, op, n, 2)?;
    }
    show(&s, &["status"]);

    say("An administrator installs CounterFilter v2 into the inactive slot B and upgrades live: v2 is loaded and registered, then v1 is retired, then slot B is recorded as active");
    s.set_slot_image(1, "payload_v2.sys")?;
    show_live(&s, &["upgrade"]);
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
    show_live(&s, &["rollback"]);
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

    say("Uninstalling from the INFs: `InstallHinfSection DefaultUninstall 132` on loader.inf, then payload.inf (the loader is stopped already, so its files go now). Every service, the Parameters, the event source and the files are gone");
    s.uninstall_from_infs()?;
    let after = s.install_state()?;
    let left = before.diff(&after);
    if !left.is_empty() {
        return Err(format!("the uninstall left changes behind:\n  {}", left.join("\n  ")));
    }
    println!("    registry below Services and system32\\drivers: as before the installation");
    say(&format!("Done. The whole driver log of this run is in {}", s.log_path().display()));
    s.stop();
    Ok(())
}
