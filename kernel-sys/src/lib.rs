//! Minimal hand-written Windows kernel bindings for x64 Windows 7 SP1, and
//! the safe layer the drivers are written against.
//!
//! This crate is the one place for raw FFI: `extern` blocks and `#[repr(C)]`
//! kernel structures with their offsets asserted at compile time. It binds
//! only what the loader and payload drivers use, and only routines that
//! ntoskrnl.exe / fltmgr.sys export on Windows 7 (the image checks in
//! `tests/images.rs` hold every import to `tests/win7-imports.txt`).
//!
//! Why not `wdk-sys`: it refuses to build on non-Windows hosts and has no
//! Filter Manager bindings (see `docs/dependencies.md`).
//!
//! The structs compile on any host so their layouts are checked by plain
//! `cargo test`; the extern blocks exist only for Windows targets.
#![no_std]
#![allow(non_snake_case, non_camel_case_types, non_upper_case_globals, clippy::upper_case_acronyms)]

pub mod errlog;
pub mod flt;
pub mod types;

#[cfg(windows)]
mod imports;
#[cfg(windows)]
pub use imports::*;
#[cfg(all(windows, feature = "runtime"))]
pub mod runtime;
#[cfg(windows)]
pub mod wrap;

pub use types::*;

/// `STATUS_INVALID_PARAMETER`, for wrappers that fail before calling the kernel.
pub const STATUS_INVALID_PARAMETER: i32 = 0xC000_000Du32.cast_signed();
