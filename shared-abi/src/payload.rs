//! The contract between the loader driver and a payload driver.
//!
//! A payload image exports two symbols:
//! - [`DESCRIPTOR_EXPORT`], a [`PayloadDescriptor`] the loader reads and checks
//!   (magic, ABI version, sizes, and that every function pointer lies inside
//!   the image) *before* it runs any payload code;
//! - [`REGISTER_EXPORT`], the registration entry ([`PayloadRegisterFn`]),
//!   which the loader calls once `ZwLoadDriver` has returned.
//!
//! The loader passes a [`LoaderServices`] table to the registration entry. Its
//! `wait_registration_settled` is the serialization wait: the payload's
//! teardown calls it before touching anything registration built.
use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

/// Export name of the registration entry.
pub const REGISTER_EXPORT: &str = "LoaderPayloadRegister";
/// Export name of the payload descriptor (a data export).
pub const DESCRIPTOR_EXPORT: &str = "LoaderPayloadDescriptor";
/// `PayloadDescriptor::magic`: `'SLPD'`.
pub const PAYLOAD_MAGIC: u32 = u32::from_le_bytes(*b"SLPD");
/// Length of the UTF-16 name fields, NUL padding included.
pub const NAME_CHARS: usize = 32;

/// The registration entry. Called by the loader at `PASSIVE_LEVEL` in a system
/// thread, after `DriverEntry` returned success, at most once per load.
pub type PayloadRegisterFn = unsafe extern "system" fn(services: *const LoaderServices) -> i32;
/// Asks the payload to tear down (unregister, free). Idempotent; may block.
pub type PayloadTeardownFn = unsafe extern "system" fn() -> i32;
/// System shutdown is under way; flush what must survive. Must not block long.
pub type PayloadShutdownFn = unsafe extern "system" fn();

/// Exported by every payload under [`DESCRIPTOR_EXPORT`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PayloadDescriptor {
    /// `size_of::<PayloadDescriptor>()` as the payload was built.
    pub size: u32,
    /// [`PAYLOAD_MAGIC`].
    pub magic: u32,
    /// [`crate::ABI_MAJOR`] the payload was built against.
    pub abi_major: u16,
    /// [`crate::ABI_MINOR`] the payload was built against.
    pub abi_minor: u16,
    /// The filter's own version, shown by `loaderctl status` (1, 2, ...).
    pub payload_version: u32,
    /// Smallest `LoaderServices::size` the payload can work with.
    pub min_services_size: u32,
    /// Reserved, zero.
    pub flags: u32,
    /// Display name, UTF-16, NUL padded.
    pub name: [u16; NAME_CHARS],
    /// Teardown entry, see [`PayloadTeardownFn`].
    pub teardown: Option<PayloadTeardownFn>,
    /// Shutdown hook, see [`PayloadShutdownFn`].
    pub shutdown: Option<PayloadShutdownFn>,
}

/// Services the loader lends a payload for as long as its image is loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LoaderServices {
    /// `size_of::<LoaderServices>()` as the loader was built.
    pub size: u32,
    /// Loader's [`crate::ABI_MAJOR`].
    pub abi_major: u16,
    /// Loader's [`crate::ABI_MINOR`].
    pub abi_minor: u16,
    /// The slot the payload was loaded into (0 = A, 1 = B).
    pub slot: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Opaque; passed back to every service.
    pub context: *mut c_void,
    /// Blocks until the loader has settled this payload's registration call
    /// (it returned and the loader recorded the result). `PASSIVE_LEVEL` only.
    pub wait_registration_settled: unsafe extern "system" fn(context: *mut c_void) -> i32,
    /// Writes one line to the loader's log. `text` is UTF-8, `len` bytes.
    /// `<= DISPATCH_LEVEL`.
    pub log: unsafe extern "system" fn(context: *mut c_void, level: u32, text: *const u8, len: usize),
    /// Publishes the payload's current counters; the loader copies them.
    /// `PASSIVE_LEVEL` only.
    pub report: unsafe extern "system" fn(context: *mut c_void, report: *const PayloadReport),
}

/// Log levels for [`LoaderServices::log`].
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LogLevel(pub u32);
impl LogLevel {
    pub const ERROR: LogLevel = LogLevel(1);
    pub const WARN: LogLevel = LogLevel(2);
    pub const INFO: LogLevel = LogLevel(3);
}

/// What a payload last told the loader about itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayloadReport {
    /// `size_of::<PayloadReport>()`.
    pub size: u32,
    /// [`PayloadPhase`] value.
    pub phase: u32,
    /// Filter instances attached.
    pub instances: u32,
    /// Open stream/file contexts (what keeps an instance draining).
    pub open_contexts: u32,
    /// Creates seen.
    pub creates: u64,
    /// Reads seen.
    pub reads: u64,
    /// Writes seen.
    pub writes: u64,
    /// Allocations made with the payload's pool tag not yet freed.
    pub pool_outstanding: i64,
}

/// The payload's own phase, as it reports it.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PayloadPhase(pub u32);
impl PayloadPhase {
    pub const LOADED: PayloadPhase = PayloadPhase(0);
    pub const REGISTERING: PayloadPhase = PayloadPhase(1);
    pub const FILTERING: PayloadPhase = PayloadPhase(2);
    pub const TEARING_DOWN: PayloadPhase = PayloadPhase(3);
    pub const TORN_DOWN: PayloadPhase = PayloadPhase(4);

    /// Lower-case name for tables.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PayloadPhase::LOADED => "loaded",
            PayloadPhase::REGISTERING => "registering",
            PayloadPhase::FILTERING => "filtering",
            PayloadPhase::TEARING_DOWN => "tearing-down",
            PayloadPhase::TORN_DOWN => "torn-down",
            _ => "unknown",
        }
    }
}

const_assert_eq!(size_of::<PayloadDescriptor>(), 104);
const_assert_eq!(offset_of!(PayloadDescriptor, name), 24);
const_assert_eq!(offset_of!(PayloadDescriptor, teardown), 88);
const_assert_eq!(offset_of!(PayloadDescriptor, shutdown), 96);
const_assert_eq!(size_of::<LoaderServices>(), 48);
const_assert_eq!(offset_of!(LoaderServices, context), 16);
const_assert_eq!(offset_of!(LoaderServices, report), 40);
const_assert_eq!(size_of::<PayloadReport>(), 48);
const_assert_eq!(offset_of!(PayloadReport, creates), 16);

/// Copies `s` into a NUL-padded UTF-16 array, truncating to fit.
#[must_use]
pub const fn utf16_name(s: &str) -> [u16; NAME_CHARS] {
    let bytes = s.as_bytes();
    let mut out = [0u16; NAME_CHARS];
    let mut i = 0;
    // ASCII only: names are service and product names.
    while i < bytes.len() && i < NAME_CHARS - 1 {
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}
