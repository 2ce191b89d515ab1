//! The System event log, through the I/O manager's error-log entries
//! (`IoAllocateErrorLogEntry` + `IoWriteErrorLogEntry`).
//!
//! Owns the driver object the entries are filed under (set by
//! [`open`] in `DriverEntry`, cleared by [`close`] in `DriverUnload`) and
//! the two kernel calls. The entry itself is packed on the stack by
//! [`crate::errlog::pack`] (host-tested) and copied into the I/O manager's
//! buffer in one piece; once written, the I/O manager frees it.
//!
//! Must never: be called above `DISPATCH_LEVEL` (both routines are
//! documented `<= DISPATCH_LEVEL`; [`write`] checks and refuses), treat a
//! NULL allocation as an error of the driver (Microsoft: a driver must go
//! on whether or not it could log; Wine 8's `IoAllocateErrorLogEntry`
//! always returns NULL, and its `IoWriteErrorLogEntry` and
//! `IoFreeErrorLogEntry` are stubs that end the process if called, so
//! nothing but a successful allocation ever reaches them), or use the
//! driver object after [`close`].
use crate::errlog::{pack, ERROR_LOG_MAXIMUM_SIZE, MAX_STRING_UNITS, STRING_OFFSET};
use crate::imports::{IoAllocateErrorLogEntry, IoWriteErrorLogEntry};
use crate::types::{DRIVER_OBJECT, IO_ERROR_LOG_PACKET};
use crate::wrap::driver::DriverObject;
use crate::wrap::process::current_irql;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use shared_abi::NtStatus;

/// `DISPATCH_LEVEL`.
const DISPATCH_LEVEL: u8 = 2;

static SOURCE: AtomicPtr<DRIVER_OBJECT> = AtomicPtr::new(core::ptr::null_mut());
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Why an entry was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotWritten {
    /// `IoAllocateErrorLogEntry` returned NULL (the log is full, memory is
    /// short, or the platform keeps no error log: Wine 8).
    NotAllocated,
    /// Called above `DISPATCH_LEVEL`.
    IrqlTooHigh,
    /// Before [`open`] or after [`close`].
    Closed,
}

/// An entry that was handed to the I/O manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Some string was cut to fit the entry.
    pub truncated: bool,
    /// The entry's `SequenceNumber`.
    pub sequence: u32,
}

/// Files the entries under `driver` (`%1` of every message is its name).
/// `DriverEntry`, `PASSIVE_LEVEL`.
pub fn open(driver: DriverObject) {
    SOURCE.store(driver.as_raw(), Ordering::Release);
}

/// No entry is written after this. `DriverUnload`, after the last
/// [`write`] of the driver's own threads (they are joined first).
pub fn close() {
    SOURCE.store(core::ptr::null_mut(), Ordering::Release);
}

/// Writes one entry: message `id` (an `NTSTATUS`-shaped message ID of the
/// driver's message table), `final_status` (shown in the entry's data),
/// `unique` (`UniqueErrorValue`), and the insertion strings `%2`.. in order.
/// `<= DISPATCH_LEVEL`.
pub fn write(id: i32, final_status: NtStatus, unique: u32, strings: &[&str]) -> Result<Written, NotWritten> {
    if current_irql() > DISPATCH_LEVEL {
        return Err(NotWritten::IrqlTooHigh);
    }
    let driver = SOURCE.load(Ordering::Acquire);
    if driver.is_null() {
        return Err(NotWritten::Closed);
    }
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let packet = IO_ERROR_LOG_PACKET {
        NumberOfStrings: u16::try_from(strings.len().min(MAX_STRING_UNITS)).unwrap_or(0),
        StringOffset: u16::try_from(STRING_OFFSET).unwrap_or(0),
        ErrorCode: id,
        UniqueErrorValue: unique,
        FinalStatus: final_status.0,
        SequenceNumber: sequence,
        ..IO_ERROR_LOG_PACKET::default()
    };
    let mut entry = [0u8; ERROR_LOG_MAXIMUM_SIZE];
    let (len, truncated) = pack(&packet, strings, &mut entry);
    // `len` <= ERROR_LOG_MAXIMUM_SIZE (240) by construction, so it fits the UCHAR.
    let size = u8::try_from(len).unwrap_or(u8::MAX);
    // SAFETY: `driver` is this driver's object, valid until `close` (called
    // in DriverUnload after the driver's threads are joined); `size` is at
    // most ERROR_LOG_MAXIMUM_SIZE; IRQL <= DISPATCH_LEVEL was checked above.
    let buffer = unsafe { IoAllocateErrorLogEntry(driver.cast(), size) };
    if buffer.is_null() {
        return Err(NotWritten::NotAllocated);
    }
    // SAFETY: `buffer` is a fresh, non-paged entry of `size` bytes that
    // nothing else uses yet; `entry` holds `len` == `size` initialised bytes.
    unsafe { core::ptr::copy_nonoverlapping(entry.as_ptr(), buffer.cast::<u8>(), len) };
    // SAFETY: the entry was allocated by IoAllocateErrorLogEntry and filled;
    // ownership passes to the I/O manager, which frees it. IRQL as above.
    unsafe { IoWriteErrorLogEntry(buffer) };
    Ok(Written { truncated, sequence })
}
