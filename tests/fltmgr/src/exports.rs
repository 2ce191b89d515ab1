//! The `Flt*` routines filters import from `fltmgr.sys`: thin entry points
//! that check the pointers they are given and hand over to the modules.
//!
//! A filter that imports a `Flt*` routine not exported here loads under
//! Wine (the loader binds it to a stub) and dies loudly when it calls it;
//! `tests/images.rs` holds every test image's `fltmgr.sys` imports to this
//! list, so that never happens by surprise.
use kernel_sys::flt::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_REGISTRATION, PFLT_CONTEXT, PFLT_FILTER, PFLT_INSTANCE,
    PFLT_VOLUME,
};
use kernel_sys::{DRIVER_OBJECT, FILE_OBJECT, UNICODE_STRING};
use shared_abi::NtStatus;

/// `FltRegisterFilter`. `PASSIVE_LEVEL`.
///
/// # Safety
/// `driver` is the caller's driver object, `registration` a valid
/// registration of the version it declares (alive while the filter is
/// registered), `filter` a valid out-pointer.
#[no_mangle]
pub unsafe extern "system" fn FltRegisterFilter(
    driver: *mut DRIVER_OBJECT,
    registration: *const FLT_REGISTRATION,
    filter: *mut PFLT_FILTER,
) -> i32 {
    if driver.is_null() || registration.is_null() || filter.is_null() {
        return NtStatus::INVALID_PARAMETER.0;
    }
    let r = crate::register::Registering { driver, registration };
    match crate::register::register(&r) {
        Ok(handle) => {
            // SAFETY: the caller's out-pointer (checked non-null).
            unsafe { filter.write(handle) };
            crate::race::registered();
            NtStatus::SUCCESS.0
        }
        Err(status) => status.0,
    }
}

/// `FltStartFiltering`. `PASSIVE_LEVEL`.
///
/// # Safety
/// None beyond the contract: the handle is checked.
#[no_mangle]
pub unsafe extern "system" fn FltStartFiltering(filter: PFLT_FILTER) -> i32 {
    crate::start::start_filtering(filter).0
}

/// `FltUnregisterFilter`. `PASSIVE_LEVEL`; returns once the callbacks in
/// flight ended and every instance was torn down.
///
/// # Safety
/// None beyond the contract: the handle is checked.
#[no_mangle]
pub unsafe extern "system" fn FltUnregisterFilter(filter: PFLT_FILTER) {
    crate::unload::unregister(filter);
}

/// `FltAllocateContext`. `<= APC_LEVEL`.
///
/// # Safety
/// `context` is a valid out-pointer.
#[no_mangle]
pub unsafe extern "system" fn FltAllocateContext(
    filter: PFLT_FILTER,
    kind: u16,
    size: usize,
    _pool: u32,
    context: *mut PFLT_CONTEXT,
) -> i32 {
    crate::contexts::allocate(filter, kind, size, context).0
}

/// `FltSetStreamContext`. `<= APC_LEVEL`.
///
/// # Safety
/// `new` is a context from `FltAllocateContext`; `old` is null or a valid
/// out-pointer.
#[no_mangle]
pub unsafe extern "system" fn FltSetStreamContext(
    instance: PFLT_INSTANCE,
    file: *mut FILE_OBJECT,
    operation: u32,
    new: PFLT_CONTEXT,
    old: *mut PFLT_CONTEXT,
) -> i32 {
    crate::contexts::set_stream(instance, file, operation, new, old).0
}

/// `FltGetStreamContext`. `<= APC_LEVEL`.
///
/// # Safety
/// `context` is a valid out-pointer.
#[no_mangle]
pub unsafe extern "system" fn FltGetStreamContext(
    instance: PFLT_INSTANCE,
    file: *mut FILE_OBJECT,
    context: *mut PFLT_CONTEXT,
) -> i32 {
    crate::contexts::get_stream(instance, file, context).0
}

/// `FltReleaseContext`. `<= DISPATCH_LEVEL`.
///
/// # Safety
/// `context` is a context the caller holds a reference on.
#[no_mangle]
pub unsafe extern "system" fn FltReleaseContext(context: PFLT_CONTEXT) {
    crate::contexts::release(context);
}

/// `FltDeleteContext`. `<= APC_LEVEL`.
///
/// # Safety
/// `context` is a context the caller holds a reference on.
#[no_mangle]
pub unsafe extern "system" fn FltDeleteContext(context: PFLT_CONTEXT) {
    crate::contexts::delete(context);
}

/// `FltGetFileNameInformation`. `<= APC_LEVEL`, inside an operation callback.
///
/// # Safety
/// `data` is the callback data of the operation being called back;
/// `info` a valid out-pointer.
#[no_mangle]
pub unsafe extern "system" fn FltGetFileNameInformation(
    data: *mut FLT_CALLBACK_DATA,
    options: u32,
    info: *mut *mut FLT_FILE_NAME_INFORMATION,
) -> i32 {
    crate::names::get(data, options, info).0
}

/// `FltReferenceFileNameInformation`.
///
/// # Safety
/// `info` came from `FltGetFileNameInformation` and is still referenced.
#[no_mangle]
pub unsafe extern "system" fn FltReferenceFileNameInformation(info: *mut FLT_FILE_NAME_INFORMATION) {
    crate::names::reference(info);
}

/// `FltReleaseFileNameInformation`.
///
/// # Safety
/// `info` came from `FltGetFileNameInformation` and is still referenced.
#[no_mangle]
pub unsafe extern "system" fn FltReleaseFileNameInformation(info: *mut FLT_FILE_NAME_INFORMATION) {
    crate::names::release(info);
}

/// `FltParseFileNameInformation`.
///
/// # Safety
/// `info` came from `FltGetFileNameInformation` and is still referenced.
#[no_mangle]
pub unsafe extern "system" fn FltParseFileNameInformation(info: *mut FLT_FILE_NAME_INFORMATION) -> i32 {
    crate::names::parse(info).0
}

/// `FltGetVolumeName`.
///
/// # Safety
/// `name` is null or a `UNICODE_STRING` whose buffer holds `MaximumLength`
/// bytes; `needed` is null or a valid out-pointer.
#[no_mangle]
pub unsafe extern "system" fn FltGetVolumeName(
    volume: PFLT_VOLUME,
    name: *mut UNICODE_STRING,
    needed: *mut u32,
) -> i32 {
    crate::names::volume_name(volume, name, needed).0
}
