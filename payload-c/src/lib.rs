//! `serialpayload.lib`: makes an unchanged C minifilter a serialized payload
//! of the loader, by relinking it.
//!
//! A WDK-style C minifilter (its `DriverEntry` calls `FltRegisterFilter` and
//! `FltStartFiltering`, its `FilterUnloadCallback` calls
//! `FltUnregisterFilter`) is built with `serialpayload.h` force-included
//! (it renames the filter's `DriverEntry` to `SerialPayloadFilterEntry` and
//! defines the payload descriptor) and linked with this library ahead of
//! `fltMgr.lib`. The library then provides:
//! - the image's `DriverEntry` (`entry.rs`): records the driver object and
//!   the registry path, nothing else, and publishes its chained
//!   `DriverUnload` last;
//! - the registration entry the loader calls once `ZwLoadDriver` returned,
//!   which runs the filter's own `DriverEntry`;
//! - interposers for the filter's `FltRegisterFilter`, `FltStartFiltering`
//!   and `FltUnregisterFilter` (`ffi.rs` defines `__imp_X` and `X` for each;
//!   `glue.rs` decides): the registration goes through
//!   `payload_driver::register_filter` with the library's
//!   `FilterUnloadCallback` in place of the filter's, and reaches `fltmgr.sys`
//!   through imports renamed in `serialpayload_imports.def`;
//! - one teardown behind that `FilterUnloadCallback`, the chained
//!   `DriverUnload` and the loader's teardown entry: it waits for the
//!   loader's "registration settled", then runs the filter's own
//!   `FilterUnloadCallback` (mandatory), which unregisters the filter.
//!
//! The serialization rules are `loader_protocol::payload`, the model-checked
//! code the Rust wrapper runs too (`platform.rs` plugs this image's kernel
//! calls into it); this crate is glue. Everything else the filter imports
//! binds to the real `ntoskrnl.exe`, `hal.dll` and `fltmgr.sys` exports.
#![no_std]
// The only `unsafe` of this crate is in `ffi.rs`: the C symbols, the
// filter's own routines, and the raw pointers it passes.
#![deny(unsafe_code)]

mod entry;
#[allow(unsafe_code)]
mod ffi;
mod glue;
mod platform;

/// Writes one line to the loader's log (or the debugger's, before the
/// registration and after the teardown). `<= DISPATCH_LEVEL`.
fn say(args: core::fmt::Arguments<'_>) {
    platform::log(args);
}
