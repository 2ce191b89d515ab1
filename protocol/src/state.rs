//! What the loader knows: its state, per-slot records, operation outcomes
//! and the `IOCTL_LOADER_QUERY_STATUS` snapshot.
//!
//! Owns only bookkeeping types and their conversion to the ABI structs.
//! Must never decide anything: the rules are in [`crate::loader`].
use crate::handover::Plan;
use loader_parsers::payload::CheckedPayload;
use shared_abi::control::SLOT_NONE;
use shared_abi::control::{
    ControlReply, ErrorRecord, HandoverStatus, LoaderStatus, OpKind, PoolCount, SlotState, SlotStatus,
};
use shared_abi::payload::{PayloadReport, NAME_CHARS};
use shared_abi::{NtStatus, PerSlot, Slot};

/// What the loader knows about one slot.
#[derive(Debug, Clone, Copy)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one slot
pub struct SlotRecord<I> {
    pub(crate) state: SlotState,
    /// The loader's reference on the image, from right after `ZwLoadDriver`
    /// until the retirement releases it.
    pub(crate) image: Option<I>,
    /// The image passed the check: its entry points, as data.
    pub(crate) checked: Option<CheckedPayload>,
    /// The teardown entry may be called (the check passed, and nobody
    /// outside the loader tore the payload down).
    pub(crate) may_call_teardown: bool,
    /// The payload was torn down from outside: whoever did it unloads the
    /// driver, so the retirement only drops the loader's reference.
    pub(crate) unloaded_by_foreign: bool,
    /// The payload reported a teardown before the loader made it active.
    pub(crate) teardown_reported: bool,
    /// The payload reported its teardown finished: it calls the loader no
    /// more (only that report's own return is still on its way).
    pub(crate) torn_down_reported: bool,
    /// Negative control `ReleaseImageEarly` already dropped the reference.
    pub(crate) released_early: bool,
    /// A retire worker owns this slot until it sets "retired".
    pub(crate) worker_running: bool,
    /// The loader's own stop must finish this retirement (the worker found
    /// the loader stopping and left the unload to it).
    pub(crate) handed_to_stop: bool,
    /// The payload's generation (nonzero once it was given one).
    pub(crate) generation: u16,
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
            checked: None,
            may_call_teardown: false,
            unloaded_by_foreign: false,
            teardown_reported: false,
            torn_down_reported: false,
            released_early: false,
            worker_running: false,
            handed_to_stop: false,
            generation: 0,
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

    /// The slot's state.
    #[must_use]
    pub fn state(&self) -> SlotState {
        self.state
    }

    /// The image the loader holds a reference on, if any.
    #[must_use]
    pub fn image(&self) -> Option<I> {
        self.image
    }

    /// A retire worker still owns the slot.
    #[must_use]
    pub fn worker_running(&self) -> bool {
        self.worker_running
    }

    /// The checked view of the slot's payload, if it passed the check.
    #[must_use]
    pub fn checked(&self) -> Option<&CheckedPayload> {
        self.checked.as_ref()
    }

    /// The loader holds nothing of this slot and no worker owns it: a new
    /// image may be loaded into it.
    #[must_use]
    pub fn is_vacant(&self) -> bool {
        matches!(self.state, SlotState::EMPTY | SlotState::STOPPED) && self.image.is_none() && !self.worker_running
    }

    fn to_abi(self) -> SlotStatus {
        let (version, name) = self.checked.map_or((0, [0; NAME_CHARS]), |c| (c.payload_version, c.name));
        SlotStatus {
            state: self.state.0,
            payload_version: version,
            service: [0; NAME_CHARS],
            name,
            registered_since: self.registered_since,
            state_since: self.state_since,
            last_status: self.last_status,
            last_op: self.last_op,
            report_time: self.report_time,
            report: self.report,
        }
    }
}

/// Everything the loader knows, behind the platform's lock.
#[derive(Debug)]
pub struct LoaderState<I> {
    /// A control operation is running.
    pub(crate) busy: bool,
    /// Which one.
    pub(crate) busy_op: OpKind,
    /// The loader is stopping: no new operation starts, no retire worker
    /// starts a driver unload.
    pub(crate) stopping: bool,
    /// A payload was stopped from outside and its slot waits to be reaped.
    pub(crate) reap_pending: bool,
    /// The active slot.
    pub(crate) active: Option<Slot>,
    /// The slot active before the last switch (rollback target).
    pub(crate) previous: Option<Slot>,
    /// The slot persisted in `Parameters\ActiveSlot`.
    pub(crate) persisted: Option<Slot>,
    /// Bound on a payload's retirement, in milliseconds.
    pub(crate) unload_timeout_ms: u32,
    /// The last failure.
    pub(crate) last_error: ErrorRecord,
    /// Per slot.
    pub(crate) slots: PerSlot<SlotRecord<I>>,
    /// The last generation given to a payload.
    pub(crate) generation: u16,
    /// A handover whose old slot's retirement has not finished it yet:
    /// until then the new slot may not be retired (its image is the import's
    /// target) and no other switch starts.
    pub(crate) pending: Option<PendingHandover>,
    /// What `status` shows of the handovers.
    pub(crate) handover: HandoverStatus,
}

/// A handover between a switch and the end of the old slot's retirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingHandover {
    /// The slot being retired.
    pub old: Slot,
    /// The slot now active.
    pub new: Slot,
    /// The steps.
    pub plan: Plan,
}

impl<I: Copy> LoaderState<I> {
    /// The state at loader start (fits a `static`).
    #[must_use]
    pub const fn new(unload_timeout_ms: u32) -> Self {
        LoaderState {
            busy: false,
            busy_op: OpKind::NONE,
            stopping: false,
            reap_pending: false,
            active: None,
            previous: None,
            persisted: None,
            unload_timeout_ms,
            last_error: ErrorRecord { status: 0, op: 0, slot: SLOT_NONE, reserved: 0, time: 0 },
            slots: PerSlot::new(SlotRecord::new(), SlotRecord::new()),
            generation: 0,
            pending: None,
            handover: HandoverStatus {
                mode: 0,
                last_status: 0,
                owner_generation: 0,
                state_transfers: 0,
                refused: 0,
                unmarked: 0,
                last_state_bytes: 0,
                exact_handovers: 0,
            },
        }
    }
    /// The handover still finishing, if any.
    #[must_use]
    pub fn pending_handover(&self) -> Option<PendingHandover> {
        self.pending
    }
    /// The handover counters `status` shows.
    #[must_use]
    pub fn handover(&self) -> HandoverStatus {
        self.handover
    }
    /// A new generation number for a payload about to register.
    pub(crate) fn next_generation(&mut self) -> u16 {
        self.generation = crate::handover::next_generation(self.generation);
        self.generation
    }
    /// The active slot.
    #[must_use]
    pub fn active(&self) -> Option<Slot> {
        self.active
    }
    /// The persisted slot, as the loader last wrote or read it.
    #[must_use]
    pub fn persisted(&self) -> Option<Slot> {
        self.persisted
    }
    /// A slot's state.
    #[must_use]
    pub fn slot_state(&self, slot: Slot) -> SlotState {
        self.slots[slot].state
    }
    /// A slot's record.
    #[must_use]
    pub fn slot(&self, slot: Slot) -> &SlotRecord<I> {
        &self.slots[slot]
    }
    /// Whether a control operation runs.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.busy
    }
    /// Whether the loader is stopping.
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }
    /// The last failure recorded.
    #[must_use]
    pub fn last_error(&self) -> ErrorRecord {
        self.last_error
    }
    /// The retirement bound, in milliseconds.
    #[must_use]
    pub fn unload_timeout_ms(&self) -> u32 {
        self.unload_timeout_ms
    }
    /// Sets the retirement bound (from the loader's `Parameters`).
    pub fn set_unload_timeout_ms(&mut self, ms: u32) {
        self.unload_timeout_ms = ms;
    }
    pub(crate) fn enter(&mut self, slot: Slot, state: SlotState, op: OpKind, now: u64) {
        let r = &mut self.slots[slot];
        r.state = state;
        r.state_since = now;
        r.last_op = op.0;
    }
    pub(crate) fn record_error(&mut self, status: NtStatus, op: OpKind, slot: Option<Slot>, now: u64) {
        self.last_error = ErrorRecord { status: status.0, op: op.0, slot: Slot::word_of(slot), reserved: 0, time: now };
        if let Some(slot) = slot {
            let r = &mut self.slots[slot];
            r.last_status = status.0;
            r.last_op = op.0;
        }
    }

    /// The `IOCTL_LOADER_QUERY_STATUS` snapshot. The platform fills in what
    /// the protocol does not know (service names, pool counts).
    #[must_use]
    pub fn snapshot(&self, now: u64) -> LoaderStatus {
        LoaderStatus {
            size: shared_abi::size_u32::<LoaderStatus>(),
            abi_major: shared_abi::ABI_MAJOR,
            abi_minor: shared_abi::ABI_MINOR,
            active_slot: Slot::word_of(self.active),
            persisted_slot: Slot::word_of(self.persisted),
            busy: u32::from(self.busy),
            unload_timeout_ms: self.unload_timeout_ms,
            now,
            last_error: self.last_error,
            loader_pool: PoolCount::default(),
            slots: [self.slots[Slot::A].to_abi(), self.slots[Slot::B].to_abi()],
            handover: self.handover,
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
            size: shared_abi::size_u32::<ControlReply>(),
            status: self.status.0,
            active_slot: Slot::word_of(self.active),
            flags: self.flags,
        }
    }
}
