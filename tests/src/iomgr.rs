//! The Windows 7 I/O manager and Filter Manager, as the adversary.
//!
//! What it models (see `docs/protocol.md` for the sources):
//! - `ZwLoadDriver` creates a *named* driver object before `DriverEntry` runs,
//!   and holds a reference on it only while `DriverEntry` runs;
//! - `NtUnloadDriver` takes no load lock: it can reach a driver at any
//!   moment, fails while `DriverUnload` is NULL, calls `DriverUnload` holding a
//!   reference, then removes the name and drops the "loaded" reference; the
//!   image is unmapped when the last reference drops;
//! - `FltRegisterFilter` replaces `DriverUnload` with `FltMgr`'s routine, which
//!   calls `FilterUnloadCallback` and then the saved `DriverUnload`;
//! - `fltmc unload` reaches `FilterUnloadCallback` as a non-mandatory unload,
//!   which the filter may refuse;
//! - `FltUnregisterFilter` blocks while an instance drains an open file.
//!
//! Must never take a lock around `DriverEntry` or an unload callback: the
//! missing serialization is the bug under study.
use crate::c_dropin;
use crate::naive;
use crate::platforms::ModelPayload;
use crate::sync::{pause, Arc};
use crate::world::{Design, DriverObject, FilterRef, ImageId, Landing, UnloadRoutine, Violation, World};
use loader_protocol::payload;
use loader_protocol::payload::Stage;
use loader_protocol::{PayloadState, Slot};
use shared_abi::NtStatus;

/// Steps of the minifilter's own set-up (the seed's `SetupWorkerQueues`).
pub const SETUP_STEPS: u8 = 2;

/// `ZwLoadDriver(slot's service)`: maps the image, creates the named driver
/// object, runs `DriverEntry` on this thread.
pub fn load_driver(w: &Arc<World>, slot: Slot) -> Result<(), NtStatus> {
    let id = {
        let mut k = w.kernel();
        if k.objects.iter().any(|o| o.slot == slot && o.mapped) {
            return Err(NtStatus::IMAGE_ALREADY_LOADED);
        }
        let first_of_slot = !k.objects.iter().any(|o| o.slot == slot);
        let device_refs = u32::from(first_of_slot && w.config.device_open[slot]);
        k.objects.push(DriverObject {
            slot,
            named: true,
            // The "loaded" reference, and the load thread's own during DriverEntry.
            refs: 2,
            mapped: true,
            unload: UnloadRoutine::None,
            saved_unload: UnloadRoutine::None,
            unload_invoked: false,
            device_refs,
            unload_deferred: false,
            running: 0,
            setup_steps: 0,
            setup_complete: false,
            cleaned: false,
            filter_registered: false,
            registrations: 0,
            unregistrations: 0,
            naive_filter: None,
            c_entry_running: false,
            c_entry_succeeded: false,
            c_callbacks_running: 0,
            c_driver_unloads: 0,
            teardown_done: false,
            teardown_done_ready: false,
            registered_ok: false,
            foreign_unload: false,
        });
        crate::sync::lock(&w.payload_states).push(PayloadState::new());
        k.objects.len() - 1
    };
    pause();
    w.enter(id, "DriverEntry");
    match w.config.design {
        // The protocol's DriverEntry publishes DriverUnload itself, last.
        Design::Protocol => payload::driver_entry(&ModelPayload::new(w, id)),
        Design::NaiveSeed | Design::NaiveRegisterLast => naive::driver_entry(w, id),
        // The library's DriverEntry: records the driver object, the protocol's
        // DriverEntry (DriverUnload last); the filter's own waits for the loader.
        Design::CRelinked => c_dropin::image_driver_entry(w, id),
        // The plain image's DriverEntry is the filter's own.
        Design::CPlain => {
            let _ = c_dropin::filter_driver_entry(w, id);
        }
    }
    w.leave(id);
    w.drop_ref(id, "load thread's reference");
    Ok(())
}

/// `NtUnloadDriver(slot's service)` from the loader: a mandatory unload.
#[must_use]
pub fn unload_driver(w: &Arc<World>, slot: Slot) -> NtStatus {
    unload_driver_from(w, slot, false)
}

/// `sc stop` / a foreign `ZwUnloadDriver`: the same, recorded as a landing.
#[must_use]
pub fn foreign_unload_driver(w: &Arc<World>, slot: Slot) -> NtStatus {
    unload_driver_from(w, slot, true)
}

fn unload_driver_from(w: &Arc<World>, slot: Slot, foreign: bool) -> NtStatus {
    w.trace(|| format!("{:?}: NtUnloadDriver {slot} (foreign: {foreign})", crate::sync::thread::current().id()));
    let (id, routine) = {
        let mut k = w.kernel();
        let Some(id) = World::named_object(&k, slot) else {
            if foreign {
                k.landings.push(Landing::NotLoaded);
            }
            return NtStatus::OBJECT_NAME_NOT_FOUND;
        };
        if foreign {
            let landing = landing(w, &k, id);
            k.landings.push(landing);
            k.objects[id].foreign_unload = true;
        }
        let o = &mut k.objects[id];
        if o.unload == UnloadRoutine::None {
            return NtStatus::INVALID_DEVICE_REQUEST;
        }
        if o.unload_invoked {
            return NtStatus::SUCCESS;
        }
        o.unload_invoked = true;
        if o.device_refs > 0 {
            // "Success", but DriverUnload runs when the last handle closes.
            o.unload_deferred = true;
            return NtStatus::SUCCESS;
        }
        let routine = o.unload;
        World::add_ref(&mut k, id);
        (id, routine)
    };
    pause();
    finish_unload(w, id, routine);
    NtStatus::SUCCESS
}

/// `DriverUnload`, then the name and the "loaded" reference go. The caller
/// holds a reference of its own, dropped here.
fn finish_unload(w: &Arc<World>, id: ImageId, routine: UnloadRoutine) {
    run_unload_routine(w, id, routine);
    w.update(|k| k.objects[id].named = false);
    w.drop_ref(id, "the \"loaded\" reference");
    w.drop_ref(id, "unload thread's reference");
}

/// The user closes the handle on the device of the slot's first image; if
/// an unload was deferred, `DriverUnload` runs now, on this thread.
pub fn close_device(w: &Arc<World>, slot: Slot) {
    let deferred = {
        let mut k = w.kernel();
        let Some(id) = k.objects.iter().position(|o| o.slot == slot && o.device_refs > 0) else {
            return;
        };
        let o = &mut k.objects[id];
        o.device_refs -= 1;
        if o.device_refs == 0 && o.unload_deferred {
            o.unload_deferred = false;
            let routine = o.unload;
            World::add_ref(&mut k, id);
            Some((id, routine))
        } else {
            None
        }
    };
    if let Some((id, routine)) = deferred {
        pause();
        finish_unload(w, id, routine);
    }
}

/// Where an unload request meets image `id` (kernel lock held).
fn landing(w: &World, k: &crate::world::Kernel, id: ImageId) -> Landing {
    let o = &k.objects[id];
    if o.unload == UnloadRoutine::None {
        return Landing::RefusedInDriverEntry;
    }
    if !w.config.design.loaded_by_loader() {
        return if o.setup_complete { Landing::AfterRegistration } else { Landing::DuringRegistration };
    }
    match crate::sync::lock(&w.payload_states)[id].stage() {
        Stage::Mapped | Stage::Loaded => Landing::BeforeRegistration,
        Stage::Registering => Landing::DuringRegistration,
        Stage::Filtering | Stage::RegistrationFailed => Landing::AfterRegistration,
        Stage::Quiesced | Stage::TearingDown | Stage::TornDown => Landing::DuringTeardown,
    }
}

/// Runs `routine` as image `id`'s `DriverUnload` (the caller holds a
/// reference on the image).
pub(crate) fn run_unload_routine(w: &Arc<World>, id: ImageId, routine: UnloadRoutine) {
    match routine {
        UnloadRoutine::None => {}
        UnloadRoutine::Payload => payload_driver_unload(w, id),
        UnloadRoutine::Filter => c_filter_driver_unload(w, id),
        UnloadRoutine::FltMgr => {
            let (registered, saved) = {
                let k = w.kernel();
                (k.objects[id].filter_registered, k.objects[id].saved_unload)
            };
            if registered {
                filter_unload_callback(w, id, true);
            }
            if saved == UnloadRoutine::Payload {
                payload_driver_unload(w, id);
            }
            if saved == UnloadRoutine::Filter {
                c_filter_driver_unload(w, id);
            }
        }
    }
}

/// The C minifilter's own `DriverUnload`, reached directly (the I/O
/// manager's, or `FltMgr`'s saved routine) rather than chained by the library.
fn c_filter_driver_unload(w: &Arc<World>, id: ImageId) {
    w.enter(id, "the filter's own DriverUnload");
    c_dropin::filter_driver_unload(w, id);
    w.leave(id);
}

fn payload_driver_unload(w: &Arc<World>, id: ImageId) {
    w.enter(id, "DriverUnload");
    match w.config.design {
        Design::Protocol => {
            payload::driver_unload(&ModelPayload::new(w, id));
        }
        Design::CRelinked => c_dropin::library_driver_unload(w, id),
        Design::NaiveSeed | Design::NaiveRegisterLast | Design::CPlain => {}
    }
    w.leave(id);
}

fn filter_unload_callback(w: &Arc<World>, id: ImageId, mandatory: bool) -> NtStatus {
    w.enter(id, "FilterUnloadCallback");
    let status = match w.config.design {
        Design::Protocol => {
            let flags = if mandatory { payload::FILTER_UNLOAD_MANDATORY } else { 0 };
            payload::filter_unload(&ModelPayload::new(w, id), flags)
        }
        Design::NaiveSeed | Design::NaiveRegisterLast => naive::filter_unload_callback(w, id),
        // The library registered its own callback in place of the filter's.
        Design::CRelinked => {
            let flags = if mandatory { payload::FILTER_UNLOAD_MANDATORY } else { 0 };
            c_dropin::library_filter_unload(w, id, flags)
        }
        Design::CPlain => c_dropin::filter_unload_callback(w, id),
    };
    w.leave(id);
    status
}

/// `fltmc unload <filter>`: a non-mandatory unload through `FltMgr`. If the
/// filter accepts, `FltMgr` goes on to unload the driver.
#[must_use]
pub fn fltmc_unload(w: &Arc<World>, slot: Slot) -> NtStatus {
    let id = {
        let mut k = w.kernel();
        let Some(id) = World::named_object(&k, slot).filter(|&i| k.objects[i].filter_registered) else {
            k.landings.push(Landing::NotLoaded);
            return NtStatus::NOT_FOUND;
        };
        let landing = landing(w, &k, id);
        k.landings.push(landing);
        World::add_ref(&mut k, id);
        id
    };
    let status = filter_unload_callback(w, id, false);
    if status.is_success() {
        w.update(|k| k.objects[id].foreign_unload = true);
        let _ = unload_driver(w, slot);
    }
    w.drop_ref(id, "fltmc's reference");
    status
}

/// `FltRegisterFilter` for image `id`.
pub fn flt_register(w: &World, id: ImageId) -> Result<FilterRef, NtStatus> {
    let fails = w.config.register_fails[w.kernel().objects[id].slot];
    pause();
    w.update(|k| {
        let o = &mut k.objects[id];
        if fails || o.filter_registered {
            return Err(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION);
        }
        o.filter_registered = true;
        o.registrations += 1;
        o.saved_unload = o.unload;
        o.unload = UnloadRoutine::FltMgr;
        Ok(FilterRef(id))
    })
}

/// `FltStartFiltering`.
pub fn flt_start(w: &World, f: FilterRef) -> Result<(), NtStatus> {
    pause();
    let mut k = w.kernel();
    if !k.objects[f.0].filter_registered {
        w.violation(&mut k, Violation::RegistrationNotOnce, "FltStartFiltering on a freed filter");
    }
    Ok(())
}

/// `FltUnregisterFilter`: blocks while the slot's instance drains an open file.
pub fn flt_unregister(w: &World, f: FilterRef) {
    let slot = {
        let mut k = w.kernel();
        if !k.objects[f.0].filter_registered {
            w.violation(&mut k, Violation::RegistrationNotOnce, "FltUnregisterFilter on a freed filter");
            return;
        }
        k.objects[f.0].slot
    };
    if w.kernel().file_open[slot] {
        w.update(|k| k.draining[slot] = true);
        w.wait_until("FltUnregisterFilter draining", |k| !k.file_open[slot]);
        w.update(|k| k.draining[slot] = false);
    }
    pause();
    w.update(|k| {
        let o = &mut k.objects[f.0];
        if o.filter_registered {
            o.filter_registered = false;
            o.unregistrations += 1;
        }
    });
}

/// The minifilter's own multi-step set-up.
pub fn setup(w: &World, id: ImageId) {
    for _ in 0..SETUP_STEPS {
        w.update(|k| k.objects[id].setup_steps += 1);
        pause();
    }
    w.update(|k| k.objects[id].setup_complete = true);
}

/// The minifilter's own teardown: touches everything the set-up built.
pub fn cleanup(w: &World, id: ImageId) {
    pause();
    let mut k = w.kernel();
    let o = &mut k.objects[id];
    let (complete, cleaned) = (o.setup_complete, o.cleaned);
    o.cleaned = true;
    if !complete {
        w.violation(&mut k, Violation::HalfBuiltTeardown, "StopWorkerQueues before SetupWorkerQueues finished");
    } else if cleaned {
        w.violation(&mut k, Violation::HalfBuiltTeardown, "set-up cleaned up twice");
    }
}

/// The user closes the file that kept the slot's instance draining.
pub fn close_file(w: &World, slot: Slot) {
    w.update(|k| k.file_open[slot] = false);
}
