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
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use shared_abi::payload::{LoaderServices, LogLevel, OwnerBlock, PayloadReport, SERVICES_SIZE_1_1};
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

/// The loader's handover words, with the layout of `OwnerBlock`; every
/// access sequentially consistent (`loader_protocol::handover`).
#[repr(C)]
pub struct Owner {
    word: AtomicU32,
    in_flight: [AtomicU32; 2],
}
static_assertions::const_assert_eq!(core::mem::size_of::<Owner>(), core::mem::size_of::<OwnerBlock>());

static OWNER: Owner = Owner { word: AtomicU32::new(0), in_flight: [AtomicU32::new(0), AtomicU32::new(0)] };

/// Publishes the owner word. Any IRQL.
pub fn publish_owner(word: u32) {
    OWNER.word.store(word, Ordering::SeqCst);
}

/// Operations the payload of `slot` processes in flight. Any IRQL.
#[must_use]
pub fn in_flight(slot: Slot) -> u32 {
    OWNER.in_flight[slot.index()].load(Ordering::SeqCst)
}

/// Room for marks (operations between the old and the new generation's
/// pre callbacks during a handover; when it is full the old one waits for
/// room, without reading the owner word again).
pub const MARKS: usize = 256;
static MARK_TABLE: [AtomicUsize; MARKS] = [const { AtomicUsize::new(0) }; MARKS];

/// The table is closed: the handover's steady word is published, and a put
/// answers "recorded" without recording.
static MARKS_CLOSED: AtomicBool = AtomicBool::new(false);

/// Forgets every mark and opens the table (before a handover). Any IRQL.
pub fn clear_marks() {
    for m in &MARK_TABLE {
        m.store(0, Ordering::SeqCst);
    }
    MARKS_CLOSED.store(false, Ordering::SeqCst);
}

/// Closes the table, right after the handover's steady word is published
/// (an old generation's callback waiting for room then passes, and the new
/// generation processes under the steady word). Any IRQL.
pub fn close_marks() {
    MARKS_CLOSED.store(true, Ordering::SeqCst);
}

/// Marks refused for want of room since the loader started.
static MARKS_REFUSED: AtomicU32 = AtomicU32::new(0);

/// Marks refused for want of room since the loader started (each time the
/// old generation waited for room; still exactly once). Any IRQL.
#[must_use]
pub fn marks_refused() -> u32 {
    MARKS_REFUSED.load(Ordering::Relaxed)
}

/// Records operation `op`; `true` also when the table is closed (marks are
/// no longer needed) and for 0, which no operation is (nothing to record,
/// and a caller waiting for room must not wait for good); `false` when the
/// table is full.
fn put_mark(op: usize) -> bool {
    if op == 0 || MARKS_CLOSED.load(Ordering::SeqCst) {
        return true;
    }
    let put = MARK_TABLE.iter().any(|m| m.compare_exchange(0, op, Ordering::SeqCst, Ordering::SeqCst).is_ok());
    if !put {
        MARKS_REFUSED.fetch_add(1, Ordering::Relaxed);
    }
    put
}

/// Removes operation `op`'s mark; `true` if there was one.
fn take_mark(op: usize) -> bool {
    op != 0 && MARK_TABLE.iter().any(|m| m.compare_exchange(op, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok())
}

struct Tables([UnsafeCell<LoaderServices>; 2]);
// SAFETY: `context` is a small integer, `owner` the static above. The only
// field ever written is `generation`, by the loader while no payload of
// that slot is loaded (before `ZwLoadDriver`), so no reader races it.
unsafe impl Sync for Tables {}

const fn table(slot: Slot) -> LoaderServices {
    LoaderServices {
        size: shared_abi::size_u32::<LoaderServices>(),
        abi_major: shared_abi::ABI_MAJOR,
        abi_minor: shared_abi::ABI_MINOR,
        slot: slot.word(),
        reserved: 0,
        context: core::ptr::without_provenance_mut(slot.index()),
        wait_registration_settled,
        log,
        report,
        owner: core::ptr::from_ref(&OWNER).cast::<OwnerBlock>(),
        generation: 0,
        reserved2: 0,
        mark: mark_service,
        take_mark: take_mark_service,
    }
}

static TABLES: Tables = Tables([UnsafeCell::new(table(Slot::A)), UnsafeCell::new(table(Slot::B))]);

/// Sets the generation the next payload of `slot` is told. Call only while
/// no payload of `slot` is loaded (the loader does, before `ZwLoadDriver`).
pub fn set_generation(slot: Slot, generation: u16) {
    // SAFETY: no payload of `slot` holds the table now (the caller's
    // contract), so this write races no read.
    unsafe { (*TABLES.0[slot.index()].get()).generation = u32::from(generation) };
}

/// The table lent to the payload of `slot`; it lives as long as the loader.
#[must_use]
pub fn table_for(slot: Slot) -> &'static LoaderServices {
    // SAFETY: see `Tables`: written only while no payload reads it.
    unsafe { &*TABLES.0[slot.index()].get() }
}

unsafe extern "system" fn mark_service(_context: *mut c_void, op: usize) -> u32 {
    u32::from(put_mark(op))
}

unsafe extern "system" fn take_mark_service(_context: *mut c_void, op: usize) -> u32 {
    u32::from(take_mark(op))
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
/// A 1.1 loader's table is 48 bytes: only its prefix is ever read then.
#[derive(Clone, Copy)]
pub struct Services(*const LoaderServices);

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
        if raw.is_null() {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        // SAFETY: per the contract, at least the 1.1 prefix is there.
        let prefix = unsafe { &*raw.cast::<LoaderServices11>() };
        let (size, major) = (prefix.size, prefix.abi_major);
        if size < SERVICES_SIZE_1_1 {
            return Err(NtStatus::INFO_LENGTH_MISMATCH);
        }
        if major != shared_abi::ABI_MAJOR {
            return Err(NtStatus::REVISION_MISMATCH);
        }
        Ok(Services(raw))
    }

    /// The 1.1 prefix of the table (every field up to `report`).
    fn prefix(self) -> &'static LoaderServices11 {
        // SAFETY: checked in `from_raw`: at least `SERVICES_SIZE_1_1` bytes,
        // which is this prefix, valid for as long as this image is loaded.
        unsafe { &*self.0.cast::<LoaderServices11>() }
    }

    /// The handover services (ABI 1.2), if the loader lent them.
    #[must_use]
    pub fn handover(self) -> Option<Handover> {
        // SAFETY: the size says whether the 1.2 fields are there.
        let table = unsafe { &*self.0 };
        if (table.size as usize) < core::mem::size_of::<LoaderServices>() || table.owner.is_null() {
            return None;
        }
        let slot = Slot::from_word(table.slot)?;
        Some(Handover { table, slot })
    }

    /// The slot the payload was loaded into.
    #[must_use]
    pub fn slot(self) -> Option<Slot> {
        Slot::from_word(self.prefix().slot)
    }

    /// `wait_registration_settled`. `PASSIVE_LEVEL`, no lock held.
    pub fn wait_settled(self) {
        let t = self.prefix();
        // SAFETY: the loader's service with its own context.
        unsafe { (t.wait_registration_settled)(t.context) };
    }

    /// `log`: one line of text. `<= DISPATCH_LEVEL`.
    pub fn log(self, level: LogLevel, text: &str) {
        let t = self.prefix();
        // SAFETY: the loader's service; `text` lives across the call.
        unsafe { (t.log)(t.context, level.0, text.as_ptr(), text.len()) };
    }

    /// `report`. `PASSIVE_LEVEL` on ABI 1.0 loaders; any IRQL up to
    /// `DISPATCH_LEVEL` on 1.1 and later (`abi_minor >= 1`).
    pub fn report(self, report: &PayloadReport) {
        let t = self.prefix();
        // SAFETY: the loader's service; the report lives across the call.
        unsafe { (t.report)(t.context, report) };
    }

    /// The loader's ABI minor version.
    #[must_use]
    pub fn abi_minor(self) -> u16 {
        self.prefix().abi_minor
    }
}

/// The 1.0/1.1 prefix of `LoaderServices`, the part every loader lends.
#[repr(C)]
struct LoaderServices11 {
    size: u32,
    abi_major: u16,
    abi_minor: u16,
    slot: u32,
    reserved: u32,
    context: *mut c_void,
    wait_registration_settled: unsafe extern "system" fn(context: *mut c_void) -> i32,
    log: unsafe extern "system" fn(context: *mut c_void, level: u32, text: *const u8, len: usize),
    report: unsafe extern "system" fn(context: *mut c_void, report: *const PayloadReport),
}
static_assertions::const_assert_eq!(core::mem::size_of::<LoaderServices11>(), SERVICES_SIZE_1_1 as usize);

/// The payload's side of the handover services: the owner word, its own
/// count of operations in flight, and the marks. Any IRQL up to
/// `DISPATCH_LEVEL`.
#[derive(Clone, Copy)]
pub struct Handover {
    table: &'static LoaderServices,
    slot: Slot,
}

// SAFETY: the table and the owner words live in the loader's image, which
// outlives every payload it loads; the words are atomics.
unsafe impl Send for Handover {}
// SAFETY: as above.
unsafe impl Sync for Handover {}

impl Handover {
    fn owner(self) -> &'static Owner {
        // SAFETY: the loader's `OWNER` (same layout as `OwnerBlock`), alive
        // for as long as this payload is loaded.
        unsafe { &*self.table.owner.cast::<Owner>() }
    }

    /// This payload's generation.
    #[must_use]
    pub fn generation(self) -> u16 {
        u16::try_from(self.table.generation & 0xFFFF).unwrap_or(0)
    }

    /// One load of the owner word.
    #[must_use]
    pub fn load_word(self) -> u32 {
        self.owner().word.load(Ordering::SeqCst)
    }

    /// One more operation in flight.
    pub fn enter(self) {
        self.owner().in_flight[self.slot.index()].fetch_add(1, Ordering::SeqCst);
    }

    /// One fewer.
    pub fn leave(self) {
        self.owner().in_flight[self.slot.index()].fetch_sub(1, Ordering::SeqCst);
    }

    /// Marks `op` for the new generation; `false` if there is no room.
    #[must_use]
    pub fn put_mark(self, op: usize) -> bool {
        // SAFETY: the loader's service.
        unsafe { (self.table.mark)(self.table.context, op) != 0 }
    }

    /// Takes `op`'s mark; `true` if there was one.
    #[must_use]
    pub fn take_mark(self, op: usize) -> bool {
        // SAFETY: the loader's service.
        unsafe { (self.table.take_mark)(self.table.context, op) != 0 }
    }
}

/// The payload's handover services, remembered at registration so the
/// operation callbacks read them without a lock (set once, before the
/// filter registers; the loader outlives the payload).
static REMEMBERED_TABLE: AtomicPtr<LoaderServices> = AtomicPtr::new(core::ptr::null_mut());

impl Handover {
    /// Remembers these services for [`Handover::current`].
    pub fn remember(self) {
        REMEMBERED_TABLE.store(core::ptr::from_ref(self.table).cast_mut(), Ordering::Release);
    }

    /// The services remembered at registration, if any. Any IRQL.
    #[must_use]
    pub fn current() -> Option<Handover> {
        // SAFETY: only ever set from a checked `&'static LoaderServices`.
        let table = unsafe { REMEMBERED_TABLE.load(Ordering::Acquire).as_ref() }?;
        Some(Handover { table, slot: Slot::from_word(table.slot)? })
    }
}
