//! Where operations come from (file I/O under Wine never reaches drivers):
//! injector threads that deliver N operations of a kind on M threads (or
//! until stopped), and files opened and closed on request, which stay open
//! in between (`\TSCLIENT\SCARD\2` on the Mup volume keeps its stream
//! context, so an instance teardown drains until it closes).
//!
//! Each stream has a `FILE_OBJECT` of its own in static memory (filters
//! may keep its address while it is open). An injector's stream is opened
//! and closed around each operation as far as contexts are concerned: its
//! stream contexts are released when the operation ends.
//!
//! A file object's `FsContext` is the control block of the file its name
//! names, shared by every stream of that name (as a file system's stream
//! control block is shared by every open of the file) and never by two
//! names, so a filter that keys its records by `FsContext` sees one file
//! per name, as it would on a real volume.
//!
//! `PASSIVE_LEVEL`; the threads are the simulator's, joined before reuse.
use crate::log;
use crate::state::{StreamRec, MAX_STREAMS, STATE};
use crate::verifier::{qpc, ticks_to_ns};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use fltsim_abi as abi;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::thread::{self, SystemThread};
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::{FILE_OBJECT, IO_TYPE_FILE, KEVENT, UNICODE_STRING};
use shared_abi::NtStatus;

const THREADS: usize = abi::MAX_INJECT_THREADS as usize;
/// UTF-16 units of a stream's name buffer.
const NAME_UNITS: usize = abi::PATH_CHARS;

/// A stream's file object and the name its `FileName` views.
struct StreamMemory {
    file: UnsafeCell<FILE_OBJECT>,
    name: UnsafeCell<[u16; NAME_UNITS]>,
}

// SAFETY: a stream's memory is written only by whoever owns the stream (an
// injector thread for its own stream while it injects; the control device's
// caller for an open file it just claimed under the state lock), while no
// operation targets it; filters only read it during operations.
unsafe impl Sync for StreamMemory {}

const fn zero_file() -> FILE_OBJECT {
    let empty = UNICODE_STRING { Length: 0, MaximumLength: 0, Buffer: core::ptr::null_mut() };
    FILE_OBJECT {
        Type: 0,
        Size: 0,
        DeviceObject: core::ptr::null_mut(),
        Vpb: core::ptr::null_mut(),
        FsContext: core::ptr::null_mut(),
        FsContext2: core::ptr::null_mut(),
        SectionObjectPointer: core::ptr::null_mut(),
        PrivateCacheMap: core::ptr::null_mut(),
        FinalStatus: 0,
        RelatedFileObject: core::ptr::null_mut(),
        LockOperation: 0,
        DeletePending: 0,
        ReadAccess: 0,
        WriteAccess: 0,
        DeleteAccess: 0,
        SharedRead: 0,
        SharedWrite: 0,
        SharedDelete: 0,
        Flags: 0,
        FileName: empty,
        CurrentByteOffset: 0,
        Waiters: 0,
        Busy: 0,
        LastLock: core::ptr::null_mut(),
        Lock: KEVENT::zeroed(),
        Event: KEVENT::zeroed(),
        CompletionContext: core::ptr::null_mut(),
        IrpListLock: 0,
        IrpList: [0; 2],
        FileObjectExtension: core::ptr::null_mut(),
    }
}

static MEMORY: [StreamMemory; MAX_STREAMS] =
    [const { StreamMemory { file: UnsafeCell::new(zero_file()), name: UnsafeCell::new([0; NAME_UNITS]) } };
        MAX_STREAMS];

/// Files (by name) with a control block; after that, a stream's
/// `FsContext` is its own name buffer (distinct per stream, not per name).
const MAX_FILES: usize = 64;

/// The names that have a control block, in order of first use.
struct FileTable {
    names: [[u16; NAME_UNITS]; MAX_FILES],
    used: usize,
}

static FILES: SpinLock<FileTable> = SpinLock::new(FileTable { names: [[0; NAME_UNITS]; MAX_FILES], used: 0 });

/// The control blocks (only their addresses matter: `FsContext`).
static CONTROL_BLOCKS: [AtomicU8; MAX_FILES] = [const { AtomicU8::new(0) }; MAX_FILES];

/// The control block of the file `name` names, made on first use.
fn control_block(name: &[u16]) -> Option<*mut core::ffi::c_void> {
    let index = FILES.with(|t| {
        let n = name.len().min(NAME_UNITS);
        let same = |slot: &[u16; NAME_UNITS]| slot.get(..n) == name.get(..n) && slot.get(n).is_none_or(|&u| u == 0);
        if let Some(k) = t.names.iter().take(t.used).position(same) {
            return Some(k);
        }
        let k = t.used;
        let slot = t.names.get_mut(k)?;
        if let (Some(dst), Some(src)) = (slot.get_mut(..n), name.get(..n)) {
            dst.copy_from_slice(src);
        }
        t.used += 1;
        Some(k)
    })?;
    CONTROL_BLOCKS.get(index).map(|c| c.as_ptr().cast())
}

/// The file object of stream `i`.
fn file_of(i: usize) -> *mut FILE_OBJECT {
    MEMORY.get(i).map_or(core::ptr::null_mut(), |m| m.file.get())
}

/// The stream whose file object is `file`, if it is one of ours.
pub fn stream_of(file: *mut FILE_OBJECT) -> Option<usize> {
    MEMORY.iter().position(|m| core::ptr::eq(m.file.get(), file))
}

/// Sets up stream `i`'s file object for `name`. The caller owns the stream.
fn prepare(i: usize, name: &[u16]) {
    let Some(m) = MEMORY.get(i) else { return };
    let n = name.len().min(NAME_UNITS);
    // SAFETY: the caller owns stream `i` (see `StreamMemory`): no operation
    // targets it and nobody else writes it.
    let buf = unsafe { &mut *m.name.get() };
    buf.fill(0);
    if let (Some(dst), Some(src)) = (buf.get_mut(..n), name.get(..n)) {
        dst.copy_from_slice(src);
    }
    let bytes = u16::try_from(n * 2).unwrap_or(0);
    let mut f = zero_file();
    f.Type = IO_TYPE_FILE;
    f.Size = i16::try_from(core::mem::size_of::<FILE_OBJECT>()).unwrap_or(0);
    f.FsContext = control_block(name).unwrap_or_else(|| m.name.get().cast());
    f.ReadAccess = 1;
    f.WriteAccess = 1;
    f.SharedRead = 1;
    f.SharedWrite = 1;
    f.FileName = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: buf.as_mut_ptr() };
    // SAFETY: as above, for the file object.
    unsafe { m.file.get().write(f) };
}

/// The name of stream `i` (for name queries), copied.
pub fn name_of(i: usize) -> WideBuf<NAME_UNITS> {
    let Some(m) = MEMORY.get(i) else { return WideBuf::new() };
    // SAFETY: read while an operation targets the stream (its owner does not
    // write it then).
    let buf = unsafe { &*m.name.get() };
    WideBuf::from_units(abi::units(buf)).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Injector threads.
// ---------------------------------------------------------------------------

static STOP: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicU32 = AtomicU32::new(0);
static REQUEST: SpinLock<Option<Plan>> = SpinLock::new(None);
static THREADS_HELD: SpinLock<[Option<SystemThread>; THREADS]> = SpinLock::new([const { None }; THREADS]);

#[derive(Clone, Copy)]
struct Plan {
    kind: u32,
    volume: usize,
    count: u64,
    length: u32,
    /// `INJECT_UNIQUE_OFFSETS`.
    unique_offsets: bool,
}

/// Operations delivered by the current (or last) injection.
pub fn done() -> u64 {
    DONE.load(Ordering::Relaxed)
}

/// `IOCTL_SIM_INJECT`.
pub fn start(req: &abi::InjectRequest) -> NtStatus {
    let valid_kind = req.kind == abi::OP_MIX || (req.kind as usize) < abi::OP_KINDS;
    if !valid_kind || req.threads == 0 || req.threads > abi::MAX_INJECT_THREADS || req.volume as usize >= abi::VOLUMES {
        return NtStatus::INVALID_PARAMETER;
    }
    let busy = STATE.with(|s| s.inject.state == abi::INJECT_RUNNING);
    if busy {
        return NtStatus::DEVICE_BUSY;
    }
    join_all();
    STOP.store(false, Ordering::Release);
    NEXT.store(0, Ordering::Release);
    DONE.store(0, Ordering::Release);
    REQUEST.with(|r| {
        *r = Some(Plan {
            kind: req.kind,
            volume: req.volume as usize,
            count: req.count,
            length: req.length,
            unique_offsets: req.flags & abi::INJECT_UNIQUE_OFFSETS != 0,
        });
    });
    let threads = req.threads as usize;
    for i in 0..threads {
        let mut name: WideBuf<NAME_UNITS> = WideBuf::new();
        let given = abi::units(&req.name);
        if given.is_empty() {
            let _ = name.push_ascii("\\fltsim\\inject");
            let _ = name
                .push_ascii(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"][i % 16]);
            let _ = name.push_ascii(".dat");
        } else {
            let _ = name.push_units(given);
        }
        prepare(i, name.units());
        STATE.with(|s| {
            if let Some(st) = s.streams.get_mut(i) {
                *st = StreamRec { used: true, volume: req.volume as usize, ..StreamRec::EMPTY };
            }
        });
    }
    RUNNING.store(u32::try_from(threads).unwrap_or(0), Ordering::Release);
    STATE.with(|s| {
        s.inject = abi::InjectStatus {
            state: abi::INJECT_RUNNING,
            threads: req.threads,
            requested: req.count,
            done: 0,
            elapsed_ns: 0,
        };
        s.inject_start_qpc = qpc();
    });
    for i in 0..threads {
        match thread::spawn(injector, i) {
            Ok(t) => THREADS_HELD.with(|h| {
                if let Some(slot) = h.get_mut(i) {
                    *slot = Some(t);
                }
            }),
            Err(e) => {
                log!("injector thread {i}: {}", NtStatus(e));
                finish_one();
            }
        }
    }
    log!("injecting {} operation(s) of kind {:#x} on {threads} thread(s)", req.count, req.kind);
    NtStatus::SUCCESS
}

/// `IOCTL_SIM_INJECT_STOP`: stops and joins the injector threads.
pub fn stop() -> NtStatus {
    STOP.store(true, Ordering::Release);
    join_all();
    NtStatus::SUCCESS
}

fn join_all() {
    let held = THREADS_HELD.with(|h| core::mem::replace(h, [const { None }; THREADS]));
    for t in held.into_iter().flatten() {
        if let Err(e) = t.join() {
            log!("waiting for an injector thread failed: {}", NtStatus(e));
        }
    }
}

/// An injector thread ended; the last one records the elapsed time.
fn finish_one() {
    if RUNNING.fetch_sub(1, Ordering::AcqRel) == 1 {
        let end = qpc();
        STATE.with(|s| {
            s.inject.state = abi::INJECT_DONE;
            s.inject.done = DONE.load(Ordering::Acquire);
            s.inject.elapsed_ns = ticks_to_ns(end.saturating_sub(s.inject_start_qpc));
        });
    }
}

extern "system" fn injector(context: *mut core::ffi::c_void) {
    let i = context as usize;
    if let Some(plan) = REQUEST.with(|r| *r) {
        let file = file_of(i);
        while !STOP.load(Ordering::Acquire) {
            let n = NEXT.fetch_add(1, Ordering::AcqRel);
            if plan.count != 0 && n >= plan.count {
                break;
            }
            let kind = if plan.kind == abi::OP_MIX { usize::try_from(n % 3).unwrap_or(0) } else { plan.kind as usize };
            let offset = if plan.unique_offsets {
                (n % abi::OFFSET_WINDOW).saturating_mul(2 * u64::from(plan.length))
            } else {
                0
            };
            crate::ops::deliver(kind, plan.volume, file, plan.length, offset);
            crate::contexts::release_stream(i);
            DONE.fetch_add(1, Ordering::AcqRel);
        }
    }
    finish_one();
    thread::exit(0);
}

// ---------------------------------------------------------------------------
// Files kept open.
// ---------------------------------------------------------------------------

/// `IOCTL_SIM_OPEN`: a create on a new stream that stays open. Returns the
/// file's id and the create's status.
pub fn open(volume: usize, name: &[u16]) -> Result<(u32, NtStatus), NtStatus> {
    if volume >= abi::VOLUMES || name.is_empty() {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let claimed = STATE.with(|s| {
        let i = (THREADS..MAX_STREAMS).find(|&i| s.streams.get(i).is_some_and(|st| !st.used))?;
        let id = s.next_file_id;
        s.next_file_id = s.next_file_id.wrapping_add(1).max(1);
        let st = s.streams.get_mut(i)?;
        *st = StreamRec {
            used: true,
            open_file: true,
            id,
            volume,
            name: WideBuf::from_units(name).unwrap_or_default(),
            ..StreamRec::EMPTY
        };
        Some((i, id))
    });
    let (i, id) = claimed.ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
    prepare(i, name);
    let status = crate::ops::deliver(abi::OP_CREATE as usize, volume, file_of(i), 0, 0);
    log!("opened file {id} ({}) on volume {volume}: {status}", name_of(i));
    Ok((id, status))
}

/// `IOCTL_SIM_CLOSE`: cleanup and close of an open file; its stream
/// contexts lose the stream's reference.
pub fn close(id: u32) -> NtStatus {
    let found = STATE.with(|s| {
        let i = s.streams.iter().position(|st| st.used && st.open_file && st.id == id)?;
        s.streams.get(i).map(|st| (i, st.volume))
    });
    let Some((i, volume)) = found else { return NtStatus::INVALID_HANDLE };
    crate::ops::deliver(abi::OP_CLEANUP as usize, volume, file_of(i), 0, 0);
    crate::ops::deliver(abi::OP_CLOSE as usize, volume, file_of(i), 0, 0);
    crate::contexts::release_stream(i);
    STATE.with(|s| {
        if let Some(st) = s.streams.get_mut(i) {
            *st = StreamRec::EMPTY;
        }
    });
    log!("closed file {id}");
    NtStatus::SUCCESS
}
