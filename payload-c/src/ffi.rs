//! The C side of the library, and its only `unsafe` code: the symbols a C
//! minifilter's link binds to, the filter's own routines the library calls,
//! the imports it reaches `fltmgr.sys` through, and the raw pointers the
//! kernel, the loader and the filter pass. Each entry checks its pointers
//! and hands safe views to `entry.rs` and `glue.rs`.
//!
//! Symbols this library defines for the link:
//! - `DriverEntry` (the filter's is renamed `SerialPayloadFilterEntry` by
//!   `serialpayload.h`), `LoaderPayloadRegister`, `SerialPayloadTeardown`,
//!   `SerialPayloadShutdown` (the header's descriptor points to the last two);
//! - for each of `FltRegisterFilter`, `FltStartFiltering` and
//!   `FltUnregisterFilter`: `__imp_X`, a read-only pointer to the
//!   interposer (what a `dllimport` call goes through), and `X`, a jump to
//!   it (what a plain call binds to): the filter's calls land in the
//!   interposers and `fltMgr.lib` is never searched for those names;
//! - the export directives for `LoaderPayloadRegister` and
//!   `LoaderPayloadDescriptor` (which the header defines).
//!
//! The real routines are reached through `__imp_RealFltRegisterFilter`,
//! `__imp_RealFltStartFiltering` and `__imp_RealFltUnregisterFilter`
//! (`serialpayload_imports.def`: `fltmgr.sys` imports under other names).
//! Nothing in this crate calls kernel-sys's `FltRegisterFilter`,
//! `FltStartFiltering` or `FltUnregisterFilter`: in this image those names
//! are the interposers.
#![allow(non_upper_case_globals, non_snake_case)]
use crate::glue::{self, FilterHandle};
use core::cell::UnsafeCell;
use kernel_sys::flt::{FLT_REGISTRATION, FLT_REGISTRATION_SIZE_0200, PFLT_FILTER, PFLT_FILTER_UNLOAD_CALLBACK};
use kernel_sys::wrap::driver::{DriverObject, RegistryPath, REGISTRY_PATH_CHARS};
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::{DRIVER_OBJECT, UNICODE_STRING};
use shared_abi::payload::{LoaderServices, PayloadDescriptor, NAME_CHARS};
use shared_abi::NtStatus;

type RegisterFn = unsafe extern "system" fn(*mut DRIVER_OBJECT, *const FLT_REGISTRATION, *mut PFLT_FILTER) -> i32;
type StartFn = unsafe extern "system" fn(PFLT_FILTER) -> i32;
type UnregisterFn = unsafe extern "system" fn(PFLT_FILTER);
type UnloadFn = unsafe extern "system" fn(*mut DRIVER_OBJECT);

/// The payload descriptor as `serialpayload.h` defines it (ABI 1.1 layout,
/// the first 104 bytes of `shared_abi::payload::PayloadDescriptor`).
#[repr(C)]
pub struct CDescriptor {
    size: u32,
    magic: u32,
    abi_major: u16,
    abi_minor: u16,
    payload_version: u32,
    min_services_size: u32,
    flags: u32,
    name: [u16; NAME_CHARS],
    teardown: usize,
    shutdown: usize,
}
const _: () = assert!(core::mem::size_of::<CDescriptor>() == 104);
const _: () = assert!(
    core::mem::offset_of!(PayloadDescriptor, shutdown) + core::mem::size_of::<usize>()
        == core::mem::size_of::<CDescriptor>()
);
const _: () = assert!(core::mem::offset_of!(PayloadDescriptor, name) == core::mem::offset_of!(CDescriptor, name));

extern "system" {
    /// The filter's own `DriverEntry`, renamed by `serialpayload.h`.
    fn SerialPayloadFilterEntry(driver: *mut DRIVER_OBJECT, registry_path: *const UNICODE_STRING) -> i32;
}

extern "C" {
    /// Defined by `serialpayload.h` in the filter's objects.
    static LoaderPayloadDescriptor: CDescriptor;
    /// `fltmgr.sys!FltRegisterFilter`, imported as `RealFltRegisterFilter`.
    static __imp_RealFltRegisterFilter: RegisterFn;
    /// `fltmgr.sys!FltStartFiltering`, imported as `RealFltStartFiltering`.
    static __imp_RealFltStartFiltering: StartFn;
    /// `fltmgr.sys!FltUnregisterFilter`, imported as `RealFltUnregisterFilter`.
    static __imp_RealFltUnregisterFilter: UnregisterFn;
}

// The interposers under the names the filter's calls bind to. `__imp_X`
// lives in a read-only section, as an import address would after binding.
core::arch::global_asm!(
    ".section .rdata,\"dr\"",
    ".p2align 3",
    ".globl __imp_FltRegisterFilter",
    "__imp_FltRegisterFilter:",
    ".quad {register}",
    ".globl __imp_FltStartFiltering",
    "__imp_FltStartFiltering:",
    ".quad {start}",
    ".globl __imp_FltUnregisterFilter",
    "__imp_FltUnregisterFilter:",
    ".quad {unregister}",
    ".text",
    ".p2align 4",
    ".globl FltRegisterFilter",
    "FltRegisterFilter:",
    "jmp {register}",
    ".p2align 4",
    ".globl FltStartFiltering",
    "FltStartFiltering:",
    "jmp {start}",
    ".p2align 4",
    ".globl FltUnregisterFilter",
    "FltUnregisterFilter:",
    "jmp {unregister}",
    register = sym SerialPayloadFltRegisterFilter,
    start = sym SerialPayloadFltStartFiltering,
    unregister = sym SerialPayloadFltUnregisterFilter,
);

/// Link directives, once for the image (no object of the filter carries
/// any): the exports a payload needs, the registration entry (here) and the
/// descriptor (in the filter's objects, from the header); and the filter's
/// `INIT` section merged into `PAGE`, since its `DriverEntry` (and whatever
/// it placed in `INIT` with `alloc_text`) runs from the registration entry,
/// after the I/O manager discarded `INIT` on Windows.
#[used]
#[link_section = ".drectve"]
static LINKER_DIRECTIVES: [u8; 85] =
    *b" /EXPORT:LoaderPayloadRegister /EXPORT:LoaderPayloadDescriptor,DATA /MERGE:INIT=PAGE ";

/// A cell written once per registration, before anyone else reads it.
struct Cell<T>(UnsafeCell<T>);
// SAFETY: each cell below is written only at one well-ordered moment (the
// registry path in DriverEntry before anything reads it; the registration
// by the interposer, admitted once, before FltMgr sees it) and read-only
// otherwise.
unsafe impl<T> Sync for Cell<T> {}

static REGISTRY_PATH: Cell<[u16; REGISTRY_PATH_CHARS]> = Cell(UnsafeCell::new([0; REGISTRY_PATH_CHARS]));
static REGISTRY_PATH_STRING: Cell<UNICODE_STRING> =
    Cell(UnsafeCell::new(UNICODE_STRING { Length: 0, MaximumLength: 0, Buffer: core::ptr::null_mut() }));
static REGISTRATION: Cell<FLT_REGISTRATION> = Cell(UnsafeCell::new(EMPTY_REGISTRATION));

const EMPTY_REGISTRATION: FLT_REGISTRATION = FLT_REGISTRATION {
    Size: 0,
    Version: 0,
    Flags: 0,
    ContextRegistration: core::ptr::null(),
    OperationRegistration: core::ptr::null(),
    FilterUnloadCallback: None,
    InstanceSetupCallback: None,
    InstanceQueryTeardownCallback: core::ptr::null_mut(),
    InstanceTeardownStartCallback: core::ptr::null_mut(),
    InstanceTeardownCompleteCallback: None,
    GenerateFileNameCallback: core::ptr::null_mut(),
    NormalizeNameComponentCallback: core::ptr::null_mut(),
    NormalizeContextCleanupCallback: core::ptr::null_mut(),
    TransactionNotificationCallback: core::ptr::null_mut(),
    NormalizeNameComponentExCallback: core::ptr::null_mut(),
};

/// Called by the I/O manager when the loader's `ZwLoadDriver` loads this
/// image, on the loading thread, at `PASSIVE_LEVEL`.
///
/// # Safety
/// Called only by the I/O manager, with its driver object and registry path.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(driver: *mut DRIVER_OBJECT, registry_path: *const UNICODE_STRING) -> i32 {
    // SAFETY: the two arguments the I/O manager passed to DriverEntry.
    match unsafe { kernel_sys::wrap::driver::enter(driver, registry_path) } {
        Ok((driver, path)) => crate::entry::driver_entry(driver, &path),
        Err(status) => status.0,
    }
}

/// The registration entry (`LoaderPayloadRegister`), called by the loader
/// after `ZwLoadDriver` returned, on a thread of the loader in the System
/// process, at `PASSIVE_LEVEL`.
///
/// # Safety
/// Called only by the loader, with its services table.
#[no_mangle]
pub unsafe extern "system" fn LoaderPayloadRegister(services: *const LoaderServices) -> i32 {
    // SAFETY: the loader passes its services table, valid while this image
    // is loaded; `from_raw` checks its size and ABI.
    match unsafe { kernel_sys::wrap::services::Services::from_raw(services) } {
        Ok(services) => crate::entry::register_entry(services),
        Err(status) => status.0,
    }
}

/// The descriptor's teardown entry.
#[no_mangle]
pub extern "system" fn SerialPayloadTeardown() -> i32 {
    crate::entry::teardown_entry()
}

/// The descriptor's shutdown hook: a C minifilter has none of its own.
#[no_mangle]
pub extern "system" fn SerialPayloadShutdown() {}

/// The `FilterUnloadCallback` registered in place of the filter's.
extern "system" fn SerialPayloadFilterUnload(flags: u32) -> i32 {
    crate::entry::filter_unload(flags)
}

/// The image's `DriverUnload`.
extern "system" fn SerialPayloadDriverUnload(_driver: *mut DRIVER_OBJECT) {
    crate::entry::driver_unload();
}

/// The interposer behind the filter's `FltRegisterFilter`.
///
/// # Safety
/// As `FltRegisterFilter`: `driver` the caller's driver object,
/// `registration` a registration of the size it declares, `out` writable.
#[no_mangle]
pub unsafe extern "system" fn SerialPayloadFltRegisterFilter(
    driver: *mut DRIVER_OBJECT,
    registration: *const FLT_REGISTRATION,
    out: *mut PFLT_FILTER,
) -> i32 {
    if driver.is_null() || registration.is_null() || out.is_null() {
        return NtStatus::INVALID_PARAMETER.0;
    }
    // SAFETY: `Size` is the first field of every registration version.
    let size = usize::from(unsafe { registration.cast::<u16>().read_unaligned() });
    if size < FLT_REGISTRATION_SIZE_0200 {
        return NtStatus::INVALID_PARAMETER.0;
    }
    let mut copy = EMPTY_REGISTRATION;
    let len = size.min(core::mem::size_of::<FLT_REGISTRATION>());
    // SAFETY: the filter's registration holds `size` bytes (its own
    // declaration); `len` is no more than that nor than `copy`'s size.
    unsafe {
        core::ptr::copy_nonoverlapping(registration.cast::<u8>(), (&raw mut copy).cast::<u8>(), len);
    }
    match glue::register(driver.addr(), &copy) {
        Ok(handle) => {
            // SAFETY: the caller's out-pointer (checked non-null).
            unsafe { out.write(handle.0 as PFLT_FILTER) };
            NtStatus::SUCCESS.0
        }
        Err(status) => status.0,
    }
}

/// The interposer behind the filter's `FltStartFiltering`.
#[no_mangle]
pub extern "system" fn SerialPayloadFltStartFiltering(filter: PFLT_FILTER) -> i32 {
    glue::start(FilterHandle(filter.addr())).0
}

/// The interposer behind the filter's `FltUnregisterFilter`.
#[no_mangle]
pub extern "system" fn SerialPayloadFltUnregisterFilter(filter: PFLT_FILTER) {
    glue::unregister(FilterHandle(filter.addr()));
}

/// The registry path `DriverEntry` received, kept for the filter's own
/// `DriverEntry` (the I/O manager's string is valid only during the call).
pub fn keep_registry_path(path: &RegistryPath) {
    let units = path.units();
    let len = units.len().min(REGISTRY_PATH_CHARS);
    let bytes = u16::try_from(len * 2).unwrap_or(!1);
    // SAFETY: DriverEntry's time: nothing reads these cells yet (the
    // filter's DriverEntry runs only from the later registration entry).
    let buf = unsafe { &mut *REGISTRY_PATH.0.get() };
    if let (Some(dst), Some(src)) = (buf.get_mut(..len), units.get(..len)) {
        dst.copy_from_slice(src);
    }
    let string = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: buf.as_mut_ptr() };
    // SAFETY: as above; the string points into the static buffer.
    unsafe { *REGISTRY_PATH_STRING.0.get() = string };
}

/// Runs the filter's own `DriverEntry` with the image's driver object and
/// the kept registry path. From the registration entry, `PASSIVE_LEVEL`.
pub fn call_filter_entry(driver: DriverObject) -> NtStatus {
    // SAFETY: the filter's DriverEntry, called as the I/O manager would,
    // with this image's driver object and a registry path that lives as
    // long as the image.
    NtStatus(unsafe { SerialPayloadFilterEntry(driver.as_raw(), REGISTRY_PATH_STRING.0.get()) })
}

/// Runs the filter's own `FilterUnloadCallback`.
pub fn call_filter_unload(callback: unsafe extern "system" fn(u32) -> i32, flags: u32) -> NtStatus {
    // SAFETY: the callback the filter registered, called as FltMgr would
    // (PASSIVE_LEVEL, with unload flags).
    NtStatus(unsafe { callback(flags) })
}

/// Runs a `DriverUnload` the filter set (`routine` is its address, read
/// from the driver object's `DriverUnload` field).
pub fn call_filter_driver_unload(routine: usize, driver: DriverObject) {
    // SAFETY: a non-zero address the filter stored in DriverUnload: one of
    // its routines, of that type.
    let routine: UnloadFn = unsafe { core::mem::transmute::<usize, UnloadFn>(routine) };
    // SAFETY: called as the I/O manager would, with the driver object.
    unsafe { routine(driver.as_raw()) };
}

/// Publishes the image's `DriverUnload` (the protocol's last act of `DriverEntry`).
pub fn publish_driver_unload(driver: DriverObject) {
    driver.set_unload(SerialPayloadDriverUnload);
}

/// The address of the image's `DriverUnload`.
pub fn own_driver_unload() -> usize {
    SerialPayloadDriverUnload as extern "system" fn(*mut DRIVER_OBJECT) as usize
}

/// The driver object's `DriverUnload`, as an address (0: none).
pub fn driver_unload_of(driver: DriverObject) -> usize {
    // SAFETY: the driver object outlives the driver; a pointer-sized read.
    unsafe { (*driver.as_raw()).DriverUnload }.map_or(0, |f| f as usize)
}

/// Puts `routine` (an address `driver_unload_of` read, non-zero) back into
/// `DriverUnload`.
pub fn set_driver_unload(driver: DriverObject, routine: usize) {
    if routine == 0 {
        return;
    }
    // SAFETY: `routine` is a DriverUnload address read from this driver
    // object (the image's own, FltMgr's, or the filter's).
    let routine: UnloadFn = unsafe { core::mem::transmute::<usize, UnloadFn>(routine) };
    // SAFETY: the driver object outlives the driver; a pointer-sized store,
    // as FltMgr makes it.
    unsafe { (*driver.as_raw()).DriverUnload = Some(routine) };
}

/// The `FilterUnloadCallback` the library registers in place of the filter's.
pub const SUBSTITUTE_FILTER_UNLOAD: PFLT_FILTER_UNLOAD_CALLBACK = Some(SerialPayloadFilterUnload);

/// The real `FltRegisterFilter`, with `registration` kept in this image
/// for as long as the filter is registered.
pub fn real_register(driver: DriverObject, registration: &FLT_REGISTRATION) -> Result<FilterHandle, NtStatus> {
    let kept = REGISTRATION.0.get();
    // SAFETY: glue::register admits one registration at a time, from the
    // filter's DriverEntry, while none is live: FltMgr reads no earlier copy.
    unsafe { kept.write(*registration) };
    let mut handle: PFLT_FILTER = core::ptr::null_mut();
    // SAFETY: the bound import of fltmgr.sys!FltRegisterFilter, with this
    // image's driver object, a registration in a static, a valid out-pointer.
    let status = NtStatus(unsafe { __imp_RealFltRegisterFilter(driver.as_raw(), kept, &raw mut handle) });
    status.to_result().map(|()| FilterHandle(handle.addr()))
}

/// The real `FltStartFiltering`.
pub fn real_start(filter: FilterHandle) -> NtStatus {
    // SAFETY: the bound import; a handle the real FltRegisterFilter
    // returned, still registered (glue checked).
    NtStatus(unsafe { __imp_RealFltStartFiltering(filter.0 as PFLT_FILTER) })
}

/// The real `FltUnregisterFilter`: at most once per handle (glue takes it).
pub fn real_unregister(filter: FilterHandle) {
    // SAFETY: the bound import; a registered handle, never used after.
    unsafe { __imp_RealFltUnregisterFilter(filter.0 as PFLT_FILTER) };
}

/// The descriptor's name and version, for the log.
pub fn descriptor_name_and_version() -> (WideBuf<NAME_CHARS>, u32) {
    // SAFETY: the header's descriptor, constant data of this image.
    let d = unsafe { &LoaderPayloadDescriptor };
    let len = d.name.iter().position(|&c| c == 0).unwrap_or(NAME_CHARS);
    let name = d.name.get(..len).and_then(WideBuf::from_units).unwrap_or_default();
    (name, d.payload_version)
}
