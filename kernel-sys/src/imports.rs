//! The kernel routines and variables the drivers import, by `raw-dylib` (no
//! import library needed). Everything here is exported by Windows 7 SP1
//! x64; the first Windows version of each is recorded in
//! `tests/win7-imports.txt`.
//!
//! # The rule for imported variables
//!
//! An `extern` static imported with `raw-dylib` is `dllimport`: the compiler
//! reads it through the import address table, so **reading the static
//! yields the kernel variable's value**. Declare it with the type of the
//! variable itself, never with the extra `*` the C headers carry: `wdm.h`
//! says `extern POBJECT_TYPE *IoDriverObjectType;` because, without
//! `dllimport`, the C symbol names the IAT slot (a pointer to the variable).
//! Here the variable `IoDriverObjectType` is a `POBJECT_TYPE`, and so is the
//! static; pass it as it is. (Dereferencing it once more reads the first
//! bytes of the `OBJECT_TYPE`: on Windows 7 that is `TypeList`, which points
//! to itself and so hid the bug; on XP x64 / 2003 it is an `ERESOURCE`.)
//! `tests/images.rs` checks every data import of the built images: each
//! load from its IAT slot is dereferenced exactly once before use.
use crate::flt::{
    FLT_CALLBACK_DATA, FLT_CONTEXT_TYPE, FLT_FILE_NAME_INFORMATION, FLT_REGISTRATION, PFLT_CONTEXT, PFLT_FILTER,
    PFLT_INSTANCE, PFLT_VOLUME,
};
use crate::types::{
    BOOLEAN, DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, HANDLE, IRP, KEVENT, KIRQL, KPROCESSOR_MODE, KSPIN_LOCK,
    NTSTATUS, OBJECT_ATTRIBUTES, PEPROCESS, PKSTART_ROUTINE, POBJECT_TYPE, RTL_OSVERSIONINFOW, UNICODE_STRING,
};
use core::ffi::c_void;

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
extern "system" {
    pub fn KeInitializeEvent(event: *mut KEVENT, kind: u32, state: BOOLEAN);
    pub fn KeSetEvent(event: *mut KEVENT, increment: i32, wait: BOOLEAN) -> i32;
    pub fn KeClearEvent(event: *mut KEVENT);
    /// Puts the calling thread to sleep for `*interval` (negative: relative,
    /// in 100 ns). `<= APC_LEVEL`.
    pub fn KeDelayExecutionThread(mode: KPROCESSOR_MODE, alertable: BOOLEAN, interval: *const i64) -> NTSTATUS;
    pub fn KeWaitForSingleObject(
        object: *mut c_void,
        reason: u32,
        mode: KPROCESSOR_MODE,
        alertable: BOOLEAN,
        timeout: *const i64,
    ) -> NTSTATUS;
    pub fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSPIN_LOCK) -> KIRQL;
    pub fn KeReleaseSpinLock(lock: *mut KSPIN_LOCK, irql: KIRQL);

    pub fn ZwLoadDriver(service: *const UNICODE_STRING) -> NTSTATUS;
    pub fn ZwUnloadDriver(service: *const UNICODE_STRING) -> NTSTATUS;
    pub fn ObReferenceObjectByName(
        name: *const UNICODE_STRING,
        attributes: u32,
        access_state: *mut c_void,
        desired_access: u32,
        object_type: *mut c_void,
        mode: KPROCESSOR_MODE,
        parse_context: *mut c_void,
        object: *mut *mut c_void,
    ) -> NTSTATUS;
    pub fn ObOpenObjectByPointer(
        object: *mut c_void,
        attributes: u32,
        access_state: *mut c_void,
        desired_access: u32,
        object_type: *mut c_void,
        mode: KPROCESSOR_MODE,
        handle: *mut HANDLE,
    ) -> NTSTATUS;
    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;
    pub fn ZwSetSecurityObject(handle: HANDLE, information: u32, descriptor: *const c_void) -> NTSTATUS;

    pub fn IoCreateDevice(
        driver: *mut DRIVER_OBJECT,
        extension_size: u32,
        name: *const UNICODE_STRING,
        device_type: u32,
        characteristics: u32,
        exclusive: BOOLEAN,
        device: *mut *mut DEVICE_OBJECT,
    ) -> NTSTATUS;
    pub fn IoDeleteDevice(device: *mut DEVICE_OBJECT);
    pub fn IoCreateSymbolicLink(link: *const UNICODE_STRING, target: *const UNICODE_STRING) -> NTSTATUS;
    pub fn IoDeleteSymbolicLink(link: *const UNICODE_STRING) -> NTSTATUS;
    pub fn IofCompleteRequest(irp: *mut IRP, boost: i8);
    pub fn IoRegisterShutdownNotification(device: *mut DEVICE_OBJECT) -> NTSTATUS;
    pub fn IoUnregisterShutdownNotification(device: *mut DEVICE_OBJECT);

    pub fn PsCreateSystemThread(
        handle: *mut HANDLE,
        access: u32,
        attributes: *mut OBJECT_ATTRIBUTES,
        process: HANDLE,
        client_id: *mut c_void,
        start: PKSTART_ROUTINE,
        context: *mut c_void,
    ) -> NTSTATUS;
    pub fn PsTerminateSystemThread(status: NTSTATUS) -> NTSTATUS;
    pub fn ZwWaitForSingleObject(handle: HANDLE, alertable: BOOLEAN, timeout: *const i64) -> NTSTATUS;
    pub fn ZwClose(handle: HANDLE) -> NTSTATUS;

    pub fn ZwOpenKey(key: *mut HANDLE, access: u32, attributes: *const OBJECT_ATTRIBUTES) -> NTSTATUS;
    /// Opens or creates a key. `PASSIVE_LEVEL`.
    pub fn ZwCreateKey(
        key: *mut HANDLE,
        access: u32,
        attributes: *const OBJECT_ATTRIBUTES,
        title_index: u32,
        class: *const UNICODE_STRING,
        options: u32,
        disposition: *mut u32,
    ) -> NTSTATUS;
    pub fn ZwQueryValueKey(
        key: HANDLE,
        name: *const UNICODE_STRING,
        class: u32,
        info: *mut c_void,
        length: u32,
        result_length: *mut u32,
    ) -> NTSTATUS;
    pub fn ZwSetValueKey(
        key: HANDLE,
        name: *const UNICODE_STRING,
        title_index: u32,
        kind: u32,
        data: *const c_void,
        size: u32,
    ) -> NTSTATUS;
    pub fn ZwFlushKey(key: HANDLE) -> NTSTATUS;
    pub fn IoAcquireCancelSpinLock(irql: *mut KIRQL);
    pub fn IoReleaseCancelSpinLock(irql: KIRQL);
    pub fn IoGetCurrentProcess() -> PEPROCESS;
    pub fn PsGetCurrentProcessId() -> HANDLE;
    pub fn PsGetCurrentThreadId() -> HANDLE;
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;

    pub fn ExAllocatePoolWithTag(pool: u32, bytes: usize, tag: u32) -> *mut c_void;
    pub fn ExFreePoolWithTag(block: *mut c_void, tag: u32);

    pub fn RtlGetVersion(info: *mut RTL_OSVERSIONINFOW) -> NTSTATUS;

    /// Stack probe the compiler emits calls to for large frames.
    pub fn __chkstk();
}

// The System event log: error-log entries (`wrap::eventlog`). Both are
// `<= DISPATCH_LEVEL`; the entry is freed by the I/O manager once written.
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
extern "system" {
    pub fn IoAllocateErrorLogEntry(io_object: *mut c_void, entry_size: u8) -> *mut c_void;
    pub fn IoWriteErrorLogEntry(entry: *mut c_void);
}

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
extern "C" {
    /// `DbgPrintEx(ComponentId, Level, Format, ...)`: output a debugger or
    /// `DbgView` shows when `Debug Print Filter\IHVDRIVER` admits the level.
    pub fn DbgPrintEx(component: u32, level: u32, format: *const u8, ...) -> u32;
}

// Imported variables: read one and you have the kernel variable's value
// (see the rule above).
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
extern "C" {
    /// The driver object type (the variable is a `POBJECT_TYPE`).
    pub static IoDriverObjectType: POBJECT_TYPE;
    /// The System process (the variable is a `PEPROCESS`).
    pub static PsInitialSystemProcess: PEPROCESS;
}

#[link(name = "fltmgr.sys", kind = "raw-dylib", modifiers = "+verbatim")]
extern "system" {
    pub fn FltRegisterFilter(
        driver: *mut DRIVER_OBJECT,
        registration: *const FLT_REGISTRATION,
        filter: *mut PFLT_FILTER,
    ) -> NTSTATUS;
    pub fn FltStartFiltering(filter: PFLT_FILTER) -> NTSTATUS;
    pub fn FltUnregisterFilter(filter: PFLT_FILTER);
    pub fn FltAllocateContext(
        filter: PFLT_FILTER,
        kind: FLT_CONTEXT_TYPE,
        size: usize,
        pool: u32,
        context: *mut PFLT_CONTEXT,
    ) -> NTSTATUS;
    pub fn FltSetStreamContext(
        instance: PFLT_INSTANCE,
        file: *mut FILE_OBJECT,
        operation: u32,
        new: PFLT_CONTEXT,
        old: *mut PFLT_CONTEXT,
    ) -> NTSTATUS;
    pub fn FltGetStreamContext(instance: PFLT_INSTANCE, file: *mut FILE_OBJECT, context: *mut PFLT_CONTEXT)
        -> NTSTATUS;
    pub fn FltReleaseContext(context: PFLT_CONTEXT);
    pub fn FltDeleteContext(context: PFLT_CONTEXT);
    pub fn FltGetFileNameInformation(
        data: *mut FLT_CALLBACK_DATA,
        options: u32,
        info: *mut *mut FLT_FILE_NAME_INFORMATION,
    ) -> NTSTATUS;
    pub fn FltParseFileNameInformation(info: *mut FLT_FILE_NAME_INFORMATION) -> NTSTATUS;
    pub fn FltReleaseFileNameInformation(info: *mut FLT_FILE_NAME_INFORMATION);
    pub fn FltGetVolumeName(volume: PFLT_VOLUME, name: *mut UNICODE_STRING, needed: *mut u32) -> NTSTATUS;
}

#[link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim")]
extern "system" {
    /// The performance counter, and its frequency (ticks per second) when
    /// `frequency` is not null. Any IRQL.
    pub fn KeQueryPerformanceCounter(frequency: *mut i64) -> i64;
}
