//! The resident loader driver (`loader.sys`).
//!
//! It loads a payload minifilter with `ZwLoadDriver`, calls the payload's
//! exported registration entry once `DriverEntry` has returned, and lends it
//! the "registration settled" event its teardown waits on. Load,
//! registration, upgrade and unload are ordered by `loader_protocol`, the
//! model-checked code; this crate only plugs kernel calls into it, through
//! `kernel_sys`'s safe layer: it has no `unsafe` code of its own.
//!
//! Reading order: `driver.rs` (`DriverEntry`/unload) → `control.rs` (the
//! control device's requests) → `ops.rs` (operations on a system thread) →
//! `platform.rs` (the protocol's kernel primitives) → `services.rs` (what
//! the payload may call back).
#![no_std]
#![forbid(unsafe_code)]

mod control;
mod driver;
mod events;
mod ops;
mod platform;
mod services;

/// Writes one line to the kernel debugger log, prefixed `loader: `.
macro_rules! log {
    ($($arg:tt)*) => {
        kernel_sys::wrap::log::print("loader: ", format_args!($($arg)*))
    };
}
pub(crate) use log;
