//! The naive image: `DriverEntry` registers, builds, then starts, as many
//! legacy minifilters did; `FilterUnloadCallback` frees and unregisters.
//! No `DriverUnload` of its own (the Filter Manager makes it unloadable).
//!
//! It registers the XP-era layout, `FLT_REGISTRATION_VERSION_0200` with the
//! 0x0200 size, as a filter built for XP-era kernels does.
use crate::log;
use crate::state;
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel_sys::flt::{
    FLT_OPERATION_REGISTRATION, FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_REGISTRATION, FLT_REGISTRATION_SIZE_0200,
    FLT_REGISTRATION_VERSION_0200, IRP_MJ_OPERATION_END,
};
use kernel_sys::wrap::driver::{DriverObject, RegistryPath};
use kernel_sys::{FltRegisterFilter, FltStartFiltering, FltUnregisterFilter};
use shared_abi::NtStatus;

kernel_sys::driver_entry!(driver_main);

/// The filter handle, where `FltRegisterFilter` writes it (a C global).
static FILTER: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// Pre-create: the naive filter only watches opens.
unsafe extern "system" fn pre_create(_data: *mut c_void, _objects: *const c_void, _ctx: *mut *mut c_void) -> i32 {
    FLT_PREOP_SUCCESS_NO_CALLBACK
}

static OPERATIONS: [FLT_OPERATION_REGISTRATION; 2] = [
    FLT_OPERATION_REGISTRATION {
        MajorFunction: 0, // IRP_MJ_CREATE
        Flags: 0,
        PreOperation: Some(pre_create),
        PostOperation: None,
        Reserved1: core::ptr::null_mut(),
    },
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_OPERATION_END,
        Flags: 0,
        PreOperation: None,
        PostOperation: None,
        Reserved1: core::ptr::null_mut(),
    },
];

#[allow(clippy::cast_possible_truncation)] // 0x58
static REGISTRATION: FLT_REGISTRATION = FLT_REGISTRATION {
    Size: FLT_REGISTRATION_SIZE_0200 as u16,
    Version: FLT_REGISTRATION_VERSION_0200,
    Flags: 0,
    ContextRegistration: core::ptr::null(),
    OperationRegistration: OPERATIONS.as_ptr(),
    FilterUnloadCallback: Some(filter_unload),
    InstanceSetupCallback: None,
    InstanceQueryTeardownCallback: core::ptr::null_mut(),
    InstanceTeardownStartCallback: core::ptr::null_mut(),
    InstanceTeardownCompleteCallback: None,
    GenerateFileNameCallback: core::ptr::null_mut(),
    NormalizeNameComponentCallback: core::ptr::null_mut(),
    NormalizeContextCleanupCallback: core::ptr::null_mut(),
    TransactionNotificationCallback: core::ptr::null_mut(),
    NormalizeNameComponentExCallback: core::ptr::null_mut(),
};

/// Called by the I/O manager at `PASSIVE_LEVEL` when the service starts.
fn driver_main(driver: DriverObject, registry_path: &RegistryPath) -> Result<(), NtStatus> {
    state::reset(registry_path.units());
    FILTER.store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: this driver's object, a registration in a static, and the
    // global the handle is written to, as C filters pass `&gFilterHandle`.
    NtStatus(unsafe { FltRegisterFilter(driver.as_raw(), &raw const REGISTRATION, FILTER.as_ptr()) }).to_result()?;
    log!("registered; building the global state");
    state::build_slowly();
    // SAFETY: the handle FltRegisterFilter returned.
    let status = NtStatus(unsafe { FltStartFiltering(FILTER.load(Ordering::Acquire)) });
    if !status.is_success() {
        log!("FltStartFiltering failed: {status}; unregistering");
        // SAFETY: as above (what a naive filter does on this path).
        unsafe { FltUnregisterFilter(FILTER.load(Ordering::Acquire)) };
        return Err(status);
    }
    log!("filtering");
    Ok(())
}

/// `FilterUnloadCallback`: the Filter Manager calls it for `sc stop` (and,
/// on Windows 7, possibly while `DriverEntry` still runs). Frees the state
/// and unregisters.
unsafe extern "system" fn filter_unload(flags: u32) -> i32 {
    log!("FilterUnloadCallback (flags {flags:#x})");
    state::tear_down();
    // SAFETY: the handle FltRegisterFilter returned.
    unsafe { FltUnregisterFilter(FILTER.load(Ordering::Acquire)) };
    NtStatus::SUCCESS.0
}
