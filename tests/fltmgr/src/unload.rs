//! Taking filters down: `FltUnregisterFilter`, instance teardown, the
//! `DriverUnload` hook (a driver unload is a mandatory unload), the unload
//! and detach requests of the control device, and the armed Windows 7 race.
//!
//! `FltUnregisterFilter`, as documented: it stops new callbacks, waits for
//! the callbacks in flight, runs `InstanceTeardownStart` and
//! `InstanceTeardownComplete` for each instance (after the instance's
//! contexts are freed: a file kept open holds its stream context, so the
//! teardown drains until it closes), and only then returns.
//!
//! `PASSIVE_LEVEL`. Waits are on the state's events, never under its lock.
use crate::log;
use crate::state::{
    decode_filter, eq_ignore_case, filter_handle, instance_handle, instance_index, volume_handle, Name, UnloadCallback,
    FILTER_SERIAL, INSTANCE_CONTEXTS_FREED, INSTANCE_DRAINED, STATE, UNLOAD_CALLBACK_IDLE, VOLUMES,
};
use core::sync::atomic::{AtomicBool, Ordering};
use fltsim_abi as abi;
use kernel_sys::flt::{
    FLTFL_FILTER_UNLOAD_MANDATORY, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD,
    FLTFL_INSTANCE_TEARDOWN_MANDATORY_FILTER_UNLOAD, FLTFL_INSTANCE_TEARDOWN_MANUAL, FLT_RELATED_OBJECTS, PFLT_FILTER,
};
use kernel_sys::wrap::event::Event;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::thread::{self, SystemThread};
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::DRIVER_OBJECT;
use shared_abi::NtStatus;

/// `FltUnregisterFilter`.
pub fn unregister(handle: PFLT_FILTER) {
    let Some((idx, generation)) = decode_filter(handle) else {
        STATE.with(|s| s.violation(abi::VIOLATION_BAD_OBJECT, None, None));
        return;
    };
    let Some(serial) = FILTER_SERIAL.get(idx) else { return };
    serial.wait();
    unregister_locked(idx, generation);
    serial.set();
}

/// The body of `FltUnregisterFilter`, under the filter's serialization event.
/// `false` if the filter was not registered (a violation).
fn unregister_locked(idx: usize, generation: u32) -> bool {
    let begun = STATE.with(|s| {
        let live = s.filter(idx, generation).is_some_and(crate::state::FilterRec::live);
        if !live {
            let known = s.filter(idx, generation).is_some();
            s.violation(abi::VIOLATION_UNREGISTER_TWICE, None, known.then_some(idx));
            return None;
        }
        let mut in_flight = 0u32;
        let mut draining = [false; VOLUMES];
        for (v, d) in draining.iter_mut().enumerate() {
            let i = instance_index(idx, v);
            let Some(inst) = s.instances.get_mut(i) else { continue };
            if inst.filter_generation != generation || inst.state == abi::INSTANCE_FREE {
                continue;
            }
            inst.draining = true;
            in_flight += inst.in_flight;
            *d = true;
            if let Some(e) = INSTANCE_DRAINED.get(i) {
                if inst.in_flight > 0 {
                    e.reset();
                } else {
                    e.set();
                }
            }
        }
        let f = s.filters.get_mut(idx)?;
        f.state = abi::FILTER_UNREGISTERING;
        f.drained = in_flight;
        let mandatory =
            f.unload_callback == UnloadCallback::Running && f.unload_flags & FLTFL_FILTER_UNLOAD_MANDATORY != 0;
        if in_flight > 0 {
            s.totals.unregister_waits += 1;
            s.totals.waited_callbacks += u64::from(in_flight);
        }
        Some((draining, mandatory, in_flight))
    });
    let Some((draining, mandatory, in_flight)) = begun else {
        log!("FltUnregisterFilter on a filter that is not registered");
        return false;
    };
    // Wait for the callbacks in flight.
    for (v, _) in draining.iter().enumerate().filter(|(_, d)| **d) {
        if let Some(e) = INSTANCE_DRAINED.get(instance_index(idx, v)) {
            e.wait();
        }
    }
    let reason = FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD
        | if mandatory { FLTFL_INSTANCE_TEARDOWN_MANDATORY_FILTER_UNLOAD } else { 0 };
    for (v, _) in draining.iter().enumerate().filter(|(_, d)| **d) {
        teardown_instance(idx, generation, v, reason);
    }
    let name = STATE.with(|s| {
        let seq = s.next_seq();
        s.totals.unregistrations += 1;
        let leaked = match s.filter_mut(idx, generation) {
            Some(f) => {
                f.state = abi::FILTER_UNREGISTERED;
                f.unregister_returned = true;
                f.freed_seq = seq;
                f.contexts > 0
            }
            None => false,
        };
        if leaked {
            s.violation(abi::VIOLATION_LEAKED_CONTEXT, None, Some(idx));
        }
        s.filters.get(idx).map(|f| f.name).unwrap_or_default()
    });
    log!("FltUnregisterFilter {name} (generation {generation}) returned; it waited for {in_flight} callback(s)");
    true
}

/// Tears instance `(idx, volume)` down: `InstanceTeardownStart`, its
/// contexts freed, `InstanceTeardownComplete`. Its callbacks have drained.
fn teardown_instance(idx: usize, filter_generation: u32, volume: usize, reason: u32) {
    let i = instance_index(idx, volume);
    let prepared = STATE.with(|s| {
        let callbacks = s.filter(idx, filter_generation)?.callbacks;
        let inst = s.instances.get_mut(i)?;
        if inst.filter_generation != filter_generation || inst.state == abi::INSTANCE_FREE {
            return None;
        }
        inst.state = abi::INSTANCE_TEARING_DOWN;
        inst.draining = true;
        if let Some(e) = INSTANCE_CONTEXTS_FREED.get(i) {
            if inst.contexts > 0 {
                e.reset();
            } else {
                e.set();
            }
        }
        let generation = inst.generation;
        s.totals.teardown_starts += 1;
        Some((callbacks.teardown_start, callbacks.teardown_complete, generation))
    });
    let Some((start, complete, generation)) = prepared else { return };
    let objects = FLT_RELATED_OBJECTS {
        Size: u16::try_from(core::mem::size_of::<FLT_RELATED_OBJECTS>()).unwrap_or(0),
        TransactionContext: 0,
        Filter: filter_handle(idx, filter_generation),
        Volume: volume_handle(volume),
        Instance: instance_handle(i, generation),
        FileObject: core::ptr::null_mut(),
        Transaction: core::ptr::null_mut(),
    };
    if let Some(cb) = start.filter(|cb| crate::ops::callable(idx, *cb as usize)) {
        // SAFETY: the filter's InstanceTeardownStartCallback, registered
        // with this signature; `objects` outlives the call; the filter is
        // still registered (unregistering) and its image mapped.
        unsafe { cb((&raw const objects).cast(), reason) };
    }
    if let Some(e) = INSTANCE_CONTEXTS_FREED.get(i) {
        e.wait();
    }
    if let Some(cb) = complete.filter(|cb| crate::ops::callable(idx, *cb as usize)) {
        // SAFETY: as above, InstanceTeardownCompleteCallback.
        unsafe { cb((&raw const objects).cast(), reason) };
    }
    STATE.with(|s| {
        if let Some(inst) = s.instances.get_mut(i) {
            if inst.generation == generation {
                *inst = crate::state::InstanceRec::EMPTY;
            }
        }
        s.totals.teardown_completes += 1;
    });
}

/// Calls the filter's `FilterUnloadCallback` with `flags`. `None` if it has
/// none or is not registered; if another call of it is running, waits for
/// that one and returns `None` (it is called once).
fn call_unload_callback(idx: usize, generation: u32, flags: u32) -> Option<NtStatus> {
    let claimed = STATE.with(|s| {
        let f = s.filter_mut(idx, generation)?;
        if !f.holds_registration() {
            return None;
        }
        match f.unload_callback {
            UnloadCallback::NotCalled => {
                let cb = f.callbacks.unload?;
                f.unload_callback = UnloadCallback::Running;
                f.unload_flags = flags;
                if let Some(e) = UNLOAD_CALLBACK_IDLE.get(idx) {
                    e.reset();
                }
                Some(Ok(cb))
            }
            UnloadCallback::Running => Some(Err(())),
            UnloadCallback::Done => None,
        }
    })?;
    let Ok(cb) = claimed else {
        if let Some(e) = UNLOAD_CALLBACK_IDLE.get(idx) {
            e.wait();
        }
        return None;
    };
    let status = if crate::ops::callable(idx, cb as usize) {
        // SAFETY: the filter's FilterUnloadCallback, registered with this
        // signature; the filter is registered and its image mapped.
        NtStatus(unsafe { cb(flags) })
    } else {
        NtStatus::FLT_DO_NOT_DETACH
    };
    let mandatory = flags & FLTFL_FILTER_UNLOAD_MANDATORY != 0;
    STATE.with(|s| {
        s.totals.unload_callbacks += 1;
        let refused = !status.is_success() && !mandatory;
        if refused {
            s.totals.unload_refused += 1;
        }
        if let Some(f) = s.filters.get_mut(idx) {
            if f.generation == generation {
                f.unload_callback = if refused { UnloadCallback::NotCalled } else { UnloadCallback::Done };
                f.unload_flags = 0;
            }
        }
    });
    if let Some(e) = UNLOAD_CALLBACK_IDLE.get(idx) {
        e.set();
    }
    Some(status)
}

/// After a `FilterUnloadCallback` that had to end the filter: if it left the
/// filter registered, unregisters it, as the Filter Manager does.
fn unregister_if_left(idx: usize, generation: u32) {
    let left = STATE.with(|s| {
        let live = s.filter(idx, generation).is_some_and(crate::state::FilterRec::live);
        if live {
            s.totals.forced_unregisters += 1;
        }
        live
    });
    if left {
        if let Some(serial) = FILTER_SERIAL.get(idx) {
            serial.wait();
            unregister_locked(idx, generation);
            serial.set();
        }
    }
}

/// The `DriverUnload` `FltRegisterFilter` put in a filter's driver object.
/// The I/O manager calls it for `sc stop` / `ZwUnloadDriver`: a mandatory
/// unload (`FilterUnloadCallback` with `FLTFL_FILTER_UNLOAD_MANDATORY`,
/// unless it ran already), then the driver's own `DriverUnload`. Wine frees
/// the image right after this returns: the range is remembered as unloaded.
///
/// # Safety
/// Called only by the I/O manager with the driver object whose
/// `DriverUnload` it is.
pub unsafe extern "system" fn driver_unload_hook(driver: *mut DRIVER_OBJECT) {
    let addr = driver.addr();
    let record = STATE.with(|s| {
        let h = s.hooks.iter_mut().find(|h| h.used && h.driver == addr)?;
        h.used = false;
        let h = *h;
        s.totals.hooked_unloads += 1;
        Some(h)
    });
    let Some(h) = record else {
        log!("DriverUnload hook called for a driver it does not know");
        return;
    };
    log!("driver unload of {}: a mandatory unload", h.service);
    let _ = call_unload_callback(h.filter, h.generation, FLTFL_FILTER_UNLOAD_MANDATORY);
    unregister_if_left(h.filter, h.generation);
    if let Some(saved) = h.saved.filter(|f| crate::ops::callable(h.filter, *f as usize)) {
        // SAFETY: the driver's own DriverUnload, saved by FltRegisterFilter,
        // called as the I/O manager would, with its driver object.
        unsafe { saved(driver) };
    }
    STATE.with(|s| s.mark_unloaded(h.image));
}

// ---------------------------------------------------------------------------
// Requests of the control device, run on a job thread of the simulator.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Job {
    kind: u32,
    name: Name,
    volume: usize,
}

static JOB: SpinLock<Option<Job>> = SpinLock::new(None);
static JOB_THREAD: SpinLock<Option<SystemThread>> = SpinLock::new(None);

/// Starts an unload (`abi::JOB_UNLOAD[_MANDATORY]`) or detach job.
pub fn start_job(kind: u32, name: &[u16], volume: usize) -> NtStatus {
    let Some(name) = WideBuf::from_units(name).filter(|n| !n.units().is_empty()) else {
        return NtStatus::INVALID_PARAMETER;
    };
    let busy = STATE.with(|s| {
        if s.job.state == abi::JOB_RUNNING {
            return true;
        }
        s.job = abi::JobStatus { kind, state: abi::JOB_RUNNING, status: 0, reserved: 0, seq: s.job.seq + 1 };
        false
    });
    if busy {
        return NtStatus::DEVICE_BUSY;
    }
    join(&JOB_THREAD);
    JOB.with(|j| *j = Some(Job { kind, name, volume }));
    match thread::spawn(job_thread, 0) {
        Ok(t) => {
            JOB_THREAD.with(|slot| *slot = Some(t));
            NtStatus::SUCCESS
        }
        Err(e) => {
            STATE.with(|s| {
                s.job.state = abi::JOB_DONE;
                s.job.status = e;
            });
            NtStatus(e)
        }
    }
}

fn join(slot: &SpinLock<Option<SystemThread>>) {
    if let Some(t) = slot.with(Option::take) {
        if let Err(e) = t.join() {
            log!("waiting for a thread of the simulator failed: {}", NtStatus(e));
        }
    }
}

extern "system" fn job_thread(_context: *mut core::ffi::c_void) {
    let status = match JOB.with(Option::take) {
        Some(job) if job.kind == abi::JOB_DETACH => detach(&job.name, job.volume),
        Some(job) => unload_request(&job.name, job.kind == abi::JOB_UNLOAD_MANDATORY),
        None => NtStatus::INVALID_PARAMETER,
    };
    STATE.with(|s| {
        s.job.state = abi::JOB_DONE;
        s.job.status = status.0;
    });
    thread::exit(0);
}

/// `ZwUnloadDriver` of `service` (what `sc stop` does).
fn unload_driver(service: &Name) -> NtStatus {
    let mut key: WideBuf<160> = WideBuf::new();
    let built = key
        .push_ascii("\\Registry\\Machine\\System\\CurrentControlSet\\Services\\")
        .and_then(|()| key.push_units(service.units()));
    if built.is_none() {
        return NtStatus::OBJECT_NAME_INVALID;
    }
    kernel_sys::wrap::image::unload_driver(key.units())
}

/// A mandatory unload is a driver unload of the filter's service: the hook
/// above does the rest. A non-mandatory one (`fltmc unload`) asks the
/// filter first (`FilterUnloadCallback` with flags 0), which may refuse with
/// `STATUS_FLT_DO_NOT_DETACH`; if it agrees, the driver is unloaded.
fn unload_request(name: &Name, mandatory: bool) -> NtStatus {
    if mandatory {
        log!("mandatory unload of {name} requested (ZwUnloadDriver, as sc stop)");
        return unload_driver(name);
    }
    let Some((idx, generation)) = STATE.with(|s| s.live_by_name(name.units())) else {
        return NtStatus::FLT_FILTER_NOT_FOUND;
    };
    log!("unload of {name} requested (not mandatory, as fltmc unload)");
    let status = call_unload_callback(idx, generation, 0).unwrap_or(NtStatus::FLT_DO_NOT_DETACH);
    if !status.is_success() {
        log!("{name} refused the unload: {status}");
        return status;
    }
    unregister_if_left(idx, generation);
    unload_driver(name)
}

/// `fltmc detach`: `InstanceQueryTeardown` (no callback: refused), then the
/// instance drains and is torn down.
fn detach(name: &Name, volume: usize) -> NtStatus {
    let Some((idx, generation)) = STATE.with(|s| s.live_by_name(name.units())) else {
        return NtStatus::FLT_FILTER_NOT_FOUND;
    };
    if volume >= VOLUMES {
        return NtStatus::FLT_VOLUME_NOT_FOUND;
    }
    let Some(serial) = FILTER_SERIAL.get(idx) else { return NtStatus::INVALID_PARAMETER };
    serial.wait();
    let status = detach_locked(idx, generation, volume);
    serial.set();
    log!("detach of {name} from volume {volume}: {status}");
    status
}

fn detach_locked(idx: usize, generation: u32, volume: usize) -> NtStatus {
    let i = instance_index(idx, volume);
    let found = STATE.with(|s| {
        let query = s.filter(idx, generation).filter(|f| f.live())?.callbacks.query_teardown;
        let inst = s.instances.get(i)?;
        (inst.filter_generation == generation && inst.state == abi::INSTANCE_ATTACHED)
            .then_some((query, inst.generation))
    });
    let Some((query, instance_generation)) = found else { return NtStatus::FLT_INSTANCE_NOT_FOUND };
    let objects = FLT_RELATED_OBJECTS {
        Size: u16::try_from(core::mem::size_of::<FLT_RELATED_OBJECTS>()).unwrap_or(0),
        TransactionContext: 0,
        Filter: filter_handle(idx, generation),
        Volume: volume_handle(volume),
        Instance: instance_handle(i, instance_generation),
        FileObject: core::ptr::null_mut(),
        Transaction: core::ptr::null_mut(),
    };
    let status = match query.filter(|cb| crate::ops::callable(idx, *cb as usize)) {
        // SAFETY: the filter's InstanceQueryTeardownCallback, registered with
        // this signature; `objects` outlives the call; the filter is
        // registered and its image mapped.
        Some(cb) => NtStatus(unsafe { cb((&raw const objects).cast(), 0) }),
        None => NtStatus::FLT_DO_NOT_DETACH,
    };
    let admitted = STATE.with(|s| {
        s.totals.detaches += 1;
        if !status.is_success() {
            s.totals.detaches_refused += 1;
            return false;
        }
        let Some(inst) = s.instances.get_mut(i) else { return false };
        inst.draining = true;
        if let Some(e) = INSTANCE_DRAINED.get(i) {
            if inst.in_flight > 0 {
                e.reset();
            } else {
                e.set();
            }
        }
        true
    });
    if !admitted {
        return status;
    }
    if let Some(e) = INSTANCE_DRAINED.get(i) {
        e.wait();
    }
    teardown_instance(idx, generation, volume, FLTFL_INSTANCE_TEARDOWN_MANUAL);
    NtStatus::SUCCESS
}

// ---------------------------------------------------------------------------
// The armed race.
// ---------------------------------------------------------------------------

static RACE_THREAD: SpinLock<Option<SystemThread>> = SpinLock::new(None);
static RACE_TARGET: SpinLock<(usize, u32)> = SpinLock::new((0, 0));
/// A race thread waits for `FltRegisterFilter` to hand over.
static RACE_PENDING: AtomicBool = AtomicBool::new(false);
/// Set when the raced filter's handle is written (`FltRegisterFilter` is returning).
static RACE_REGISTERED: Event = Event::notification(true);
/// Set by the race thread just before it calls `FilterUnloadCallback`.
static RACE_CALLING: Event = Event::notification(true);

/// Arms the race for `name` (or disarms it).
pub fn arm(name: &[u16], disarm: bool) -> NtStatus {
    join(&RACE_THREAD);
    let Some(target) = WideBuf::from_units(name) else { return NtStatus::INVALID_PARAMETER };
    STATE.with(|s| {
        s.race.target = target;
        s.race.status.state = if disarm { abi::RACE_IDLE } else { abi::RACE_ARMED };
        s.race.status.callback_status = 0;
        s.race.status.before_start = 0;
        s.race.status.still_registered = 0;
    });
    if !disarm {
        log!("race armed for {target}");
    }
    NtStatus::SUCCESS
}

/// Called by `FltRegisterFilter` on success: fires the race if it is armed
/// for this filter. The callback runs on a thread of its own as soon as
/// `FltRegisterFilter` has returned to the filter ([`race_registered`]).
pub fn race_after_register(idx: usize, generation: u32, service: &Name) {
    let fire = STATE.with(|s| {
        let armed = s.race.status.state == abi::RACE_ARMED && eq_ignore_case(s.race.target.units(), service.units());
        if armed {
            s.race.status.state = abi::RACE_FIRED;
            s.race.status.fired += 1;
        }
        armed
    });
    if !fire {
        return;
    }
    RACE_REGISTERED.reset();
    RACE_CALLING.reset();
    RACE_TARGET.with(|t| *t = (idx, generation));
    RACE_PENDING.store(true, Ordering::Release);
    match thread::spawn(race_thread, 0) {
        Ok(t) => {
            if let Some(old) = RACE_THREAD.with(|slot| slot.replace(t)) {
                let _ = old.join();
            }
            log!(
                "race: FltRegisterFilter of {service} returns; its FilterUnloadCallback runs now, from another thread"
            );
        }
        Err(e) => {
            RACE_PENDING.store(false, Ordering::Release);
            STATE.with(|s| s.race.status.state = abi::RACE_DONE);
            log!("race: no thread ({})", NtStatus(e));
        }
    }
}

/// `FltRegisterFilter` has written the filter's handle and returns to it.
/// If the race fired, the race thread's `FilterUnloadCallback` begins now:
/// this returns once the thread is calling it (bounded), so the callback
/// runs while the filter goes on with what follows its registration.
pub fn race_registered() {
    if RACE_PENDING.swap(false, Ordering::AcqRel) {
        RACE_REGISTERED.set();
        let _ = RACE_CALLING.wait_ms(5_000);
    }
}

extern "system" fn race_thread(_context: *mut core::ffi::c_void) {
    // Bounded: FltRegisterFilter sets it on its way out.
    let _ = RACE_REGISTERED.wait_ms(10_000);
    let (idx, generation) = RACE_TARGET.with(|t| *t);
    let before_start = STATE.with(|s| s.filter(idx, generation).is_some_and(|f| !f.started));
    RACE_CALLING.set();
    let status = call_unload_callback(idx, generation, FLTFL_FILTER_UNLOAD_MANDATORY).unwrap_or(NtStatus::SUCCESS);
    STATE.with(|s| {
        let still = s.filter(idx, generation).is_some_and(crate::state::FilterRec::live);
        s.race.status.callback_status = status.0;
        s.race.status.before_start = u32::from(before_start);
        s.race.status.still_registered = u32::from(still);
        s.race.status.state = abi::RACE_DONE;
    });
    log!(
        "race: FilterUnloadCallback returned {status}{}",
        if before_start { " (it began before FltStartFiltering)" } else { "" }
    );
    thread::exit(0);
}
