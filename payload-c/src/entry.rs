//! The payload's entry points, as the I/O manager, `FltMgr` and the loader
//! reach them: each one hands over to `loader_protocol::payload` (through
//! `platform.rs`) and to the filter's own routines (through `glue.rs`).
//!
//! `ffi.rs` checks the raw pointers and calls these; everything here is safe.
use crate::glue;
use crate::platform::{CPayload, DRIVER};
use crate::say;
use kernel_sys::wrap::driver::{DriverObject, RegistryPath};
use kernel_sys::wrap::process::{current_process_id, in_system_process};
use kernel_sys::wrap::services::Services;
use loader_protocol::payload as protocol;
use shared_abi::NtStatus;

/// `DriverEntry` of the image (the filter's own is renamed). Called by the
/// I/O manager on the loader's `ZwLoadDriver`, on the loading thread, at
/// `PASSIVE_LEVEL`. Builds nothing: records the driver object and a copy of
/// the registry path (the filter's `DriverEntry` gets them later), then the
/// protocol prepares "teardown finished" and publishes `DriverUnload` last.
pub fn driver_entry(driver: DriverObject, registry_path: &RegistryPath) -> i32 {
    glue::loaded(driver, registry_path);
    DRIVER.with(|d| *d = Some(driver));
    protocol::driver_entry(&CPayload);
    let (name, version) = crate::ffi::descriptor_name_and_version();
    say(format_args!("DriverEntry done for {name} v{version} (the filter's own DriverEntry waits for the loader)"));
    NtStatus::SUCCESS.0
}

/// The registration entry (`LoaderPayloadRegister`): the loader calls it
/// once `ZwLoadDriver` returned, on its operations thread in the System
/// process, at `PASSIVE_LEVEL`. Runs the filter's own `DriverEntry`.
pub fn register_entry(services: Services) -> i32 {
    say(format_args!(
        "registration in the System process: {} (pid {})",
        if in_system_process() { "yes" } else { "NO" },
        current_process_id()
    ));
    let status = protocol::register(&CPayload, services);
    say(format_args!("registration: {status}"));
    status.0
}

/// The teardown entry of the descriptor (`SerialPayloadTeardown`): the
/// loader calls it on one of its threads to retire the payload. Idempotent;
/// may block while the filter's instances drain.
pub fn teardown_entry() -> i32 {
    let status = protocol::teardown(&CPayload);
    say(format_args!("teardown (asked by the loader): {status}"));
    status.0
}

/// The `FilterUnloadCallback` the library registers in place of the
/// filter's: `FltMgr` calls it on its unload worker for `fltmc unload`
/// (refused: the loader manages the payload) and for `sc stop` /
/// `ZwUnloadDriver` (mandatory: the teardown, which first waits for
/// "registration settled", then runs the filter's own callback).
pub fn filter_unload(flags: u32) -> i32 {
    let status = protocol::filter_unload(&CPayload, flags);
    say(format_args!("FilterUnloadCallback (flags {flags:#x}): {status}"));
    status.0
}

/// The image's `DriverUnload`: the I/O manager calls it for an unload before
/// the registration, `FltMgr` (which saved it) after `FilterUnloadCallback`.
/// `PASSIVE_LEVEL`. The teardown first; then a `DriverUnload` the filter
/// set, if its `DriverEntry` had succeeded (chained, as `FltMgr` would).
pub fn driver_unload() {
    let status = protocol::driver_unload(&CPayload);
    say(format_args!("DriverUnload: teardown {status}"));
    glue::chain_driver_unload();
}
