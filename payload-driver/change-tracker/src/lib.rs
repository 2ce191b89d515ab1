//! `ChangeTracker`: an example payload in the spirit of seed 004's
//! change-block tracking. It records which byte ranges of which files were
//! written (`change_set::TrackedSet`: bounded; an overflow makes a file, or
//! everything, dirty and is counted, never dropped), and its set must
//! survive what an administrator does:
//!
//! - an upgrade or rollback: the set is carried by the loader's state
//!   transfer (ABI 1.2), the snapshot before the switch and the final state
//!   after the old generation stopped;
//! - a restart: the loader's shutdown hook persists the set to
//!   `HKLM\Software\SerialLoader\ChangeTracker\TrackedSet` (`REG_BINARY`),
//!   and the next start (the registration's set-up) restores it.
//!
//! What `loaderctl status` shows for it: `creates` = files tracked, `reads` =
//! ranges kept, `writes` = write operations recorded, `open contexts` =
//! overflows.
#![no_std]

mod tracker;

use kernel_sys::flt::{FLT_OPERATION_REGISTRATION, FLT_REGISTRATION, IRP_MJ_OPERATION_END};
use kernel_sys::IRP_MJ_WRITE;
use payload_driver::shared_abi::payload::PayloadDescriptor;
use payload_driver::Minifilter;

const VERSION: u32 = if cfg!(feature = "v2") { 2 } else { 1 };
const NAME: &str = if cfg!(feature = "v2") { "ChangeTracker v2" } else { "ChangeTracker v1" };

static OPERATIONS: [FLT_OPERATION_REGISTRATION; 2] = [
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_WRITE,
        Flags: 0,
        PreOperation: Some(tracker::pre_write),
        PostOperation: Some(tracker::post_write),
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
pub static CHANGE_TRACKER: Minifilter = Minifilter {
    registration: payload_driver::wrap_registration(FLT_REGISTRATION {
        Size: 0,
        Version: 0,
        Flags: 0,
        ContextRegistration: core::ptr::null(),
        OperationRegistration: OPERATIONS.as_ptr(),
        FilterUnloadCallback: None,
        InstanceSetupCallback: Some(tracker::instance_setup),
        InstanceQueryTeardownCallback: core::ptr::null_mut(),
        InstanceTeardownStartCallback: core::ptr::null_mut(),
        InstanceTeardownCompleteCallback: Some(tracker::instance_teardown_complete),
        GenerateFileNameCallback: core::ptr::null_mut(),
        NormalizeNameComponentCallback: core::ptr::null_mut(),
        NormalizeContextCleanupCallback: core::ptr::null_mut(),
        TransactionNotificationCallback: core::ptr::null_mut(),
        NormalizeNameComponentExCallback: core::ptr::null_mut(),
    }),
    setup: tracker::setup,
    cleanup: tracker::cleanup,
    report: tracker::report,
    shutdown: tracker::shutdown,
    state: Some(payload_driver::StateOps {
        schema: change_set::SCHEMA,
        version: VERSION,
        export: tracker::export_state,
        import: tracker::import_state,
    }),
    handover: true,
};

const fn make_descriptor() -> PayloadDescriptor {
    payload_driver::with_state(payload_driver::descriptor(NAME, VERSION))
}

payload_driver::export_descriptor!(make_descriptor());
payload_driver::export_register_entry!();
payload_driver::export_driver_entry!(CHANGE_TRACKER);
