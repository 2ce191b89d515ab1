//! The filter's own work: per-volume counters in a pool block allocated by
//! `setup` and freed by `cleanup`, operation callbacks that count, and
//! instance callbacks that track attached volumes.
//!
//! Operation callbacks run at `<= APC_LEVEL` (creates at `PASSIVE_LEVEL`);
//! the table's spin lock is closure-scoped and never held across a call out
//! of this module. A pre-operation callback asks for the post-operation
//! callback (`FLT_PREOP_SUCCESS_WITH_CALLBACK`: the filter processes the
//! operation); the post-operation callback counts the completed operation
//! and publishes the counters to the loader (`payload_driver::publish`,
//! callable at `<= DISPATCH_LEVEL`), so `loaderctl status` shows exactly
//! the operations the filter processed.
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel_sys::flt::{FLTFL_POST_OPERATION_DRAINING, FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_SUCCESS_WITH_CALLBACK};
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::pool::PoolBlock;
use payload_driver::shared_abi::payload::PayloadReport;
use payload_driver::shared_abi::NtStatus;
use payload_driver::PAYLOAD_POOL;

/// Volumes tracked individually; further volumes share the last entry.
const VOLUMES: usize = 16;
/// One entry: volume pointer, creates, reads, writes.
const ENTRY_BYTES: usize = 32;

static TABLE: SpinLock<Option<PoolBlock<'static>>> = SpinLock::new(None);
static INSTANCES: AtomicU32 = AtomicU32::new(0);
static OPEN_CONTEXTS: AtomicU32 = AtomicU32::new(0);
static CREATES: AtomicU64 = AtomicU64::new(0);
static READS: AtomicU64 = AtomicU64::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Formerly in `DriverEntry`: allocate the per-volume table.
pub fn setup() -> Result<(), NtStatus> {
    if cfg!(feature = "fault-register-fails") {
        // Fault build: as if another filter held our altitude.
        return Err(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION);
    }
    let mut block = PAYLOAD_POOL.alloc(VOLUMES * ENTRY_BYTES).ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
    block.as_mut_bytes().fill(0);
    TABLE.with(|t| *t = Some(block));
    if cfg!(feature = "fault-hang-teardown") {
        // Fault build: a file stays open (seed 002's \TSCLIENT\SCARD\2).
        OPEN_CONTEXTS.store(1, Ordering::Relaxed);
    }
    Ok(())
}

/// The totals imported with the snapshot of the previous generation's
/// state, so the final import adds only what it counted after it.
static SNAPSHOT: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
/// Schema of the state blob: three little-endian `u64` totals (creates,
/// reads, writes). (The `state-schema-2` fault build says 2: its import of
/// a schema 1 blob is refused.)
pub const STATE_SCHEMA: u32 = if cfg!(feature = "state-schema-2") { 2 } else { 1 };
const STATE_BYTES: usize = 24;

/// The state export: the three totals.
pub fn export_state(buf: &mut [u8]) -> Result<usize, (NtStatus, usize)> {
    let Some(out) = buf.get_mut(..STATE_BYTES) else { return Err((NtStatus::BUFFER_TOO_SMALL, STATE_BYTES)) };
    for (chunk, total) in out.chunks_exact_mut(8).zip([&CREATES, &READS, &WRITES]) {
        chunk.copy_from_slice(&total.load(Ordering::Relaxed).to_le_bytes());
    }
    Ok(STATE_BYTES)
}

/// The state import: the snapshot replaces the totals (this generation has
/// processed nothing yet); the final state adds what the old generation
/// counted after its snapshot.
pub fn import_state(data: &[u8], final_state: bool) -> Result<(), NtStatus> {
    if data.len() != STATE_BYTES {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    for ((chunk, total), snapshot) in data.chunks_exact(8).zip([&CREATES, &READS, &WRITES]).zip(&SNAPSHOT) {
        let value = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).map_err(|_| NtStatus::INFO_LENGTH_MISMATCH)?);
        if final_state {
            total.fetch_add(value.saturating_sub(snapshot.load(Ordering::Relaxed)), Ordering::Relaxed);
        } else {
            total.store(value, Ordering::Relaxed);
            snapshot.store(value, Ordering::Relaxed);
        }
    }
    // The loader shows the carried totals at once, not at the next operation.
    payload_driver::publish();
    Ok(())
}

/// Formerly in `FilterUnloadCallback`: free the table.
pub fn cleanup() {
    if cfg!(feature = "fault-hang-teardown") {
        // The open file keeps the instance draining for a while.
        hang_while_file_open();
    }
    let block = TABLE.with(Option::take);
    drop(block);
}

fn hang_while_file_open() {
    static NEVER: kernel_sys::wrap::event::Event = kernel_sys::wrap::event::Event::notification(false);
    // 8 s: longer than the loader's bound in the tests, short enough to end.
    let _ = NEVER.wait_ms(8_000);
    OPEN_CONTEXTS.store(0, Ordering::Relaxed);
}

pub fn report(r: &mut PayloadReport) {
    r.instances = INSTANCES.load(Ordering::Relaxed);
    r.open_contexts = OPEN_CONTEXTS.load(Ordering::Relaxed);
    r.creates = CREATES.load(Ordering::Relaxed);
    r.reads = READS.load(Ordering::Relaxed);
    r.writes = WRITES.load(Ordering::Relaxed);
}

pub fn shutdown() {
    // Nothing to persist: the counters are informational.
}

/// Adds one to column `col` (1 create, 2 read, 3 write) of `volume`'s entry.
fn count(volume: usize, col: usize) {
    TABLE.with(|t| {
        let Some(block) = t.as_mut() else { return };
        let bytes = block.as_mut_bytes();
        let mut chosen = VOLUMES - 1;
        for i in 0..VOLUMES {
            let key = read_u64(bytes, i * ENTRY_BYTES);
            if key == volume as u64 || key == 0 {
                if key == 0 {
                    write_u64(bytes, i * ENTRY_BYTES, volume as u64);
                }
                chosen = i;
                break;
            }
        }
        let at = chosen * ENTRY_BYTES + col * 8;
        write_u64(bytes, at, read_u64(bytes, at).wrapping_add(1));
    });
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

fn write_u64(bytes: &mut [u8], at: usize, v: u64) {
    if let Some(s) = bytes.get_mut(at..at + 8) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// `FLT_RELATED_OBJECTS::Volume` (offset 0x10 on x64).
fn volume_of(objects: *const c_void) -> usize {
    if objects.is_null() {
        return 0;
    }
    // SAFETY: FltMgr passes a valid FLT_RELATED_OBJECTS; Volume is at 0x10.
    let volume = unsafe { objects.cast::<u8>().add(0x10) };
    // SAFETY: as above, a pointer-sized field inside it.
    unsafe { volume.cast::<usize>().read_unaligned() }
}

macro_rules! counted_op {
    ($pre:ident, $post:ident, $total:ident, $col:expr) => {
        /// Pre-operation callback: the filter processes the operation, so it
        /// asks for the post-operation callback.
        pub unsafe extern "system" fn $pre(_data: *mut c_void, _objects: *const c_void, _ctx: *mut *mut c_void) -> i32 {
            FLT_PREOP_SUCCESS_WITH_CALLBACK
        }

        /// Post-operation callback: counts the completed operation and
        /// publishes the counters to the loader. Does nothing while the
        /// instance drains (`FLTFL_POST_OPERATION_DRAINING`).
        pub unsafe extern "system" fn $post(
            _data: *mut c_void,
            objects: *const c_void,
            _ctx: *mut c_void,
            flags: u32,
        ) -> i32 {
            if flags & FLTFL_POST_OPERATION_DRAINING == 0 {
                $total.fetch_add(1, Ordering::Relaxed);
                count(volume_of(objects), $col);
                payload_driver::publish();
            }
            FLT_POSTOP_FINISHED_PROCESSING
        }
    };
}
counted_op!(pre_create, post_create, CREATES, 1);
counted_op!(pre_read, post_read, READS, 2);
counted_op!(pre_write, post_write, WRITES, 3);

/// `InstanceSetupCallback`: attach to every volume.
pub unsafe extern "system" fn instance_setup(
    _objects: *const c_void,
    _flags: u32,
    _device_type: u32,
    _fs_type: u32,
) -> i32 {
    INSTANCES.fetch_add(1, Ordering::Relaxed);
    NtStatus::SUCCESS.0
}

/// `InstanceTeardownCompleteCallback`.
pub unsafe extern "system" fn instance_teardown_complete(_objects: *const c_void, _reason: u32) {
    INSTANCES.fetch_sub(1, Ordering::Relaxed);
}
