//! What the loader reports: per-slot records, operation outcomes and the
//! `IOCTL_LOADER_QUERY_STATUS` snapshot.
//!
//! Owns only bookkeeping types and their conversion to the ABI structs.
//! Must never decide anything: the rules are in [`crate::loader`].
use crate::loader::{slot_word, Loader, LoaderState};
use crate::platform::{LoaderPlatform, Slot};
use shared_abi::control::{ControlReply, LoaderStatus, SlotState, SlotStatus, SLOT_COUNT};
use shared_abi::payload::{PayloadReport, NAME_CHARS};
use shared_abi::NtStatus;

/// What the loader knows about one slot.
#[derive(Debug)]
pub struct SlotRecord<I> {
    pub(crate) state: SlotState,
    /// The loader's reference on the image, from right after `ZwLoadDriver`
    /// until the retire worker releases it.
    pub(crate) image: Option<I>,
    /// The descriptor passed the check: the teardown entry may be called.
    pub(crate) may_call_teardown: bool,
    /// Negative control `ReleaseImageEarly` already dropped the reference.
    pub(crate) released_early: bool,
    /// A retire worker owns this slot until it sets "retired".
    pub(crate) worker_running: bool,
    pub(crate) payload_version: u32,
    pub(crate) name: [u16; NAME_CHARS],
    pub(crate) registered_since: u64,
    pub(crate) state_since: u64,
    pub(crate) last_status: i32,
    pub(crate) last_op: u32,
    pub(crate) report_time: u64,
    pub(crate) report: PayloadReport,
}

impl<I: Copy> SlotRecord<I> {
    pub(crate) const fn new() -> Self {
        SlotRecord {
            state: SlotState::EMPTY,
            image: None,
            may_call_teardown: false,
            released_early: false,
            worker_running: false,
            payload_version: 0,
            name: [0; NAME_CHARS],
            registered_since: 0,
            state_since: 0,
            last_status: 0,
            last_op: 0,
            report_time: 0,
            report: PayloadReport {
                size: 0,
                phase: 0,
                instances: 0,
                open_contexts: 0,
                creates: 0,
                reads: 0,
                writes: 0,
                pool_outstanding: 0,
            },
        }
    }

    /// Forgets the previous payload of the slot before a new load.
    pub(crate) fn clear_payload(&mut self) {
        let (state, since, status, op) = (self.state, self.state_since, self.last_status, self.last_op);
        *self = SlotRecord::new();
        self.state = state;
        self.state_since = since;
        self.last_status = status;
        self.last_op = op;
    }

    /// The image the loader holds a reference on, if any.
    #[must_use]
    pub fn image(&self) -> Option<I> {
        self.image
    }

    fn to_abi(&self) -> SlotStatus {
        SlotStatus {
            state: self.state.0,
            payload_version: self.payload_version,
            service: [0; NAME_CHARS],
            name: self.name,
            registered_since: self.registered_since,
            state_since: self.state_since,
            last_status: self.last_status,
            last_op: self.last_op,
            report_time: self.report_time,
            report: self.report,
        }
    }
}

/// How a control operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpOutcome {
    /// The status the caller gets.
    pub status: NtStatus,
    /// The active slot afterwards.
    pub active: Option<Slot>,
    /// `shared_abi::control::REPLY_OLD_SLOT_STUCK` and friends.
    pub flags: u32,
}

impl OpOutcome {
    /// The reply `IOCTL_LOADER_*` returns.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)] // 16 bytes
    pub fn to_reply(&self) -> ControlReply {
        ControlReply {
            size: core::mem::size_of::<ControlReply>() as u32,
            status: self.status.0,
            active_slot: slot_word(self.active),
            flags: self.flags,
        }
    }
}

impl<I: Copy> LoaderState<I> {
    /// The `IOCTL_LOADER_QUERY_STATUS` snapshot. The platform fills in what
    /// the protocol does not know (service names, pool counts).
    #[must_use]
    #[allow(clippy::cast_possible_truncation)] // 512 bytes
    pub fn snapshot(&self, now: u64) -> LoaderStatus {
        let mut slots = [SlotStatus::default(); SLOT_COUNT];
        for (out, record) in slots.iter_mut().zip(self.slots.iter()) {
            *out = record.to_abi();
        }
        LoaderStatus {
            size: core::mem::size_of::<LoaderStatus>() as u32,
            abi_major: shared_abi::ABI_MAJOR,
            abi_minor: shared_abi::ABI_MINOR,
            active_slot: slot_word(self.active),
            persisted_slot: slot_word(self.persisted),
            busy: u32::from(self.busy),
            unload_timeout_ms: self.unload_timeout_ms,
            now,
            last_error: self.last_error,
            loader_pool: shared_abi::control::PoolCount::default(),
            slots,
        }
    }

    /// The record of `slot`.
    #[must_use]
    pub fn slot(&self, slot: Slot) -> Option<&SlotRecord<I>> {
        self.slots.get(slot)
    }
}

impl<P: LoaderPlatform> Loader<P> {
    /// The status snapshot (service names and pool counts left zero).
    pub fn status(&self) -> LoaderStatus {
        let now = self.platform().now();
        self.platform().with_state(|s| s.snapshot(now))
    }
}
