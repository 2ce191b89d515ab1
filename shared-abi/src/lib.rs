//! The contract between the loader driver, the payload drivers and user mode.
//!
//! Only ABI lives here: `#[repr(C)]` structs, `extern "system"` function
//! pointer types, and constants as newtypes. Every struct starts with a
//! `size` field (and, where a party can be built separately, a version) so a
//! reader can tell an older or newer writer apart. Layouts are asserted at
//! compile time. The rules for changing anything here are in `docs/abi.md`.
//!
//! This crate must never contain logic beyond naming constants and the
//! [`Slot`] word conversions: it is linked into kernel images and the
//! user-mode tool alike.
#![no_std]
#![forbid(unsafe_code)]

pub mod control;
pub mod payload;
pub mod slot;
pub mod status;

pub use slot::{PerSlot, Slot};
pub use status::NtStatus;

/// Major ABI version. A reader refuses any other major version.
pub const ABI_MAJOR: u16 = 1;
/// Minor ABI version. Minor additions append fields and stay compatible.
pub const ABI_MINOR: u16 = 1;

/// Pool tag for every allocation the loader makes (`'SLdr'`, little-endian).
pub const POOL_TAG_LOADER: u32 = u32::from_le_bytes(*b"SLdr");
/// Pool tag for every allocation the payload wrapper makes (`'SPay'`).
pub const POOL_TAG_PAYLOAD: u32 = u32::from_le_bytes(*b"SPay");
