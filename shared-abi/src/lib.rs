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
pub const ABI_MINOR: u16 = 2;

/// Pool tag for every allocation the loader makes (`'SLdr'`, little-endian).
pub const POOL_TAG_LOADER: u32 = u32::from_le_bytes(*b"SLdr");
/// Pool tag for every allocation the payload wrapper makes (`'SPay'`).
pub const POOL_TAG_PAYLOAD: u32 = u32::from_le_bytes(*b"SPay");

/// `size_of::<T>()` as the `u32` the ABI's size fields hold.
///
/// # Panics
/// Never at run time: every use is in a constant context or on an ABI
/// struct far below 4 GiB; a larger one fails to compile.
#[must_use]
pub const fn size_u32<T>() -> u32 {
    let n = core::mem::size_of::<T>();
    assert!(n <= u32::MAX as usize, "an ABI struct does not fit a u32 size field");
    #[allow(clippy::cast_possible_truncation)] // checked just above
    let n32 = n as u32;
    n32
}
