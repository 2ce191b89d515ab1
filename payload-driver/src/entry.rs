//! The payload's entry points: what the I/O manager, FltMgr and the loader
//! call. Each one hands straight over to `loader_protocol::payload`.
//!
//! Globals are set once in DriverEntry, before the loader can call anything
//! else in this image (the loader calls the registration entry only after
//! `ZwLoadDriver`, and so DriverEntry, has returned).
use crate::filter::{KernelPayload, Services};
use crate::Minifilter;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel_sys::flt::{FLTFL_FILTER_UNLOAD_MANDATORY, FLT_FILTER_UNLOAD_FLAGS};
use kernel_sys::wrap::pool::PoolCounter;
use kernel_sys::{DRIVER_OBJECT, UNICODE_STRING};
use loader_protocol::payload as protocol;
use shared_abi::payload::LoaderServices;
use shared_abi::{NtStatus, POOL_TAG_PAYLOAD};

/// Every allocation the payload makes, counted under its tag.
pub static PAYLOAD_POOL: PoolCounter = PoolCounter::new(POOL_TAG_PAYLOAD);

static SPEC: AtomicPtr<Minifilter> = AtomicPtr::new(core::ptr::null_mut());
static DRIVER: AtomicPtr<DRIVER_OBJECT> = AtomicPtr::new(core::ptr::null_mut());

/// The plugged-in filter, once DriverEntry ran.
pub(crate) fn spec() -> Option<&'static Minifilter> {
    let p = SPEC.load(Ordering::Acquire);
    // SAFETY: only ever set from a `&'static Minifilter` in `driver_entry`.
    unsafe { p.as_ref() }
}

/// This image's driver object, once DriverEntry ran.
pub(crate) fn driver() -> *mut DRIVER_OBJECT {
    DRIVER.load(Ordering::Acquire)
}

/// DriverEntry. Does almost nothing, so an unload racing it (Windows 7) has
/// nothing half-built to tear down: it records the filter and driver object,
/// then publishes DriverUnload as its last act.
///
/// # Safety
/// `driver` must be the driver object the I/O manager passed to DriverEntry.
pub unsafe fn driver_entry(
    spec: &'static Minifilter,
    driver: *mut DRIVER_OBJECT,
    _registry: *const UNICODE_STRING,
) -> i32 {
    if driver.is_null() {
        return NtStatus::INVALID_PARAMETER.0;
    }
    SPEC.store(core::ptr::from_ref(spec).cast_mut(), Ordering::Release);
    DRIVER.store(driver, Ordering::Release);
    crate::filter::TEARDOWN_DONE.init(true, false);
    protocol::driver_entry(&KernelPayload);
    // SAFETY: `driver` is valid during DriverEntry; a pointer-sized store. Until
    // it lands, an unload request fails for want of a DriverUnload.
    unsafe { (*driver).DriverUnload = Some(driver_unload) };
    kernel_sys::wrap::log::print("payload: ", format_args!("DriverEntry done (registration waits for the loader)"));
    NtStatus::SUCCESS.0
}

/// DriverUnload. Called by the I/O manager on `ZwUnloadDriver` before
/// registration, or by FltMgr after FilterUnloadCallback. `PASSIVE_LEVEL`.
///
/// # Safety
/// Called only by the I/O manager or FltMgr.
pub unsafe extern "system" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    let status = protocol::teardown(&KernelPayload);
    kernel_sys::wrap::log::print("payload: ", format_args!("DriverUnload: teardown {status}"));
}

/// The registration entry the loader calls.
///
/// # Safety
/// `services` must be null or point to the loader's services table, valid
/// while this image is loaded.
pub unsafe fn register_entry(services: *const LoaderServices) -> i32 {
    // SAFETY: per the contract, null or a valid table.
    let Some(table) = (unsafe { services.as_ref() }) else {
        return NtStatus::INVALID_PARAMETER.0;
    };
    if (table.size as usize) < core::mem::size_of::<LoaderServices>() {
        return NtStatus::INFO_LENGTH_MISMATCH.0;
    }
    if table.abi_major != shared_abi::ABI_MAJOR {
        return NtStatus::REVISION_MISMATCH.0;
    }
    let status = protocol::register(&KernelPayload, Services::new(services));
    kernel_sys::wrap::log::print("payload: ", format_args!("registration: {status}"));
    status.0
}

/// The teardown entry the loader calls (through the descriptor) on its
/// retire worker thread. Idempotent; may block while instances drain.
///
/// # Safety
/// Called only by the loader, at `PASSIVE_LEVEL`.
pub unsafe extern "system" fn teardown_entry() -> i32 {
    let status = protocol::teardown(&KernelPayload);
    kernel_sys::wrap::log::print("payload: ", format_args!("teardown (asked by the loader): {status}"));
    status.0
}

/// The shutdown hook the loader calls on system shutdown.
///
/// # Safety
/// Called only by the loader, at `PASSIVE_LEVEL`.
pub unsafe extern "system" fn shutdown_entry() {
    if let Some(spec) = spec() {
        (spec.shutdown)();
    }
}

/// FilterUnloadCallback: how `sc stop`, `fltmc unload` and `ZwUnloadDriver`
/// reach a registered filter. `PASSIVE_LEVEL`, FltMgr's thread.
///
/// # Safety
/// Called only by FltMgr.
pub(crate) unsafe extern "system" fn filter_unload_callback(flags: FLT_FILTER_UNLOAD_FLAGS) -> i32 {
    let mandatory = flags & FLTFL_FILTER_UNLOAD_MANDATORY != 0;
    let status = protocol::filter_unload(&KernelPayload, mandatory);
    kernel_sys::wrap::log::print("payload: ", format_args!("FilterUnloadCallback (mandatory: {mandatory}): {status}"));
    status.0
}
