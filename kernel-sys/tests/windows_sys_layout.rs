//! kernel-sys's hand-written x64 layouts against `windows-sys`, Microsoft's
//! generated bindings, on any host (the `repr(C)` layout of these structs on
//! `x86_64` Linux is their Windows x64 layout: 8-byte pointers, no C `long`).
//!
//! Where `windows-sys` 0.61.2 is known to differ from the Windows 7 x64
//! kernel, the difference is asserted as such, so a fixed release shows up as
//! a failing test to update rather than as a silent pass:
//! - `DEVICE_OBJECT` is 0x148 bytes there (the header's `DECLSPEC_ALIGN(16)`
//!   is lost); the kernel's is 0x150.
//! - `IO_STACK_LOCATION.Parameters.DeviceIoControl` has the x86 packing
//!   (`POINTER_ALIGNMENT` lost): `InputBufferLength` at 0x0C instead of
//!   0x10, `IoControlCode` at 0x10 instead of 0x18, `Type3InputBuffer` at
//!   0x18 instead of 0x20. A driver reading the IOCTL code through it would
//!   read the input length.
//! - `FLT_PARAMETERS.Read` (and `.Write`, `.Create`) lose `POINTER_ALIGNMENT`
//!   too: `Key` at 0x04 instead of 0x08, `ByteOffset` at 0x08 instead of
//!   0x10.
//! - `FLT_REGISTRATION` is the Windows 8 (0x0203) layout, 0x70 bytes; the
//!   Windows 7 Filter Manager takes 0x0202, which ends where 0x0203 adds
//!   `SectionNotificationCallback`.
use core::mem::{offset_of, size_of};
use kernel_sys as k;
use kernel_sys::flt as kf;
use windows_sys::Wdk::Foundation as wf;
use windows_sys::Wdk::Storage::FileSystem::Minifilters as wm;
use windows_sys::Wdk::System::SystemServices as ws;

/// `(what, kernel-sys, windows-sys)`.
type Row = (&'static str, usize, usize);

fn report(rows: &[Row], expected_differences: &[&str]) {
    let mut unexpected = Vec::new();
    for &(what, ours, theirs) in rows {
        let differs = ours != theirs;
        let expected = expected_differences.contains(&what);
        let verdict = match (differs, expected) {
            (false, false) => "same",
            (true, true) => "differs (known windows-sys deviation)",
            (true, false) => "MISMATCH",
            (false, true) => "SAME, but a known deviation was expected",
        };
        println!("{what:<58} kernel-sys {ours:#06x}  windows-sys {theirs:#06x}  {verdict}");
        if differs != expected {
            unexpected.push(what);
        }
    }
    assert!(unexpected.is_empty(), "unexpected layout results: {unexpected:?}");
}

#[test]
#[allow(clippy::too_many_lines)] // one table of rows
fn kernel_structures_match_windows_sys() {
    let rows: &[Row] = &[
        (
            "size UNICODE_STRING",
            size_of::<k::UNICODE_STRING>(),
            size_of::<windows_sys::Win32::Foundation::UNICODE_STRING>(),
        ),
        ("size OBJECT_ATTRIBUTES", size_of::<k::OBJECT_ATTRIBUTES>(), size_of::<wf::OBJECT_ATTRIBUTES>()),
        (
            "OBJECT_ATTRIBUTES.ObjectName",
            offset_of!(k::OBJECT_ATTRIBUTES, ObjectName),
            offset_of!(wf::OBJECT_ATTRIBUTES, ObjectName),
        ),
        (
            "OBJECT_ATTRIBUTES.Attributes",
            offset_of!(k::OBJECT_ATTRIBUTES, Attributes),
            offset_of!(wf::OBJECT_ATTRIBUTES, Attributes),
        ),
        ("size KEVENT", size_of::<k::KEVENT>(), size_of::<wf::KEVENT>()),
        (
            "size IO_STATUS_BLOCK",
            size_of::<k::IO_STATUS_BLOCK>(),
            size_of::<windows_sys::Win32::System::IO::IO_STATUS_BLOCK>(),
        ),
        ("size DRIVER_OBJECT", size_of::<k::DRIVER_OBJECT>(), size_of::<wf::DRIVER_OBJECT>()),
        (
            "DRIVER_OBJECT.DriverStart",
            offset_of!(k::DRIVER_OBJECT, DriverStart),
            offset_of!(wf::DRIVER_OBJECT, DriverStart),
        ),
        (
            "DRIVER_OBJECT.DriverSize",
            offset_of!(k::DRIVER_OBJECT, DriverSize),
            offset_of!(wf::DRIVER_OBJECT, DriverSize),
        ),
        (
            "DRIVER_OBJECT.DriverName",
            offset_of!(k::DRIVER_OBJECT, DriverName),
            offset_of!(wf::DRIVER_OBJECT, DriverName),
        ),
        (
            "DRIVER_OBJECT.DriverUnload",
            offset_of!(k::DRIVER_OBJECT, DriverUnload),
            offset_of!(wf::DRIVER_OBJECT, DriverUnload),
        ),
        (
            "DRIVER_OBJECT.MajorFunction",
            offset_of!(k::DRIVER_OBJECT, MajorFunction),
            offset_of!(wf::DRIVER_OBJECT, MajorFunction),
        ),
        ("size DEVICE_OBJECT", size_of::<k::DEVICE_OBJECT>(), size_of::<wf::DEVICE_OBJECT>()),
        ("DEVICE_OBJECT.Flags", offset_of!(k::DEVICE_OBJECT, Flags), offset_of!(wf::DEVICE_OBJECT, Flags)),
        ("size IRP", size_of::<k::IRP>(), size_of::<wf::IRP>()),
        ("IRP.AssociatedIrp.SystemBuffer", offset_of!(k::IRP, SystemBuffer), offset_of!(wf::IRP, AssociatedIrp)),
        ("IRP.IoStatus", offset_of!(k::IRP, IoStatus), offset_of!(wf::IRP, IoStatus)),
        ("IRP.RequestorMode", offset_of!(k::IRP, RequestorMode), offset_of!(wf::IRP, RequestorMode)),
        ("IRP.Cancel", offset_of!(k::IRP, Cancel), offset_of!(wf::IRP, Cancel)),
        ("IRP.CancelIrql", offset_of!(k::IRP, CancelIrql), offset_of!(wf::IRP, CancelIrql)),
        ("IRP.CancelRoutine", offset_of!(k::IRP, CancelRoutine), offset_of!(wf::IRP, CancelRoutine)),
        (
            "IRP.Tail.Overlay.CurrentStackLocation",
            offset_of!(k::IRP, CurrentStackLocation),
            offset_of!(wf::IRP, Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation),
        ),
        ("size IO_STACK_LOCATION", size_of::<k::IO_STACK_LOCATION>(), size_of::<wf::IO_STACK_LOCATION>()),
        (
            "IO_STACK_LOCATION.Control",
            offset_of!(k::IO_STACK_LOCATION, Control),
            offset_of!(wf::IO_STACK_LOCATION, Control),
        ),
        (
            "IO_STACK_LOCATION.DeviceIoControl.OutputBufferLength",
            offset_of!(k::IO_STACK_LOCATION, OutputBufferLength),
            offset_of!(wf::IO_STACK_LOCATION, Parameters.DeviceIoControl.OutputBufferLength),
        ),
        (
            "IO_STACK_LOCATION.DeviceIoControl.InputBufferLength",
            offset_of!(k::IO_STACK_LOCATION, InputBufferLength),
            offset_of!(wf::IO_STACK_LOCATION, Parameters.DeviceIoControl.InputBufferLength),
        ),
        (
            "IO_STACK_LOCATION.DeviceIoControl.IoControlCode",
            offset_of!(k::IO_STACK_LOCATION, IoControlCode),
            offset_of!(wf::IO_STACK_LOCATION, Parameters.DeviceIoControl.IoControlCode),
        ),
        (
            "IO_STACK_LOCATION.DeviceIoControl.Type3InputBuffer",
            offset_of!(k::IO_STACK_LOCATION, Type3InputBuffer),
            offset_of!(wf::IO_STACK_LOCATION, Parameters.DeviceIoControl.Type3InputBuffer),
        ),
        (
            "IO_STACK_LOCATION.DeviceObject",
            offset_of!(k::IO_STACK_LOCATION, DeviceObject),
            offset_of!(wf::IO_STACK_LOCATION, DeviceObject),
        ),
        (
            "size KEY_VALUE_PARTIAL_INFORMATION",
            size_of::<k::KEY_VALUE_PARTIAL_INFORMATION>(),
            size_of::<ws::KEY_VALUE_PARTIAL_INFORMATION>(),
        ),
        (
            "KEY_VALUE_PARTIAL_INFORMATION.Data",
            offset_of!(k::KEY_VALUE_PARTIAL_INFORMATION, Data),
            offset_of!(ws::KEY_VALUE_PARTIAL_INFORMATION, Data),
        ),
        (
            "size RTL_OSVERSIONINFOW",
            size_of::<k::RTL_OSVERSIONINFOW>(),
            size_of::<windows_sys::Win32::System::SystemInformation::OSVERSIONINFOW>(),
        ),
        (
            "size FLT_OPERATION_REGISTRATION",
            size_of::<kf::FLT_OPERATION_REGISTRATION>(),
            size_of::<wm::FLT_OPERATION_REGISTRATION>(),
        ),
        (
            "FLT_OPERATION_REGISTRATION.PreOperation",
            offset_of!(kf::FLT_OPERATION_REGISTRATION, PreOperation),
            offset_of!(wm::FLT_OPERATION_REGISTRATION, PreOperation),
        ),
        (
            "FLT_OPERATION_REGISTRATION.PostOperation",
            offset_of!(kf::FLT_OPERATION_REGISTRATION, PostOperation),
            offset_of!(wm::FLT_OPERATION_REGISTRATION, PostOperation),
        ),
        (
            "size FLT_CONTEXT_REGISTRATION",
            size_of::<kf::FLT_CONTEXT_REGISTRATION>(),
            size_of::<wm::FLT_CONTEXT_REGISTRATION>(),
        ),
        (
            "FLT_CONTEXT_REGISTRATION.PoolTag",
            offset_of!(kf::FLT_CONTEXT_REGISTRATION, PoolTag),
            offset_of!(wm::FLT_CONTEXT_REGISTRATION, PoolTag),
        ),
        ("size FLT_REGISTRATION", size_of::<kf::FLT_REGISTRATION>(), size_of::<wm::FLT_REGISTRATION>()),
        (
            "FLT_REGISTRATION 0x0202 size = 0x0203 SectionNotificationCallback",
            size_of::<kf::FLT_REGISTRATION>(),
            offset_of!(wm::FLT_REGISTRATION, SectionNotificationCallback),
        ),
        (
            "FLT_REGISTRATION.OperationRegistration",
            offset_of!(kf::FLT_REGISTRATION, OperationRegistration),
            offset_of!(wm::FLT_REGISTRATION, OperationRegistration),
        ),
        (
            "FLT_REGISTRATION.FilterUnloadCallback",
            offset_of!(kf::FLT_REGISTRATION, FilterUnloadCallback),
            offset_of!(wm::FLT_REGISTRATION, FilterUnloadCallback),
        ),
        (
            "FLT_REGISTRATION.InstanceSetupCallback",
            offset_of!(kf::FLT_REGISTRATION, InstanceSetupCallback),
            offset_of!(wm::FLT_REGISTRATION, InstanceSetupCallback),
        ),
        (
            "FLT_REGISTRATION.InstanceTeardownCompleteCallback",
            offset_of!(kf::FLT_REGISTRATION, InstanceTeardownCompleteCallback),
            offset_of!(wm::FLT_REGISTRATION, InstanceTeardownCompleteCallback),
        ),
        (
            "FLT_REGISTRATION.TransactionNotificationCallback",
            offset_of!(kf::FLT_REGISTRATION, TransactionNotificationCallback),
            offset_of!(wm::FLT_REGISTRATION, TransactionNotificationCallback),
        ),
        (
            "FLT_REGISTRATION.NormalizeNameComponentExCallback",
            offset_of!(kf::FLT_REGISTRATION, NormalizeNameComponentExCallback),
            offset_of!(wm::FLT_REGISTRATION, NormalizeNameComponentExCallback),
        ),
        ("size FLT_CALLBACK_DATA", size_of::<kf::FLT_CALLBACK_DATA>(), size_of::<wm::FLT_CALLBACK_DATA>()),
        ("FLT_CALLBACK_DATA.Iopb", offset_of!(kf::FLT_CALLBACK_DATA, Iopb), offset_of!(wm::FLT_CALLBACK_DATA, Iopb)),
        (
            "FLT_CALLBACK_DATA.IoStatus",
            offset_of!(kf::FLT_CALLBACK_DATA, IoStatus),
            offset_of!(wm::FLT_CALLBACK_DATA, IoStatus),
        ),
        (
            "FLT_CALLBACK_DATA.RequestorMode",
            offset_of!(kf::FLT_CALLBACK_DATA, RequestorMode),
            offset_of!(wm::FLT_CALLBACK_DATA, RequestorMode),
        ),
        (
            "FLT_IO_PARAMETER_BLOCK.MajorFunction",
            offset_of!(kf::FLT_IO_PARAMETER_BLOCK, MajorFunction),
            offset_of!(wm::FLT_IO_PARAMETER_BLOCK, MajorFunction),
        ),
        (
            "FLT_IO_PARAMETER_BLOCK.Parameters",
            offset_of!(kf::FLT_IO_PARAMETER_BLOCK, Parameters),
            offset_of!(wm::FLT_IO_PARAMETER_BLOCK, Parameters),
        ),
        ("size FLT_PARAMETERS", size_of::<kf::FLT_PARAMETERS>(), size_of::<wm::FLT_PARAMETERS>()),
        (
            "FLT_PARAMETERS.Read.Key",
            offset_of!(kf::FLT_READ_WRITE_PARAMETERS, Key),
            offset_of!(wm::FLT_PARAMETERS_3, Key),
        ),
        (
            "FLT_PARAMETERS.Read.ByteOffset",
            offset_of!(kf::FLT_READ_WRITE_PARAMETERS, ByteOffset),
            offset_of!(wm::FLT_PARAMETERS_3, ByteOffset),
        ),
        ("size FLT_RELATED_OBJECTS", size_of::<kf::FLT_RELATED_OBJECTS>(), size_of::<wm::FLT_RELATED_OBJECTS>()),
        (
            "FLT_RELATED_OBJECTS.Volume",
            offset_of!(kf::FLT_RELATED_OBJECTS, Volume),
            offset_of!(wm::FLT_RELATED_OBJECTS, Volume),
        ),
        (
            "FLT_RELATED_OBJECTS.FileObject",
            offset_of!(kf::FLT_RELATED_OBJECTS, FileObject),
            offset_of!(wm::FLT_RELATED_OBJECTS, FileObject),
        ),
    ];
    report(
        rows,
        &[
            "FLT_PARAMETERS.Read.Key",
            "FLT_PARAMETERS.Read.ByteOffset",
            "size DEVICE_OBJECT",
            "IO_STACK_LOCATION.DeviceIoControl.InputBufferLength",
            "IO_STACK_LOCATION.DeviceIoControl.IoControlCode",
            "IO_STACK_LOCATION.DeviceIoControl.Type3InputBuffer",
            "size FLT_REGISTRATION",
        ],
    );
}

/// The constants the Windows 7 registration must use are not windows-sys's
/// defaults.
#[test]
fn windows7_registration_version_is_not_the_windows_sys_default() {
    assert_eq!(kf::FLT_REGISTRATION_VERSION_0202, 0x0202);
    assert_eq!(wm::FLT_REGISTRATION_VERSION, 0x0203, "windows-sys's default is the Windows 8 layout");
    assert_eq!(u32::from(kf::FLT_REGISTRATION_VERSION_0202), wm::FLT_REGISTRATION_VERSION_0202);
}
