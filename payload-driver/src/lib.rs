//! Drop-in wrapper that turns a legacy minifilter into a serialized payload.
//!
//! A legacy minifilter keeps its `FLT_REGISTRATION` content (operation
//! callbacks, context registrations, instance setup/teardown) unchanged and
//! moves two things: the global set-up its DriverEntry did goes into
//! [`Minifilter::setup`], and the clean-up its FilterUnloadCallback did goes
//! into [`Minifilter::cleanup`]. The wrapper owns the rest:
//! - `DriverEntry`, which only records the driver object (nothing to race);
//! - the exported registration entry the loader calls after `ZwLoadDriver`
//!   returned, which runs `setup`, `FltRegisterFilter` (Windows 7 layout
//!   0x0202; 0x0200 on XP-era kernels) and `FltStartFiltering`;
//! - one idempotent teardown behind FilterUnloadCallback, DriverUnload and
//!   the loader's teardown entry, which first waits on the loader's
//!   "registration settled" event.
//!
//! The serialization itself is `loader_protocol::payload`, the model-checked
//! code; this crate only plugs kernel calls into it.
#![no_std]

mod entry;
mod filter;

pub use entry::{driver_entry, driver_unload, register_entry, shutdown_entry, teardown_entry, PAYLOAD_POOL};
pub use filter::{log, publish};
pub use kernel_sys as sys;
pub use shared_abi;

use kernel_sys::flt::{FLT_REGISTRATION, FLT_REGISTRATION_VERSION_0202};
use shared_abi::payload::{PayloadDescriptor, PayloadReport, PAYLOAD_MAGIC};
use shared_abi::NtStatus;

/// A minifilter plugged into the wrapper. Lives in a `static`.
pub struct Minifilter {
    /// The filter's existing registration. `Size`, `Version` and
    /// `FilterUnloadCallback` are set by the wrapper.
    pub registration: FLT_REGISTRATION,
    /// Global set-up formerly done in DriverEntry (queues, tables). Runs in
    /// the registration entry, before `FltRegisterFilter`. `PASSIVE_LEVEL`.
    pub setup: fn() -> Result<(), NtStatus>,
    /// Global clean-up formerly done in FilterUnloadCallback. Runs once,
    /// after `FltUnregisterFilter` returned, and only if `setup` succeeded.
    pub cleanup: fn(),
    /// Fills the counters the loader shows in `loaderctl status`.
    pub report: fn(&mut PayloadReport),
    /// Called on system shutdown while the file systems are still up.
    pub shutdown: fn(),
}

// SAFETY: the registration holds pointers to 'static callback tables and
// functions of this image; nothing in it is mutated after construction.
unsafe impl Sync for Minifilter {}

/// The descriptor a payload exports under `LoaderPayloadDescriptor`.
#[must_use]
pub const fn descriptor(name: &str, payload_version: u32) -> PayloadDescriptor {
    PayloadDescriptor {
        size: core::mem::size_of::<PayloadDescriptor>() as u32,
        magic: PAYLOAD_MAGIC,
        abi_major: shared_abi::ABI_MAJOR,
        abi_minor: shared_abi::ABI_MINOR,
        payload_version,
        min_services_size: core::mem::size_of::<shared_abi::payload::LoaderServices>() as u32,
        flags: 0,
        name: shared_abi::payload::utf16_name(name),
        teardown: Some(entry::teardown_entry),
        shutdown: Some(entry::shutdown_entry),
    }
}

/// Completes a filter's registration for the wrapper: sets the size and
/// version for Windows 7 and routes FilterUnloadCallback to the wrapper.
#[must_use]
pub const fn wrap_registration(mut r: FLT_REGISTRATION) -> FLT_REGISTRATION {
    r.Size = core::mem::size_of::<FLT_REGISTRATION>() as u16;
    r.Version = FLT_REGISTRATION_VERSION_0202;
    r.FilterUnloadCallback = Some(entry::filter_unload_callback);
    r
}

/// Exports `DriverEntry` for the filter in `$filter` (a `static Minifilter`).
#[macro_export]
macro_rules! export_driver_entry {
    ($filter:path) => {
        /// Called by the I/O manager when the loader's `ZwLoadDriver` loads
        /// this image, on the loading thread, at `PASSIVE_LEVEL`.
        #[no_mangle]
        pub unsafe extern "system" fn DriverEntry(
            driver: *mut $crate::sys::DRIVER_OBJECT,
            registry_path: *const $crate::sys::UNICODE_STRING,
        ) -> i32 {
            // SAFETY: the I/O manager passes a valid driver object.
            unsafe { $crate::driver_entry(&$filter, driver, registry_path) }
        }
    };
}

/// Exports the registration entry under `LoaderPayloadRegister`.
#[macro_export]
macro_rules! export_register_entry {
    () => {
        /// Called by the loader after `ZwLoadDriver` returned, at `PASSIVE_LEVEL`.
        #[no_mangle]
        pub unsafe extern "system" fn LoaderPayloadRegister(
            services: *const $crate::shared_abi::payload::LoaderServices,
        ) -> i32 {
            // SAFETY: the loader passes its services table, valid while this image is loaded.
            unsafe { $crate::register_entry(services) }
        }
    };
}

/// Exports the descriptor under `LoaderPayloadDescriptor`.
#[macro_export]
macro_rules! export_descriptor {
    ($descriptor:expr) => {
        #[no_mangle]
        #[used]
        pub static LoaderPayloadDescriptor: $crate::shared_abi::payload::PayloadDescriptor = $descriptor;
    };
}
