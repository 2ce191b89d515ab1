//! The Windows 7 race, N times inside one process (issue 10, scenario 1).
//!
//! Each try arms the simulator ("when this filter's `FltRegisterFilter`
//! returns, call its `FilterUnloadCallback`, mandatory, from another system
//! thread"), starts the filter, waits for the race to fire and end, then
//! completes the unload Windows 7 would have done (`sc stop` is a driver
//! unload; under Wine it must come once the filter's code is idle, since
//! Wine frees an image as soon as its `DriverUnload` returns).
//!
//! A try fails when the filter recorded a teardown of half-built state
//! (its service key's `HalfBuiltTeardowns` grew) or the verifier counted a
//! violation (start-filtering on an unregistered filter, a second
//! unregister, a callback after unload...).
use crate::loader::{active, Loader};
use crate::sim::{Sim, POLL};
use crate::win::{
    registry_dword, Service, SERVICE_RUNNING, SERVICE_START_PENDING, SERVICE_STOPPED, SERVICE_STOP_PENDING,
};
use fltsim_abi as abi;
use serde_json::json;
use shared_abi::{NtStatus, Slot};
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(30);

/// What one try showed.
#[derive(Default)]
struct Outcome {
    half_built: u32,
    violations: u64,
    before_start: bool,
}

/// Totals over the tries.
#[derive(Default)]
pub struct Tally {
    tries: u32,
    failures: u32,
    half_built: u32,
    violations: u64,
    before_start: u32,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        self.tries += 1;
        if o.half_built > 0 || o.violations > 0 {
            self.failures += 1;
        }
        self.half_built += o.half_built;
        self.violations += o.violations;
        self.before_start += u32::from(o.before_start);
    }

    /// The line the issue asks for, then the details as JSON.
    pub fn print(&self, label: &str) {
        println!("race: {label} tries={} failures={}", self.tries, self.failures);
        println!(
            "{}",
            json!({
                "label": label,
                "tries": self.tries,
                "failures": self.failures,
                "half_built_teardowns": self.half_built,
                "violations": self.violations,
                "callback_before_start_filtering": self.before_start,
            })
        );
    }
}

fn half_built(service: &str) -> u32 {
    registry_dword(&format!("SYSTEM\\CurrentControlSet\\Services\\{service}"), "HalfBuiltTeardowns").unwrap_or(0)
}

fn wait_service(svc: &Service, done: impl Fn(u32) -> bool) -> Result<u32, String> {
    let deadline = Instant::now() + BOUND;
    loop {
        let state = svc.state();
        if done(state) {
            return Ok(state);
        }
        if Instant::now() > deadline {
            return Err(format!("the service stayed in state {state} for {} s", BOUND.as_secs()));
        }
        std::thread::sleep(POLL);
    }
}

/// The naive image, started with the service manager (`sc start`).
pub fn naive(service: &str, tries: u32, verbose: bool) -> Result<Tally, String> {
    let sim = Sim::open()?;
    let svc = Service::open(service)?;
    let mut tally = Tally::default();
    for n in 0..tries {
        let (half0, snap0) = (half_built(service), sim.query()?);
        sim.arm(service, false)?;
        let started = svc.start();
        let state = wait_service(&svc, |s| s != SERVICE_START_PENDING && s != 0)?;
        let race = sim.wait_race(snap0.race.fired, BOUND)?;
        if state == SERVICE_RUNNING {
            svc.stop().map_err(|e| format!("try {n}: stopping {service}: Win32 error {e}"))?;
            wait_service(&svc, |s| s == SERVICE_STOPPED)?;
        } else if state == SERVICE_STOP_PENDING {
            wait_service(&svc, |s| s == SERVICE_STOPPED)?;
        }
        let snap1 = sim.query()?;
        let o = Outcome {
            half_built: half_built(service).saturating_sub(half0),
            violations: snap1.totals.violations.saturating_sub(snap0.totals.violations),
            before_start: race.before_start != 0,
        };
        if verbose {
            println!(
                "try {n}: start {} callback {} before-start={} half-built={} violations={}",
                match started {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("failed (Win32 {e})"),
                },
                NtStatus(race.callback_status),
                o.before_start,
                o.half_built,
                o.violations
            );
        }
        tally.add(&o);
    }
    let _ = sim.arm(service, true);
    Ok(tally)
}

/// The same logic as a payload in `slot`, loaded by the loader (`upgrade`).
pub fn loader(service: &str, slot: Slot, tries: u32, verbose: bool) -> Result<Tally, String> {
    let sim = Sim::open()?;
    let loader = Loader::open()?;
    let home = slot.other();
    restore(&loader, home)?;
    let mut tally = Tally::default();
    for n in 0..tries {
        let (half0, snap0) = (half_built(service), sim.query()?);
        sim.arm(service, false)?;
        let upgrade = loader.upgrade_when_free(Some(slot));
        let race = sim.wait_race(snap0.race.fired, BOUND)?;
        loader.wait_idle(BOUND)?;
        // The rest of the mandatory unload (the driver unload), now that
        // nothing runs the payload's code; a driver already gone answers
        // STATUS_OBJECT_NAME_NOT_FOUND.
        let unloaded = sim.job(abi::IOCTL_SIM_UNLOAD, service, abi::FLAG_MANDATORY, 0, BOUND)?;
        restore(&loader, home)?;
        let snap1 = sim.query()?;
        let o = Outcome {
            half_built: half_built(service).saturating_sub(half0),
            violations: snap1.totals.violations.saturating_sub(snap0.totals.violations),
            before_start: race.before_start != 0,
        };
        if verbose {
            println!(
                "try {n}: upgrade {upgrade} callback {} before-start={} driver unload {unloaded} half-built={} violations={}",
                NtStatus(race.callback_status),
                o.before_start,
                o.half_built,
                o.violations
            );
        }
        tally.add(&o);
    }
    let _ = sim.arm(service, true);
    Ok(tally)
}

/// Makes `home` the active slot again (the other slot empty).
fn restore(loader: &Loader, home: Slot) -> Result<(), String> {
    let deadline = Instant::now() + BOUND;
    loop {
        let st = loader.wait_idle(BOUND)?;
        if active(&st) == Some(home) {
            return Ok(());
        }
        let status = loader.upgrade_when_free(Some(home));
        if Instant::now() > deadline {
            return Err(format!("slot {} did not come back: {status}", home.letter()));
        }
    }
}
