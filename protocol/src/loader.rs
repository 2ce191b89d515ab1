//! The loader's side of the protocol: loading a payload into a slot,
//! registering it, retiring it, and switching between the two slots.
//!
//! Owns [`LoaderState`] (what the loader knows about each slot) and every
//! rule about ordering:
//! - control operations are serialized by `busy`; a concurrent one gets
//!   `DEVICE_BUSY` and never blocks;
//! - "registration settled" of a slot is cleared only before its image is
//!   loaded and is set after the registration call returned, on every path;
//! - the image is referenced from right after `ZwLoadDriver` until after its
//!   last call returned, and released exactly once;
//! - the descriptor is checked before any payload code runs;
//! - retirement runs on a worker; the operation waits for it with a bound.
//!
//! Must never call a platform primitive inside `with_state`, never wait on
//! anything without a bound on a control path, and never call into an image
//! it does not hold a reference on.
use crate::loader_status::SlotRecord;
use crate::platform::{LoaderPlatform, Mutation, Slot};
use shared_abi::control::{OpKind, SlotState, REPLY_OLD_SLOT_STUCK, SLOT_COUNT};
use shared_abi::payload::{LogLevel, PayloadReport};
use shared_abi::NtStatus;

pub use crate::loader_status::OpOutcome;

/// Everything the loader knows, behind the platform's lock.
#[derive(Debug)]
pub struct LoaderState<I> {
    /// A control operation is running.
    pub(crate) busy: bool,
    /// Which one.
    pub(crate) busy_op: OpKind,
    /// The loader is stopping: no new operation starts.
    pub(crate) stopping: bool,
    /// The active slot.
    pub(crate) active: Option<Slot>,
    /// The slot active before the last switch (rollback target).
    pub(crate) previous: Option<Slot>,
    /// The slot persisted in `Parameters\ActiveSlot`.
    pub(crate) persisted: Option<Slot>,
    /// Bound on a payload's retirement, in milliseconds.
    pub(crate) unload_timeout_ms: u32,
    /// The last failure.
    pub(crate) last_error: shared_abi::control::ErrorRecord,
    /// Per slot.
    pub(crate) slots: [SlotRecord<I>; SLOT_COUNT],
}

impl<I: Copy> LoaderState<I> {
    /// The state at loader start (fits a `static`).
    #[must_use]
    pub const fn new(unload_timeout_ms: u32) -> Self {
        LoaderState {
            busy: false,
            busy_op: OpKind::NONE,
            stopping: false,
            active: None,
            previous: None,
            persisted: None,
            unload_timeout_ms,
            last_error: shared_abi::control::ErrorRecord { status: 0, op: 0, slot: u32::MAX, reserved: 0, time: 0 },
            slots: [SlotRecord::new(), SlotRecord::new()],
        }
    }
    /// The active slot.
    #[must_use]
    pub fn active(&self) -> Option<Slot> {
        self.active
    }
    /// A slot's state.
    #[must_use]
    pub fn slot_state(&self, slot: Slot) -> SlotState {
        self.slots.get(slot).map_or(SlotState::EMPTY, |r| r.state)
    }
    /// Whether a control operation runs.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.busy
    }
    /// The last failure recorded.
    #[must_use]
    pub fn last_error(&self) -> shared_abi::control::ErrorRecord {
        self.last_error
    }
    /// Sets the retirement bound (from the loader's `Parameters`).
    pub fn set_unload_timeout_ms(&mut self, ms: u32) {
        self.unload_timeout_ms = ms;
    }
    fn enter(&mut self, slot: Slot, state: SlotState, op: OpKind, now: u64) {
        let r = &mut self.slots[slot];
        r.state = state;
        r.state_since = now;
        r.last_op = op.0;
    }
    fn record_error(&mut self, status: NtStatus, op: OpKind, slot: Option<Slot>, now: u64) {
        self.last_error = shared_abi::control::ErrorRecord {
            status: status.0,
            op: op.0,
            slot: slot_word(slot),
            reserved: 0,
            time: now,
        };
        if let Some(r) = slot.and_then(|s| self.slots.get_mut(s)) {
            r.last_status = status.0;
            r.last_op = op.0;
        }
    }
}

#[allow(clippy::cast_possible_truncation)] // slots are 0 or 1
pub(crate) fn slot_word(slot: Option<Slot>) -> u32 {
    slot.map_or(shared_abi::control::SLOT_NONE, |s| s as u32)
}

/// The other slot.
#[must_use]
pub fn other(slot: Slot) -> Slot {
    (slot + 1) % SLOT_COUNT
}

/// The loader's protocol over a platform. Cheap to construct: it holds only
/// the platform handle (kernel: a zero-sized type over statics).
pub struct Loader<P: LoaderPlatform> {
    platform: P,
}

impl<P: LoaderPlatform> Loader<P> {
    /// Wraps a platform.
    pub const fn new(platform: P) -> Self {
        Loader { platform }
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    fn claim(&self, op: OpKind) -> Result<(), NtStatus> {
        self.platform.with_state(|s| {
            if s.stopping {
                Err(NtStatus::DEVICE_NOT_READY)
            } else if s.busy {
                Err(NtStatus::DEVICE_BUSY)
            } else {
                s.busy = true;
                s.busy_op = op;
                Ok(())
            }
        })
    }

    fn release(&self) {
        self.platform.with_state(|s| {
            s.busy = false;
            s.busy_op = OpKind::NONE;
        });
    }

    fn fail(&self, status: NtStatus, op: OpKind, slot: Option<Slot>) -> NtStatus {
        let now = self.platform.now();
        self.platform.with_state(|s| s.record_error(status, op, slot, now));
        self.platform.log(LogLevel::ERROR, format_args!("{} slot {}: {status}", op.name(), slot_word(slot)));
        status
    }

    /// Runs `body` as one serialized control operation.
    fn operation(&self, op: OpKind, body: impl FnOnce(&Self) -> OpOutcome) -> OpOutcome {
        if let Err(status) = self.claim(op) {
            let active = self.platform.with_state(|s| s.active);
            return OpOutcome { status, active, flags: 0 };
        }
        let outcome = body(self);
        self.release();
        outcome
    }

    /// Loader start, from a system thread (never from the loader's own
    /// `DriverEntry` thread: `ZwLoadDriver` there would wait on the load lock
    /// that thread holds). Loads `active_from_config` if any.
    pub fn start(&self, active_from_config: Option<Slot>) -> OpOutcome {
        self.operation(OpKind::START, |l| {
            l.platform.with_state(|s| s.persisted = active_from_config);
            match active_from_config {
                Some(slot) if slot < SLOT_COUNT => l.bring_up(slot, OpKind::START),
                _ => l.outcome(NtStatus::SUCCESS, 0),
            }
        })
    }

    /// `IOCTL_LOADER_LOAD`: loads the persisted slot (A if none) when no
    /// payload is active; succeeds at once when one is.
    pub fn load(&self) -> OpOutcome {
        self.operation(OpKind::LOAD, |l| {
            let (active, persisted) = l.platform.with_state(|s| (s.active, s.persisted));
            if active.is_some() {
                return l.outcome(NtStatus::SUCCESS, 0);
            }
            let slot = persisted.unwrap_or(0);
            let outcome = l.bring_up(slot, OpKind::LOAD);
            if outcome.status.is_success() {
                l.persist(Some(slot), OpKind::LOAD)
            } else {
                outcome
            }
        })
    }

    fn bring_up(&self, slot: Slot, op: OpKind) -> OpOutcome {
        if let Err(status) = self.claim_empty(slot) {
            return self.outcome(self.fail(status, op, Some(slot)), 0);
        }
        match self.load_slot(slot, op) {
            Ok(()) => {
                let now = self.platform.now();
                self.platform.with_state(|s| {
                    s.enter(slot, SlotState::ACTIVE, op, now);
                    s.slots[slot].last_status = NtStatus::SUCCESS.0;
                    s.active = Some(slot);
                });
                self.outcome(NtStatus::SUCCESS, 0)
            }
            Err(status) => self.outcome(self.fail(status, op, Some(slot)), 0),
        }
    }

    fn outcome(&self, status: NtStatus, flags: u32) -> OpOutcome {
        let active = self.platform.with_state(|s| s.active);
        OpOutcome { status, active, flags }
    }

    fn persist(&self, slot: Option<Slot>, op: OpKind) -> OpOutcome {
        match self.platform.persist_active(slot) {
            Ok(()) => {
                self.platform.with_state(|s| s.persisted = slot);
                self.outcome(NtStatus::SUCCESS, 0)
            }
            Err(status) => self.outcome(self.fail(status, op, slot), 0),
        }
    }

    /// `IOCTL_LOADER_UPGRADE`: loads and registers `target` (the inactive
    /// slot if `None`), makes it active, retires the old one (bounded), then
    /// persists the choice. Any failure before the switch leaves the old
    /// payload active and records the error.
    pub fn upgrade(&self, target: Option<Slot>) -> OpOutcome {
        self.operation(OpKind::UPGRADE, |l| l.switch_to(target, OpKind::UPGRADE))
    }

    /// `IOCTL_LOADER_ROLLBACK`: switches back to the slot that was active
    /// before the last switch (the inactive slot if none is known).
    pub fn rollback(&self) -> OpOutcome {
        self.operation(OpKind::ROLLBACK, |l| {
            let (active, previous) = l.platform.with_state(|s| (s.active, s.previous));
            match (active, previous) {
                (None, _) => l.outcome(l.fail(NtStatus::INVALID_DEVICE_REQUEST, OpKind::ROLLBACK, None), 0),
                (Some(a), p) => l.switch_to(Some(p.filter(|&p| p != a).unwrap_or(other(a))), OpKind::ROLLBACK),
            }
        })
    }

    fn switch_to(&self, target: Option<Slot>, op: OpKind) -> OpOutcome {
        let old = self.platform.with_state(|s| s.active);
        let new = target.unwrap_or_else(|| old.map_or(0, other));
        if new >= SLOT_COUNT || Some(new) == old {
            return self.outcome(self.fail(NtStatus::INVALID_PARAMETER, op, Some(new)), 0);
        }
        if let Err(status) = self.claim_empty(new) {
            return self.outcome(self.fail(status, op, Some(new)), 0);
        }
        if let Err(status) = self.load_slot(new, op) {
            if self.platform.mutation() != Mutation::ActivateFailedUpgrade {
                return self.outcome(self.fail(status, op, Some(new)), 0);
            }
        }
        // The switch: from here the new payload is the active one.
        let now = self.platform.now();
        self.platform.with_state(|s| {
            s.enter(new, SlotState::ACTIVE, op, now);
            s.slots[new].last_status = NtStatus::SUCCESS.0;
            s.active = Some(new);
            s.previous = old;
        });
        let mut flags = 0;
        if let Some(old) = old {
            if let Err(status) = self.retire(old, op) {
                self.fail(status, op, Some(old));
                flags |= REPLY_OLD_SLOT_STUCK;
            }
        }
        // Commit point: a reboot now starts the new payload.
        let persisted = self.persist(Some(new), op);
        OpOutcome { flags, ..persisted }
    }

    /// `IOCTL_LOADER_UNLOAD`: retires the active payload (bounded) and
    /// persists "none"; the loader keeps running.
    pub fn unload(&self) -> OpOutcome {
        self.operation(OpKind::UNLOAD, |l| {
            let Some(active) = l.platform.with_state(|s| s.active.take()) else {
                return l.outcome(NtStatus::SUCCESS, 0);
            };
            l.platform.with_state(|s| s.previous = Some(active));
            if let Err(status) = l.retire(active, OpKind::UNLOAD) {
                return l.outcome(l.fail(status, OpKind::UNLOAD, Some(active)), REPLY_OLD_SLOT_STUCK);
            }
            l.persist(None, OpKind::UNLOAD)
        })
    }

    /// The loader's own `DriverUnload` (I/O manager's unload thread). Refuses
    /// new operations, retires every slot and waits without a bound for
    /// every retire worker: the loader's image must outlive them all, and no
    /// payload may outlive the services table it was lent.
    pub fn stop(&self) {
        self.platform.with_state(|s| s.stopping = true);
        for slot in 0..SLOT_COUNT {
            let state = self.platform.with_state(|s| s.slots[slot].state);
            if state == SlotState::ACTIVE {
                self.platform.with_state(|s| s.active = None);
                // On the caller's thread: the wait is unbounded anyway, and
                // a nested ZwUnloadDriver belongs on the thread that runs
                // the loader's own unload (a second thread would wait on
                // whatever the I/O manager holds around this DriverUnload).
                self.retire_inline(slot, OpKind::STOP);
            }
            let worker = self.platform.with_state(|s| s.slots[slot].worker_running);
            if worker {
                self.platform.retired_wait(slot, u32::MAX);
            }
        }
    }

    /// System shutdown: lets the active payload flush. Skipped while a
    /// control operation runs (it may be retiring that very payload).
    pub fn shutdown(&self) {
        if self.claim(OpKind::STOP).is_err() {
            return;
        }
        let image = self.platform.with_state(|s| s.active.and_then(|a| s.slots[a].image));
        if let Some(image) = image {
            self.platform.call_shutdown(image);
        }
        self.release();
    }

    /// The payload's `report` service: keeps its latest report for `status`.
    pub fn on_report(&self, slot: Slot, report: &PayloadReport) {
        let now = self.platform.now();
        self.platform.with_state(|s| {
            if let Some(r) = s.slots.get_mut(slot) {
                r.report = *report;
                r.report_time = now;
            }
        });
    }

    /// Records a failure the platform met outside an operation (an invalid
    /// configuration, a malformed control request) so `status` shows it.
    pub fn record_error(&self, status: NtStatus, op: OpKind, slot: Option<Slot>) {
        self.fail(status, op, slot);
    }

    /// The payload's `wait_registration_settled` service.
    pub fn wait_registration_settled(&self, slot: Slot) {
        if slot < SLOT_COUNT {
            self.platform.wait_settled(slot);
        }
    }
}

mod slots;

#[cfg(test)]
mod tests {
    //! Single-threaded transitions; the races are the model's job (`tests/`).
    extern crate std;
    use super::*;
    use crate::descriptor::DescriptorInfo;
    use core::cell::{Cell, RefCell};
    use shared_abi::payload::utf16_name;
    use std::vec::Vec;

    /// Images are numbered per load; `refs[i]` counts references on image `i`.
    struct Fake {
        state: RefCell<LoaderState<usize>>,
        settled: Cell<[bool; SLOT_COUNT]>,
        refs: RefCell<Vec<i32>>,
        loaded: Cell<[Option<usize>; SLOT_COUNT]>,
        calls: RefCell<Vec<&'static str>>,
        bad_magic: bool,
        register_status: NtStatus,
        lose_driver_after_load: bool,
        persisted: Cell<Option<Slot>>,
    }

    impl Fake {
        fn new() -> Self {
            Fake {
                state: RefCell::new(LoaderState::new(1000)),
                settled: Cell::new([true; SLOT_COUNT]),
                refs: RefCell::new(Vec::new()),
                loaded: Cell::new([None; SLOT_COUNT]),
                calls: RefCell::new(Vec::new()),
                bad_magic: false,
                register_status: NtStatus::SUCCESS,
                lose_driver_after_load: false,
                persisted: Cell::new(None),
            }
        }
        fn count(&self, what: &str) -> usize {
            self.calls.borrow().iter().filter(|c| **c == what).count()
        }
        fn set_loaded(&self, slot: Slot, image: Option<usize>) {
            let mut l = self.loaded.get();
            l[slot] = image;
            self.loaded.set(l);
        }
    }

    impl LoaderPlatform for &Fake {
        type Image = usize;
        fn with_state<R>(&self, f: impl FnOnce(&mut LoaderState<usize>) -> R) -> R {
            f(&mut self.state.borrow_mut())
        }
        fn settle_set(&self, slot: Slot) {
            let mut s = self.settled.get();
            s[slot] = true;
            self.settled.set(s);
        }
        fn settle_reset(&self, slot: Slot) {
            let mut s = self.settled.get();
            s[slot] = false;
            self.settled.set(s);
        }
        fn wait_settled(&self, slot: Slot) {
            assert!(self.settled.get()[slot], "would hang");
        }
        fn retired_set(&self, _slot: Slot) {}
        fn retired_reset(&self, _slot: Slot) {}
        fn retired_wait(&self, _slot: Slot, _timeout_ms: u32) -> bool {
            true
        }
        fn load_driver(&self, slot: Slot) -> Result<(), NtStatus> {
            self.calls.borrow_mut().push("load_driver");
            let mut refs = self.refs.borrow_mut();
            refs.push(i32::from(!self.lose_driver_after_load));
            if !self.lose_driver_after_load {
                self.set_loaded(slot, Some(refs.len() - 1));
            }
            Ok(())
        }
        fn reference_image(&self, slot: Slot) -> Result<usize, NtStatus> {
            let image = self.loaded.get()[slot].ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
            self.refs.borrow_mut()[image] += 1;
            Ok(image)
        }
        fn read_descriptor(&self, image: usize) -> Result<DescriptorInfo, NtStatus> {
            assert!(self.refs.borrow()[image] > 1, "descriptor read without a reference");
            let mut d = DescriptorInfo::current(1, utf16_name("fake"));
            if self.bad_magic {
                d.magic = 0;
            }
            Ok(d)
        }
        fn call_register(&self, image: usize, slot: Slot) -> NtStatus {
            assert!(self.refs.borrow()[image] > 1, "call without a reference");
            assert!(!self.settled.get()[slot], "settled before the registration call");
            self.calls.borrow_mut().push("register");
            self.register_status
        }
        fn call_teardown(&self, image: usize) -> NtStatus {
            assert!(self.refs.borrow()[image] > 1, "call without a reference");
            self.calls.borrow_mut().push("teardown");
            NtStatus::SUCCESS
        }
        fn call_shutdown(&self, _image: usize) {
            self.calls.borrow_mut().push("shutdown");
        }
        fn unload_driver(&self, slot: Slot) -> NtStatus {
            self.calls.borrow_mut().push("unload_driver");
            if let Some(image) = self.loaded.get()[slot] {
                self.refs.borrow_mut()[image] -= 1;
                self.set_loaded(slot, None);
            }
            NtStatus::SUCCESS
        }
        fn release_image(&self, image: usize) {
            let mut refs = self.refs.borrow_mut();
            assert!(refs[image] > 0, "reference released twice");
            refs[image] -= 1;
        }
        fn start_retire_worker(&self, _slot: Slot) -> Result<(), NtStatus> {
            Err(NtStatus::INSUFFICIENT_RESOURCES) // retired inline
        }
        fn persist_active(&self, slot: Option<Slot>) -> Result<(), NtStatus> {
            self.persisted.set(slot);
            Ok(())
        }
        fn now(&self) -> u64 {
            42
        }
    }

    fn all_released(f: &Fake) -> bool {
        f.refs.borrow().iter().all(|&r| r == 0)
    }

    #[test]
    fn load_upgrade_rollback_unload() {
        let f = Fake::new();
        let l = Loader::new(&f);
        assert_eq!(l.load().status, NtStatus::SUCCESS);
        assert_eq!(l.status().active_slot, 0);
        assert_eq!(f.persisted.get(), Some(0));
        let up = l.upgrade(None);
        assert_eq!((up.status, up.active, up.flags), (NtStatus::SUCCESS, Some(1), 0));
        assert_eq!(f.state.borrow().slot_state(0), SlotState::EMPTY);
        assert_eq!(f.state.borrow().slot_state(1), SlotState::ACTIVE);
        assert_eq!(f.persisted.get(), Some(1));
        assert_eq!(l.rollback().active, Some(0));
        assert_eq!(l.unload().status, NtStatus::SUCCESS);
        assert_eq!(f.persisted.get(), None);
        assert!(all_released(&f));
        assert_eq!((f.count("register"), f.count("teardown")), (3, 3));
        assert_eq!(f.settled.get(), [true; SLOT_COUNT]);
    }

    #[test]
    fn a_concurrent_operation_gets_busy_and_the_same_slot_is_refused() {
        let f = Fake::new();
        let l = Loader::new(&f);
        l.load();
        f.state.borrow_mut().busy = true;
        assert_eq!(l.upgrade(None).status, NtStatus::DEVICE_BUSY);
        f.state.borrow_mut().busy = false;
        assert_eq!(l.upgrade(Some(0)).status, NtStatus::INVALID_PARAMETER);
        f.state.borrow_mut().slots[1].state = SlotState::STUCK;
        f.state.borrow_mut().slots[1].worker_running = true;
        assert_eq!(l.upgrade(Some(1)).status, NtStatus::IMAGE_ALREADY_LOADED);
        assert_eq!(l.status().active_slot, 0);
    }

    #[test]
    fn a_bad_descriptor_is_refused_before_any_payload_code_runs() {
        let mut f = Fake::new();
        f.bad_magic = true;
        let l = Loader::new(&f);
        let out = l.load();
        assert_eq!(out.status, NtStatus::INVALID_IMAGE_FORMAT);
        assert_eq!((f.count("register"), f.count("teardown"), f.count("unload_driver")), (0, 0, 1));
        assert_eq!(f.state.borrow().slot_state(0), SlotState::EMPTY);
        assert!(f.settled.get()[0]);
        assert!(all_released(&f));
        assert_eq!(l.status().last_error.status, NtStatus::INVALID_IMAGE_FORMAT.0);
    }

    #[test]
    fn a_failed_upgrade_keeps_the_old_payload_active() {
        let f = Fake::new();
        Loader::new(&f).load();
        let mut f2 = f;
        f2.register_status = NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION;
        let l = Loader::new(&f2);
        let out = l.upgrade(None);
        assert_eq!((out.status, out.active), (NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION, Some(0)));
        let st = l.status();
        assert_eq!(st.slots[0].state, SlotState::ACTIVE.0);
        assert_eq!(st.slots[1].state, SlotState::EMPTY.0);
        assert_eq!((st.last_error.op, st.last_error.slot), (OpKind::UPGRADE.0, 1));
        assert_eq!(f2.settled.get(), [true; SLOT_COUNT]);
        assert_eq!(f2.persisted.get(), Some(0));
    }

    #[test]
    fn a_driver_gone_before_the_reference_fails_cleanly() {
        let mut f = Fake::new();
        f.lose_driver_after_load = true;
        let l = Loader::new(&f);
        assert_eq!(l.load().status, NtStatus::OBJECT_NAME_NOT_FOUND);
        assert_eq!((f.count("register"), f.count("unload_driver")), (0, 0));
        assert!(f.settled.get()[0]);
        assert_eq!(f.state.borrow().slot_state(0), SlotState::EMPTY);
    }

    #[test]
    fn stop_retires_everything_and_refuses_new_operations() {
        let f = Fake::new();
        let l = Loader::new(&f);
        l.load();
        l.stop();
        assert!(all_released(&f));
        assert_eq!(l.load().status, NtStatus::DEVICE_NOT_READY);
        assert_eq!(l.status().active_slot, shared_abi::control::SLOT_NONE);
    }
}
