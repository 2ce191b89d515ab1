//! The races the model runs: loader operations (or, for the naive designs,
//! `sc start`) against an adversary thread, then a full stop, then the
//! end-of-execution checks.
//!
//! Owns the checks that need the whole execution or a quiescent moment
//! (exactly-once unregistration, leaked references, the upgrade outcome,
//! the slot-state invariant, the loader's own lifetime). Must never spawn
//! more than four threads besides the main one (loom's limit).
use crate::iomgr;
use crate::platforms::ModelLoader;
use crate::sync::{lock, thread, Arc};
use crate::world::{Config, Kernel, Landing, Violation, World};
use loader_protocol::{Loader, LoaderPlatform, OpOutcome};
use shared_abi::control::{SlotState, REPLY_OLD_SLOT_STUCK};
use shared_abi::{NtStatus, Slot};

/// Who races the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adversary {
    /// `sc stop` / a foreign `ZwUnloadDriver` of a slot's service; then the
    /// loader's reap request runs on that thread.
    Stop(Slot),
    /// `fltmc unload` of a slot's filter, then `sc stop` of it.
    FltmcThenStop(Slot),
    /// A second control operation: `IOCTL_LOADER_UNLOAD`.
    ControlUnload,
    /// System shutdown: the loader's shutdown hook (`IRP_MJ_SHUTDOWN`).
    Shutdown,
}

/// The race to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Race {
    /// Loader `load` (slot A) against the adversary. Naive designs: `sc start`.
    Load(Adversary),
    /// Loader `start(A)`, then `upgrade` to B against the adversary.
    Upgrade(Adversary),
    /// Loader `start(A)`, then the loader's own unload (`stop`) against the
    /// adversary: two teardowns of one payload at once, or a shutdown hook.
    StopAgainst(Adversary),
    /// Loader `start(A)`, then `upgrade` to B while A's instance drains an
    /// open file that another thread closes at any moment.
    UpgradeOldDraining,
    /// Loader `start(A)`, `upgrade` to B, then `rollback` to A, while a
    /// handle on A's device (closed by another thread at any moment) defers
    /// A's `DriverUnload`: "unload returned" is not "unload happened".
    UpgradeRollbackDeviceOpen,
    /// Loader `start(A)`, `unload` (its bounded wait may expire at any
    /// moment), `load` (the same slot again), `unload` again: a retirement
    /// that timed out, then the same slot reused while its old worker may
    /// still be finishing.
    RetireTimeoutThenReuse,
    /// Loader `start(A)`; `sc stop` of A's service, then the loader's stop:
    /// the slot must show the foreign stop and the loader must still stop.
    ForeignStopThenLoaderStop,
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
    if config.design.loaded_by_loader() {
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
    thread::spawn(move || {
        let loader = Loader::new(ModelLoader(w.clone()));
        match who {
            Adversary::Stop(slot) => {
                let _ = iomgr::foreign_unload_driver(&w, slot);
                if w.config.design.loaded_by_loader() {
                    // The reap the payload's report asked for.
                    loader.reap();
                }
            }
            Adversary::FltmcThenStop(slot) => {
                let _ = iomgr::fltmc_unload(&w, slot);
                let _ = iomgr::foreign_unload_driver(&w, slot);
                if w.config.design.loaded_by_loader() {
                    loader.reap();
                }
            }
            Adversary::ControlUnload => {
                let out = loader.unload();
                check_reply(&w, &loader, out, None);
            }
            Adversary::Shutdown => loader.shutdown(),
        }
    })
}

/// The loader's own unload: `stop`, then its image goes. No code of the
/// loader may run after that.
fn stop_loader(w: &World, loader: &Loader<ModelLoader>) {
    loader.stop();
    w.trace(|| "the loader's unload returned: its image goes".to_owned());
    let mut k = w.kernel();
    k.loader_mapped = false;
    if k.loader_code_running > 0 {
        w.violation(&mut k, Violation::UnmappedCall, "loader code still runs after the loader's unload returned");
    }
}

#[allow(clippy::too_many_lines)]
fn run_protocol(w: &Arc<World>, race: Race) {
    let loader = Loader::new(ModelLoader(w.clone()));
    match race {
        Race::Load(who) => {
            let t = adversary(w, who);
            let out = loader.load();
            check_reply(w, &loader, out, None);
            t.join().expect("adversary");
            check_quiescent(w, &loader);
        }
        Race::Upgrade(who) => {
            loader.start(Some(Slot::A));
            let t = adversary(w, who);
            let outcome = loader.upgrade(None);
            check_upgrade(w, &loader, outcome, Slot::A, Slot::B, who);
            // (A foreign stop of A may leave the upgrade nothing to retire:
            // A is then reaped, not retired by the upgrade.)
            let foreign_a = matches!(who, Adversary::Stop(Slot::A) | Adversary::FltmcThenStop(Slot::A));
            check_reply(w, &loader, outcome, if foreign_a { None } else { Some(Slot::A) });
            t.join().expect("adversary");
            check_quiescent(w, &loader);
        }
        Race::StopAgainst(who) => {
            loader.start(Some(Slot::A));
            let t = adversary(w, who);
            stop_loader(w, &loader);
            t.join().expect("adversary");
            check_quiescent(w, &loader);
            return;
        }
        Race::UpgradeOldDraining => {
            loader.start(Some(Slot::A));
            let closer = {
                let w = w.clone();
                thread::spawn(move || iomgr::close_file(&w, Slot::A))
            };
            let outcome = loader.upgrade(None);
            check_upgrade(w, &loader, outcome, Slot::A, Slot::B, Adversary::Stop(Slot::B));
            check_reply(w, &loader, outcome, Some(Slot::A));
            closer.join().expect("closer");
            check_quiescent(w, &loader);
        }
        Race::UpgradeRollbackDeviceOpen => {
            loader.start(Some(Slot::A));
            let closer = {
                let w = w.clone();
                thread::spawn(move || iomgr::close_device(&w, Slot::A))
            };
            let outcome = loader.upgrade(None);
            check_upgrade(w, &loader, outcome, Slot::A, Slot::B, Adversary::Stop(Slot::A));
            check_reply(w, &loader, outcome, Some(Slot::A));
            let outcome = loader.rollback();
            check_upgrade(w, &loader, outcome, Slot::B, Slot::A, Adversary::Stop(Slot::B));
            check_reply(w, &loader, outcome, Some(Slot::B));
            closer.join().expect("closer");
            check_quiescent(w, &loader);
        }
        Race::RetireTimeoutThenReuse => {
            loader.start(Some(Slot::A));
            for _ in 0..2 {
                let retiring = loader.platform().with_state(|s| s.active());
                let out = loader.unload();
                check_reply(w, &loader, out, retiring);
                let out = loader.load();
                check_reply(w, &loader, out, None);
            }
        }
        Race::ForeignStopThenLoaderStop => {
            loader.start(Some(Slot::A));
            let t = adversary(w, Adversary::Stop(Slot::A));
            t.join().expect("adversary");
            check_quiescent(w, &loader);
            // After a foreign stop, `load` really loads again.
            let out = loader.load();
            check_reply(w, &loader, out, None);
            check_quiescent(w, &loader);
        }
    }
    stop_loader(w, &loader);
    check_quiescent(w, &loader);
}

fn run_naive(w: &Arc<World>, race: Race) {
    let who = match race {
        Race::Load(who) | Race::Upgrade(who) | Race::StopAgainst(who) => who,
        _ => Adversary::Stop(Slot::A),
    };
    let t = adversary(w, who);
    let _ = iomgr::load_driver(w, Slot::A);
    t.join().expect("adversary");
    let _ = iomgr::unload_driver(w, Slot::A);
}

/// An upgrade ends with exactly one active payload (the new one, which did
/// register), or with a reported failure and the old one still active and
/// registered. A payload stopped from outside meanwhile is allowed to be
/// gone (it shows as `stopped`, never as active).
fn check_upgrade(w: &World, loader: &Loader<ModelLoader>, outcome: OpOutcome, old: Slot, new: Slot, who: Adversary) {
    if outcome.status == NtStatus::DEVICE_BUSY || who == Adversary::ControlUnload {
        // Another control operation ran instead, or runs right after us.
        return;
    }
    let (old_state, new_state, active) =
        loader.platform().with_state(|s| (s.slot_state(old), s.slot_state(new), s.active()));
    let mut k = w.kernel();
    let newest = |slot: Slot, k: &Kernel| k.objects.iter().rposition(|o| o.slot == slot);
    let stopped_outside = |slot: Slot, k: &Kernel| newest(slot, k).is_some_and(|i| k.objects[i].foreign_unload);
    let registered = |slot: Slot, k: &Kernel| newest(slot, k).is_some_and(|i| k.objects[i].registered_ok);
    let old_live = k.objects.iter().any(|o| o.slot == old && o.filter_registered && o.mapped);
    let ok = if outcome.status.is_success() {
        let new_ok = (outcome.active == Some(new) && new_state == SlotState::ACTIVE) || stopped_outside(new, &k);
        new_ok && old_state != SlotState::ACTIVE && registered(new, &k)
    } else {
        let old_ok = (outcome.active == Some(old) && active == Some(old) && old_state == SlotState::ACTIVE && old_live)
            || stopped_outside(old, &k);
        old_ok && new_state != SlotState::ACTIVE
    };
    if !ok {
        w.violation(&mut k, Violation::UpgradeOutcome, "upgrade ended without exactly one active payload");
    }
}

/// An operation's reply agrees with the state it left: an operation that
/// retired `retired` and says nothing of it being stuck left it vacant, not
/// still retiring.
fn check_reply(w: &World, loader: &Loader<ModelLoader>, out: OpOutcome, retired: Option<Slot>) {
    let Some(slot) = retired else { return };
    if !out.status.is_success() || out.flags & REPLY_OLD_SLOT_STUCK != 0 {
        return;
    }
    let (state, worker) = loader.platform().with_state(|s| (s.slot_state(slot), s.slot(slot).worker_running()));
    if state == SlotState::RETIRING || state == SlotState::STUCK || worker {
        let mut k = w.kernel();
        w.violation(&mut k, Violation::SlotState, "a reply without \"stuck\" left the old slot retiring");
    }
}

/// The slot-state invariant, at a moment no adversary runs (retire workers
/// may): what `status` shows must be what is.
fn check_quiescent(w: &World, loader: &Loader<ModelLoader>) {
    // What an administrator would see now (a status query looks lingering
    // slots up again). A retire worker may still finish after that query
    // and leave its slot STUCK with the driver going away right after; the
    // administrator's next query must then show it gone, so a slot whose
    // worker was still running gets a second query.
    let _ = loader.status();
    let (mut records, mut reap_pending_or_busy) =
        loader.platform().with_state(|s| (Slot::ALL.map(|slot| *s.slot(slot)), s.is_busy()));
    if records.iter().any(|r| r.state() == SlotState::STUCK && !r.worker_running()) {
        let _ = loader.status();
        (records, reap_pending_or_busy) =
            loader.platform().with_state(|s| (Slot::ALL.map(|slot| *s.slot(slot)), s.is_busy()));
    }
    let states = lock(&w.payload_states).iter().map(|p| (p.teardown_begun(), p.stage())).collect::<Vec<_>>();
    let mut k = w.kernel();
    let mut found: Vec<&'static str> = Vec::new();
    for (slot, r) in Slot::ALL.into_iter().zip(records) {
        let named = World::named_object(&k, slot).is_some();
        match r.state() {
            SlotState::EMPTY => {
                if named || r.image().is_some() || r.worker_running() {
                    found.push("an EMPTY slot still has a driver, an image reference or a worker");
                }
            }
            SlotState::STOPPED => {
                if r.worker_running() || (r.image().is_none() && named) {
                    found.push("a STOPPED slot still has a driver or a worker");
                }
            }
            SlotState::STUCK => {
                if !named && r.image().is_none() && !r.worker_running() {
                    found.push("a STUCK slot has nothing left");
                }
            }
            SlotState::RETIRING => {
                if !r.worker_running() && !reap_pending_or_busy {
                    found.push("a RETIRING slot has no worker");
                }
            }
            SlotState::ACTIVE => {
                let image = r.image();
                let healthy = image.is_some_and(|i| {
                    let o = &k.objects[i];
                    o.mapped && o.filter_registered && !states.get(i).is_some_and(|(torn, _)| *torn)
                });
                if !healthy {
                    found.push("an ACTIVE slot whose payload is not mapped, registered and untouched");
                }
            }
            _ => found.push("a slot left LOADING or REGISTERING"),
        }
    }
    let stopping = loader.platform().with_state(|s| s.is_stopping());
    if stopping {
        for (slot, r) in Slot::ALL.into_iter().zip(records) {
            if r.state() == SlotState::ACTIVE || r.image().is_some() || r.worker_running() {
                let _ = slot;
                found.push("the loader stopped with a payload still held");
            }
        }
    }
    for what in found {
        w.violation(&mut k, Violation::SlotState, what);
    }
}

/// Joins every retire worker, then checks what must hold once everything
/// stopped: every registration unregistered once, every reference dropped.
fn finish(w: &World) {
    for slot in Slot::ALL {
        let worker = lock(&w.workers)[slot].take();
        if let Some(worker) = worker {
            worker.join().expect("retire worker");
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
    if w.config.design.is_c() {
        crate::c_dropin::check_end(w.config.c_filter, &k.objects, &mut found);
    }
    k.violations.extend(found);
}
