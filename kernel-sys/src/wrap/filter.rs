//! Registering a minifilter with the Filter Manager, safely.
//!
//! The registration `FltMgr` keeps a pointer to must outlive the filter: it is
//! copied once into a static of this image, adjusted to the running kernel
//! (XP-era `FltMgr` knows only the 0x0200 layout), and registered from there.
use crate::flt::{FLT_REGISTRATION, FLT_REGISTRATION_SIZE_0200, FLT_REGISTRATION_VERSION_0200, PFLT_FILTER};
use crate::imports::{FltRegisterFilter, FltStartFiltering, FltUnregisterFilter};
use crate::wrap::driver::DriverObject;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use shared_abi::NtStatus;

/// A registered filter.
#[derive(Clone, Copy)]
pub struct Filter(PFLT_FILTER);

// SAFETY: a PFLT_FILTER is an opaque FltMgr handle usable from any thread.
unsafe impl Send for Filter {}

struct RegistrationCell {
    taken: AtomicBool,
    value: UnsafeCell<Option<FLT_REGISTRATION>>,
}
// SAFETY: written once, by the caller that won `taken`, before FltMgr ever
// reads it; read-only afterwards.
unsafe impl Sync for RegistrationCell {}

static REGISTRATION: RegistrationCell =
    RegistrationCell { taken: AtomicBool::new(false), value: UnsafeCell::new(None) };

/// `FltRegisterFilter` for `driver` with `registration`, as the running
/// kernel understands it (0x0200 layout before Vista). Once per image:
/// a second call gets `STATUS_FLT_INSTANCE_ALTITUDE_COLLISION`, as `FltMgr`
/// answers a driver object registering twice. `PASSIVE_LEVEL`.
pub fn register(driver: DriverObject, registration: &FLT_REGISTRATION) -> Result<Filter, NtStatus> {
    if REGISTRATION.taken.swap(true, Ordering::AcqRel) {
        return Err(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION);
    }
    let mut adjusted = *registration;
    if crate::wrap::version::major() < 6 {
        adjusted.Version = FLT_REGISTRATION_VERSION_0200;
        adjusted.Size = u16::try_from(FLT_REGISTRATION_SIZE_0200).unwrap_or(u16::MAX);
    }
    // SAFETY: we won `taken`: the only writer, and FltMgr has not seen it yet.
    let stored: &'static FLT_REGISTRATION = unsafe { (*REGISTRATION.value.get()).insert(adjusted) };
    let mut handle: PFLT_FILTER = core::ptr::null_mut();
    // SAFETY: this image's driver object and a registration in a static that
    // outlives the filter; `handle` is a valid out-pointer.
    let status = NtStatus(unsafe { FltRegisterFilter(driver.as_raw(), stored, &raw mut handle) });
    status.to_result().map(|()| Filter(handle))
}

/// `FltStartFiltering`. `PASSIVE_LEVEL`.
pub fn start(filter: Filter) -> Result<(), NtStatus> {
    // SAFETY: a handle FltRegisterFilter returned; the protocol unregisters
    // it only after this returns.
    NtStatus(unsafe { FltStartFiltering(filter.0) }).to_result()
}

/// `FltUnregisterFilter`: waits for callbacks in flight and instance
/// teardowns. `PASSIVE_LEVEL`; the protocol calls it exactly once.
pub fn unregister(filter: Filter) {
    // SAFETY: as above; never used again after this.
    unsafe { FltUnregisterFilter(filter.0) };
}
