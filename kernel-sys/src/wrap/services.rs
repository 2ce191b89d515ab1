//! The services table the loader lends each payload, both sides of it.
//!
//! Loader side: one `LoaderServices` table per slot, in a static, whose
//! entries are trampolines here that check what the payload passes and call
//! the loader's safe handlers ([`install`]). Payload side: [`Services`], a
//! checked reference to the table the loader passed, with safe calls.
//!
//! IRQL: `wait_registration_settled` and `report` are `PASSIVE_LEVEL`;
//! `log` is callable at `<= DISPATCH_LEVEL`.
use crate::wrap::log::Level;
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};
use shared_abi::payload::{LoaderServices, LogLevel, PayloadReport};
use shared_abi::{NtStatus, Slot};

/// What the loader does behind each service.
pub struct LoaderHandlers {
    /// Blocks until the slot's registration call has been settled.
    pub wait_settled: fn(Slot),
    /// One line of the payload's log.
    pub log: fn(Slot, Level, &str),
    /// The payload's report (phase, counters).
    pub report: fn(Slot, &PayloadReport),
}

static HANDLERS: AtomicPtr<LoaderHandlers> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the loader's handlers (`DriverEntry`, before any table is lent).
pub fn install(handlers: &'static LoaderHandlers) {
    HANDLERS.store(core::ptr::from_ref(handlers).cast_mut(), Ordering::Release);
}

fn handlers() -> Option<&'static LoaderHandlers> {
    // SAFETY: only ever set from a `&'static LoaderHandlers`.
    unsafe { HANDLERS.load(Ordering::Acquire).as_ref() }
}

struct Tables([LoaderServices; 2]);
// SAFETY: the tables are immutable; `context` is a small integer, not a pointer.
unsafe impl Sync for Tables {}

#[allow(clippy::cast_possible_truncation)] // 48 bytes
const fn table(slot: Slot) -> LoaderServices {
    LoaderServices {
        size: core::mem::size_of::<LoaderServices>() as u32,
        abi_major: shared_abi::ABI_MAJOR,
        abi_minor: shared_abi::ABI_MINOR,
        slot: slot.word(),
        reserved: 0,
        context: core::ptr::without_provenance_mut(slot.index()),
        wait_registration_settled,
        log,
        report,
    }
}

static TABLES: Tables = Tables([table(Slot::A), table(Slot::B)]);

/// The table lent to the payload of `slot`; it lives as long as the loader.
#[must_use]
pub fn table_for(slot: Slot) -> &'static LoaderServices {
    match slot {
        Slot::A => &TABLES.0[0],
        Slot::B => &TABLES.0[1],
    }
}

fn slot_of(context: *mut c_void) -> Option<Slot> {
    u32::try_from(context as usize).ok().and_then(Slot::from_word)
}

unsafe extern "system" fn wait_registration_settled(context: *mut c_void) -> i32 {
    match (slot_of(context), handlers()) {
        (Some(slot), Some(h)) => {
            (h.wait_settled)(slot);
            NtStatus::SUCCESS.0
        }
        _ => NtStatus::INVALID_PARAMETER.0,
    }
}

/// Longest log line taken from a payload.
const LOG_MAX: usize = 256;

unsafe extern "system" fn log(context: *mut c_void, level: u32, text: *const u8, len: usize) {
    let (Some(slot), Some(h)) = (slot_of(context), handlers()) else { return };
    if text.is_null() {
        return;
    }
    // SAFETY: the payload passes `len` readable bytes at `text` for the call;
    // at most LOG_MAX of them are read.
    let bytes = unsafe { core::slice::from_raw_parts(text, len.min(LOG_MAX)) };
    let text = core::str::from_utf8(bytes).unwrap_or("(not UTF-8)");
    let level = match LogLevel(level) {
        LogLevel::ERROR => Level::Error,
        LogLevel::WARN => Level::Warn,
        _ => Level::Info,
    };
    (h.log)(slot, level, text);
}

unsafe extern "system" fn report(context: *mut c_void, report: *const PayloadReport) {
    let (Some(slot), Some(h)) = (slot_of(context), handlers()) else { return };
    // SAFETY: the payload passes null or a report valid for the call.
    let Some(r) = (unsafe { report.as_ref() }) else { return };
    if (r.size as usize) < core::mem::size_of::<PayloadReport>() {
        return;
    }
    (h.report)(slot, r);
}

/// The payload's view of the loader's services: checked once, then safe.
#[derive(Clone, Copy)]
pub struct Services(&'static LoaderServices);

// SAFETY: the table is immutable and lives in the loader's image, which
// outlives every payload it loads.
unsafe impl Send for Services {}

impl Services {
    /// Checks the table the loader passed to the registration entry:
    /// present, at least as large as this payload knows, same ABI major.
    ///
    /// # Safety
    /// `raw` is null or the loader's table, valid for as long as this image
    /// is loaded (the loader's contract).
    pub unsafe fn from_raw(raw: *const LoaderServices) -> Result<Services, NtStatus> {
        // SAFETY: per the contract.
        let table = unsafe { raw.as_ref() }.ok_or(NtStatus::INVALID_PARAMETER)?;
        if (table.size as usize) < core::mem::size_of::<LoaderServices>() {
            return Err(NtStatus::INFO_LENGTH_MISMATCH);
        }
        if table.abi_major != shared_abi::ABI_MAJOR {
            return Err(NtStatus::REVISION_MISMATCH);
        }
        Ok(Services(table))
    }

    /// The slot the payload was loaded into.
    #[must_use]
    pub fn slot(self) -> Option<Slot> {
        Slot::from_word(self.0.slot)
    }

    /// `wait_registration_settled`. `PASSIVE_LEVEL`, no lock held.
    pub fn wait_settled(self) {
        // SAFETY: the loader's service with its own context.
        unsafe { (self.0.wait_registration_settled)(self.0.context) };
    }

    /// `log`: one line of text. `<= DISPATCH_LEVEL`.
    pub fn log(self, level: LogLevel, text: &str) {
        // SAFETY: the loader's service; `text` lives across the call.
        unsafe { (self.0.log)(self.0.context, level.0, text.as_ptr(), text.len()) };
    }

    /// `report`. `PASSIVE_LEVEL` on ABI 1.0 loaders; any IRQL up to
    /// `DISPATCH_LEVEL` on 1.1 and later (`abi_minor >= 1`).
    pub fn report(self, report: &PayloadReport) {
        // SAFETY: the loader's service; the report lives across the call.
        unsafe { (self.0.report)(self.0.context, report) };
    }

    /// The loader's ABI minor version.
    #[must_use]
    pub fn abi_minor(self) -> u16 {
        self.0.abi_minor
    }
}
