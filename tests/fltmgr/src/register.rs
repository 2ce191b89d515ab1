//! `FltRegisterFilter`, and the `DriverUnload` hook it installs.
//!
//! Registration, as Windows 7's Filter Manager does it: the registration
//! read and checked (`registration.rs`); a second registration of the same
//! driver object, or of a taken altitude, refused with
//! `STATUS_FLT_INSTANCE_ALTITUDE_COLLISION`; the driver's `DriverUnload`
//! saved and replaced, so that a driver unload (`sc stop`, `ZwUnloadDriver`)
//! becomes a mandatory unload: `FilterUnloadCallback` with
//! `FLTFL_FILTER_UNLOAD_MANDATORY`, then the saved `DriverUnload`
//! (`unload.rs`). `PASSIVE_LEVEL`.
use crate::log;
use crate::registration::{
    exports_payload_descriptor, read_altitude, read_callbacks, read_registration, service_name, AltitudeText,
};
use crate::state::{filter_handle, instance_index, Callbacks, HookRec, Name, MAX_HOOKS, STATE, VOLUMES};
use fltsim_abi as abi;
use kernel_sys::flt::{FLT_REGISTRATION, PFLT_FILTER};
use kernel_sys::DRIVER_OBJECT;
use shared_abi::NtStatus;

/// `FLTFL_REGISTRATION_DO_NOT_SUPPORT_SERVICE_STOP`: a service stop does not unload the filter.
const FLTFL_REGISTRATION_DO_NOT_SUPPORT_SERVICE_STOP: u32 = 0x1;

/// A filter's view of a registration, as `FltRegisterFilter` received it.
pub struct Registering {
    pub driver: *mut DRIVER_OBJECT,
    pub registration: *const FLT_REGISTRATION,
}

/// `FltRegisterFilter`.
pub fn register(r: &Registering) -> Result<PFLT_FILTER, NtStatus> {
    let result = register_inner(r);
    if let Err(status) = result {
        STATE.with(|s| s.totals.registrations_refused += 1);
        log!("FltRegisterFilter refused: {status}");
    }
    result
}

fn register_inner(r: &Registering) -> Result<PFLT_FILTER, NtStatus> {
    let (version, registration) = read_registration(r.registration)?;
    let callbacks = read_callbacks(&registration)?;
    // SAFETY: the caller passes its own driver object, alive while it is
    // registered; `DriverName`, `DriverStart` and `DriverSize` were set by
    // the I/O manager before `DriverEntry`.
    let (driver_name, image) = unsafe {
        let d = &*r.driver;
        (d.DriverName, (d.DriverStart as usize, d.DriverSize as usize))
    };
    let service = service_name(driver_name).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let (altitude, altitude_text) = read_altitude(&service)?;
    let is_payload = exports_payload_descriptor(image);
    let driver = r.driver.addr();
    let (idx, generation) = STATE.with(|s| {
        for f in &s.filters {
            if f.holds_registration() && (f.driver == driver || f.altitude == altitude) {
                return Err(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION);
            }
        }
        let slot = s.filters.iter().position(|f| f.state == abi::FILTER_FREE).or_else(|| {
            let reusable = s.filters.iter().enumerate().filter(|(i, f)| {
                f.state == abi::FILTER_UNREGISTERED
                    && (0..VOLUMES).all(|v| {
                        s.instances.get(instance_index(*i, v)).is_some_and(|inst| inst.state == abi::INSTANCE_FREE)
                    })
            });
            reusable.min_by_key(|(_, f)| f.freed_seq).map(|(i, _)| i)
        });
        let idx = slot.ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
        let generation = s.generation();
        s.forget_unloaded(image);
        let f = s.filters.get_mut(idx).ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
        *f = crate::state::FilterRec::EMPTY;
        f.state = abi::FILTER_REGISTERED;
        f.generation = generation;
        f.driver = driver;
        f.image = image;
        f.name = service;
        f.altitude = altitude;
        f.altitude_text = altitude_text;
        f.version = u32::from(version);
        f.is_payload = is_payload;
        f.callbacks = callbacks;
        s.totals.registrations += 1;
        Ok((idx, generation))
    })?;
    install_hook(r.driver, idx, generation, image, service, &callbacks);
    log!(
        "FltRegisterFilter {service} altitude {} version {version:#06x}{} -> generation {generation}",
        AltitudeText(&altitude_text),
        if is_payload { " (a loader payload)" } else { "" }
    );
    crate::race::after_register(idx, generation, &service);
    Ok(filter_handle(idx, generation))
}

/// Saves the driver's `DriverUnload` and puts the simulator's hook in its
/// place (or none: a filter without `FilterUnloadCallback`, or one that
/// asked not to support service stop, cannot be unloaded).
fn install_hook(
    driver: *mut DRIVER_OBJECT,
    idx: usize,
    generation: u32,
    image: (usize, usize),
    service: Name,
    callbacks: &Callbacks,
) {
    let hook: unsafe extern "system" fn(*mut DRIVER_OBJECT) = crate::unload::driver_unload_hook;
    // SAFETY: the caller's driver object; a pointer-sized read.
    let current = unsafe { (*driver).DriverUnload };
    let current_is_hook = current.is_some_and(|f| f as usize == hook as usize);
    let addr = driver.addr();
    STATE.with(|s| {
        let seq = s.next_seq();
        let live = |s: &crate::state::Sim, h: &HookRec| {
            s.filters.get(h.filter).is_some_and(|f| f.generation == h.generation && f.holds_registration())
        };
        let existing = s.hooks.iter().position(|h| h.used && h.driver == addr);
        let slot = existing.or_else(|| s.hooks.iter().position(|h| !h.used)).or_else(|| {
            // Full: evict the oldest record of a filter no longer registered.
            let stale = s.hooks.iter().enumerate().filter(|(_, h)| !live(s, h));
            stale.min_by_key(|(_, h)| h.seq).map(|(i, _)| i)
        });
        let Some(slot) = slot.filter(|&i| i < MAX_HOOKS) else { return };
        let saved = match s.hooks.get(slot) {
            Some(h) if h.used && h.driver == addr && current_is_hook => h.saved,
            _ => current,
        };
        if let Some(h) = s.hooks.get_mut(slot) {
            *h = HookRec { used: true, driver: addr, saved, filter: idx, generation, image, service, seq };
        }
    });
    let unloadable =
        callbacks.unload.is_some() && callbacks.flags & FLTFL_REGISTRATION_DO_NOT_SUPPORT_SERVICE_STOP == 0;
    let new: kernel_sys::PDRIVER_UNLOAD = if unloadable { Some(hook) } else { None };
    // SAFETY: the caller's driver object; a pointer-sized store, as
    // Windows' FltMgr makes it.
    unsafe { (*driver).DriverUnload = new };
}
