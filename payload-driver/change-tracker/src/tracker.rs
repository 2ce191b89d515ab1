//! The tracker's work: the set behind a spin lock, the write callbacks that
//! fill it, and its way across upgrades (state entries) and restarts
//! (shutdown hook, set-up).
//!
//! The post-write callback records a write that succeeded, keyed by the
//! stream (`FILE_OBJECT.FsContext`, or the file object where a file system
//! has none, as under the test world's Filter Manager). Callbacks run at
//! `<= DISPATCH_LEVEL` (post) and `<= APC_LEVEL` (pre); the lock is
//! closure-scoped. The registry is touched only at `PASSIVE_LEVEL` (set-up,
//! shutdown hook).
use change_set::TrackedSet;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel_sys::flt::{
    FLTFL_POST_OPERATION_DRAINING, FLT_CALLBACK_DATA, FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_SUCCESS_WITH_CALLBACK,
};
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::registry::RegKey;
use kernel_sys::wrap::ustr::WideBuf;
use payload_driver::shared_abi::payload::PayloadReport;
use payload_driver::shared_abi::NtStatus;
use payload_driver::PAYLOAD_POOL;

static SET: SpinLock<TrackedSet> = SpinLock::new(TrackedSet::new());
/// The counters of the snapshot imported before the switch, so the final
/// import adds only what the old generation recorded after it.
static SNAPSHOT: SpinLock<(u64, u64)> = SpinLock::new((0, 0));
static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// Where the shutdown hook persists the set and the set-up finds it.
const KEY: &str = "\\Registry\\Machine\\Software\\SerialLoader\\ChangeTracker";
const PARENT: &str = "\\Registry\\Machine\\Software\\SerialLoader";
const VALUE: &str = "TrackedSet";
/// Room for a persisted blob (from pool: kernel stacks are small), with the
/// registry's value header.
fn blob_bytes() -> usize {
    SET.with(|s| s.encoded_len()).max(change_set::MAX_ENCODED_LEN) + 16
}

/// The registration's set-up: restores the set the last shutdown persisted.
pub fn setup() -> Result<(), NtStatus> {
    let Some(path) = WideBuf::<96>::from_ascii(KEY) else { return Ok(()) };
    let Ok(key) = RegKey::open(&path.as_unicode(), false) else { return Ok(()) };
    let Some(mut block) = PAYLOAD_POOL.alloc(blob_bytes()) else { return Err(NtStatus::INSUFFICIENT_RESOURCES) };
    if let Ok((_, data)) = key.query_into(VALUE, block.as_mut_bytes()) {
        let restored = SET.with(|s| s.decode_into(data).is_some());
        payload_driver::log(if restored {
            "change tracker: restored the set persisted at the last shutdown"
        } else {
            "change tracker: the persisted set is malformed; starting empty"
        });
    }
    Ok(())
}

/// The clean-up: nothing is freed (the set is static).
pub fn cleanup() {}

/// The shutdown hook: persists the set (file systems are still up).
pub fn shutdown() {
    let Some(mut block) = PAYLOAD_POOL.alloc(blob_bytes()) else {
        payload_driver::log("change tracker: no pool to persist the set");
        return;
    };
    let bytes = block.as_mut_bytes();
    let written = SET.with(|s| s.encode(bytes));
    let Ok(n) = written else {
        payload_driver::log("change tracker: the set is too large to persist");
        return;
    };
    let (Some(parent), Some(path)) = (WideBuf::<96>::from_ascii(PARENT), WideBuf::<96>::from_ascii(KEY)) else {
        return;
    };
    let saved = RegKey::create(&parent.as_unicode())
        .and_then(|_| RegKey::create(&path.as_unicode()))
        .and_then(|key| key.set_binary(VALUE, bytes.get(..n).unwrap_or(&[])).and_then(|()| key.flush()));
    payload_driver::log(if saved.is_ok() {
        "change tracker: persisted the set for the next start"
    } else {
        "change tracker: persisting the set failed"
    });
}

/// `status`: files, ranges, writes recorded, overflows.
pub fn report(r: &mut PayloadReport) {
    r.instances = INSTANCES.load(Ordering::Relaxed);
    SET.with(|s| {
        r.creates = s.files() as u64;
        r.reads = s.ranges();
        r.writes = s.writes;
        r.open_contexts = u32::try_from(s.overflows).unwrap_or(u32::MAX);
    });
}

/// The state export: the set's blob.
pub fn export_state(buf: &mut [u8]) -> Result<usize, (NtStatus, usize)> {
    SET.with(|s| s.encode(buf)).map_err(|need| (NtStatus::BUFFER_TOO_SMALL, need))
}

/// The state import: the snapshot replaces the set (this generation has
/// recorded nothing yet); the final state is merged in (ranges unioned,
/// counters: what the old generation added after its snapshot).
pub fn import_state(data: &[u8], final_state: bool) -> Result<(), NtStatus> {
    static INCOMING: SpinLock<TrackedSet> = SpinLock::new(TrackedSet::new());
    let ok = INCOMING.with(|incoming| incoming.decode_into(data).is_some());
    if !ok {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    INCOMING.with(|incoming| {
        if final_state {
            let (writes0, overflows0) = SNAPSHOT.with(|s| *s);
            SET.with(|s| {
                s.union(incoming);
                s.writes = s.writes.saturating_add(incoming.writes.saturating_sub(writes0));
                s.overflows = s.overflows.saturating_add(incoming.overflows.saturating_sub(overflows0));
            });
        } else {
            SNAPSHOT.with(|s| *s = (incoming.writes, incoming.overflows));
            SET.with(|s| {
                s.clear();
                s.union(incoming);
                s.writes = incoming.writes;
                s.overflows = incoming.overflows;
            });
        }
    });
    payload_driver::publish();
    Ok(())
}

/// Pre-write: the tracker processes every write (it records it after).
///
/// # Safety
/// Called by `FltMgr` with its callback data.
pub unsafe extern "system" fn pre_write(_data: *mut c_void, _objects: *const c_void, _ctx: *mut *mut c_void) -> i32 {
    FLT_PREOP_SUCCESS_WITH_CALLBACK
}

/// Post-write: records the range of a write that succeeded.
///
/// # Safety
/// Called by `FltMgr` with its callback data for a write this filter's
/// pre-callback asked to see.
pub unsafe extern "system" fn post_write(
    data: *mut c_void,
    _objects: *const c_void,
    _ctx: *mut c_void,
    flags: u32,
) -> i32 {
    if flags & FLTFL_POST_OPERATION_DRAINING != 0 || data.is_null() {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: FltMgr's callback data for this write, valid for the call.
    let data = unsafe { &*data.cast::<FLT_CALLBACK_DATA>() };
    if data.IoStatus.Status < 0 || data.Iopb.is_null() {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: the parameter block of the same callback data.
    let iopb = unsafe { &*data.Iopb };
    // SAFETY: a write's parameters are the `Write` member of the union.
    let write = unsafe { iopb.Parameters.Write };
    let (file, length, offset) = (iopb.TargetFileObject, write.Length, write.ByteOffset);
    let key = if file.is_null() {
        0
    } else {
        // SAFETY: the target file object of the write, valid for the call.
        let stream = unsafe { (*file).FsContext };
        if stream.is_null() {
            file as u64
        } else {
            stream as u64
        }
    };
    SET.with(|s| s.record(key, u64::try_from(offset).unwrap_or(0), u64::from(length)));
    payload_driver::publish();
    FLT_POSTOP_FINISHED_PROCESSING
}

/// `InstanceSetupCallback`: attach to every volume.
///
/// # Safety
/// Called by `FltMgr`.
pub unsafe extern "system" fn instance_setup(_o: *const c_void, _f: u32, _d: u32, _t: u32) -> i32 {
    INSTANCES.fetch_add(1, Ordering::Relaxed);
    NtStatus::SUCCESS.0
}

/// `InstanceTeardownCompleteCallback`.
///
/// # Safety
/// Called by `FltMgr`.
pub unsafe extern "system" fn instance_teardown_complete(_objects: *const c_void, _reason: u32) {
    INSTANCES.fetch_sub(1, Ordering::Relaxed);
}
