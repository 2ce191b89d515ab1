//! The races the model runs: a loader operation (or, for the naive designs,
//! `sc start`) against an adversary thread, then a full stop, then the
//! end-of-execution checks.
//!
//! Owns the checks that need the whole execution (exactly-once
//! unregistration, leaked references, the upgrade outcome). Must never
//! spawn more than four threads besides the main one (loom's limit).
use crate::iomgr;
use crate::platforms::ModelLoader;
use crate::sync::{lock, thread, Arc};
use crate::world::{Config, Design, Landing, Violation, World};
use loader_protocol::{Loader, LoaderPlatform, OpOutcome, Slot};
use shared_abi::control::SlotState;
use shared_abi::NtStatus;

/// Who races the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adversary {
    /// `sc stop` / a foreign `ZwUnloadDriver` of a slot's service.
    Stop(Slot),
    /// `fltmc unload` of a slot's filter, then `sc stop` of it.
    FltmcThenStop(Slot),
    /// A second control operation: `IOCTL_LOADER_UNLOAD`.
    ControlUnload,
}

/// The race to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Race {
    /// Loader `load` (slot A) against the adversary. Naive designs: `sc start`.
    Load(Adversary),
    /// Loader `start(A)`, then `upgrade` to B against the adversary.
    Upgrade(Adversary),
    /// Loader `start(A)`, then the loader's own unload (`stop`) against the
    /// adversary: two teardowns of one payload at once.
    StopAgainst(Adversary),
    /// Loader `start(A)`, then `upgrade` to B while A's instance drains an
    /// open file that another thread closes at any moment.
    UpgradeOldDraining,
    /// Loader `start(A)`, `upgrade` to B, then `rollback` to A, while a
    /// handle on A's device (closed by another thread at any moment) defers
    /// A's `DriverUnload`: "unload returned" is not "unload happened".
    UpgradeRollbackDeviceOpen,
}

/// What one execution found.
pub struct Findings {
    /// Violations, with what happened.
    pub violations: Vec<(Violation, &'static str)>,
    /// Where the adversary's unload requests landed.
    pub landings: Vec<Landing>,
}

/// Runs one execution of `race` in a fresh world; returns its violations.
#[must_use]
pub fn run(race: Race, config: Config) -> Vec<(Violation, &'static str)> {
    run_with_landings(race, config).violations
}

/// Runs one execution of `race` in a fresh world.
#[must_use]
pub fn run_with_landings(race: Race, config: Config) -> Findings {
    let w = World::new(config);
    if config.design == Design::Protocol {
        run_protocol(&w, race);
    } else {
        run_naive(&w, race);
    }
    finish(&w);
    let k = w.kernel();
    Findings { violations: k.violations.clone(), landings: k.landings.clone() }
}

fn adversary(w: &Arc<World>, who: Adversary) -> thread::JoinHandle<()> {
    let w = w.clone();
    thread::spawn(move || match who {
        Adversary::Stop(slot) => {
            let _ = iomgr::foreign_unload_driver(&w, slot);
        }
        Adversary::FltmcThenStop(slot) => {
            let _ = iomgr::fltmc_unload(&w, slot);
            let _ = iomgr::foreign_unload_driver(&w, slot);
        }
        Adversary::ControlUnload => {
            Loader::new(ModelLoader(w.clone())).unload();
        }
    })
}

fn run_protocol(w: &Arc<World>, race: Race) {
    let loader = Loader::new(ModelLoader(w.clone()));
    match race {
        Race::Load(who) => {
            let t = adversary(w, who);
            loader.load();
            t.join().expect("adversary");
        }
        Race::Upgrade(who) => {
            loader.start(Some(0));
            let t = adversary(w, who);
            let outcome = loader.upgrade(None);
            check_upgrade(w, &loader, outcome, 0, 1, who);
            t.join().expect("adversary");
        }
        Race::StopAgainst(who) => {
            loader.start(Some(0));
            let t = adversary(w, who);
            loader.stop();
            // The loader's DriverUnload returned: its image goes away.
            w.update(|k| k.loader_mapped = false);
            t.join().expect("adversary");
        }
        Race::UpgradeOldDraining => {
            loader.start(Some(0));
            let closer = {
                let w = w.clone();
                thread::spawn(move || iomgr::close_file(&w, 0))
            };
            let outcome = loader.upgrade(None);
            check_upgrade(w, &loader, outcome, 0, 1, Adversary::Stop(1));
            closer.join().expect("closer");
        }
        Race::UpgradeRollbackDeviceOpen => {
            loader.start(Some(0));
            let closer = {
                let w = w.clone();
                thread::spawn(move || iomgr::close_device(&w, 0))
            };
            let outcome = loader.upgrade(None);
            check_upgrade(w, &loader, outcome, 0, 1, Adversary::Stop(0));
            let outcome = loader.rollback();
            check_upgrade(w, &loader, outcome, 1, 0, Adversary::Stop(1));
            closer.join().expect("closer");
        }
    }
    loader.stop();
}

fn run_naive(w: &Arc<World>, race: Race) {
    let who = match race {
        Race::Load(who) | Race::Upgrade(who) | Race::StopAgainst(who) => who,
        Race::UpgradeOldDraining | Race::UpgradeRollbackDeviceOpen => Adversary::Stop(0),
    };
    let t = adversary(w, who);
    let _ = iomgr::load_driver(w, 0);
    t.join().expect("adversary");
    let _ = iomgr::unload_driver(w, 0);
}

/// An upgrade ends with exactly one active payload (the new one, which did
/// register), or with a reported failure and the old one still active and
/// registered.
fn check_upgrade(w: &World, loader: &Loader<ModelLoader>, outcome: OpOutcome, old: Slot, new: Slot, who: Adversary) {
    let (old_state, new_state, active) =
        loader.platform().with_state(|s| (s.slot_state(old), s.slot_state(new), s.active()));
    let mut k = w.kernel();
    let registered =
        |slot: Slot, k: &crate::world::Kernel| k.objects.iter().any(|o| o.slot == slot && o.registrations > 0);
    let old_live = k.objects.iter().any(|o| o.slot == old && o.filter_registered && o.mapped);
    if outcome.status == NtStatus::DEVICE_BUSY || who == Adversary::ControlUnload {
        // Another control operation ran instead, or runs right after us.
        return;
    }
    let ok = if outcome.status.is_success() {
        outcome.active == Some(new)
            && new_state == SlotState::ACTIVE
            && old_state != SlotState::ACTIVE
            && registered(new, &k)
    } else {
        outcome.active == Some(old)
            && active == Some(old)
            && old_state == SlotState::ACTIVE
            && new_state != SlotState::ACTIVE
            && old_live
    };
    if !ok {
        w.violation(&mut k, Violation::UpgradeOutcome, "upgrade ended without exactly one active payload");
    }
}

/// Joins every retire worker, then checks what must hold once everything
/// stopped: every registration unregistered once, every reference dropped.
fn finish(w: &World) {
    loop {
        let worker = lock(&w.workers).pop();
        match worker {
            Some(worker) => worker.join().expect("retire worker"),
            None => break,
        }
    }
    let mut k = w.kernel();
    let mut found = Vec::new();
    for o in &k.objects {
        if o.registrations != o.unregistrations {
            found.push((Violation::RegistrationNotOnce, "a registration was never unregistered"));
        }
        if o.refs != 0 || o.mapped {
            found.push((Violation::ReferenceMisuse, "an image reference leaked (image still mapped)"));
        }
        if o.running != 0 {
            found.push((Violation::UnmappedCall, "a call into an image never returned"));
        }
    }
    k.violations.extend(found);
}
