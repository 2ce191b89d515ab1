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
/// Handover (ABI 1.2): stop filtering for good (`FltUnregisterFilter`, which
/// waits for the filter's callbacks in flight and its owed post callbacks)
/// but keep the state for a final export; the later teardown skips the
/// unregistration. `PASSIVE_LEVEL`; may block like a teardown.
pub type PayloadQuiesceFn = unsafe extern "system" fn() -> i32;
/// Handover (ABI 1.2): writes a [`StateBlobHeader`] and the payload's state
/// into `buffer` (at most `capacity` bytes) and the byte count into
/// `*written`. `STATUS_BUFFER_TOO_SMALL` with the needed count in `*written`
/// if it does not fit. `flags` is [`STATE_FINAL`] for the export after
/// [`PayloadQuiesceFn`], 0 for the snapshot before the switch.
/// `PASSIVE_LEVEL`.
pub type PayloadExportStateFn =
    unsafe extern "system" fn(buffer: *mut u8, capacity: usize, written: *mut usize, flags: u32) -> i32;
/// Handover (ABI 1.2): accepts the other generation's state blob (header
/// included) or refuses it (`STATUS_REVISION_MISMATCH` for a schema it does
/// not know). With [`STATE_FINAL`] the blob is the old generation's final
/// state; the payload merges what happened after the snapshot it imported.
/// `PASSIVE_LEVEL`.
pub type PayloadImportStateFn = unsafe extern "system" fn(blob: *const u8, len: usize, flags: u32) -> i32;
/// `flags` of the export/import entries: the final state, after quiesce.
pub const STATE_FINAL: u32 = 1;
/// `StateBlobHeader::magic`: `'SLST'`.
pub const STATE_MAGIC: u32 = u32::from_le_bytes(*b"SLST");
/// The largest state blob the loader accepts (header included).
pub const MAX_STATE_BYTES: usize = 1 << 20;

/// The header of a state blob (ABI 1.2). The payload's own bytes follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateBlobHeader {
    /// `size_of::<StateBlobHeader>()` (24).
    pub size: u32,
    /// [`STATE_MAGIC`].
    pub magic: u32,
    /// The payload's own schema version of the bytes that follow.
    pub schema: u32,
    /// `payload_version` of the generation that exported it.
    pub payload_version: u32,
    /// Bytes that follow the header.
    pub data_len: u32,
    /// [`STATE_FINAL`] or 0, as exported.
    pub flags: u32,
}

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
    /// ABI 1.2: the handover's quiesce entry. A payload with it reads the
    /// loader's owner word in every pre-operation callback; one without it
    /// (or older) upgrades without the exactly-once handover.
    pub quiesce: Option<PayloadQuiesceFn>,
    /// ABI 1.2, optional: state export for an upgrade or rollback.
    pub export_state: Option<PayloadExportStateFn>,
    /// ABI 1.2, optional: state import for an upgrade or rollback.
    pub import_state: Option<PayloadImportStateFn>,
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
    /// ABI 1.2: the loader's owner word and in-flight counts
    /// (`loader_protocol::handover`), accessed only with sequentially
    /// consistent atomics. Valid for as long as the image is loaded.
    pub owner: *const OwnerBlock,
    /// ABI 1.2: this payload's generation (nonzero, low 16 bits).
    pub generation: u32,
    /// Reserved, zero.
    pub reserved2: u32,
    /// ABI 1.2: records operation `op` (its callback data address) for the
    /// new generation; 1 if it was recorded or no longer needs to be (the
    /// handover's steady word is published), 0 if there is no room yet.
    /// Any IRQL `<= DISPATCH_LEVEL`.
    pub mark: unsafe extern "system" fn(context: *mut c_void, op: usize) -> u32,
    /// ABI 1.2: removes the mark of `op`; 1 if it was there. Any IRQL
    /// `<= DISPATCH_LEVEL`.
    pub take_mark: unsafe extern "system" fn(context: *mut c_void, op: usize) -> u32,
}

/// The loader's handover words (ABI 1.2): every pre-operation callback of a
/// payload loads `word` once; the generation that owns the operations also
/// counts the ones it processes in flight in `in_flight[slot]` (up before
/// it loads `word` again, down in the post callback).
#[repr(C)]
#[derive(Debug, Default)]
pub struct OwnerBlock {
    /// `loader_protocol::handover::OwnerWord`, encoded.
    pub word: u32,
    /// Per slot (A, B): operations its payload processes in flight.
    pub in_flight: [u32; 2],
}

/// `LoaderServices::size` of a 1.0/1.1 loader (no handover services):
/// 48 bytes on x64, 32 on x86.
#[cfg(target_pointer_width = "64")]
pub const SERVICES_SIZE_1_1: u32 = 48;
/// `LoaderServices::size` of a 1.0/1.1 loader (no handover services):
/// 48 bytes on x64, 32 on x86.
#[cfg(target_pointer_width = "32")]
pub const SERVICES_SIZE_1_1: u32 = 32;
/// `PayloadDescriptor::size` of a 1.0/1.1 payload (no handover entries):
/// 104 bytes on x64, 96 on x86.
#[cfg(target_pointer_width = "64")]
pub const DESCRIPTOR_SIZE_1_1: u32 = 104;
/// `PayloadDescriptor::size` of a 1.0/1.1 payload (no handover entries):
/// 104 bytes on x64, 96 on x86.
#[cfg(target_pointer_width = "32")]
pub const DESCRIPTOR_SIZE_1_1: u32 = 96;

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

// The layouts per architecture: x64 (8-byte pointers) and x86 (4-byte
// pointers; `u64` is 8-aligned there as well, as MSVC lays it out).
#[cfg(target_pointer_width = "64")]
mod layout_x64 {
    use super::{
        const_assert_eq, offset_of, size_of, LoaderServices, PayloadDescriptor, DESCRIPTOR_SIZE_1_1, SERVICES_SIZE_1_1,
    };
    const_assert_eq!(size_of::<PayloadDescriptor>(), 128);
    const_assert_eq!(offset_of!(PayloadDescriptor, name), 24);
    const_assert_eq!(offset_of!(PayloadDescriptor, teardown), 88);
    const_assert_eq!(offset_of!(PayloadDescriptor, shutdown), 96);
    const_assert_eq!(offset_of!(PayloadDescriptor, quiesce), DESCRIPTOR_SIZE_1_1 as usize);
    const_assert_eq!(offset_of!(PayloadDescriptor, export_state), 112);
    const_assert_eq!(offset_of!(PayloadDescriptor, import_state), 120);
    const_assert_eq!(size_of::<LoaderServices>(), 80);
    const_assert_eq!(offset_of!(LoaderServices, context), 16);
    const_assert_eq!(offset_of!(LoaderServices, report), 40);
    const_assert_eq!(offset_of!(LoaderServices, owner), SERVICES_SIZE_1_1 as usize);
    const_assert_eq!(offset_of!(LoaderServices, mark), 64);
    const_assert_eq!(offset_of!(LoaderServices, take_mark), 72);
}
#[cfg(target_pointer_width = "32")]
mod layout_x86 {
    use super::{
        const_assert_eq, offset_of, size_of, LoaderServices, PayloadDescriptor, DESCRIPTOR_SIZE_1_1, SERVICES_SIZE_1_1,
    };
    const_assert_eq!(size_of::<PayloadDescriptor>(), 108);
    const_assert_eq!(offset_of!(PayloadDescriptor, name), 24);
    const_assert_eq!(offset_of!(PayloadDescriptor, teardown), 88);
    const_assert_eq!(offset_of!(PayloadDescriptor, shutdown), 92);
    const_assert_eq!(offset_of!(PayloadDescriptor, quiesce), DESCRIPTOR_SIZE_1_1 as usize);
    const_assert_eq!(offset_of!(PayloadDescriptor, export_state), 100);
    const_assert_eq!(offset_of!(PayloadDescriptor, import_state), 104);
    const_assert_eq!(size_of::<LoaderServices>(), 52);
    const_assert_eq!(offset_of!(LoaderServices, context), 16);
    const_assert_eq!(offset_of!(LoaderServices, report), 28);
    const_assert_eq!(offset_of!(LoaderServices, owner), SERVICES_SIZE_1_1 as usize);
    const_assert_eq!(offset_of!(LoaderServices, mark), 44);
    const_assert_eq!(offset_of!(LoaderServices, take_mark), 48);
}
const_assert_eq!(size_of::<OwnerBlock>(), 12);
const_assert_eq!(size_of::<StateBlobHeader>(), 24);
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
