//! The payload's entry points: what the I/O manager, `FltMgr` and the loader
//! call. Each one hands straight over to `loader_protocol::payload`.
//!
//! The raw pointers the kernel and the loader pass are checked in the
//! export macros (`lib.rs`); everything here is safe code.
use crate::globals::{set_spec, DRIVER};
use crate::platform::KernelPayload;
use crate::Minifilter;
use kernel_sys::wrap::driver::DriverObject;
use kernel_sys::wrap::process::{current_process_id, in_system_process};
use kernel_sys::wrap::services::Services;
use kernel_sys::DRIVER_OBJECT;
use loader_protocol::payload as protocol;
use shared_abi::NtStatus;

fn say(args: core::fmt::Arguments<'_>) {
    kernel_sys::wrap::log::print("payload: ", args);
}

/// `DriverEntry`. Does almost nothing, so an unload racing it (Windows 7) has
/// nothing half-built to tear down: it records the filter and driver object;
/// the protocol then prepares "teardown finished" and publishes
/// `DriverUnload` as the last act.
pub fn driver_entry(spec: &'static Minifilter, driver: DriverObject) -> i32 {
    set_spec(spec);
    DRIVER.with(|d| *d = Some(driver));
    protocol::driver_entry(&KernelPayload);
    say(format_args!("DriverEntry done (registration waits for the loader)"));
    NtStatus::SUCCESS.0
}

/// `DriverUnload`: called by the I/O manager on `ZwUnloadDriver` before
/// registration, or by `FltMgr` after `FilterUnloadCallback`. `PASSIVE_LEVEL`.
pub extern "system" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    let status = protocol::driver_unload(&KernelPayload);
    say(format_args!("DriverUnload: teardown {status}"));
}

/// The registration entry the loader calls (through `LoaderPayloadRegister`),
/// with its checked services table.
#[must_use]
pub fn register_entry(services: Services) -> i32 {
    say(format_args!(
        "registration in the System process: {} (pid {})",
        if in_system_process() { "yes" } else { "NO" },
        current_process_id()
    ));
    let status = protocol::register(&KernelPayload, services);
    say(format_args!("registration: {status}"));
    status.0
}

/// The teardown entry the loader calls (through the descriptor) on a thread
/// of the loader. Idempotent; may block while instances drain.
#[must_use]
pub extern "system" fn teardown_entry() -> i32 {
    let status = protocol::teardown(&KernelPayload);
    say(format_args!("teardown (asked by the loader): {status}"));
    status.0
}

/// The handover's quiesce entry (ABI 1.2), on the loader's retire worker
/// before its teardown call: unregisters the filter, keeps its state for
/// the final export. May block while instances drain.
#[must_use]
pub extern "system" fn quiesce_entry() -> i32 {
    let status = protocol::quiesce(&KernelPayload);
    say(format_args!("quiesce (asked by the loader): {status}"));
    status.0
}

/// The shutdown hook the loader calls on system shutdown. `PASSIVE_LEVEL`.
pub extern "system" fn shutdown_entry() {
    if let Some(spec) = crate::globals::spec() {
        (spec.shutdown)();
    }
}

/// `FilterUnloadCallback`: how `sc stop`, `fltmc unload` and `ZwUnloadDriver`
/// reach a registered filter. `PASSIVE_LEVEL`, `FltMgr`'s thread.
#[must_use]
pub extern "system" fn filter_unload_callback(flags: u32) -> i32 {
    let status = protocol::filter_unload(&KernelPayload, flags);
    say(format_args!("FilterUnloadCallback (flags {flags:#x}): {status}"));
    status.0
}
