//! The kernel routines and variables the drivers import, by `raw-dylib` (no
//! import library needed). Everything here is exported by XP (x86) and
//! XP x64 / Server 2003 (x64) and every later Windows; the first version
//! of each, its architectures and its x86 calling convention are recorded
//! in `tests/kernel-imports.txt`, which a host test holds these
//! declarations to.
//!
//! # x86
//!
//! - Routines are imported by their undecorated export names
//!   (`import_name_type = "undecorated"`: `KeSetEvent`, not `_KeSetEvent@12`).
//! - `extern "system"` is `__stdcall` there, the convention of nearly every
//!   export; the `__fastcall` ones (`ObfDereferenceObject`,
//!   `IofCompleteRequest`, hal's `KfAcquireSpinLock`/`KfReleaseSpinLock`)
//!   are declared `extern "fastcall"` in an x86-only block, and the variadic
//!   `DbgPrintEx` is `extern "C"` (`__cdecl`) on both.
//! - What the WDK makes a macro on one architecture and an export on the
//!   other is declared per architecture, with a function of the WDK macro's
//!   name where the other architecture has the export: on x86
//!   `KeAcquireSpinLockRaiseToDpc`/`KeReleaseSpinLock` are hal's
//!   `KfAcquireSpinLock`/`KfReleaseSpinLock`.
//! - The 64-bit arithmetic and stack-probe helpers the compiler calls
//!   (`_aulldiv`, `_allmul`, `_chkstk`, ...) are ntoskrnl exports on x86.
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

#[cfg_attr(
    target_arch = "x86",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")
)]
#[cfg_attr(not(target_arch = "x86"), link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
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
}

// x64: the spin lock routines are ntoskrnl exports; `Obf`/`Iof` routines
// are plain x64 calls; `__chkstk` is the kernel's stack probe.
#[cfg(not(target_arch = "x86"))]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
extern "system" {
    pub fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSPIN_LOCK) -> KIRQL;
    pub fn KeReleaseSpinLock(lock: *mut KSPIN_LOCK, irql: KIRQL);
    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;
    pub fn IofCompleteRequest(irp: *mut IRP, boost: i8);
    /// Stack probe the compiler emits calls to for large frames.
    pub fn __chkstk();
}

// x86: the `__fastcall` exports.
#[cfg(target_arch = "x86")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")]
extern "fastcall" {
    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;
    pub fn IofCompleteRequest(irp: *mut IRP, boost: i8);
}

// x86: hal's `__fastcall` spin lock routines, which the WDK's
// `KeAcquireSpinLockRaiseToDpc` and `KeReleaseSpinLock` macros call there.
#[cfg(target_arch = "x86")]
#[link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")]
extern "fastcall" {
    pub fn KfAcquireSpinLock(lock: *mut KSPIN_LOCK) -> KIRQL;
    pub fn KfReleaseSpinLock(lock: *mut KSPIN_LOCK, irql: KIRQL);
}

// x86: what x64 reads inline (CR8, `KUSER_SHARED_DATA`) are exports:
// hal's `KeGetCurrentIrql` and ntoskrnl's `KeQuerySystemTime`, both at any
// IRQL.
#[cfg(target_arch = "x86")]
#[link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")]
extern "system" {
    pub fn KeGetCurrentIrql() -> KIRQL;
}

#[cfg(target_arch = "x86")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")]
extern "system" {
    pub fn KeQuerySystemTime(time: *mut i64);
}

// x86: the compiler's 64-bit arithmetic and stack-probe helpers. LLVM calls
// the symbols `__aulldiv`, ..., `__chkstk` (the C names with x86's leading
// underscore); the kernel exports them as `_aulldiv`, ..., `_chkstk`. Each
// is linked under the symbol LLVM calls, and undecorating strips one
// underscore to give the export's name. (They pop their own arguments,
// which is no business of Rust's: nothing here calls them.)
#[cfg(target_arch = "x86")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")]
extern "C" {
    #[link_name = "__alldiv"]
    pub fn _alldiv();
    #[link_name = "__allrem"]
    pub fn _allrem();
    #[link_name = "__allmul"]
    pub fn _allmul();
    #[link_name = "__aulldiv"]
    pub fn _aulldiv();
    #[link_name = "__aullrem"]
    pub fn _aullrem();
    #[link_name = "__allshl"]
    pub fn _allshl();
    #[link_name = "__allshr"]
    pub fn _allshr();
    #[link_name = "__aullshr"]
    pub fn _aullshr();
    #[link_name = "__chkstk"]
    pub fn _chkstk();
}

/// `KeAcquireSpinLockRaiseToDpc` on x86: the WDK macro's expansion.
///
/// # Safety
/// As `KfAcquireSpinLock`: a valid spin lock, `<= DISPATCH_LEVEL`.
#[cfg(target_arch = "x86")]
#[allow(non_snake_case)]
pub unsafe fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSPIN_LOCK) -> KIRQL {
    // SAFETY: the caller's contract.
    unsafe { KfAcquireSpinLock(lock) }
}

/// `KeReleaseSpinLock` on x86: the WDK macro's expansion.
///
/// # Safety
/// As `KfReleaseSpinLock`: the lock is held, `irql` is what its acquire
/// returned.
#[cfg(target_arch = "x86")]
#[allow(non_snake_case)]
pub unsafe fn KeReleaseSpinLock(lock: *mut KSPIN_LOCK, irql: KIRQL) {
    // SAFETY: the caller's contract.
    unsafe { KfReleaseSpinLock(lock, irql) }
}

// The System event log: error-log entries (`wrap::eventlog`). Both are
// `<= DISPATCH_LEVEL`; the entry is freed by the I/O manager once written.
#[cfg_attr(
    target_arch = "x86",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")
)]
#[cfg_attr(not(target_arch = "x86"), link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    pub fn IoAllocateErrorLogEntry(io_object: *mut c_void, entry_size: u8) -> *mut c_void;
    pub fn IoWriteErrorLogEntry(entry: *mut c_void);
}

#[cfg_attr(
    target_arch = "x86",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")
)]
#[cfg_attr(not(target_arch = "x86"), link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "C" {
    /// `DbgPrintEx(ComponentId, Level, Format, ...)`: output a debugger or
    /// `DbgView` shows when `Debug Print Filter\IHVDRIVER` admits the level.
    pub fn DbgPrintEx(component: u32, level: u32, format: *const u8, ...) -> u32;
}

// Imported variables: read one and you have the kernel variable's value
// (see the rule above).
#[cfg_attr(
    target_arch = "x86",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")
)]
#[cfg_attr(not(target_arch = "x86"), link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "C" {
    /// The driver object type (the variable is a `POBJECT_TYPE`).
    pub static IoDriverObjectType: POBJECT_TYPE;
    /// The System process (the variable is a `PEPROCESS`).
    pub static PsInitialSystemProcess: PEPROCESS;
}

#[cfg_attr(
    target_arch = "x86",
    link(name = "fltmgr.sys", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")
)]
#[cfg_attr(not(target_arch = "x86"), link(name = "fltmgr.sys", kind = "raw-dylib", modifiers = "+verbatim"))]
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

#[cfg_attr(
    target_arch = "x86",
    link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim", import_name_type = "undecorated")
)]
#[cfg_attr(not(target_arch = "x86"), link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// The performance counter, and its frequency (ticks per second) when
    /// `frequency` is not null. Any IRQL.
    pub fn KeQueryPerformanceCounter(frequency: *mut i64) -> i64;
}
