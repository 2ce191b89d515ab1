//! The loader's control device: IOCTL codes, their request and reply
//! structs, and the status snapshot.
//!
//! Every code is `METHOD_BUFFERED`. Mutating codes need write access, the
//! status code read access; the device itself admits only SYSTEM and
//! Administrators. Requests name a *slot*, never a path or a service name:
//! which images a slot loads is the loader's own admin-only configuration.
use crate::payload::{PayloadReport, NAME_CHARS};
use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

/// Kernel name of the control device.
pub const DEVICE_NAME: &str = "\\Device\\SerialLoader";
/// Kernel name of the symbolic link user mode opens.
pub const DOS_DEVICE_NAME: &str = "\\DosDevices\\SerialLoader";
/// Win32 path of the control device.
pub const WIN32_DEVICE_PATH: &str = "\\\\.\\SerialLoader";

/// Number of payload slots.
pub const SLOT_COUNT: usize = 2;
/// "No slot" / "the loader chooses".
pub const SLOT_NONE: u32 = u32::MAX;

/// `FILE_DEVICE_UNKNOWN`.
pub const FILE_DEVICE_UNKNOWN: u32 = 0x22;
/// `METHOD_BUFFERED`.
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_READ_ACCESS`.
pub const FILE_READ_ACCESS: u32 = 1;
/// `FILE_WRITE_ACCESS`.
pub const FILE_WRITE_ACCESS: u32 = 2;

/// A device I/O control code.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct IoctlCode(pub u32);

impl IoctlCode {
    /// `CTL_CODE(device_type, function, method, access)`.
    #[must_use]
    pub const fn new(device_type: u32, function: u32, method: u32, access: u32) -> Self {
        IoctlCode((device_type << 16) | (access << 14) | (function << 2) | method)
    }
    /// The transfer method (the low two bits).
    #[must_use]
    pub const fn method(self) -> u32 {
        self.0 & 3
    }
}

/// Reads a [`LoaderStatus`]. Input: none, or a [`ControlRequest`]. Output: [`LoaderStatus`].
pub const IOCTL_LOADER_QUERY_STATUS: IoctlCode =
    IoctlCode::new(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_READ_ACCESS);
/// Loads the configured image of the inactive slot (or `slot`), registers it,
/// then retires the active one. Input: [`ControlRequest`]. Output: [`ControlReply`].
pub const IOCTL_LOADER_UPGRADE: IoctlCode =
    IoctlCode::new(FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_WRITE_ACCESS);
/// Switches back to the previously active slot. Input: [`ControlRequest`]. Output: [`ControlReply`].
pub const IOCTL_LOADER_ROLLBACK: IoctlCode =
    IoctlCode::new(FILE_DEVICE_UNKNOWN, 0x802, METHOD_BUFFERED, FILE_WRITE_ACCESS);
/// Loads the persisted active slot when no payload is active. Input: [`ControlRequest`].
pub const IOCTL_LOADER_LOAD: IoctlCode = IoctlCode::new(FILE_DEVICE_UNKNOWN, 0x803, METHOD_BUFFERED, FILE_WRITE_ACCESS);
/// Retires the active payload and keeps the loader running. Input: [`ControlRequest`].
pub const IOCTL_LOADER_UNLOAD: IoctlCode =
    IoctlCode::new(FILE_DEVICE_UNKNOWN, 0x804, METHOD_BUFFERED, FILE_WRITE_ACCESS);

/// Every control code, for tests and the malformed-request suite.
pub const ALL_IOCTLS: [IoctlCode; 5] =
    [IOCTL_LOADER_QUERY_STATUS, IOCTL_LOADER_UPGRADE, IOCTL_LOADER_ROLLBACK, IOCTL_LOADER_LOAD, IOCTL_LOADER_UNLOAD];

/// Input of every mutating control code.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlRequest {
    /// `size_of::<ControlRequest>()`.
    pub size: u32,
    /// [`crate::ABI_MAJOR`] of the caller.
    pub abi_major: u16,
    /// [`crate::ABI_MINOR`] of the caller.
    pub abi_minor: u16,
    /// Target slot, or [`SLOT_NONE`] to let the loader choose.
    pub slot: u32,
    /// Reserved, zero.
    pub flags: u32,
}

/// Output of every mutating control code that succeeded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlReply {
    /// `size_of::<ControlReply>()`.
    pub size: u32,
    /// Outcome, an `NTSTATUS` (also the IRP's status).
    pub status: i32,
    /// The active slot afterwards, or [`SLOT_NONE`].
    pub active_slot: u32,
    /// [`REPLY_OLD_SLOT_STUCK`] and friends.
    pub flags: u32,
}

/// The new payload is active, but the old one has not finished unloading
/// within the bound; `loaderctl diagnose` tells why.
pub const REPLY_OLD_SLOT_STUCK: u32 = 1;
/// The operation took effect, but writing `Parameters\ActiveSlot` failed:
/// the next start will load what was persisted before (`last_error` says
/// why). Since ABI 1.1.
pub const REPLY_NOT_PERSISTED: u32 = 2;

/// A slot's state, as the loader sees it.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SlotState(pub u32);
impl SlotState {
    pub const EMPTY: SlotState = SlotState(0);
    pub const LOADING: SlotState = SlotState(1);
    pub const REGISTERING: SlotState = SlotState(2);
    pub const ACTIVE: SlotState = SlotState(3);
    pub const RETIRING: SlotState = SlotState(4);
    pub const STUCK: SlotState = SlotState(5);
    pub const FAILED: SlotState = SlotState(6);
    /// The payload was torn down from outside the loader (`sc stop` of its
    /// service, a foreign `ZwUnloadDriver`): nothing of it filters, and the
    /// loader has dropped (or is dropping) its reference. `load` loads it again.
    pub const STOPPED: SlotState = SlotState(7);

    /// Lower-case name for tables and JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SlotState::EMPTY => "empty",
            SlotState::LOADING => "loading",
            SlotState::REGISTERING => "registering",
            SlotState::ACTIVE => "active",
            SlotState::RETIRING => "retiring",
            SlotState::STUCK => "stuck",
            SlotState::FAILED => "failed",
            SlotState::STOPPED => "stopped",
            _ => "unknown",
        }
    }
}

/// Which control operation an error or a state belongs to.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OpKind(pub u32);
impl OpKind {
    pub const NONE: OpKind = OpKind(0);
    pub const START: OpKind = OpKind(1);
    pub const LOAD: OpKind = OpKind(2);
    pub const UPGRADE: OpKind = OpKind(3);
    pub const ROLLBACK: OpKind = OpKind(4);
    pub const UNLOAD: OpKind = OpKind(5);
    pub const STOP: OpKind = OpKind(6);
    pub const CONTROL: OpKind = OpKind(7);
    /// System shutdown (`IRP_MJ_SHUTDOWN`): the payload's shutdown hook.
    pub const SHUTDOWN: OpKind = OpKind(8);
    /// Something outside the loader (`sc stop` of a payload service).
    pub const EXTERNAL: OpKind = OpKind(9);

    /// Lower-case name for tables and JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OpKind::NONE => "none",
            OpKind::START => "start",
            OpKind::LOAD => "load",
            OpKind::UPGRADE => "upgrade",
            OpKind::ROLLBACK => "rollback",
            OpKind::UNLOAD => "unload",
            OpKind::STOP => "stop",
            OpKind::CONTROL => "control",
            OpKind::SHUTDOWN => "shutdown",
            OpKind::EXTERNAL => "external",
            _ => "unknown",
        }
    }
}

/// The last failure the loader saw.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorRecord {
    /// The `NTSTATUS`; 0 when there was none.
    pub status: i32,
    /// [`OpKind`] value.
    pub op: u32,
    /// Slot concerned, or [`SLOT_NONE`].
    pub slot: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// System time (100 ns units since 1601) when it happened.
    pub time: u64,
}

/// Allocation counts for one pool tag.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCount {
    /// The tag.
    pub tag: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Allocations made.
    pub allocs: u64,
    /// Allocations freed.
    pub frees: u64,
}

/// One slot in a [`LoaderStatus`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotStatus {
    /// [`SlotState`] value.
    pub state: u32,
    /// The payload's `payload_version`, 0 if none loaded.
    pub payload_version: u32,
    /// Service name of the slot, from the loader's `Parameters`.
    pub service: [u16; NAME_CHARS],
    /// Display name from the payload's descriptor.
    pub name: [u16; NAME_CHARS],
    /// System time the registration succeeded, 0 if not registered.
    pub registered_since: u64,
    /// System time of the last state change.
    pub state_since: u64,
    /// Last `NTSTATUS` an operation on this slot ended with.
    pub last_status: i32,
    /// [`OpKind`] of that operation.
    pub last_op: u32,
    /// System time of the payload's last report, 0 if none.
    pub report_time: u64,
    /// What the payload last reported.
    pub report: PayloadReport,
}

impl Default for SlotStatus {
    fn default() -> Self {
        SlotStatus {
            state: 0,
            payload_version: 0,
            service: [0; NAME_CHARS],
            name: [0; NAME_CHARS],
            registered_since: 0,
            state_since: 0,
            last_status: 0,
            last_op: 0,
            report_time: 0,
            report: PayloadReport::default(),
        }
    }
}

/// Output of [`IOCTL_LOADER_QUERY_STATUS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoaderStatus {
    /// `size_of::<LoaderStatus>()`.
    pub size: u32,
    /// Loader's [`crate::ABI_MAJOR`].
    pub abi_major: u16,
    /// Loader's [`crate::ABI_MINOR`].
    pub abi_minor: u16,
    /// The active slot, or [`SLOT_NONE`].
    pub active_slot: u32,
    /// The active slot as persisted in `Parameters`, or [`SLOT_NONE`].
    pub persisted_slot: u32,
    /// Nonzero while a control operation runs.
    pub busy: u32,
    /// The bound on a payload's teardown, in milliseconds.
    pub unload_timeout_ms: u32,
    /// System time when the snapshot was taken.
    pub now: u64,
    /// The last failure.
    pub last_error: ErrorRecord,
    /// The loader's own pool use.
    pub loader_pool: PoolCount,
    /// The slots, A then B.
    pub slots: [SlotStatus; SLOT_COUNT],
    /// ABI 1.2: the last upgrade's handover. A 1.1 reader asks for 512
    /// bytes and gets the snapshot without it.
    pub handover: HandoverStatus,
}

/// `LoaderStatus::size` of a 1.0/1.1 loader, and the least a reader may ask
/// for.
pub const STATUS_SIZE_1_1: usize = 512;

/// How the last upgrade (or rollback) handed the operations over.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HandoverMode(pub u32);
impl HandoverMode {
    /// No upgrade since the loader started.
    pub const NOT_YET: HandoverMode = HandoverMode(0);
    /// Exactly once: the owner word and the marks (both generations ABI 1.2+).
    pub const EXACT: HandoverMode = HandoverMode(1);
    /// None: one of the two payloads predates the handover (ABI < 1.2), so
    /// while both were attached some operations may have been processed by
    /// both or by neither.
    pub const NONE_PAYLOAD_TOO_OLD: HandoverMode = HandoverMode(2);
    /// Started exactly once, but the old generation still held operations
    /// when `UnloadTimeoutMs` ran out: the new one took over regardless, so
    /// an operation the old one held may have been processed by both.
    pub const NOT_DRAINED: HandoverMode = HandoverMode(3);

    /// What `loaderctl status` prints.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            HandoverMode::NOT_YET => "no upgrade yet",
            HandoverMode::EXACT => "exactly once",
            HandoverMode::NONE_PAYLOAD_TOO_OLD => "none (payload too old)",
            HandoverMode::NOT_DRAINED => "not exact (old generation did not drain)",
            _ => "unknown",
        }
    }
}

/// The handover part of [`LoaderStatus`] (ABI 1.2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandoverStatus {
    /// [`HandoverMode`] of the last upgrade or rollback.
    pub mode: u32,
    /// How its state transfer ended: `STATUS_SUCCESS`, the import's refusal,
    /// or `STATUS_NOT_SUPPORTED` when a payload has no state entries.
    pub last_status: i32,
    /// The generation that owns the operations now (0: none).
    pub owner_generation: u32,
    /// State blobs carried from one generation to the next since start.
    pub state_transfers: u32,
    /// Imports refused (each rolled its upgrade back).
    pub refused: u32,
    /// Marks refused for want of room since the loader started: each time
    /// the old generation waited 1 ms and asked again (still exactly once;
    /// the mark table's pressure).
    pub unmarked: u32,
    /// Bytes of the last state blob.
    pub last_state_bytes: u32,
    /// Upgrades and rollbacks that started an exact handover since start.
    pub exact_handovers: u32,
}

const_assert_eq!(size_of::<ControlRequest>(), 16);
const_assert_eq!(size_of::<ControlReply>(), 16);
const_assert_eq!(size_of::<ErrorRecord>(), 24);
const_assert_eq!(size_of::<PoolCount>(), 24);
const_assert_eq!(size_of::<SlotStatus>(), 216);
const_assert_eq!(offset_of!(SlotStatus, registered_since), 136);
const_assert_eq!(offset_of!(SlotStatus, report), 168);
const_assert_eq!(offset_of!(LoaderStatus, last_error), 32);
const_assert_eq!(offset_of!(LoaderStatus, slots), 80);
const_assert_eq!(offset_of!(LoaderStatus, handover), STATUS_SIZE_1_1);
const_assert_eq!(size_of::<HandoverStatus>(), 32);
const_assert_eq!(size_of::<LoaderStatus>(), 544);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_codes_are_buffered_and_distinct() {
        for (i, c) in ALL_IOCTLS.iter().enumerate() {
            assert_eq!(c.method(), METHOD_BUFFERED);
            assert_eq!(c.0 >> 16, FILE_DEVICE_UNKNOWN);
            for d in &ALL_IOCTLS[i + 1..] {
                assert_ne!(c, d);
            }
        }
        // CTL_CODE(0x22, 0x800, 0, 1) as the C macro computes it.
        assert_eq!(IOCTL_LOADER_QUERY_STATUS.0, 0x0022_6000);
    }
}
