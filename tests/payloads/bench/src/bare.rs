//! The bare image: `DriverEntry` registers and starts filtering;
//! `FilterUnloadCallback` unregisters (so `sc stop` unloads it).
use crate::callbacks::REGISTRATION;
use crate::log;
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel_sys::flt::{FLT_REGISTRATION, FLT_REGISTRATION_VERSION_0202};
use kernel_sys::wrap::driver::{DriverObject, RegistryPath};
use kernel_sys::{FltRegisterFilter, FltStartFiltering, FltUnregisterFilter};
use shared_abi::NtStatus;

kernel_sys::driver_entry!(driver_main);

static FILTER: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

#[allow(clippy::cast_possible_truncation)] // 0x68
static BARE: FLT_REGISTRATION = FLT_REGISTRATION {
    Size: core::mem::size_of::<FLT_REGISTRATION>() as u16,
    Version: FLT_REGISTRATION_VERSION_0202,
    FilterUnloadCallback: Some(filter_unload),
    ..REGISTRATION
};

/// Called by the I/O manager at `PASSIVE_LEVEL` when the service starts.
fn driver_main(driver: DriverObject, _registry_path: &RegistryPath) -> Result<(), NtStatus> {
    // SAFETY: this driver's object, a registration in a static, and the
    // global the handle is written to.
    NtStatus(unsafe { FltRegisterFilter(driver.as_raw(), &raw const BARE, FILTER.as_ptr()) }).to_result()?;
    // SAFETY: the handle FltRegisterFilter returned.
    let started = NtStatus(unsafe { FltStartFiltering(FILTER.load(Ordering::Acquire)) });
    if !started.is_success() {
        // SAFETY: as above.
        unsafe { FltUnregisterFilter(FILTER.load(Ordering::Acquire)) };
        return Err(started);
    }
    log!("bare image filtering");
    Ok(())
}

/// `FilterUnloadCallback`: unregisters.
unsafe extern "system" fn filter_unload(_flags: u32) -> i32 {
    // SAFETY: the handle FltRegisterFilter returned.
    unsafe { FltUnregisterFilter(FILTER.load(Ordering::Acquire)) };
    NtStatus::SUCCESS.0
}
