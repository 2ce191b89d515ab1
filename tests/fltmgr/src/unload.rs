//! Taking filters down: `FltUnregisterFilter`, instance teardown,
//! `FilterUnloadCallback`, and the `DriverUnload` hook (a driver unload is a
//! mandatory unload).
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
    decode_filter, filter_handle, instance_handle, instance_index, volume_handle, UnloadCallback, FILTER_SERIAL,
    INSTANCE_CONTEXTS_FREED, INSTANCE_DRAINED, STATE, UNLOAD_CALLBACK_IDLE, VOLUMES,
};
use fltsim_abi as abi;
use kernel_sys::flt::{
    FLTFL_FILTER_UNLOAD_MANDATORY, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD,
    FLTFL_INSTANCE_TEARDOWN_MANDATORY_FILTER_UNLOAD, FLT_RELATED_OBJECTS, PFLT_FILTER,
};
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
pub(crate) fn teardown_instance(idx: usize, filter_generation: u32, volume: usize, reason: u32) {
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
pub(crate) fn call_unload_callback(idx: usize, generation: u32, flags: u32) -> Option<NtStatus> {
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
pub(crate) fn unregister_if_left(idx: usize, generation: u32) {
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
