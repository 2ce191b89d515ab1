//! Minimal hand-written Windows kernel bindings for x64 and x86 Windows,
//! from XP (x86) and XP x64 / Server 2003 (x64) up, and the safe layer the
//! drivers are written against.
//!
//! This crate is the one place for raw FFI: `extern` blocks and `#[repr(C)]`
//! kernel structures with their offsets asserted at compile time. It binds
//! only what the loader and payload drivers use, and only routines that
//! ntoskrnl.exe / hal.dll / fltmgr.sys export on those versions (the image
//! checks in `tests/images.rs` and `tests/images_x86.rs` hold every import
//! to `tests/kernel-imports.txt`).
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
