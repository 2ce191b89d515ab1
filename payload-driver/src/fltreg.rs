//! The one way a payload's filter is registered with the Filter Manager.
//!
//! Both payload paths call [`register_filter`]: the Rust wrapper (with the
//! registration of its `Minifilter`) and the C path (`payload-c`, with the
//! registration a C minifilter passes to its interposed `FltRegisterFilter`).
//! What a payload hands to `FltMgr` is decided here, once: the filter's own
//! operation callbacks, context registrations, instance callbacks and flags,
//! with `Size` and `Version` for Windows 7 and `FilterUnloadCallback` routed
//! to the payload's teardown.
//!
//! Owns no state and makes no kernel call itself: the caller's `register`
//! stores the registration where it outlives the filter and calls the real
//! `FltRegisterFilter` (the Rust wrapper through kernel-sys; the C path
//! through its renamed import, since its image's `__imp_FltRegisterFilter`
//! is the interposer). `PASSIVE_LEVEL`.
use kernel_sys::flt::{FLT_REGISTRATION, FLT_REGISTRATION_VERSION_0202, PFLT_FILTER_UNLOAD_CALLBACK};
use shared_abi::NtStatus;

/// The registration a payload registers: `filter`'s content, Windows 7
/// layout (0x0202), `FilterUnloadCallback` = `unload`, and the operation
/// callbacks behind the handover's trampolines (`crate::handover`), so the
/// loader's owner word decides which generation processes an operation.
#[must_use]
pub fn payload_registration(filter: &FLT_REGISTRATION, unload: PFLT_FILTER_UNLOAD_CALLBACK) -> FLT_REGISTRATION {
    let mut r = *filter;
    if let Some(ops) = kernel_sys::wrap::opwrap::wrap(filter, &crate::handover::GATE) {
        r.OperationRegistration = ops;
    }
    r.Size = u16::try_from(core::mem::size_of::<FLT_REGISTRATION>()).unwrap_or(u16::MAX);
    r.Version = FLT_REGISTRATION_VERSION_0202;
    r.FilterUnloadCallback = unload;
    r
}

/// Registers a payload's filter: [`payload_registration`] of `filter` and
/// `unload`, handed to `register` (which keeps it alive for as long as the
/// filter is registered and calls the real `FltRegisterFilter`).
pub fn register_filter<H>(
    filter: &FLT_REGISTRATION,
    unload: PFLT_FILTER_UNLOAD_CALLBACK,
    register: impl FnOnce(&FLT_REGISTRATION) -> Result<H, NtStatus>,
) -> Result<H, NtStatus> {
    register(&payload_registration(filter, unload))
}
