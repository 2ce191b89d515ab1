//! Filter Manager (fltKernel.h) structures for the Windows 7 registration
//! layout, `FLT_REGISTRATION_VERSION_0202`, on x64 and x86.
//!
//! 0x0203 (Windows 8) adds a callback Windows 7's `FltMgr` does not know, so
//! payloads register 0x0202 on Windows 7 (and 0x0200 on XP-era kernels).
//!
//! Pointer-sized members are pointers or `usize` here, so the layouts follow
//! the architecture by construction; the two places the header itself
//! differs per architecture are spelled out: `POINTER_ALIGNMENT` padding
//! (x64 only) and the 4-byte packing of `FLT_PARAMETERS` on x86
//! (`pshpack4.h` around the union in fltKernel.h). The figures are asserted
//! per architecture at the end of this file.
use crate::types::NTSTATUS;
use core::ffi::c_void;
use core::mem::{offset_of, size_of};

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

// ---------------------------------------------------------------------------
// What a Filter Manager passes to a filter's callbacks, and the objects its
// routines hand out (fltKernel.h, WDK 10.0.19041). Used by the test world's
// Filter Manager (`tests/fltmgr`) and by filters that read their callback
// data. Offsets are the WDK's: on x64 `POINTER_ALIGNMENT` members start on
// 8 bytes; on x86 they are plain 4-aligned members and `FLT_PARAMETERS` is
// packed to 4 (a `LARGE_INTEGER` in it is only 4-aligned). Asserted below.
// ---------------------------------------------------------------------------

pub const FLT_REGISTRATION_VERSION_0201: u16 = 0x0201;
/// Windows 8: adds `SectionNotificationCallback` after the 0x0202 layout.
pub const FLT_REGISTRATION_VERSION_0203: u16 = 0x0203;
/// `sizeof(FLT_REGISTRATION)` for version 0x0201 (ends before `NormalizeNameComponentExCallback`).
pub const FLT_REGISTRATION_SIZE_0201: usize = offset_of!(FLT_REGISTRATION, NormalizeNameComponentExCallback);
/// `sizeof(FLT_REGISTRATION)` for version 0x0202.
pub const FLT_REGISTRATION_SIZE_0202: usize = size_of::<FLT_REGISTRATION>();
/// `sizeof(FLT_REGISTRATION)` for version 0x0203 (one more pointer).
pub const FLT_REGISTRATION_SIZE_0203: usize = size_of::<FLT_REGISTRATION>() + size_of::<*mut c_void>();

pub type PFLT_INSTANCE = *mut c_void;
pub type PFLT_VOLUME = *mut c_void;
pub type PFLT_CONTEXT = *mut c_void;
pub type FLT_CONTEXT_TYPE = u16;

/// `FLT_PREOP_CALLBACK_STATUS` values.
pub const FLT_PREOP_SUCCESS_WITH_CALLBACK: i32 = 0;
pub const FLT_PREOP_PENDING: i32 = 2;
pub const FLT_PREOP_DISALLOW_FASTIO: i32 = 3;
pub const FLT_PREOP_COMPLETE: i32 = 4;
pub const FLT_PREOP_SYNCHRONIZE: i32 = 5;
/// `FLT_POSTOP_MORE_PROCESSING_REQUIRED`.
pub const FLT_POSTOP_MORE_PROCESSING_REQUIRED: i32 = 1;
/// `FLT_POST_OPERATION_FLAGS`: the instance is being torn down; do no work.
pub const FLTFL_POST_OPERATION_DRAINING: u32 = 0x1;

/// `FLT_CALLBACK_DATA::Flags` values.
pub const FLTFL_CALLBACK_DATA_IRP_OPERATION: u32 = 0x0000_0001;
pub const FLTFL_CALLBACK_DATA_FAST_IO_OPERATION: u32 = 0x0000_0002;
pub const FLTFL_CALLBACK_DATA_POST_OPERATION: u32 = 0x0008_0000;

/// `FLT_INSTANCE_SETUP_FLAGS`.
pub const FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT: u32 = 0x1;
pub const FLTFL_INSTANCE_SETUP_MANUAL_ATTACHMENT: u32 = 0x2;
pub const FLTFL_INSTANCE_SETUP_NEWLY_MOUNTED_VOLUME: u32 = 0x4;
/// `FLT_INSTANCE_TEARDOWN_FLAGS` (the teardown reason).
pub const FLTFL_INSTANCE_TEARDOWN_MANUAL: u32 = 0x1;
pub const FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD: u32 = 0x2;
pub const FLTFL_INSTANCE_TEARDOWN_MANDATORY_FILTER_UNLOAD: u32 = 0x4;
pub const FLTFL_INSTANCE_TEARDOWN_VOLUME_DISMOUNT: u32 = 0x8;

/// `FLT_FILESYSTEM_TYPE` values.
pub const FLT_FSTYPE_UNKNOWN: u32 = 0;
pub const FLT_FSTYPE_NTFS: u32 = 2;
pub const FLT_FSTYPE_MUP: u32 = 13;
/// Volume device types passed to `InstanceSetupCallback`.
pub const FILE_DEVICE_DISK_FILE_SYSTEM: u32 = 0x08;
pub const FILE_DEVICE_NETWORK_FILE_SYSTEM: u32 = 0x14;

/// `FLT_CONTEXT_TYPE` values.
pub const FLT_VOLUME_CONTEXT: u16 = 0x0001;
pub const FLT_INSTANCE_CONTEXT: u16 = 0x0002;
pub const FLT_FILE_CONTEXT: u16 = 0x0004;
pub const FLT_STREAM_CONTEXT: u16 = 0x0008;
pub const FLT_STREAMHANDLE_CONTEXT: u16 = 0x0010;
pub const FLT_TRANSACTION_CONTEXT: u16 = 0x0020;
/// `FLT_CONTEXT_REGISTRATION::Size` for contexts of any size.
pub const FLT_VARIABLE_SIZED_CONTEXTS: usize = usize::MAX;
/// `FLT_SET_CONTEXT_OPERATION` values.
pub const FLT_SET_CONTEXT_REPLACE_IF_EXISTS: u32 = 0;
pub const FLT_SET_CONTEXT_KEEP_IF_EXISTS: u32 = 1;

/// `FLT_FILE_NAME_OPTIONS`: the name format (low byte) ...
pub const FLT_FILE_NAME_NORMALIZED: u32 = 0x01;
pub const FLT_FILE_NAME_OPENED: u32 = 0x02;
pub const FLT_FILE_NAME_SHORT: u32 = 0x03;
/// ... and the query method (second byte).
pub const FLT_FILE_NAME_QUERY_DEFAULT: u32 = 0x0100;
/// `FLT_FILE_NAME_PARSED_FLAGS`.
pub const FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT: u16 = 0x0001;
pub const FLTFL_FILE_NAME_PARSED_EXTENSION: u16 = 0x0002;
pub const FLTFL_FILE_NAME_PARSED_STREAM: u16 = 0x0004;
pub const FLTFL_FILE_NAME_PARSED_PARENT_DIR: u16 = 0x0008;

/// `InstanceQueryTeardownCallback` (registered as a `*mut c_void` in [`FLT_REGISTRATION`]).
pub type PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK =
    Option<unsafe extern "system" fn(objects: *const c_void, flags: u32) -> NTSTATUS>;
/// `ContextCleanupCallback` of a [`FLT_CONTEXT_REGISTRATION`].
pub type PFLT_CONTEXT_CLEANUP_CALLBACK = Option<unsafe extern "system" fn(context: PFLT_CONTEXT, kind: u16)>;

// SAFETY: a context registration is an immutable table of a cleanup
// routine's address and numbers, meant to live in a static.
unsafe impl Sync for FLT_CONTEXT_REGISTRATION {}

/// `IO_SECURITY_CONTEXT` (what `Parameters.Create.SecurityContext` points to).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_SECURITY_CONTEXT {
    pub SecurityQos: *mut c_void,
    pub AccessState: *mut c_void,
    pub DesiredAccess: u32,
    pub FullCreateOptions: u32,
}

/// `FLT_PARAMETERS.Create`. The `Pad*` fields are x64's
/// `POINTER_ALIGNMENT` padding; x86 has none, and packs the structure to 4
/// (`AllocationSize` at 0x14).
#[cfg_attr(target_arch = "x86", repr(C, packed(4)))]
#[cfg_attr(not(target_arch = "x86"), repr(C))]
#[derive(Clone, Copy)]
pub struct FLT_CREATE_PARAMETERS {
    pub SecurityContext: *mut IO_SECURITY_CONTEXT,
    pub Options: u32,
    #[cfg(not(target_arch = "x86"))]
    pub Pad0: u32,
    /// `USHORT POINTER_ALIGNMENT`.
    pub FileAttributes: u16,
    pub ShareAccess: u16,
    #[cfg(not(target_arch = "x86"))]
    pub Pad1: u32,
    /// `ULONG POINTER_ALIGNMENT`.
    pub EaLength: u32,
    #[cfg(not(target_arch = "x86"))]
    pub Pad2: u32,
    pub EaBuffer: *mut c_void,
    pub AllocationSize: i64,
}

/// `FLT_PARAMETERS.Read` and `.Write` (same layout; the buffer is
/// `ReadBuffer` or `WriteBuffer`). The `Pad*` fields are x64's
/// `POINTER_ALIGNMENT` padding; x86 has none, and packs the structure to 4.
#[cfg_attr(target_arch = "x86", repr(C, packed(4)))]
#[cfg_attr(not(target_arch = "x86"), repr(C))]
#[derive(Clone, Copy)]
pub struct FLT_READ_WRITE_PARAMETERS {
    pub Length: u32,
    #[cfg(not(target_arch = "x86"))]
    pub Pad0: u32,
    /// `ULONG POINTER_ALIGNMENT`.
    pub Key: u32,
    #[cfg(not(target_arch = "x86"))]
    pub Pad1: u32,
    pub ByteOffset: i64,
    pub Buffer: *mut c_void,
    pub MdlAddress: *mut c_void,
}

/// `FLT_PARAMETERS.Others`: `Argument1..5` and the `LARGE_INTEGER
/// Argument6` (at 0x28 on x64, 0x14 on x86, where the union is packed to 4).
#[cfg_attr(target_arch = "x86", repr(C, packed(4)))]
#[cfg_attr(not(target_arch = "x86"), repr(C))]
#[derive(Clone, Copy)]
pub struct FLT_OTHER_PARAMETERS {
    pub Argument1: *mut c_void,
    pub Argument2: *mut c_void,
    pub Argument3: *mut c_void,
    pub Argument4: *mut c_void,
    pub Argument5: *mut c_void,
    pub Argument6: i64,
}

impl FLT_OTHER_PARAMETERS {
    /// All arguments null / zero.
    pub const ZERO: FLT_OTHER_PARAMETERS = FLT_OTHER_PARAMETERS {
        Argument1: core::ptr::null_mut(),
        Argument2: core::ptr::null_mut(),
        Argument3: core::ptr::null_mut(),
        Argument4: core::ptr::null_mut(),
        Argument5: core::ptr::null_mut(),
        Argument6: 0,
    };
}

/// `FLT_PARAMETERS`: the union, with the members the simulated operations
/// use (create, read, write; cleanup and close have no parameters).
/// `Others` and `Create` are the largest members on both architectures
/// (x64 0x30 bytes; x86 0x1C, 4-aligned as its packed members make it).
#[repr(C)]
#[derive(Clone, Copy)]
pub union FLT_PARAMETERS {
    pub Create: FLT_CREATE_PARAMETERS,
    pub Read: FLT_READ_WRITE_PARAMETERS,
    pub Write: FLT_READ_WRITE_PARAMETERS,
    pub Others: FLT_OTHER_PARAMETERS,
}

/// `FLT_IO_PARAMETER_BLOCK`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FLT_IO_PARAMETER_BLOCK {
    pub IrpFlags: u32,
    pub MajorFunction: u8,
    pub MinorFunction: u8,
    pub OperationFlags: u8,
    pub Reserved: u8,
    pub TargetFileObject: *mut crate::types::FILE_OBJECT,
    pub TargetInstance: PFLT_INSTANCE,
    pub Parameters: FLT_PARAMETERS,
}

/// `FLT_CALLBACK_DATA`.
#[repr(C)]
pub struct FLT_CALLBACK_DATA {
    pub Flags: u32,
    /// `PETHREAD`.
    pub Thread: *mut c_void,
    pub Iopb: *mut FLT_IO_PARAMETER_BLOCK,
    pub IoStatus: crate::types::IO_STATUS_BLOCK,
    pub TagData: *mut c_void,
    /// `QueueLinks` + `QueueContext[2]`, or `FilterContext[4]`.
    pub FilterContext: [*mut c_void; 4],
    pub RequestorMode: crate::types::KPROCESSOR_MODE,
}

/// `FLT_RELATED_OBJECTS`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FLT_RELATED_OBJECTS {
    pub Size: u16,
    pub TransactionContext: u16,
    pub Filter: PFLT_FILTER,
    pub Volume: PFLT_VOLUME,
    pub Instance: PFLT_INSTANCE,
    pub FileObject: *mut crate::types::FILE_OBJECT,
    pub Transaction: *mut c_void,
}

/// `FLT_FILE_NAME_INFORMATION`. Every string views `Name`'s buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FLT_FILE_NAME_INFORMATION {
    pub Size: u16,
    pub NamesParsed: u16,
    pub Format: u32,
    pub Name: crate::types::UNICODE_STRING,
    pub Volume: crate::types::UNICODE_STRING,
    pub Share: crate::types::UNICODE_STRING,
    pub Extension: crate::types::UNICODE_STRING,
    pub Stream: crate::types::UNICODE_STRING,
    pub FinalComponent: crate::types::UNICODE_STRING,
    pub ParentDir: crate::types::UNICODE_STRING,
}

// The layouts per architecture. x64: fltKernel.h compiled for AMD64. x86:
// fltKernel.h compiled for i386: 4-byte pointers, `POINTER_ALIGNMENT`
// empty, `FLT_PARAMETERS` inside `pshpack4.h` (so `Create.AllocationSize`
// is at 0x14 and the union is 0x1C bytes), everything after it naturally
// aligned. The registration structures are the same member lists at
// 4 bytes a pointer.
#[cfg(target_pointer_width = "64")]
mod layout_x64 {
    use super::{
        FLT_CALLBACK_DATA, FLT_CONTEXT_REGISTRATION, FLT_CREATE_PARAMETERS, FLT_FILE_NAME_INFORMATION,
        FLT_IO_PARAMETER_BLOCK, FLT_OPERATION_REGISTRATION, FLT_OTHER_PARAMETERS, FLT_PARAMETERS,
        FLT_READ_WRITE_PARAMETERS, FLT_REGISTRATION, FLT_REGISTRATION_SIZE_0200, FLT_REGISTRATION_SIZE_0201,
        FLT_REGISTRATION_SIZE_0202, FLT_REGISTRATION_SIZE_0203, FLT_RELATED_OBJECTS, IO_SECURITY_CONTEXT,
    };
    use core::mem::{align_of, offset_of, size_of};
    use static_assertions::const_assert_eq;
    const_assert_eq!(size_of::<FLT_OPERATION_REGISTRATION>(), 0x20);
    const_assert_eq!(offset_of!(FLT_OPERATION_REGISTRATION, PreOperation), 0x08);
    const_assert_eq!(offset_of!(FLT_OPERATION_REGISTRATION, PostOperation), 0x10);
    const_assert_eq!(size_of::<FLT_CONTEXT_REGISTRATION>(), 0x38);
    const_assert_eq!(offset_of!(FLT_CONTEXT_REGISTRATION, Size), 0x10);
    const_assert_eq!(offset_of!(FLT_CONTEXT_REGISTRATION, PoolTag), 0x18);
    const_assert_eq!(size_of::<FLT_REGISTRATION>(), 0x68);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, ContextRegistration), 0x08);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, OperationRegistration), 0x10);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, FilterUnloadCallback), 0x18);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, InstanceSetupCallback), 0x20);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, InstanceTeardownCompleteCallback), 0x38);
    const_assert_eq!(FLT_REGISTRATION_SIZE_0200, 0x58);
    const_assert_eq!(FLT_REGISTRATION_SIZE_0201, 0x60);
    const_assert_eq!(FLT_REGISTRATION_SIZE_0202, 0x68);
    const_assert_eq!(FLT_REGISTRATION_SIZE_0203, 0x70);
    const_assert_eq!(size_of::<IO_SECURITY_CONTEXT>(), 0x18);
    const_assert_eq!(offset_of!(IO_SECURITY_CONTEXT, DesiredAccess), 0x10);
    const_assert_eq!(size_of::<FLT_CREATE_PARAMETERS>(), 0x30);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, Options), 0x08);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, FileAttributes), 0x10);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, ShareAccess), 0x12);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, EaLength), 0x18);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, EaBuffer), 0x20);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, AllocationSize), 0x28);
    const_assert_eq!(size_of::<FLT_READ_WRITE_PARAMETERS>(), 0x28);
    const_assert_eq!(offset_of!(FLT_READ_WRITE_PARAMETERS, Key), 0x08);
    const_assert_eq!(offset_of!(FLT_READ_WRITE_PARAMETERS, ByteOffset), 0x10);
    const_assert_eq!(offset_of!(FLT_READ_WRITE_PARAMETERS, Buffer), 0x18);
    const_assert_eq!(offset_of!(FLT_READ_WRITE_PARAMETERS, MdlAddress), 0x20);
    const_assert_eq!(size_of::<FLT_OTHER_PARAMETERS>(), 0x30);
    const_assert_eq!(offset_of!(FLT_OTHER_PARAMETERS, Argument6), 0x28);
    const_assert_eq!(size_of::<FLT_PARAMETERS>(), 0x30);
    const_assert_eq!(align_of::<FLT_PARAMETERS>(), 8);
    const_assert_eq!(size_of::<FLT_IO_PARAMETER_BLOCK>(), 0x48);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, MajorFunction), 0x04);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, OperationFlags), 0x06);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, TargetFileObject), 0x08);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, TargetInstance), 0x10);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, Parameters), 0x18);
    const_assert_eq!(size_of::<FLT_CALLBACK_DATA>(), 0x58);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, Thread), 0x08);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, Iopb), 0x10);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, IoStatus), 0x18);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, TagData), 0x28);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, FilterContext), 0x30);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, RequestorMode), 0x50);
    const_assert_eq!(size_of::<FLT_RELATED_OBJECTS>(), 0x30);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, Filter), 0x08);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, Volume), 0x10);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, Instance), 0x18);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, FileObject), 0x20);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, Transaction), 0x28);
    const_assert_eq!(size_of::<FLT_FILE_NAME_INFORMATION>(), 0x78);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Format), 0x04);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Name), 0x08);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Volume), 0x18);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Share), 0x28);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Extension), 0x38);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Stream), 0x48);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, FinalComponent), 0x58);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, ParentDir), 0x68);
}

#[cfg(target_pointer_width = "32")]
mod layout_x86 {
    use super::{
        FLT_CALLBACK_DATA, FLT_CONTEXT_REGISTRATION, FLT_CREATE_PARAMETERS, FLT_FILE_NAME_INFORMATION,
        FLT_IO_PARAMETER_BLOCK, FLT_OPERATION_REGISTRATION, FLT_OTHER_PARAMETERS, FLT_PARAMETERS,
        FLT_READ_WRITE_PARAMETERS, FLT_REGISTRATION, FLT_REGISTRATION_SIZE_0200, FLT_REGISTRATION_SIZE_0201,
        FLT_REGISTRATION_SIZE_0202, FLT_REGISTRATION_SIZE_0203, FLT_RELATED_OBJECTS, IO_SECURITY_CONTEXT,
    };
    use core::mem::{align_of, offset_of, size_of};
    use static_assertions::const_assert_eq;
    const_assert_eq!(size_of::<FLT_OPERATION_REGISTRATION>(), 0x14);
    const_assert_eq!(offset_of!(FLT_OPERATION_REGISTRATION, PreOperation), 0x08);
    const_assert_eq!(offset_of!(FLT_OPERATION_REGISTRATION, PostOperation), 0x0C);
    const_assert_eq!(size_of::<FLT_CONTEXT_REGISTRATION>(), 0x1C);
    const_assert_eq!(offset_of!(FLT_CONTEXT_REGISTRATION, Size), 0x08);
    const_assert_eq!(offset_of!(FLT_CONTEXT_REGISTRATION, PoolTag), 0x0C);
    const_assert_eq!(size_of::<FLT_REGISTRATION>(), 0x38);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, ContextRegistration), 0x08);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, OperationRegistration), 0x0C);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, FilterUnloadCallback), 0x10);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, InstanceSetupCallback), 0x14);
    const_assert_eq!(offset_of!(FLT_REGISTRATION, InstanceTeardownCompleteCallback), 0x20);
    const_assert_eq!(FLT_REGISTRATION_SIZE_0200, 0x30);
    const_assert_eq!(FLT_REGISTRATION_SIZE_0201, 0x34);
    const_assert_eq!(FLT_REGISTRATION_SIZE_0202, 0x38);
    const_assert_eq!(FLT_REGISTRATION_SIZE_0203, 0x3C);
    const_assert_eq!(size_of::<IO_SECURITY_CONTEXT>(), 0x10);
    const_assert_eq!(offset_of!(IO_SECURITY_CONTEXT, DesiredAccess), 0x08);
    const_assert_eq!(size_of::<FLT_CREATE_PARAMETERS>(), 0x1C);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, Options), 0x04);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, FileAttributes), 0x08);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, ShareAccess), 0x0A);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, EaLength), 0x0C);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, EaBuffer), 0x10);
    const_assert_eq!(offset_of!(FLT_CREATE_PARAMETERS, AllocationSize), 0x14);
    const_assert_eq!(size_of::<FLT_READ_WRITE_PARAMETERS>(), 0x18);
    const_assert_eq!(offset_of!(FLT_READ_WRITE_PARAMETERS, Key), 0x04);
    const_assert_eq!(offset_of!(FLT_READ_WRITE_PARAMETERS, ByteOffset), 0x08);
    const_assert_eq!(offset_of!(FLT_READ_WRITE_PARAMETERS, Buffer), 0x10);
    const_assert_eq!(offset_of!(FLT_READ_WRITE_PARAMETERS, MdlAddress), 0x14);
    const_assert_eq!(size_of::<FLT_OTHER_PARAMETERS>(), 0x1C);
    const_assert_eq!(offset_of!(FLT_OTHER_PARAMETERS, Argument6), 0x14);
    const_assert_eq!(size_of::<FLT_PARAMETERS>(), 0x1C);
    const_assert_eq!(align_of::<FLT_PARAMETERS>(), 4);
    const_assert_eq!(size_of::<FLT_IO_PARAMETER_BLOCK>(), 0x2C);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, MajorFunction), 0x04);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, OperationFlags), 0x06);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, TargetFileObject), 0x08);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, TargetInstance), 0x0C);
    const_assert_eq!(offset_of!(FLT_IO_PARAMETER_BLOCK, Parameters), 0x10);
    const_assert_eq!(size_of::<FLT_CALLBACK_DATA>(), 0x2C);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, Thread), 0x04);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, Iopb), 0x08);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, IoStatus), 0x0C);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, TagData), 0x14);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, FilterContext), 0x18);
    const_assert_eq!(offset_of!(FLT_CALLBACK_DATA, RequestorMode), 0x28);
    const_assert_eq!(size_of::<FLT_RELATED_OBJECTS>(), 0x18);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, Filter), 0x04);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, Volume), 0x08);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, Instance), 0x0C);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, FileObject), 0x10);
    const_assert_eq!(offset_of!(FLT_RELATED_OBJECTS, Transaction), 0x14);
    const_assert_eq!(size_of::<FLT_FILE_NAME_INFORMATION>(), 0x40);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Format), 0x04);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Name), 0x08);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Volume), 0x10);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Share), 0x18);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Extension), 0x20);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, Stream), 0x28);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, FinalComponent), 0x30);
    const_assert_eq!(offset_of!(FLT_FILE_NAME_INFORMATION, ParentDir), 0x38);
}
