//! The control interface of the test world's Filter Manager (`fltmgr.sys`
//! from `tests/fltmgr`) and of its tool `fltsimctl.exe`.
//!
//! Only ABI lives here, as in `shared-abi`: `#[repr(C)]` structs of plain
//! integers (every bit pattern is a valid value, so both sides may copy
//! them to and from the IOCTL buffer), a size field first, constants, and
//! the layouts asserted. Every code is `METHOD_BUFFERED`. None of this is
//! product: the simulator never goes into `target/package/x64/`.
#![no_std]
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};
pub use shared_abi::control::IoctlCode;
use shared_abi::control::{FILE_DEVICE_UNKNOWN, FILE_READ_ACCESS, FILE_WRITE_ACCESS, METHOD_BUFFERED};
use static_assertions::const_assert_eq;

/// Kernel name of the simulator's control device.
pub const DEVICE_NAME: &str = "\\Device\\FltSim";
/// Its symbolic link.
pub const DOS_DEVICE_NAME: &str = "\\DosDevices\\FltSim";
/// Win32 path of the control device.
pub const WIN32_DEVICE_PATH: &str = "\\\\.\\FltSim";
/// [`Snapshot::version`].
pub const SIM_ABI_VERSION: u32 = 2;

/// Filters the simulator holds at once (registered or kept for display).
pub const MAX_FILTERS: usize = 16;
/// Simulated volumes.
pub const VOLUMES: usize = 2;
/// Instance slots: one per filter and volume.
pub const MAX_INSTANCES: usize = MAX_FILTERS * VOLUMES;
/// Violations kept with details (all are counted).
pub const MAX_VIOLATION_RECORDS: usize = 16;
/// Files opened with [`IOCTL_SIM_OPEN`] at once.
pub const MAX_OPEN_FILES: usize = 8;
/// Injector threads at most.
pub const MAX_INJECT_THREADS: u32 = 16;
/// UTF-16 units of a filter (service) name, NUL padded.
pub const NAME_CHARS: usize = 32;
/// UTF-16 units of a file name, NUL padded.
pub const PATH_CHARS: usize = 64;

/// The simulated volumes: device name, as `FltGetVolumeName` returns it.
pub const VOLUME_NAMES: [&str; VOLUMES] = ["\\Device\\HarddiskVolume1", "\\Device\\Mup"];
/// Short names for the tool's `--volume`.
pub const VOLUME_SHORT: [&str; VOLUMES] = ["c", "mup"];
/// `VOLUME_NAMES[VOLUME_C]`: an NTFS disk volume.
pub const VOLUME_C: u32 = 0;
/// `VOLUME_NAMES[VOLUME_MUP]`: the network redirector (`\TSCLIENT\SCARD\2` lives there).
pub const VOLUME_MUP: u32 = 1;

/// Operation kinds the simulator delivers; their index in the per-filter counters.
pub const OP_CREATE: u32 = 0;
pub const OP_READ: u32 = 1;
pub const OP_WRITE: u32 = 2;
pub const OP_CLEANUP: u32 = 3;
pub const OP_CLOSE: u32 = 4;
/// Number of operation kinds.
pub const OP_KINDS: usize = 5;
/// [`InjectRequest::kind`]: creates, reads and writes in turn.
pub const OP_MIX: u32 = 0x100;
/// `IRP_MJ_*` of each kind.
pub const OP_MAJOR: [u8; OP_KINDS] = [0x00, 0x03, 0x04, 0x12, 0x02];
/// Lower-case names of the kinds.
pub const OP_NAMES: [&str; OP_KINDS] = ["create", "read", "write", "cleanup", "close"];

const fn code(function: u32, access: u32) -> IoctlCode {
    IoctlCode::new(FILE_DEVICE_UNKNOWN, function, METHOD_BUFFERED, access)
}

/// Output: [`Snapshot`] (filters, instances, the verifier's counts, and the
/// state of the injection, the job and the race).
pub const IOCTL_SIM_QUERY: IoctlCode = code(0x900, FILE_READ_ACCESS);
/// Zeroes the verifier's counts and per-filter counters (not the states).
pub const IOCTL_SIM_RESET: IoctlCode = code(0x901, FILE_WRITE_ACCESS);
/// Input: [`InjectRequest`]. Starts injector threads; progress in [`Snapshot::inject`].
pub const IOCTL_SIM_INJECT: IoctlCode = code(0x902, FILE_WRITE_ACCESS);
/// Stops the injector threads and waits for them.
pub const IOCTL_SIM_INJECT_STOP: IoctlCode = code(0x903, FILE_WRITE_ACCESS);
/// Input: [`FilterRequest`] (name, [`FLAG_MANDATORY`]). Starts the unload
/// job; progress in [`Snapshot::job`].
pub const IOCTL_SIM_UNLOAD: IoctlCode = code(0x904, FILE_WRITE_ACCESS);
/// Input: [`FilterRequest`] (name, volume). Starts the detach job.
pub const IOCTL_SIM_DETACH: IoctlCode = code(0x905, FILE_WRITE_ACCESS);
/// Input: [`FilterRequest`] (name, or [`FLAG_DISARM`]). Arms the Windows 7
/// race for the filter's next `FltRegisterFilter`; state in [`Snapshot::race`].
pub const IOCTL_SIM_ARM_RACE: IoctlCode = code(0x906, FILE_WRITE_ACCESS);
/// Input: [`FileRequest`] (volume, name). Output: [`FileReply`]. A create
/// whose file stays open until [`IOCTL_SIM_CLOSE`].
pub const IOCTL_SIM_OPEN: IoctlCode = code(0x907, FILE_WRITE_ACCESS);
/// Input: [`FileRequest`] (id). Cleanup and close of an open file.
pub const IOCTL_SIM_CLOSE: IoctlCode = code(0x908, FILE_WRITE_ACCESS);

/// [`FilterRequest::flags`]: a mandatory unload (`sc stop`, `ZwUnloadDriver`).
pub const FLAG_MANDATORY: u32 = 0x1;
/// [`FilterRequest::flags`] for [`IOCTL_SIM_ARM_RACE`]: disarm instead.
pub const FLAG_DISARM: u32 = 0x2;

/// [`InjectRequest::flags`]: the request's `n`-th operation goes to byte
/// range `k = n % OFFSET_WINDOW`, at offset `k * 2 * length` (a gap after
/// each range, so no two ranges touch). The first [`OFFSET_WINDOW`]
/// operations each have a range of their own; with `n` operations on one
/// file, exactly `min(n, OFFSET_WINDOW)` ranges are written, which a
/// change tracker's bounded table (1,024 ranges per file) holds exactly.
pub const INJECT_UNIQUE_OFFSETS: u32 = 0x1;
/// Distinct byte ranges of [`INJECT_UNIQUE_OFFSETS`].
pub const OFFSET_WINDOW: u64 = 1000;

/// Input of [`IOCTL_SIM_INJECT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InjectRequest {
    pub size: u32,
    /// `OP_*` or [`OP_MIX`].
    pub kind: u32,
    /// Injector threads, 1..=[`MAX_INJECT_THREADS`].
    pub threads: u32,
    /// `VOLUME_*`.
    pub volume: u32,
    /// Operations in all; 0: until [`IOCTL_SIM_INJECT_STOP`].
    pub count: u64,
    /// Bytes per read or write (at most 512 are backed by a buffer).
    pub length: u32,
    /// `INJECT_*` flags.
    pub flags: u32,
    /// File name on the volume (`\dir\file`); empty: one file per thread.
    pub name: [u16; PATH_CHARS],
}

/// Input of the unload, detach and race requests.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterRequest {
    pub size: u32,
    /// `FLAG_*`.
    pub flags: u32,
    /// `VOLUME_*` (detach).
    pub volume: u32,
    pub reserved: u32,
    /// The filter's name (its service name).
    pub name: [u16; NAME_CHARS],
}

/// Input of [`IOCTL_SIM_OPEN`] and [`IOCTL_SIM_CLOSE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRequest {
    pub size: u32,
    pub volume: u32,
    /// The file to close ([`FileReply::id`]).
    pub id: u32,
    pub reserved: u32,
    pub name: [u16; PATH_CHARS],
}

/// Output of [`IOCTL_SIM_OPEN`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileReply {
    pub size: u32,
    /// The create's final status.
    pub status: i32,
    pub id: u32,
    pub reserved: u32,
}

/// [`FilterInfo::state`] values.
pub const FILTER_FREE: u32 = 0;
pub const FILTER_REGISTERED: u32 = 1;
pub const FILTER_FILTERING: u32 = 2;
pub const FILTER_UNREGISTERING: u32 = 3;
pub const FILTER_UNREGISTERED: u32 = 4;
/// Lower-case names of the filter states.
pub const FILTER_STATE_NAMES: [&str; 5] = ["free", "registered", "filtering", "unregistering", "unregistered"];

/// [`InstanceInfo::state`] values.
pub const INSTANCE_FREE: u32 = 0;
pub const INSTANCE_SETTING_UP: u32 = 1;
pub const INSTANCE_ATTACHED: u32 = 2;
pub const INSTANCE_TEARING_DOWN: u32 = 3;
/// Lower-case names of the instance states.
pub const INSTANCE_STATE_NAMES: [&str; 4] = ["free", "setting-up", "attached", "tearing-down"];

/// One filter, as `fltmc filters` would show it, with its counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterInfo {
    pub name: [u16; NAME_CHARS],
    /// The altitude as the registry spells it.
    pub altitude: [u16; 16],
    /// `FILTER_*`.
    pub state: u32,
    /// This registration's generation (every `FltRegisterFilter` gets a new one).
    pub generation: u32,
    /// 1 if the image exports `LoaderPayloadDescriptor` (a payload of the loader).
    pub is_payload: u32,
    /// `FLT_REGISTRATION::Version`.
    pub version: u32,
    pub image_base: u64,
    pub image_size: u64,
    /// Instances attached now.
    pub instances: u32,
    /// Callbacks in flight now (pre callbacks running, post callbacks owed).
    pub in_flight: u32,
    /// Callbacks in flight when its `FltUnregisterFilter` began (it waited for them).
    pub drained: u32,
    /// 1 once its `FilterUnloadCallback` returned (success, or mandatory).
    pub unload_callback_done: u32,
    /// Pre-operation callbacks called, per `OP_*`.
    pub pre: [u64; OP_KINDS],
    /// Post-operation callbacks called, per `OP_*`.
    pub post: [u64; OP_KINDS],
    /// Operations it processed (pre returned `SUCCESS_WITH_CALLBACK`,
    /// `SYNCHRONIZE` or `COMPLETE`).
    pub processed: u64,
    /// Contexts allocated and not yet freed.
    pub contexts: u64,
}

/// One instance, as `fltmc instances` would show it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    pub filter: [u16; NAME_CHARS],
    pub volume: u32,
    /// `INSTANCE_*`.
    pub state: u32,
    pub generation: u32,
    pub filter_generation: u32,
    pub in_flight: u32,
    /// Contexts tied to it not yet freed (an open file's stream context).
    pub contexts: u32,
}

/// Totals of the verifier.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Operations delivered.
    pub ops: u64,
    /// Operations no payload filter processed.
    pub unfiltered: u64,
    /// Operations two payload generations (or more) both processed.
    pub double: u64,
    /// Longest run of consecutive unfiltered operations ...
    pub max_gap_ops: u64,
    /// ... and the longest time from an unfiltered operation to the next
    /// processed one, in microseconds.
    pub max_gap_us: u64,
    /// Violations (see `VIOLATION_*`).
    pub violations: u64,
    pub registrations: u64,
    pub registrations_refused: u64,
    pub unregistrations: u64,
    /// Instances attached (`InstanceSetupCallback` accepted, or none registered).
    pub instance_setups: u64,
    /// Instance setups the filter declined (`STATUS_FLT_DO_NOT_ATTACH`).
    pub instance_setups_declined: u64,
    pub teardown_starts: u64,
    pub teardown_completes: u64,
    /// `FilterUnloadCallback` calls, and those that refused.
    pub unload_callbacks: u64,
    pub unload_refused: u64,
    /// `FltUnregisterFilter` calls that found callbacks in flight, and how many.
    pub unregister_waits: u64,
    pub waited_callbacks: u64,
    /// The simulator's `DriverUnload` hook ran (a driver unload of a filter).
    pub hooked_unloads: u64,
    /// A filter left registered by its mandatory `FilterUnloadCallback`,
    /// unregistered by the simulator.
    pub forced_unregisters: u64,
    pub contexts_allocated: u64,
    pub contexts_freed: u64,
    pub names_allocated: u64,
    pub names_freed: u64,
    /// Detach requests, and those refused by `InstanceQueryTeardown`.
    pub detaches: u64,
    pub detaches_refused: u64,
    /// Performance counter ticks per second (for the tool's arithmetic).
    pub qpc_frequency: u64,
    /// Operations delivered, per kind (`OP_*`).
    pub by_kind: [u64; OP_KINDS],
}

/// [`ViolationRecord::kind`] values.
/// A post-operation callback due after its filter's `FltUnregisterFilter` returned.
pub const VIOLATION_AFTER_UNREGISTER: u32 = 1;
/// A callback whose address lies in an unloaded image.
pub const VIOLATION_UNLOADED_IMAGE: u32 = 2;
/// A callback due into a filter whose `FilterUnloadCallback` already returned.
pub const VIOLATION_AFTER_UNLOAD_CALLBACK: u32 = 3;
/// `FltStartFiltering` on a filter that was unregistered (or being unloaded).
pub const VIOLATION_START_AFTER_UNLOAD: u32 = 4;
/// `FltUnregisterFilter` on a filter already unregistered.
pub const VIOLATION_UNREGISTER_TWICE: u32 = 5;
/// A callback still running when its filter's `FltUnregisterFilter` returned.
pub const VIOLATION_RUNNING_AFTER_UNREGISTER: u32 = 6;
/// A handle or context the simulator never gave out (or one already released).
pub const VIOLATION_BAD_OBJECT: u32 = 7;
/// A pre/post status the simulator does not implement (`PENDING`, `MORE_PROCESSING_REQUIRED`).
pub const VIOLATION_UNSUPPORTED_STATUS: u32 = 8;
/// Contexts of a filter still allocated when its `FltUnregisterFilter` returned.
pub const VIOLATION_LEAKED_CONTEXT: u32 = 9;
/// Names of the violation kinds, indexed by kind.
pub const VIOLATION_NAMES: [&str; 10] = [
    "none",
    "callback-after-unregister",
    "callback-into-unloaded-image",
    "callback-after-unload-callback",
    "start-filtering-after-unload",
    "unregister-twice",
    "callback-running-after-unregister",
    "bad-object",
    "unsupported-status",
    "leaked-context",
];

/// One violation, with the filter it concerns.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViolationRecord {
    /// `VIOLATION_*`.
    pub kind: u32,
    /// `OP_*`, or `u32::MAX` when no operation is involved.
    pub op: u32,
    pub generation: u32,
    pub reserved: u32,
    pub filter: [u16; NAME_CHARS],
}

/// [`InjectStatus::state`] values.
pub const INJECT_IDLE: u32 = 0;
pub const INJECT_RUNNING: u32 = 1;
pub const INJECT_DONE: u32 = 2;

/// The injector threads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectStatus {
    /// `INJECT_*`.
    pub state: u32,
    pub threads: u32,
    /// Operations asked for (0: until stopped).
    pub requested: u64,
    /// Operations delivered.
    pub done: u64,
    /// From the start to the last thread's end (or to now), in nanoseconds.
    pub elapsed_ns: u64,
}

/// [`JobStatus::kind`] values.
pub const JOB_NONE: u32 = 0;
pub const JOB_UNLOAD: u32 = 1;
pub const JOB_UNLOAD_MANDATORY: u32 = 2;
pub const JOB_DETACH: u32 = 3;
/// [`JobStatus::state`] values.
pub const JOB_IDLE: u32 = 0;
pub const JOB_RUNNING: u32 = 1;
pub const JOB_DONE: u32 = 2;

/// The last unload or detach request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobStatus {
    pub kind: u32,
    pub state: u32,
    /// Its outcome (the callback's refusal, `ZwUnloadDriver`'s status).
    pub status: i32,
    pub reserved: u32,
    /// Incremented by every request.
    pub seq: u64,
}

/// [`RaceStatus::state`] values.
pub const RACE_IDLE: u32 = 0;
pub const RACE_ARMED: u32 = 1;
pub const RACE_FIRED: u32 = 2;
pub const RACE_DONE: u32 = 3;

/// The armed race: "when the filter's `FltRegisterFilter` returns, call its
/// `FilterUnloadCallback` (mandatory) from another system thread".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaceStatus {
    /// `RACE_*`.
    pub state: u32,
    /// What the `FilterUnloadCallback` returned.
    pub callback_status: i32,
    /// 1 if `FltStartFiltering` had not been called when the callback began.
    pub before_start: u32,
    /// 1 if the filter was still registered when the callback returned.
    pub still_registered: u32,
    /// Incremented each time the race fires.
    pub fired: u64,
    pub target: [u16; NAME_CHARS],
}

/// A file opened with [`IOCTL_SIM_OPEN`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// 0: the entry is unused.
    pub id: u32,
    pub volume: u32,
    /// Stream contexts filters set on it.
    pub contexts: u32,
    pub reserved: u32,
    pub name: [u16; PATH_CHARS],
}

/// Output of [`IOCTL_SIM_QUERY`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub size: u32,
    /// [`SIM_ABI_VERSION`].
    pub version: u32,
    pub filter_count: u32,
    pub instance_count: u32,
    pub violation_count: u32,
    pub file_count: u32,
    pub totals: Totals,
    pub inject: InjectStatus,
    pub job: JobStatus,
    pub race: RaceStatus,
    pub violations: [ViolationRecord; MAX_VIOLATION_RECORDS],
    pub filters: [FilterInfo; MAX_FILTERS],
    pub instances: [InstanceInfo; MAX_INSTANCES],
    pub files: [FileInfo; MAX_OPEN_FILES],
}

/// `size_of::<T>()` as a `u32` size field.
///
/// # Panics
/// Never at run time: every use is on a struct far below 4 GiB; a larger
/// one fails to compile where the value is a constant.
#[must_use]
pub const fn size32<T>() -> u32 {
    let n = size_of::<T>();
    assert!(n <= u32::MAX as usize, "an ABI struct does not fit a u32 size field");
    #[allow(clippy::cast_possible_truncation)] // checked just above
    let n32 = n as u32;
    n32
}

/// `text` as NUL-padded UTF-16 (cut to `N - 1` units, so a NUL always ends it).
#[must_use]
pub fn utf16<const N: usize>(text: &str) -> [u16; N] {
    let mut out = [0u16; N];
    for (slot, unit) in out.iter_mut().take(N.saturating_sub(1)).zip(text.encode_utf16()) {
        *slot = unit;
    }
    out
}

/// The units of a NUL-padded name, up to its first NUL.
#[must_use]
pub fn units(name: &[u16]) -> &[u16] {
    let end = name.iter().position(|&u| u == 0).unwrap_or(name.len());
    name.get(..end).unwrap_or(&[])
}

impl Snapshot {
    /// An empty snapshot.
    #[must_use]
    pub const fn empty() -> Self {
        const F: FilterInfo = FilterInfo {
            name: [0; NAME_CHARS],
            altitude: [0; 16],
            state: 0,
            generation: 0,
            is_payload: 0,
            version: 0,
            image_base: 0,
            image_size: 0,
            instances: 0,
            in_flight: 0,
            drained: 0,
            unload_callback_done: 0,
            pre: [0; OP_KINDS],
            post: [0; OP_KINDS],
            processed: 0,
            contexts: 0,
        };
        const I: InstanceInfo = InstanceInfo {
            filter: [0; NAME_CHARS],
            volume: 0,
            state: 0,
            generation: 0,
            filter_generation: 0,
            in_flight: 0,
            contexts: 0,
        };
        const V: ViolationRecord =
            ViolationRecord { kind: 0, op: 0, generation: 0, reserved: 0, filter: [0; NAME_CHARS] };
        const FI: FileInfo = FileInfo { id: 0, volume: 0, contexts: 0, reserved: 0, name: [0; PATH_CHARS] };
        Snapshot {
            size: size32::<Snapshot>(),
            version: SIM_ABI_VERSION,
            filter_count: 0,
            instance_count: 0,
            violation_count: 0,
            file_count: 0,
            totals: Totals {
                ops: 0,
                unfiltered: 0,
                double: 0,
                max_gap_ops: 0,
                max_gap_us: 0,
                violations: 0,
                registrations: 0,
                registrations_refused: 0,
                unregistrations: 0,
                instance_setups: 0,
                instance_setups_declined: 0,
                teardown_starts: 0,
                teardown_completes: 0,
                unload_callbacks: 0,
                unload_refused: 0,
                unregister_waits: 0,
                waited_callbacks: 0,
                hooked_unloads: 0,
                forced_unregisters: 0,
                contexts_allocated: 0,
                contexts_freed: 0,
                names_allocated: 0,
                names_freed: 0,
                detaches: 0,
                detaches_refused: 0,
                qpc_frequency: 0,
                by_kind: [0; OP_KINDS],
            },
            inject: InjectStatus { state: 0, threads: 0, requested: 0, done: 0, elapsed_ns: 0 },
            job: JobStatus { kind: 0, state: 0, status: 0, reserved: 0, seq: 0 },
            race: RaceStatus {
                state: 0,
                callback_status: 0,
                before_start: 0,
                still_registered: 0,
                fired: 0,
                target: [0; NAME_CHARS],
            },
            violations: [V; MAX_VIOLATION_RECORDS],
            filters: [F; MAX_FILTERS],
            instances: [I; MAX_INSTANCES],
            files: [FI; MAX_OPEN_FILES],
        }
    }
}

const_assert_eq!(size_of::<InjectRequest>(), 32 + 2 * PATH_CHARS);
const_assert_eq!(offset_of!(InjectRequest, count), 16);
const_assert_eq!(offset_of!(InjectRequest, name), 32);
const_assert_eq!(size_of::<FilterRequest>(), 16 + 2 * NAME_CHARS);
const_assert_eq!(size_of::<FileRequest>(), 16 + 2 * PATH_CHARS);
const_assert_eq!(size_of::<FileReply>(), 16);
const_assert_eq!(size_of::<FilterInfo>(), 144 + 8 * (2 * OP_KINDS) + 16);
const_assert_eq!(offset_of!(FilterInfo, pre), 144);
const_assert_eq!(size_of::<InstanceInfo>(), 64 + 24);
const_assert_eq!(size_of::<Totals>(), (26 + OP_KINDS) * 8);
const_assert_eq!(size_of::<ViolationRecord>(), 16 + 2 * NAME_CHARS);
const_assert_eq!(size_of::<InjectStatus>(), 32);
const_assert_eq!(size_of::<JobStatus>(), 24);
const_assert_eq!(size_of::<RaceStatus>(), 24 + 2 * NAME_CHARS);
const_assert_eq!(size_of::<FileInfo>(), 16 + 2 * PATH_CHARS);
const_assert_eq!(offset_of!(Snapshot, totals), 24);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    #[test]
    fn names_round_trip_and_stay_nul_terminated() {
        let n: [u16; 8] = utf16("CounterFilterA");
        assert_eq!(n[7], 0);
        assert_eq!(units(&n).len(), 7);
        let m: [u16; NAME_CHARS] = utf16("NaiveFilter");
        assert_eq!(String::from_utf16_lossy(units(&m)), "NaiveFilter");
    }

    #[test]
    fn codes_are_buffered_and_distinct() {
        let all = [
            IOCTL_SIM_QUERY,
            IOCTL_SIM_RESET,
            IOCTL_SIM_INJECT,
            IOCTL_SIM_INJECT_STOP,
            IOCTL_SIM_UNLOAD,
            IOCTL_SIM_DETACH,
            IOCTL_SIM_ARM_RACE,
            IOCTL_SIM_OPEN,
            IOCTL_SIM_CLOSE,
        ];
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c.method(), METHOD_BUFFERED);
            assert!(all[i + 1..].iter().all(|o| o != c));
        }
        assert_eq!(Snapshot::empty().size as usize, size_of::<Snapshot>());
    }
}
