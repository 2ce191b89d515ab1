//! The test world's Filter Manager in a Wine session (`tests/fltmgr`).
//!
//! Every session installs it: `fltmgr.sys` over Wine's builtin placeholder
//! in `system32\drivers`, the `fltmgr.sys=native` override in
//! `HKCU\Software\Wine\DllOverrides` (the name needs its extension; only
//! `.dll` is stripped), and a `FltMgr` kernel service in the loader's
//! load-order group (`FSFilter Activity Monitor`), started before anything
//! else, so its `DriverEntry` runs in the very `winedevice.exe` that will
//! host the loader and its payloads, and every `fltmgr.sys` import binds to
//! this one module. `../shared/notes/wine-fltmgr.md` has the facts.
//!
//! The helpers below drive it through `fltsimctl.exe`, always bounded.
use crate::wine::{CtlResult, WineSession, COMMAND_BOUND};
use std::path::PathBuf;
use std::time::Duration;

/// The simulator's service (the name Windows' Filter Manager has).
pub const SIM_SERVICE: &str = "FltMgr";
/// The load-order group the simulator, the loader and every filter share.
pub const GROUP: &str = "FSFilter Activity Monitor";
/// What the simulator logs once its `DriverEntry` is done.
pub const SIM_READY: &str = "fltsim: DriverEntry done";
/// How long the simulator's `DriverEntry` may take to log [`SIM_READY`]
/// after `sc start` (seconds on an idle machine; a machine running other
/// Wine suites and builds has taken longer than 30 s).
const SIM_READY_BOUND: Duration = Duration::from_secs(90);
/// How long the service manager may take to answer at a session's start.
const SERVICE_MANAGER_BOUND: Duration = Duration::from_mins(1);

/// `target/package/test-fltmgr/`: the simulator and its tool (never `x64/`).
#[must_use]
pub fn test_fltmgr_dir() -> PathBuf {
    crate::arch::fltmgr_dir()
}

/// The simulator's image.
#[must_use]
pub fn sim_image() -> PathBuf {
    test_fltmgr_dir().join("fltmgr.sys")
}

/// The tool.
#[must_use]
pub fn fltsimctl_exe() -> PathBuf {
    test_fltmgr_dir().join("fltsimctl.exe")
}

fn drivers_dir(s: &WineSession) -> PathBuf {
    s.prefix().join("drive_c/windows/system32/drivers")
}

/// Installs and starts the simulator (the session calls it each time its
/// Wine comes up: at start and after every reboot), and checks that the
/// native module is the one that runs (Wine's builtin would log nothing).
pub(crate) fn start_filter_manager(s: &WineSession) -> Result<(), String> {
    let key = "HKCU\\Software\\Wine\\DllOverrides";
    s.reg_add(key, "fltmgr.sys", "REG_SZ", "native")
        .map_err(|e| format!("cannot set the fltmgr.sys=native override: {e}"))?;
    // The service manager (`services.exe`) starts with the session's first
    // process, but on a loaded machine it may not answer yet; asking it
    // anything before it does fails with no output. Wait (bounded) until it
    // reports a service every prefix has.
    s.wait_service_manager(SERVICE_MANAGER_BOUND)?;
    let bin = "C:\\windows\\system32\\drivers\\fltmgr.sys";
    let (created, out) = s.sc(&[
        "create",
        SIM_SERVICE,
        "type=",
        "filesys",
        "start=",
        "demand",
        "error=",
        "normal",
        "group=",
        GROUP,
        "binPath=",
        bin,
    ]);
    // A prefix that ran a session before has the service already (Wine's
    // `sc` prints nothing on that failure): it is there if it answers.
    if !created && s.service_state(SIM_SERVICE).is_none() {
        return Err(format!("sc create {SIM_SERVICE}: {out}"));
    }
    let (mut started, mut out) = s.sc(&["start", SIM_SERVICE]);
    if !started && s.service_state(SIM_SERVICE).as_deref() == Some("STOPPED") {
        // Wine's services.exe gives up on a service process that has not
        // connected within its own timeout, which a loaded machine can
        // outrun; the service is then stopped and can be started again
        // (once; the wait below is bounded either way).
        eprintln!("harness: sc start {SIM_SERVICE} failed and it is stopped ({}); starting it again", out.trim());
        (started, out) = s.sc(&["start", SIM_SERVICE]);
    }
    s.wait_log(SIM_READY, SIM_READY_BOUND).map_err(|e| {
        let overrides = s.wine(&["reg", "query", key, "/v", "fltmgr.sys"]).all();
        let log = s.log();
        let tail = log.get(log.len().saturating_sub(2000)..).unwrap_or("");
        format!(
            "the test world's fltmgr.sys did not start (Wine's builtin one ran?): {e}; sc start said ({started}): \
             {out}\noverride: {overrides}\nmapped by winedevice.exe: {:?}\nlog tail:\n{tail}",
            mapped_fltmgr(s)
        )
    })
}

/// Which `fltmgr.sys` files the session's `winedevice.exe` processes have
/// mapped (ours, from the prefix's `system32\drivers`, or Wine's builtin).
fn mapped_fltmgr(s: &WineSession) -> Vec<String> {
    let want = format!("WINEPREFIX={}", s.prefix().display());
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for pid in rd.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let ours = env.split(|b| *b == 0).any(|kv| kv == want.as_bytes());
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !ours || !String::from_utf8_lossy(&cmd).to_lowercase().contains("winedevice") {
            continue;
        }
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        let mut files: Vec<String> = maps
            .lines()
            .filter(|l| l.to_lowercase().contains("fltmgr"))
            .filter_map(|l| l.split_whitespace().nth(5))
            .map(|f| format!("{pid}: {f}"))
            .collect();
        files.dedup();
        out.extend(files);
    }
    out
}

/// Runs `fltsimctl.exe <args>` with the ordinary bound.
#[must_use]
pub fn fltsimctl(s: &WineSession, args: &[&str]) -> CtlResult {
    fltsimctl_bounded(s, args, COMMAND_BOUND)
}

/// Runs `fltsimctl.exe <args>` with a bound of its own (loops).
#[must_use]
pub fn fltsimctl_bounded(s: &WineSession, args: &[&str], bound: Duration) -> CtlResult {
    let exe = fltsimctl_exe().to_string_lossy().into_owned();
    let mut all = vec![exe.as_str()];
    all.extend_from_slice(args);
    s.wine_bounded(&all, bound)
}

/// The simulator's snapshot as JSON text (`fltsimctl counters`).
pub fn counters(s: &WineSession) -> Result<String, String> {
    let r = fltsimctl(s, &["counters"]);
    if r.code == 0 {
        Ok(r.stdout)
    } else {
        Err(format!("fltsimctl counters failed: {}", r.all()))
    }
}

/// Zeroes the simulator's counts.
pub fn reset(s: &WineSession) -> Result<(), String> {
    let r = fltsimctl(s, &["reset"]);
    if r.code == 0 {
        Ok(())
    } else {
        Err(format!("fltsimctl reset failed: {}", r.all()))
    }
}

/// Injects `count` operations of `op` (`create`, `read`, `write`,
/// `cleanup`, `close`, `mix`) on `threads` threads, and waits for them.
pub fn inject(s: &WineSession, op: &str, count: u64, threads: u32) -> Result<String, String> {
    let (count, threads) = (count.to_string(), threads.to_string());
    let r =
        fltsimctl_bounded(s, &["inject", "--op", op, "--count", &count, "--threads", &threads], Duration::from_mins(5));
    if r.code == 0 {
        Ok(r.stdout)
    } else {
        Err(format!("fltsimctl inject {op} failed: {}", r.all()))
    }
}

/// The foreign stop: a mandatory unload of `service` through the simulator
/// (`ZwUnloadDriver` of the service from a system thread of the simulator,
/// which reaches the driver's `DriverUnload` that `FltRegisterFilter`
/// hooked: `FilterUnloadCallback` with `FLTFL_FILTER_UNLOAD_MANDATORY`, then
/// the payload's own `DriverUnload`). It is what `sc stop <service>` does on
/// Windows; under Wine `sc stop` of a driver the loader loaded with
/// `ZwLoadDriver` fails (1061), so scenarios use this instead. Returns
/// fltsimctl's line (`unload <service> (mandatory): STATUS_...`).
pub fn mandatory_unload(s: &WineSession, service: &str) -> Result<String, String> {
    let r = fltsimctl_bounded(s, &["unload", service, "--mandatory"], Duration::from_mins(2));
    if r.code == 0 {
        Ok(r.stdout.trim().to_owned())
    } else {
        Err(format!("mandatory unload of {service} failed: {}", r.all()))
    }
}

/// A non-mandatory unload (`fltmc unload <service>`); the filter may refuse.
#[must_use]
pub fn unload(s: &WineSession, service: &str) -> CtlResult {
    fltsimctl_bounded(s, &["unload", service], Duration::from_mins(2))
}

/// Installs `image` (a file of `target/package/test-payloads/`) as the
/// filter service `service`, in the shared group, with its instance at
/// `altitude`, as a minifilter INF would. Not started.
pub fn install_filter_service(s: &WineSession, service: &str, image: &str, altitude: &str) -> Result<(), String> {
    let from = crate::arch::test_payload_dir().join(image);
    let file = format!("{}.sys", service.to_ascii_lowercase());
    std::fs::copy(&from, drivers_dir(s).join(&file)).map_err(|e| format!("cannot install {}: {e}", from.display()))?;
    let _ = s.sc(&["stop", service]);
    let _ = s.sc(&["delete", service]);
    let bin = format!("C:\\windows\\system32\\drivers\\{file}");
    let (ok, out) = s.sc(&[
        "create", service, "type=", "filesys", "start=", "demand", "error=", "normal", "group=", GROUP, "binPath=",
        &bin,
    ]);
    if !ok {
        return Err(format!("sc create {service}: {out}"));
    }
    let key = format!("HKLM\\System\\CurrentControlSet\\Services\\{service}\\Instances");
    let instance = format!("{service} Instance");
    let instance_key = format!("{key}\\{instance}");
    for (k, name, kind, data) in [
        (key.as_str(), "DefaultInstance", "REG_SZ", instance.as_str()),
        (instance_key.as_str(), "Altitude", "REG_SZ", altitude),
        (instance_key.as_str(), "Flags", "REG_DWORD", "0"),
    ] {
        s.reg_add(k, name, kind, data)?;
    }
    Ok(())
}
