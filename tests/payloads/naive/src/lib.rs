//! `NaiveFilter`: the seed's legacy minifilter, for the Windows 7 unload race
//! on real images (issue 10, scenario 1).
//!
//! Its logic (`state.rs`) builds a global state slowly and frees it in its
//! unload path, detecting — and recording in the registry, where the test
//! reads it — a teardown of state that was only half built.
//!
//! - Built alone (`naive.sys`, `image.rs`): `DriverEntry` calls
//!   `FltRegisterFilter` (the XP-era 0x0200 registration), then builds the
//!   state, then calls `FltStartFiltering`; its `FilterUnloadCallback` frees
//!   the state and unregisters. An unload that arrives between the two
//!   (Windows 7 delivers it while `DriverEntry` runs) tears down half-built
//!   state, and `DriverEntry` then starts filtering on an unregistered filter.
//! - With feature `payload` (`naive_payload.sys`, `payload.rs`): the same
//!   building and freeing as the wrapper's `setup` and `cleanup`, loaded by
//!   the loader, with the wrapper's `DriverEntry` and `FilterUnloadCallback`.
#![no_std]

mod state;

#[cfg(not(feature = "payload"))]
mod image;
#[cfg(feature = "payload")]
mod payload;

/// Writes one line to the debugger log.
macro_rules! log {
    ($($arg:tt)*) => {
        kernel_sys::wrap::log::print("naive-filter: ", format_args!($($arg)*))
    };
}
pub(crate) use log;
