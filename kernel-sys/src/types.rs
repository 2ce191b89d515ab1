//! Kernel structures, constants and routine types, laid out for x64 and
//! for x86 (32-bit).
//!
//! Only the fields the drivers read or write are named; the rest is padding
//! with the documented size. Fields are pointers or `usize` where the WDK
//! has a pointer-sized member, so most layouts are right on both
//! architectures by construction; where the headers pad differently per
//! architecture (`POINTER_ALIGNMENT`, opaque tails) the padding is a
//! per-architecture field or constant. Every offset the drivers rely on is
//! asserted for each architecture at the end of this file.
use core::ffi::c_void;
use core::mem::size_of;
use static_assertions::const_assert_eq;

pub type NTSTATUS = i32;
pub type HANDLE = *mut c_void;
pub type KIRQL = u8;
pub type BOOLEAN = u8;
pub type KPROCESSOR_MODE = i8;
/// `POBJECT_TYPE`: opaque.
pub type POBJECT_TYPE = *mut c_void;
/// `PEPROCESS`: opaque.
pub type PEPROCESS = *mut c_void;

pub const KernelMode: KPROCESSOR_MODE = 0;
pub const UserMode: KPROCESSOR_MODE = 1;

/// `UNICODE_STRING`: lengths are in bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UNICODE_STRING {
    pub Length: u16,
    pub MaximumLength: u16,
    pub Buffer: *mut u16,
}

/// `OBJECT_ATTRIBUTES`.
#[repr(C)]
pub struct OBJECT_ATTRIBUTES {
    pub Length: u32,
    pub RootDirectory: HANDLE,
    pub ObjectName: *const UNICODE_STRING,
    pub Attributes: u32,
    pub SecurityDescriptor: *mut c_void,
    pub SecurityQualityOfService: *mut c_void,
}
pub const OBJ_CASE_INSENSITIVE: u32 = 0x40;
pub const OBJ_KERNEL_HANDLE: u32 = 0x200;

impl OBJECT_ATTRIBUTES {
    /// Attributes for a handle the driver opens for itself: always
    /// `OBJ_KERNEL_HANDLE`, so the handle lands in the kernel's table and not
    /// in the table of whatever process the calling thread runs in (an
    /// IOCTL's caller, whose exit would close it). `name`, if any, is looked
    /// up case-insensitively.
    #[must_use]
    pub const fn kernel_handle(name: *const UNICODE_STRING) -> OBJECT_ATTRIBUTES {
        OBJECT_ATTRIBUTES {
            Length: OBJECT_ATTRIBUTES_LEN,
            RootDirectory: core::ptr::null_mut(),
            ObjectName: name,
            Attributes: if name.is_null() { OBJ_KERNEL_HANDLE } else { OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE },
            SecurityDescriptor: core::ptr::null_mut(),
            SecurityQualityOfService: core::ptr::null_mut(),
        }
    }
}
/// `sizeof(OBJECT_ATTRIBUTES)`: x64 0x30, x86 0x18.
#[cfg(target_pointer_width = "64")]
const OBJECT_ATTRIBUTES_LEN: u32 = 0x30;
/// `sizeof(OBJECT_ATTRIBUTES)`: x64 0x30, x86 0x18.
#[cfg(target_pointer_width = "32")]
const OBJECT_ATTRIBUTES_LEN: u32 = 0x18;
const_assert_eq!(size_of::<OBJECT_ATTRIBUTES>(), OBJECT_ATTRIBUTES_LEN as usize);

/// The outcome of an unbounded `KeWaitForSingleObject` /
/// `ZwWaitForSingleObject` (no timeout, not alertable): only
/// `STATUS_SUCCESS` (0) means the object was signalled. Anything else (an
/// invalid handle, an alert, `STATUS_TIMEOUT`) is an error to report, never
/// a reason to go on as if the thread had exited.
pub fn wait_completed(status: NTSTATUS) -> Result<(), NTSTATUS> {
    if status == 0 {
        Ok(())
    } else {
        Err(status)
    }
}

/// `KEVENT`: a dispatcher header (a `LONG`, a `LONG` and a `LIST_ENTRY`:
/// x64 0x18 bytes, x86 0x10, pointer aligned). Self-referential once
/// initialised: never move it.
#[repr(C)]
pub struct KEVENT {
    pub Header: [usize; DISPATCHER_HEADER_WORDS],
}
/// `sizeof(DISPATCHER_HEADER)` in pointer-sized words: two `LONG`s share
/// one word on x64 and take two on x86; the `LIST_ENTRY` is two.
#[cfg(target_pointer_width = "64")]
const DISPATCHER_HEADER_WORDS: usize = 3;
/// `sizeof(DISPATCHER_HEADER)` in pointer-sized words: two `LONG`s share
/// one word on x64 and take two on x86; the `LIST_ENTRY` is two.
#[cfg(target_pointer_width = "32")]
const DISPATCHER_HEADER_WORDS: usize = 4;

impl KEVENT {
    /// An all-zero (not yet initialised) event, for statics: hand it to
    /// `KeInitializeEvent` in place before any other use.
    #[must_use]
    pub const fn zeroed() -> KEVENT {
        KEVENT { Header: [0; DISPATCHER_HEADER_WORDS] }
    }
}
/// `EVENT_TYPE` values.
pub const NotificationEvent: u32 = 0;
pub const SynchronizationEvent: u32 = 1;
/// `KWAIT_REASON::Executive`.
pub const Executive: u32 = 0;

/// `KSPIN_LOCK`.
pub type KSPIN_LOCK = usize;

/// `IO_STATUS_BLOCK`.
#[repr(C)]
pub struct IO_STATUS_BLOCK {
    pub Status: NTSTATUS,
    pub Information: usize,
}

pub type PDRIVER_UNLOAD = Option<unsafe extern "system" fn(driver: *mut DRIVER_OBJECT)>;
pub type PDRIVER_DISPATCH = Option<unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS>;
pub type PKSTART_ROUTINE = unsafe extern "system" fn(context: *mut c_void);

pub const IRP_MJ_CREATE: usize = 0x00;
pub const IRP_MJ_CLOSE: usize = 0x02;
pub const IRP_MJ_READ: u8 = 0x03;
pub const IRP_MJ_WRITE: u8 = 0x04;
pub const IRP_MJ_DEVICE_CONTROL: usize = 0x0E;
pub const IRP_MJ_SHUTDOWN: usize = 0x10;
pub const IRP_MJ_CLEANUP: usize = 0x12;
pub const IRP_MJ_MAXIMUM_FUNCTION: usize = 0x1B;

/// `DRIVER_OBJECT` (x64: 0x150 bytes, x86: 0xA8).
#[repr(C)]
pub struct DRIVER_OBJECT {
    pub Type: i16,
    pub Size: i16,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub Flags: u32,
    pub DriverStart: *mut c_void,
    pub DriverSize: u32,
    pub DriverSection: *mut c_void,
    pub DriverExtension: *mut c_void,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: *mut UNICODE_STRING,
    pub FastIoDispatch: *mut c_void,
    pub DriverInit: *mut c_void,
    pub DriverStartIo: *mut c_void,
    pub DriverUnload: PDRIVER_UNLOAD,
    pub MajorFunction: [PDRIVER_DISPATCH; IRP_MJ_MAXIMUM_FUNCTION + 1],
}

/// `DEVICE_OBJECT` (x64: 0x150 bytes, x86: 0xB8). Only `Flags` is touched.
#[repr(C)]
pub struct DEVICE_OBJECT {
    pub Type: i16,
    pub Size: u16,
    pub ReferenceCount: i32,
    pub DriverObject: *mut DRIVER_OBJECT,
    pub NextDevice: *mut DEVICE_OBJECT,
    pub AttachedDevice: *mut DEVICE_OBJECT,
    pub CurrentIrp: *mut IRP,
    pub Timer: *mut c_void,
    pub Flags: u32,
    pub Characteristics: u32,
    pub Rest: [u8; DEVICE_OBJECT_REST],
}
/// `DEVICE_OBJECT` bytes after `Characteristics`: x64 0x38..0x150.
#[cfg(target_pointer_width = "64")]
const DEVICE_OBJECT_REST: usize = 0x150 - 0x38;
/// `DEVICE_OBJECT` bytes after `Characteristics`: x86 0x24..0xB8.
#[cfg(target_pointer_width = "32")]
const DEVICE_OBJECT_REST: usize = 0xB8 - 0x24;
pub const DO_BUFFERED_IO: u32 = 0x4;
pub const DO_DEVICE_INITIALIZING: u32 = 0x80;
pub const FILE_DEVICE_UNKNOWN: u32 = 0x22;
pub const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;

/// `PDRIVER_CANCEL`: called with the cancel spin lock held, which it must
/// release (`IoReleaseCancelSpinLock(Irp->CancelIrql)`).
pub type PDRIVER_CANCEL = Option<unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP)>;

/// `IRP` (x64: 0xD0 bytes, x86: 0x70). Only the fields the drivers touch
/// are named. 8-aligned on both (`Overlay` holds a `LARGE_INTEGER`).
#[repr(C, align(8))]
pub struct IRP {
    pub Type: i16,
    pub Size: u16,
    pub MdlAddress: *mut c_void,
    pub Flags: u32,
    /// `AssociatedIrp.SystemBuffer` for `METHOD_BUFFERED`.
    pub SystemBuffer: *mut c_void,
    pub ThreadListEntry: [usize; 2],
    pub IoStatus: IO_STATUS_BLOCK,
    pub RequestorMode: KPROCESSOR_MODE,
    pub PendingReturned: BOOLEAN,
    pub StackCount: i8,
    pub CurrentLocation: i8,
    /// Set by `IoCancelIrp`.
    pub Cancel: BOOLEAN,
    /// The IRQL the cancel spin lock was taken at, for the cancel routine.
    pub CancelIrql: KIRQL,
    pub ApcEnvironment: i8,
    pub AllocationFlags: u8,
    pub UserIosb: *mut c_void,
    pub UserEvent: *mut c_void,
    pub Overlay: [usize; 2],
    /// Written only with an interlocked exchange (the `IoSetCancelRoutine`
    /// macro); the exchange decides who completes the IRP.
    pub CancelRoutine: PDRIVER_CANCEL,
    pub UserBuffer: *mut c_void,
    /// `Tail.Overlay` before the stack location: `DriverContext[4]`,
    /// `Thread`, `AuxiliaryBuffer`, `ListEntry`.
    pub TailBeforeStack: [usize; 8],
    /// `Tail.Overlay.CurrentStackLocation`.
    pub CurrentStackLocation: *mut IO_STACK_LOCATION,
    /// `OriginalFileObject` and the rest of `Tail` (a `KAPC` long).
    pub TailAfterStack: [u8; IRP_TAIL_AFTER_STACK],
}
/// `IRP` bytes after `CurrentStackLocation`: x64 0xC0..0xD0.
#[cfg(target_pointer_width = "64")]
const IRP_TAIL_AFTER_STACK: usize = 0xD0 - 0xC0;
/// `IRP` bytes after `CurrentStackLocation`: x86 0x64..0x70.
#[cfg(target_pointer_width = "32")]
const IRP_TAIL_AFTER_STACK: usize = 0x70 - 0x64;
/// `SL_PENDING_RETURNED`, in `IO_STACK_LOCATION::Control` (`IoMarkIrpPending`).
pub const SL_PENDING_RETURNED: u8 = 0x01;

/// `IO_STACK_LOCATION` (x64: 0x48 bytes, x86: 0x24), with
/// `Parameters.DeviceIoControl` spelled out. Each `ULONG POINTER_ALIGNMENT`
/// there is 8-aligned on x64 (the `Pad*` fields) and 4-aligned on x86,
/// where wdm.h also packs the whole structure to 4 (`pshpack4.h`).
#[repr(C)]
pub struct IO_STACK_LOCATION {
    pub MajorFunction: u8,
    pub MinorFunction: u8,
    pub Flags: u8,
    pub Control: u8,
    #[cfg(not(target_arch = "x86"))]
    pub Pad0: u32,
    pub OutputBufferLength: u32,
    #[cfg(not(target_arch = "x86"))]
    pub Pad1: u32,
    pub InputBufferLength: u32,
    #[cfg(not(target_arch = "x86"))]
    pub Pad2: u32,
    pub IoControlCode: u32,
    #[cfg(not(target_arch = "x86"))]
    pub Pad3: u32,
    pub Type3InputBuffer: *mut c_void,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub FileObject: *mut c_void,
    pub CompletionRoutine: *mut c_void,
    pub Context: *mut c_void,
}

/// `KEY_VALUE_PARTIAL_INFORMATION` header; `Data` follows.
#[repr(C)]
pub struct KEY_VALUE_PARTIAL_INFORMATION {
    pub TitleIndex: u32,
    pub Type: u32,
    pub DataLength: u32,
    pub Data: [u8; 4],
}
pub const KeyValuePartialInformation: u32 = 2;
pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_DWORD: u32 = 4;
pub const KEY_READ: u32 = 0x2_0019;
pub const KEY_WRITE: u32 = 0x2_0006;
pub const KEY_QUERY_VALUE: u32 = 0x1;
pub const KEY_SET_VALUE: u32 = 0x2;
pub const KEY_CREATE_SUB_KEY: u32 = 0x4;
pub const REG_BINARY: u32 = 3;

/// `RTL_OSVERSIONINFOW`.
#[repr(C)]
pub struct RTL_OSVERSIONINFOW {
    pub dwOSVersionInfoSize: u32,
    pub dwMajorVersion: u32,
    pub dwMinorVersion: u32,
    pub dwBuildNumber: u32,
    pub dwPlatformId: u32,
    pub szCSDVersion: [u16; 128],
}

/// `DPFLTR_IHVDRIVER_ID`: the component id `DbgPrintEx` filters third-party
/// drivers under (Vista and later drop plain `DbgPrint` by default).
pub const DPFLTR_IHVDRIVER_ID: u32 = 77;
/// `DbgPrintEx` levels.
pub const DPFLTR_ERROR_LEVEL: u32 = 0;
pub const DPFLTR_WARNING_LEVEL: u32 = 1;
pub const DPFLTR_TRACE_LEVEL: u32 = 2;
pub const DPFLTR_INFO_LEVEL: u32 = 3;

/// `KUSER_SHARED_DATA` as the kernel maps it (`KI_USER_SHARED_DATA`), x64.
#[cfg(target_pointer_width = "64")]
pub const KI_USER_SHARED_DATA: usize = 0xFFFF_F780_0000_0000;
/// `KUSER_SHARED_DATA` as the kernel maps it (`KI_USER_SHARED_DATA`), x86.
#[cfg(target_pointer_width = "32")]
pub const KI_USER_SHARED_DATA: usize = 0xFFDF_0000;
/// Offset of `SystemTime` (a `KSYSTEM_TIME`: `LowPart`, `High1Time`,
/// `High2Time`) in `KUSER_SHARED_DATA`.
pub const USER_SHARED_SYSTEM_TIME: usize = 0x14;

pub const POOL_NON_PAGED: u32 = 0; // NonPagedPool
pub const THREAD_ALL_ACCESS: u32 = 0x1F_03FF;
pub const WRITE_DAC: u32 = 0x0004_0000;
pub const DACL_SECURITY_INFORMATION: u32 = 0x4;
pub const IO_NO_INCREMENT: i8 = 0;

/// `FILE_OBJECT` (x64: 0xD8 bytes, x86: 0x80), every field named: the test world's
/// Filter Manager builds the file objects its simulated operations target.
#[repr(C)]
pub struct FILE_OBJECT {
    pub Type: i16,
    pub Size: i16,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub Vpb: *mut c_void,
    pub FsContext: *mut c_void,
    pub FsContext2: *mut c_void,
    pub SectionObjectPointer: *mut c_void,
    pub PrivateCacheMap: *mut c_void,
    pub FinalStatus: NTSTATUS,
    pub RelatedFileObject: *mut FILE_OBJECT,
    pub LockOperation: BOOLEAN,
    pub DeletePending: BOOLEAN,
    pub ReadAccess: BOOLEAN,
    pub WriteAccess: BOOLEAN,
    pub DeleteAccess: BOOLEAN,
    pub SharedRead: BOOLEAN,
    pub SharedWrite: BOOLEAN,
    pub SharedDelete: BOOLEAN,
    pub Flags: u32,
    pub FileName: UNICODE_STRING,
    pub CurrentByteOffset: i64,
    pub Waiters: u32,
    pub Busy: u32,
    pub LastLock: *mut c_void,
    pub Lock: KEVENT,
    pub Event: KEVENT,
    pub CompletionContext: *mut c_void,
    pub IrpListLock: KSPIN_LOCK,
    pub IrpList: [usize; 2],
    pub FileObjectExtension: *mut c_void,
}
/// `IO_TYPE_FILE`, the `Type` of a [`FILE_OBJECT`].
pub const IO_TYPE_FILE: i16 = 5;

/// `IO_ERROR_LOG_PACKET` (0x30 bytes on x64 and x86: `DeviceOffset` is an
/// 8-aligned `LARGE_INTEGER` on both, so `DumpData[1]` is padded to 8): the
/// head of an error-log entry; the insertion strings follow at
/// `StringOffset`. Written by `wrap::eventlog` only.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct IO_ERROR_LOG_PACKET {
    pub MajorFunctionCode: u8,
    pub RetryCount: u8,
    pub DumpDataSize: u16,
    pub NumberOfStrings: u16,
    pub StringOffset: u16,
    pub EventCategory: u16,
    pub ErrorCode: NTSTATUS,
    pub UniqueErrorValue: u32,
    pub FinalStatus: NTSTATUS,
    pub SequenceNumber: u32,
    pub IoControlCode: u32,
    pub DeviceOffset: i64,
    pub DumpData: [u32; 1],
}

// The layouts the drivers rely on, per architecture. x64: the WDK headers
// as compiled for AMD64 (8-byte pointers, `POINTER_ALIGNMENT` = 8). x86:
// wdm.h / ntifs.h as compiled for i386 (4-byte pointers, `POINTER_ALIGNMENT`
// empty, `LONGLONG`/`LARGE_INTEGER` 8-aligned under MSVC, `IO_STACK_LOCATION`
// packed to 4 by `pshpack4.h`), checked against the x86 kernel's own type
// information (Windows 10 1803 x86 ntoskrnl.exe symbols: `_IRP` 0x70,
// `_DEVICE_OBJECT` 0xB8, `_IO_STACK_LOCATION` 0x24, `_FILE_OBJECT` 0x80);
// every member asserted here has the same place in the Windows 7 and XP
// kernels' headers.
#[cfg(target_pointer_width = "64")]
mod layout_x64 {
    use super::{
        DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IO_ERROR_LOG_PACKET, IO_STACK_LOCATION, IO_STATUS_BLOCK, IRP,
        KEVENT, KEY_VALUE_PARTIAL_INFORMATION, OBJECT_ATTRIBUTES, RTL_OSVERSIONINFOW, UNICODE_STRING,
    };
    use core::mem::{align_of, offset_of, size_of};
    use static_assertions::const_assert_eq;
    const_assert_eq!(size_of::<UNICODE_STRING>(), 16);
    const_assert_eq!(size_of::<RTL_OSVERSIONINFOW>(), 276);
    const_assert_eq!(size_of::<OBJECT_ATTRIBUTES>(), 48);
    const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, ObjectName), 16);
    const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, Attributes), 24);
    const_assert_eq!(size_of::<KEVENT>(), 24);
    const_assert_eq!(align_of::<KEVENT>(), 8);
    const_assert_eq!(size_of::<IO_STATUS_BLOCK>(), 16);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverStart), 0x18);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverSize), 0x20);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverName), 0x38);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverUnload), 0x68);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, MajorFunction), 0x70);
    const_assert_eq!(size_of::<DRIVER_OBJECT>(), 0x150);
    const_assert_eq!(offset_of!(DEVICE_OBJECT, Flags), 0x30);
    const_assert_eq!(size_of::<DEVICE_OBJECT>(), 0x150);
    const_assert_eq!(offset_of!(IRP, SystemBuffer), 0x18);
    const_assert_eq!(offset_of!(IRP, IoStatus), 0x30);
    const_assert_eq!(offset_of!(IRP, RequestorMode), 0x40);
    const_assert_eq!(offset_of!(IRP, Cancel), 0x44);
    const_assert_eq!(offset_of!(IRP, CancelIrql), 0x45);
    const_assert_eq!(offset_of!(IRP, CancelRoutine), 0x68);
    const_assert_eq!(offset_of!(IRP, UserBuffer), 0x70);
    const_assert_eq!(offset_of!(IRP, CurrentStackLocation), 0xB8);
    const_assert_eq!(size_of::<IRP>(), 0xD0);
    const_assert_eq!(align_of::<IRP>(), 8);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, Control), 3);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, OutputBufferLength), 0x08);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, InputBufferLength), 0x10);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, IoControlCode), 0x18);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, Type3InputBuffer), 0x20);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, DeviceObject), 0x28);
    const_assert_eq!(size_of::<IO_STACK_LOCATION>(), 0x48);
    const_assert_eq!(offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Data), 12);
    const_assert_eq!(offset_of!(FILE_OBJECT, FsContext), 0x18);
    const_assert_eq!(offset_of!(FILE_OBJECT, FinalStatus), 0x38);
    const_assert_eq!(offset_of!(FILE_OBJECT, RelatedFileObject), 0x40);
    const_assert_eq!(offset_of!(FILE_OBJECT, Flags), 0x50);
    const_assert_eq!(offset_of!(FILE_OBJECT, FileName), 0x58);
    const_assert_eq!(offset_of!(FILE_OBJECT, CurrentByteOffset), 0x68);
    const_assert_eq!(offset_of!(FILE_OBJECT, Lock), 0x80);
    const_assert_eq!(offset_of!(FILE_OBJECT, Event), 0x98);
    const_assert_eq!(offset_of!(FILE_OBJECT, IrpList), 0xC0);
    const_assert_eq!(size_of::<FILE_OBJECT>(), 0xD8);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, NumberOfStrings), 4);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, StringOffset), 6);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, ErrorCode), 0x0C);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, FinalStatus), 0x14);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, DeviceOffset), 0x20);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, DumpData), 0x28);
    const_assert_eq!(size_of::<IO_ERROR_LOG_PACKET>(), 0x30);
}

#[cfg(target_pointer_width = "32")]
mod layout_x86 {
    use super::{
        DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IO_ERROR_LOG_PACKET, IO_STACK_LOCATION, IO_STATUS_BLOCK, IRP,
        KEVENT, KEY_VALUE_PARTIAL_INFORMATION, OBJECT_ATTRIBUTES, RTL_OSVERSIONINFOW, UNICODE_STRING,
    };
    use core::mem::{align_of, offset_of, size_of};
    use static_assertions::const_assert_eq;
    const_assert_eq!(size_of::<UNICODE_STRING>(), 8);
    const_assert_eq!(size_of::<RTL_OSVERSIONINFOW>(), 276);
    const_assert_eq!(size_of::<OBJECT_ATTRIBUTES>(), 0x18);
    const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, ObjectName), 0x08);
    const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, Attributes), 0x0C);
    const_assert_eq!(size_of::<KEVENT>(), 0x10);
    const_assert_eq!(align_of::<KEVENT>(), 4);
    const_assert_eq!(size_of::<IO_STATUS_BLOCK>(), 8);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverStart), 0x0C);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverSize), 0x10);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverName), 0x1C);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, DriverUnload), 0x34);
    const_assert_eq!(offset_of!(DRIVER_OBJECT, MajorFunction), 0x38);
    const_assert_eq!(size_of::<DRIVER_OBJECT>(), 0xA8);
    const_assert_eq!(offset_of!(DEVICE_OBJECT, Flags), 0x1C);
    const_assert_eq!(size_of::<DEVICE_OBJECT>(), 0xB8);
    const_assert_eq!(offset_of!(IRP, SystemBuffer), 0x0C);
    const_assert_eq!(offset_of!(IRP, IoStatus), 0x18);
    const_assert_eq!(offset_of!(IRP, RequestorMode), 0x20);
    const_assert_eq!(offset_of!(IRP, Cancel), 0x24);
    const_assert_eq!(offset_of!(IRP, CancelIrql), 0x25);
    const_assert_eq!(offset_of!(IRP, CancelRoutine), 0x38);
    const_assert_eq!(offset_of!(IRP, UserBuffer), 0x3C);
    const_assert_eq!(offset_of!(IRP, CurrentStackLocation), 0x60);
    const_assert_eq!(size_of::<IRP>(), 0x70);
    const_assert_eq!(align_of::<IRP>(), 8);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, Control), 3);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, OutputBufferLength), 0x04);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, InputBufferLength), 0x08);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, IoControlCode), 0x0C);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, Type3InputBuffer), 0x10);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, DeviceObject), 0x14);
    const_assert_eq!(size_of::<IO_STACK_LOCATION>(), 0x24);
    const_assert_eq!(offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Data), 12);
    const_assert_eq!(offset_of!(FILE_OBJECT, FsContext), 0x0C);
    const_assert_eq!(offset_of!(FILE_OBJECT, FinalStatus), 0x1C);
    const_assert_eq!(offset_of!(FILE_OBJECT, RelatedFileObject), 0x20);
    const_assert_eq!(offset_of!(FILE_OBJECT, Flags), 0x2C);
    const_assert_eq!(offset_of!(FILE_OBJECT, FileName), 0x30);
    const_assert_eq!(offset_of!(FILE_OBJECT, CurrentByteOffset), 0x38);
    const_assert_eq!(offset_of!(FILE_OBJECT, Lock), 0x4C);
    const_assert_eq!(offset_of!(FILE_OBJECT, Event), 0x5C);
    const_assert_eq!(offset_of!(FILE_OBJECT, IrpList), 0x74);
    const_assert_eq!(size_of::<FILE_OBJECT>(), 0x80);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, NumberOfStrings), 4);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, StringOffset), 6);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, ErrorCode), 0x0C);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, FinalStatus), 0x14);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, DeviceOffset), 0x20);
    const_assert_eq!(offset_of!(IO_ERROR_LOG_PACKET, DumpData), 0x28);
    const_assert_eq!(size_of::<IO_ERROR_LOG_PACKET>(), 0x30);
}
