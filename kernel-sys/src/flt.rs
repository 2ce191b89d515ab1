//! Filter Manager (fltKernel.h) structures for the Windows 7 registration
//! layout, `FLT_REGISTRATION_VERSION_0202`.
//!
//! 0x0203 (Windows 8) adds a callback Windows 7's FltMgr does not know, so
//! payloads register 0x0202 on Windows 7 (and 0x0200 on XP-era kernels).
use crate::types::NTSTATUS;
use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

pub type PFLT_FILTER = *mut c_void;
pub type FLT_FILTER_UNLOAD_FLAGS = u32;
/// The unload is mandatory (`sc stop`, `ZwUnloadDriver`): it cannot be refused.
pub const FLTFL_FILTER_UNLOAD_MANDATORY: u32 = 0x1;

pub const FLT_REGISTRATION_VERSION_0200: u16 = 0x0200;
pub const FLT_REGISTRATION_VERSION_0202: u16 = 0x0202;
/// Terminates an operation registration array.
pub const IRP_MJ_OPERATION_END: u8 = 0x80;
/// Terminates a context registration array.
pub const FLT_CONTEXT_END: u16 = 0xFFFF;

pub type PFLT_FILTER_UNLOAD_CALLBACK = Option<unsafe extern "system" fn(flags: FLT_FILTER_UNLOAD_FLAGS) -> NTSTATUS>;
pub type PFLT_PRE_OPERATION_CALLBACK = Option<
    unsafe extern "system" fn(data: *mut c_void, objects: *const c_void, completion_context: *mut *mut c_void) -> i32,
>;
pub type PFLT_POST_OPERATION_CALLBACK = Option<
    unsafe extern "system" fn(
        data: *mut c_void,
        objects: *const c_void,
        completion_context: *mut c_void,
        flags: u32,
    ) -> i32,
>;
pub type PFLT_INSTANCE_SETUP_CALLBACK =
    Option<unsafe extern "system" fn(objects: *const c_void, flags: u32, device_type: u32, fs_type: u32) -> NTSTATUS>;
pub type PFLT_INSTANCE_TEARDOWN_CALLBACK = Option<unsafe extern "system" fn(objects: *const c_void, reason: u32)>;
/// `FLT_PREOP_SUCCESS_NO_CALLBACK`.
pub const FLT_PREOP_SUCCESS_NO_CALLBACK: i32 = 1;
/// `FLT_POSTOP_FINISHED_PROCESSING`.
pub const FLT_POSTOP_FINISHED_PROCESSING: i32 = 0;

/// `FLT_OPERATION_REGISTRATION`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FLT_OPERATION_REGISTRATION {
    pub MajorFunction: u8,
    pub Flags: u32,
    pub PreOperation: PFLT_PRE_OPERATION_CALLBACK,
    pub PostOperation: PFLT_POST_OPERATION_CALLBACK,
    pub Reserved1: *mut c_void,
}

// SAFETY: an operation registration is an immutable table of function
// pointers (and a reserved, always-null pointer) meant to live in a static.
unsafe impl Sync for FLT_OPERATION_REGISTRATION {}

/// `FLT_CONTEXT_REGISTRATION`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FLT_CONTEXT_REGISTRATION {
    pub ContextType: u16,
    pub Flags: u16,
    pub ContextCleanupCallback: *mut c_void,
    pub Size: usize,
    pub PoolTag: u32,
    pub ContextAllocateCallback: *mut c_void,
    pub ContextFreeCallback: *mut c_void,
    pub Reserved1: *mut c_void,
}

/// `FLT_REGISTRATION`, version 0x0202 layout (Vista / Windows 7).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FLT_REGISTRATION {
    pub Size: u16,
    pub Version: u16,
    pub Flags: u32,
    pub ContextRegistration: *const FLT_CONTEXT_REGISTRATION,
    pub OperationRegistration: *const FLT_OPERATION_REGISTRATION,
    pub FilterUnloadCallback: PFLT_FILTER_UNLOAD_CALLBACK,
    pub InstanceSetupCallback: PFLT_INSTANCE_SETUP_CALLBACK,
    pub InstanceQueryTeardownCallback: *mut c_void,
    pub InstanceTeardownStartCallback: *mut c_void,
    pub InstanceTeardownCompleteCallback: PFLT_INSTANCE_TEARDOWN_CALLBACK,
    pub GenerateFileNameCallback: *mut c_void,
    pub NormalizeNameComponentCallback: *mut c_void,
    pub NormalizeContextCleanupCallback: *mut c_void,
    pub TransactionNotificationCallback: *mut c_void,
    pub NormalizeNameComponentExCallback: *mut c_void,
}

// SAFETY: a registration is an immutable table of pointers to 'static
// callback tables and functions, meant to live in a static.
unsafe impl Sync for FLT_REGISTRATION {}
// SAFETY: as above: nothing in it is owned or mutated.
unsafe impl Send for FLT_REGISTRATION {}

/// `sizeof(FLT_REGISTRATION)` for version 0x0200 (ends before the 0x0202 fields).
pub const FLT_REGISTRATION_SIZE_0200: usize = offset_of!(FLT_REGISTRATION, TransactionNotificationCallback);

const_assert_eq!(size_of::<FLT_OPERATION_REGISTRATION>(), 32);
const_assert_eq!(offset_of!(FLT_OPERATION_REGISTRATION, PreOperation), 8);
const_assert_eq!(size_of::<FLT_CONTEXT_REGISTRATION>(), 56);
const_assert_eq!(offset_of!(FLT_CONTEXT_REGISTRATION, PoolTag), 24);
const_assert_eq!(size_of::<FLT_REGISTRATION>(), 0x68);
const_assert_eq!(offset_of!(FLT_REGISTRATION, FilterUnloadCallback), 0x18);
const_assert_eq!(offset_of!(FLT_REGISTRATION, InstanceTeardownCompleteCallback), 0x38);
const_assert_eq!(FLT_REGISTRATION_SIZE_0200, 0x58);
