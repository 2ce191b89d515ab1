//! Drop-in wrapper that turns a legacy minifilter into a serialized payload.
//!
//! A legacy minifilter keeps its `FLT_REGISTRATION` content (operation
//! callbacks, context registrations, instance setup/teardown) unchanged and
//! moves two things: the global set-up its `DriverEntry` did goes into
//! [`Minifilter::setup`], and the clean-up its `FilterUnloadCallback` did goes
//! into [`Minifilter::cleanup`]. The wrapper owns the rest:
//! - `DriverEntry`, which only records the driver object (nothing to race);
//! - the exported registration entry the loader calls after `ZwLoadDriver`
//!   returned, which runs `setup`, `FltRegisterFilter` (Windows 7 layout
//!   0x0202; 0x0200 on XP-era kernels) and `FltStartFiltering`;
//! - one idempotent teardown behind `FilterUnloadCallback`, `DriverUnload` and
//!   the loader's teardown entry, which first waits on the loader's
//!   "registration settled" event.
//!
//! The serialization itself is `loader_protocol::payload`, the model-checked
//! code; this crate only plugs kernel calls into it.
#![no_std]
// The only `unsafe` of this crate is in its export macros, which turn the
// raw pointers the kernel and the loader pass into checked views.
#![deny(unsafe_code)]

mod entry;
mod fltreg;
mod globals;
mod handover;
mod platform;
mod state;

pub use entry::{
    driver_entry, driver_unload, filter_unload_callback, quiesce_entry, register_entry, shutdown_entry, teardown_entry,
};
pub use fltreg::{payload_registration, register_filter};
pub use kernel_sys as sys;
pub use platform::{log, publish};
pub use shared_abi;
pub use state::{export_state_entry, import_state_entry, StateOps};

use kernel_sys::flt::{FLT_REGISTRATION, FLT_REGISTRATION_VERSION_0202};
use kernel_sys::wrap::pool::PoolCounter;
use shared_abi::payload::{PayloadDescriptor, PayloadReport, PAYLOAD_MAGIC};
use shared_abi::{NtStatus, POOL_TAG_PAYLOAD};

/// Every allocation the payload makes, counted under its tag.
pub static PAYLOAD_POOL: PoolCounter = PoolCounter::new(POOL_TAG_PAYLOAD);

/// A minifilter plugged into the wrapper. Lives in a `static`.
pub struct Minifilter {
    /// The filter's existing registration. `Size`, `Version` and
    /// `FilterUnloadCallback` are set by the wrapper.
    pub registration: FLT_REGISTRATION,
    /// Global set-up formerly done in `DriverEntry` (queues, tables). Runs in
    /// the registration entry, before `FltRegisterFilter`. `PASSIVE_LEVEL`.
    pub setup: fn() -> Result<(), NtStatus>,
    /// Global clean-up formerly done in `FilterUnloadCallback`. Runs once,
    /// after `FltUnregisterFilter` returned, and only if `setup` succeeded.
    pub cleanup: fn(),
    /// Fills the counters the loader shows in `loaderctl status`.
    pub report: fn(&mut PayloadReport),
    /// Called on system shutdown while the file systems are still up.
    pub shutdown: fn(),
    /// The filter's state, carried across an upgrade or rollback (ABI 1.2);
    /// `None` if it keeps none worth carrying. Export it with
    /// [`with_state`] on the descriptor.
    pub state: Option<StateOps>,
    /// Takes part in the exactly-once handover (ABI 1.2): every
    /// pre-operation callback reads the loader's owner word. `false` makes
    /// the filter process everything, as a payload built before 1.2 does
    /// (the descriptor must then have no quiesce entry either).
    pub handover: bool,
}

/// The descriptor a payload exports under `LoaderPayloadDescriptor`.
#[must_use]
pub const fn descriptor(name: &str, payload_version: u32) -> PayloadDescriptor {
    PayloadDescriptor {
        size: shared_abi::size_u32::<PayloadDescriptor>(),
        magic: PAYLOAD_MAGIC,
        abi_major: shared_abi::ABI_MAJOR,
        abi_minor: shared_abi::ABI_MINOR,
        payload_version,
        // Works with a 1.1 loader too (without the handover services).
        min_services_size: shared_abi::payload::SERVICES_SIZE_1_1,
        flags: 0,
        name: shared_abi::payload::utf16_name(name),
        teardown: Some(entry::teardown_entry as unsafe extern "system" fn() -> i32),
        shutdown: Some(entry::shutdown_entry as unsafe extern "system" fn()),
        // Every payload of the wrapper takes part in the handover: its
        // operation callbacks sit behind the trampolines.
        quiesce: Some(entry::quiesce_entry as unsafe extern "system" fn() -> i32),
        export_state: None,
        import_state: None,
    }
}

/// `descriptor` with the state entries: the loader carries the filter's
/// [`Minifilter::state`] across upgrades and rollbacks.
#[must_use]
pub const fn with_state(mut d: PayloadDescriptor) -> PayloadDescriptor {
    d.export_state = Some(state::export_state_entry);
    d.import_state = Some(state::import_state_entry);
    d
}

/// Completes a filter's registration for the wrapper: sets the size and
/// version for Windows 7 and routes `FilterUnloadCallback` to the wrapper.
#[must_use]
pub const fn wrap_registration(mut r: FLT_REGISTRATION) -> FLT_REGISTRATION {
    const SIZE: usize = core::mem::size_of::<FLT_REGISTRATION>();
    const _: () = assert!(SIZE <= u16::MAX as usize);
    #[allow(clippy::cast_possible_truncation)] // asserted just above
    {
        r.Size = SIZE as u16;
    }
    r.Version = FLT_REGISTRATION_VERSION_0202;
    r.FilterUnloadCallback = Some(entry::filter_unload_callback as unsafe extern "system" fn(u32) -> i32);
    r
}

/// Exports `DriverEntry` for the filter in `$filter` (a `static Minifilter`).
#[macro_export]
macro_rules! export_driver_entry {
    ($filter:path) => {
        /// Called by the I/O manager when the loader's `ZwLoadDriver` loads
        /// this image, on the loading thread, at `PASSIVE_LEVEL`.
        ///
        /// # Safety
        /// Called only by the I/O manager, with its driver object.
        #[no_mangle]
        pub unsafe extern "system" fn DriverEntry(
            driver: *mut $crate::sys::DRIVER_OBJECT,
            registry_path: *const $crate::sys::UNICODE_STRING,
        ) -> i32 {
            // SAFETY: the two arguments the I/O manager passed to DriverEntry.
            match unsafe { $crate::sys::wrap::driver::enter(driver, registry_path) } {
                Ok((driver, _)) => $crate::driver_entry(&$filter, driver),
                Err(status) => status.0,
            }
        }
    };
}

/// Exports the registration entry under `LoaderPayloadRegister`.
#[macro_export]
macro_rules! export_register_entry {
    () => {
        /// Called by the loader after `ZwLoadDriver` returned, on a thread of
        /// the loader in the System process, at `PASSIVE_LEVEL`.
        ///
        /// # Safety
        /// Called only by the loader, with its services table.
        #[no_mangle]
        pub unsafe extern "system" fn LoaderPayloadRegister(
            services: *const $crate::shared_abi::payload::LoaderServices,
        ) -> i32 {
            // SAFETY: the loader passes its services table, valid while this
            // image is loaded; `from_raw` checks its size and ABI.
            match unsafe { $crate::sys::wrap::services::Services::from_raw(services) } {
                Ok(services) => $crate::register_entry(services),
                Err(status) => status.0,
            }
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
