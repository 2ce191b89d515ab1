//! `CounterFilter`: an example legacy minifilter plugged into the payload
//! wrapper. It counts creates, reads and writes per volume.
//!
//! What changed from a plain minifilter is only this: its `DriverEntry` work
//! (allocating the per-volume table) moved into `setup`, and its
//! `FilterUnloadCallback` work (freeing it) into `cleanup`. Its operation
//! callbacks and instance callbacks are as they were.
//!
//! Cargo features build the upgrade target (`v2`) and the fault-injection
//! images the end-to-end suite loads; `docs/architecture.md` lists them.
#![no_std]

mod counters;

use kernel_sys::flt::{FLT_OPERATION_REGISTRATION, FLT_REGISTRATION, IRP_MJ_OPERATION_END};
use kernel_sys::{IRP_MJ_READ, IRP_MJ_WRITE};
use payload_driver::shared_abi::payload::PayloadDescriptor;
use payload_driver::Minifilter;

/// The filter's version as `loaderctl status` shows it.
const VERSION: u32 = if cfg!(feature = "v2") { 2 } else { 1 };
const NAME: &str = if cfg!(feature = "v2") { "CounterFilter v2" } else { "CounterFilter v1" };

const IRP_MJ_CREATE: u8 = 0;

static OPERATIONS: [FLT_OPERATION_REGISTRATION; 4] = [
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_CREATE,
        Flags: 0,
        PreOperation: Some(counters::pre_create),
        PostOperation: Some(counters::post_create),
        Reserved1: core::ptr::null_mut(),
    },
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_READ,
        Flags: 0,
        PreOperation: Some(counters::pre_read),
        PostOperation: Some(counters::post_read),
        Reserved1: core::ptr::null_mut(),
    },
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_WRITE,
        Flags: 0,
        PreOperation: Some(counters::pre_write),
        PostOperation: Some(counters::post_write),
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

/// The filter as the wrapper sees it.
pub static COUNTER_FILTER: Minifilter = Minifilter {
    registration: payload_driver::wrap_registration(FLT_REGISTRATION {
        Size: 0,
        Version: 0,
        Flags: 0,
        ContextRegistration: core::ptr::null(),
        OperationRegistration: OPERATIONS.as_ptr(),
        FilterUnloadCallback: None,
        InstanceSetupCallback: Some(counters::instance_setup),
        InstanceQueryTeardownCallback: core::ptr::null_mut(),
        InstanceTeardownStartCallback: core::ptr::null_mut(),
        InstanceTeardownCompleteCallback: Some(counters::instance_teardown_complete),
        GenerateFileNameCallback: core::ptr::null_mut(),
        NormalizeNameComponentCallback: core::ptr::null_mut(),
        NormalizeContextCleanupCallback: core::ptr::null_mut(),
        TransactionNotificationCallback: core::ptr::null_mut(),
        NormalizeNameComponentExCallback: core::ptr::null_mut(),
    }),
    setup: counters::setup,
    cleanup: counters::cleanup,
    report: counters::report,
    shutdown: counters::shutdown,
    state: Some(payload_driver::StateOps {
        schema: counters::STATE_SCHEMA,
        version: VERSION,
        export: counters::export_state,
        import: counters::import_state,
    }),
    handover: !cfg!(feature = "no-handover"),
};

const fn make_descriptor() -> PayloadDescriptor {
    #[allow(unused_mut)]
    let mut d = payload_driver::with_state(payload_driver::descriptor(NAME, VERSION));
    #[cfg(feature = "no-handover")]
    {
        // As a 1.1 payload: no handover entries.
        d.quiesce = None;
        d.export_state = None;
        d.import_state = None;
        d.abi_minor = 1;
    }
    #[cfg(feature = "fault-bad-magic")]
    {
        d.magic = u32::from_le_bytes(*b"NOPE");
    }
    #[cfg(feature = "fault-bad-abi")]
    {
        d.abi_major = payload_driver::shared_abi::ABI_MAJOR + 98;
    }
    d
}

payload_driver::export_descriptor!(make_descriptor());

#[cfg(not(feature = "fault-no-export"))]
payload_driver::export_register_entry!();

#[cfg(not(feature = "fault-entry-fails"))]
payload_driver::export_driver_entry!(COUNTER_FILTER);

/// Fault build: the filter's early initialisation fails in DriverEntry.
///
/// # Safety
/// Called by the I/O manager.
#[cfg(feature = "fault-entry-fails")]
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    _driver: *mut kernel_sys::DRIVER_OBJECT,
    _registry: *const kernel_sys::UNICODE_STRING,
) -> i32 {
    kernel_sys::wrap::log::print("payload: ", format_args!("DriverEntry fails on purpose (fault build)"));
    payload_driver::shared_abi::NtStatus::INSUFFICIENT_RESOURCES.0
}
