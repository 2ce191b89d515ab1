//! The callbacks and the registration both builds share.
//!
//! The operation callback is the same for the bare and the wrapped image:
//! it counts and asks for the post-operation callback, which counts again.
//! `<= APC_LEVEL`; the slow build's blocking read waits at `PASSIVE_LEVEL`
//! (the simulator delivers at `PASSIVE_LEVEL`).
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel_sys::flt::{
    FLT_CONTEXT_END, FLT_CONTEXT_REGISTRATION, FLT_OPERATION_REGISTRATION, FLT_POSTOP_FINISHED_PROCESSING,
    FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_REGISTRATION, FLT_STREAM_CONTEXT, IRP_MJ_OPERATION_END,
};
use shared_abi::NtStatus;

/// Pre and post callbacks called (the filter's own count).
pub static PRE: AtomicU64 = AtomicU64::new(0);
pub static POST: AtomicU64 = AtomicU64::new(0);
/// Instances attached now.
pub static INSTANCES: AtomicU32 = AtomicU32::new(0);
/// Stream contexts alive (allocated, cleanup not yet called).
pub static CONTEXTS: AtomicU32 = AtomicU32::new(0);

/// The operation callback: counts, and asks for the post callback.
pub unsafe extern "system" fn pre_op(data: *mut c_void, _objects: *const c_void, _ctx: *mut *mut c_void) -> i32 {
    PRE.fetch_add(1, Ordering::Relaxed);
    if cfg!(feature = "slow") {
        slow_read(data);
    }
    FLT_PREOP_SUCCESS_WITH_CALLBACK
}

/// The post callback: counts.
pub unsafe extern "system" fn post_op(data: *mut c_void, objects: *const c_void, _ctx: *mut c_void, flags: u32) -> i32 {
    POST.fetch_add(1, Ordering::Relaxed);
    if cfg!(feature = "slow") {
        keep_context(data, objects, flags);
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

#[cfg(feature = "slow")]
fn slow_read(data: *mut c_void) {
    use kernel_sys::flt::FLT_CALLBACK_DATA;
    /// How long a read is held.
    const READ_BLOCKS_MS: u32 = 20;
    static NEVER: kernel_sys::wrap::event::Event = kernel_sys::wrap::event::Event::notification(false);
    let data = data.cast::<FLT_CALLBACK_DATA>();
    // SAFETY: the Filter Manager passes its callback data for the call.
    let iopb = unsafe { (*data).Iopb };
    // SAFETY: its parameter block, alive as long.
    let major = unsafe { (*iopb).MajorFunction };
    if major == kernel_sys::IRP_MJ_READ {
        let _ = NEVER.wait_ms(READ_BLOCKS_MS);
    }
}

#[cfg(not(feature = "slow"))]
fn slow_read(_data: *mut c_void) {}

#[cfg(feature = "slow")]
fn keep_context(data: *mut c_void, objects: *const c_void, flags: u32) {
    crate::wrapped::keep_context(data, objects, flags);
}

#[cfg(not(feature = "slow"))]
fn keep_context(_data: *mut c_void, _objects: *const c_void, _flags: u32) {}

/// `InstanceSetupCallback`: attach everywhere.
pub unsafe extern "system" fn instance_setup(_objects: *const c_void, _flags: u32, _device: u32, _fs: u32) -> i32 {
    INSTANCES.fetch_add(1, Ordering::Relaxed);
    NtStatus::SUCCESS.0
}

/// `InstanceTeardownCompleteCallback`.
pub unsafe extern "system" fn instance_teardown_complete(_objects: *const c_void, _reason: u32) {
    INSTANCES.fetch_sub(1, Ordering::Relaxed);
}

/// `ContextCleanupCallback` of the stream context.
pub unsafe extern "system" fn context_cleanup(_context: *mut c_void, _kind: u16) {
    CONTEXTS.fetch_sub(1, Ordering::Relaxed);
}

const fn op(major: u8) -> FLT_OPERATION_REGISTRATION {
    FLT_OPERATION_REGISTRATION {
        MajorFunction: major,
        Flags: 0,
        PreOperation: Some(pre_op),
        PostOperation: Some(post_op),
        Reserved1: core::ptr::null_mut(),
    }
}

/// Create, read, write; the same callback for each.
pub static OPERATIONS: [FLT_OPERATION_REGISTRATION; 4] = [
    op(0), // IRP_MJ_CREATE
    op(kernel_sys::IRP_MJ_READ),
    op(kernel_sys::IRP_MJ_WRITE),
    FLT_OPERATION_REGISTRATION {
        MajorFunction: IRP_MJ_OPERATION_END,
        Flags: 0,
        PreOperation: None,
        PostOperation: None,
        Reserved1: core::ptr::null_mut(),
    },
];

/// The stream context (16 bytes, tag `BnCx`).
pub static CONTEXT_TYPES: [FLT_CONTEXT_REGISTRATION; 2] = [
    FLT_CONTEXT_REGISTRATION {
        ContextType: FLT_STREAM_CONTEXT,
        Flags: 0,
        ContextCleanupCallback: context_cleanup as *mut c_void,
        Size: 16,
        PoolTag: u32::from_le_bytes(*b"BnCx"),
        ContextAllocateCallback: core::ptr::null_mut(),
        ContextFreeCallback: core::ptr::null_mut(),
        Reserved1: core::ptr::null_mut(),
    },
    FLT_CONTEXT_REGISTRATION {
        ContextType: FLT_CONTEXT_END,
        Flags: 0,
        ContextCleanupCallback: core::ptr::null_mut(),
        Size: 0,
        PoolTag: 0,
        ContextAllocateCallback: core::ptr::null_mut(),
        ContextFreeCallback: core::ptr::null_mut(),
        Reserved1: core::ptr::null_mut(),
    },
];

/// The registration (without `FilterUnloadCallback`, which each build sets).
pub const REGISTRATION: FLT_REGISTRATION = FLT_REGISTRATION {
    Size: 0,
    Version: 0,
    Flags: 0,
    ContextRegistration: CONTEXT_TYPES.as_ptr(),
    OperationRegistration: OPERATIONS.as_ptr(),
    FilterUnloadCallback: None,
    InstanceSetupCallback: Some(instance_setup),
    InstanceQueryTeardownCallback: core::ptr::null_mut(),
    InstanceTeardownStartCallback: core::ptr::null_mut(),
    InstanceTeardownCompleteCallback: Some(instance_teardown_complete),
    GenerateFileNameCallback: core::ptr::null_mut(),
    NormalizeNameComponentCallback: core::ptr::null_mut(),
    NormalizeContextCleanupCallback: core::ptr::null_mut(),
    TransactionNotificationCallback: core::ptr::null_mut(),
    NormalizeNameComponentExCallback: core::ptr::null_mut(),
};
