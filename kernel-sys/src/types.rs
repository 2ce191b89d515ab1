//! Kernel structures, constants and routine types (x64 layouts).
//!
//! Only the fields the drivers read or write are named; the rest is padding
//! with the documented size. Every offset the drivers rely on is asserted.
use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

pub type NTSTATUS = i32;
pub type HANDLE = *mut c_void;
pub type KIRQL = u8;
pub type BOOLEAN = u8;
pub type KPROCESSOR_MODE = i8;

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

/// `KEVENT`: a dispatcher header. Self-referential once initialised: never move it.
#[repr(C, align(8))]
pub struct KEVENT {
    pub Header: [u64; 3],
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

/// `DRIVER_OBJECT` (x64: 0x150 bytes).
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

/// `DEVICE_OBJECT` (x64: 0x150 bytes). Only `Flags` is touched.
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
    pub Rest: [u8; 0x150 - 0x38],
}
pub const DO_BUFFERED_IO: u32 = 0x4;
pub const DO_DEVICE_INITIALIZING: u32 = 0x80;
pub const FILE_DEVICE_UNKNOWN: u32 = 0x22;
pub const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;

/// `IRP` (x64). Fields past `Tail.Overlay.CurrentStackLocation` are unused.
#[repr(C)]
pub struct IRP {
    pub Type: i16,
    pub Size: u16,
    pub MdlAddress: *mut c_void,
    pub Flags: u32,
    /// `AssociatedIrp.SystemBuffer` for METHOD_BUFFERED.
    pub SystemBuffer: *mut c_void,
    pub ThreadListEntry: [usize; 2],
    pub IoStatus: IO_STATUS_BLOCK,
    pub RequestorMode: KPROCESSOR_MODE,
    pub Middle: [u8; 0xB8 - 0x41],
    /// `Tail.Overlay.CurrentStackLocation`.
    pub CurrentStackLocation: *mut IO_STACK_LOCATION,
}

/// `IO_STACK_LOCATION` (x64: 0x48 bytes), with `Parameters.DeviceIoControl`
/// spelled out (each ULONG there is pointer aligned).
#[repr(C)]
pub struct IO_STACK_LOCATION {
    pub MajorFunction: u8,
    pub MinorFunction: u8,
    pub Flags: u8,
    pub Control: u8,
    pub Pad0: u32,
    pub OutputBufferLength: u32,
    pub Pad1: u32,
    pub InputBufferLength: u32,
    pub Pad2: u32,
    pub IoControlCode: u32,
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

/// `SYSTEM_TIMEOFDAY_INFORMATION` (class 3 of `ZwQuerySystemInformation`).
#[repr(C)]
pub struct SYSTEM_TIMEOFDAY_INFORMATION {
    pub BootTime: i64,
    pub CurrentTime: i64,
    pub TimeZoneBias: i64,
    pub TimeZoneId: u32,
    pub Reserved: u32,
    pub BootTimeBias: u64,
    pub SleepTimeBias: u64,
}
pub const SystemTimeOfDayInformation: u32 = 3;

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

pub const POOL_NON_PAGED: u32 = 0; // NonPagedPool
pub const THREAD_ALL_ACCESS: u32 = 0x1F_03FF;
pub const WRITE_DAC: u32 = 0x0004_0000;
pub const DACL_SECURITY_INFORMATION: u32 = 0x4;
pub const IO_NO_INCREMENT: i8 = 0;

const_assert_eq!(size_of::<UNICODE_STRING>(), 16);
const_assert_eq!(size_of::<RTL_OSVERSIONINFOW>(), 276);
const_assert_eq!(size_of::<OBJECT_ATTRIBUTES>(), 48);
const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, ObjectName), 16);
const_assert_eq!(offset_of!(OBJECT_ATTRIBUTES, Attributes), 24);
const_assert_eq!(size_of::<KEVENT>(), 24);
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
const_assert_eq!(offset_of!(IRP, CurrentStackLocation), 0xB8);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, OutputBufferLength), 0x08);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, InputBufferLength), 0x10);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, IoControlCode), 0x18);
const_assert_eq!(offset_of!(IO_STACK_LOCATION, DeviceObject), 0x28);
const_assert_eq!(size_of::<IO_STACK_LOCATION>(), 0x48);
const_assert_eq!(offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Data), 12);
const_assert_eq!(size_of::<SYSTEM_TIMEOFDAY_INFORMATION>(), 48);
