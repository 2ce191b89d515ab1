//! `fltmgr.sys` for the test world: a Filter Manager with the Windows 7
//! semantics the payloads depend on, which Wine 8 loads instead of its stub
//! (whose `FltRegisterFilter` succeeds and never calls anything back).
//!
//! It is test infrastructure, never product: `cargo xtask build` puts it in
//! `target/package/test-fltmgr/`, and the Wine harness installs it as
//! `system32\drivers\fltmgr.sys` (with the `fltmgr.sys=native` override)
//! and starts it as the `FltMgr` service before the loader, in the loader's
//! load-order group, so every driver of the scenario shares this one module.
//!
//! Reading order:
//! - `exports.rs`: the `Flt*` routines filters import (thin, pointer checks);
//! - `register.rs` (and `registration.rs`): `FltRegisterFilter` and the
//!   `DriverUnload` hook it installs (a `sc stop` becomes a mandatory unload);
//! - `start.rs`: `FltStartFiltering` (instance setup);
//! - `unload.rs`: `FltUnregisterFilter`, instance teardown,
//!   `FilterUnloadCallback`, the hook;
//! - `jobs.rs`, `race.rs`: the unload and detach requests, and the armed
//!   Windows 7 race;
//! - `ops.rs`: an operation through the instances of a volume, pre
//!   callbacks down by altitude, post callbacks back up;
//! - `inject.rs`: injector threads and files kept open;
//! - `contexts.rs`, `names.rs`: stream contexts and file names;
//! - `verifier.rs`: the counts and the violations;
//! - `state.rs`: the one state, its handles and its events;
//! - `control.rs`, `driver.rs`: the control device and `DriverEntry`.
//!
//! Waits are kernel events; the state is one spin lock, never held across
//! a call into a filter or a wait. No work items, rundown protection or push
//! locks (crashing stubs in Wine 8). `docs/architecture.md` lists what it
//! implements and what it does not.
#![no_std]

mod contexts;
mod control;
mod driver;
mod exports;
mod inject;
mod jobs;
mod names;
mod ops;
mod pod;
mod race;
mod register;
mod registration;
mod start;
mod state;
mod unload;
mod verifier;

/// Writes one line to the debugger log, prefixed `fltsim: `.
macro_rules! log {
    ($($arg:tt)*) => {
        kernel_sys::wrap::log::print("fltsim: ", format_args!($($arg)*))
    };
}
pub(crate) use log;

kernel_sys::driver_entry!(driver::driver_main);
