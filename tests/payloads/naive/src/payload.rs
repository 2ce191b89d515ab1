//! The same filter logic behind the payload wrapper: the state is built in
//! `setup` and freed in `cleanup`, which the wrapper runs in order with the
//! loader (registration only after `DriverEntry` returned, teardown only
//! after the registration settled).
use crate::state;
use core::ffi::c_void;
use kernel_sys::flt::{
    FLT_OPERATION_REGISTRATION, FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_REGISTRATION, IRP_MJ_OPERATION_END,
};
use kernel_sys::{DRIVER_OBJECT, UNICODE_STRING};
use payload_driver::shared_abi::payload::PayloadReport;
use payload_driver::Minifilter;
use shared_abi::NtStatus;

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

#[allow(clippy::unnecessary_wraps)] // the wrapper's `setup` signature
fn setup() -> Result<(), NtStatus> {
    state::build_slowly();
    Ok(())
}

fn report(_r: &mut PayloadReport) {}

fn shutdown() {}

/// The filter as the wrapper sees it.
static NAIVE: Minifilter = Minifilter {
    registration: payload_driver::wrap_registration(FLT_REGISTRATION {
        Size: 0,
        Version: 0,
        Flags: 0,
        ContextRegistration: core::ptr::null(),
        OperationRegistration: OPERATIONS.as_ptr(),
        FilterUnloadCallback: None,
        InstanceSetupCallback: None,
        InstanceQueryTeardownCallback: core::ptr::null_mut(),
        InstanceTeardownStartCallback: core::ptr::null_mut(),
        InstanceTeardownCompleteCallback: None,
        GenerateFileNameCallback: core::ptr::null_mut(),
        NormalizeNameComponentCallback: core::ptr::null_mut(),
        NormalizeContextCleanupCallback: core::ptr::null_mut(),
        TransactionNotificationCallback: core::ptr::null_mut(),
        NormalizeNameComponentExCallback: core::ptr::null_mut(),
    }),
    setup,
    cleanup: state::tear_down,
    report,
    shutdown,
    state: None,
    handover: true,
};

payload_driver::export_descriptor!(payload_driver::descriptor("NaiveFilter payload", 1));
payload_driver::export_register_entry!();

/// Called by the I/O manager when the loader's `ZwLoadDriver` loads this
/// image, on the loading thread, at `PASSIVE_LEVEL`. Keeps the service key
/// path (where a half-built teardown would be recorded), then hands over to
/// the wrapper.
///
/// # Safety
/// Called only by the I/O manager, with its driver object and registry path.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(driver: *mut DRIVER_OBJECT, registry_path: *const UNICODE_STRING) -> i32 {
    // SAFETY: the two arguments the I/O manager passed to DriverEntry.
    match unsafe { kernel_sys::wrap::driver::enter(driver, registry_path) } {
        Ok((driver, path)) => {
            state::reset(path.units());
            payload_driver::driver_entry(&NAIVE, driver)
        }
        Err(status) => status.0,
    }
}
