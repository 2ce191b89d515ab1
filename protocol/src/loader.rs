//! The loader's side of the protocol: operations over the two slots.
//!
//! Owns every rule about ordering between operations:
//! - control operations are serialized by `busy`; a concurrent one gets
//!   `DEVICE_BUSY` and never blocks; the `Idle` event tells the loader's own
//!   unload when none runs;
//! - an upgrade loads and registers the new slot, switches, retires the old
//!   one (bounded), and persists the choice last;
//! - a payload torn down from outside (`sc stop` of its service) is noticed
//!   through its report, shown as `stopped`, and its slot reaped;
//! - the loader's own stop waits for the operation in flight and for every
//!   retire worker, then retires what is left on its own thread;
//! - the shutdown hook runs serialized with operations and the stop.
//!
//! The life of one slot (load, check, register, retire) is in `slots.rs`.
//! Must never call a platform primitive inside `with_state`, never wait on
//! anything without a bound on a control path, and never call into an image
//! it does not hold a reference on.
#[cfg(feature = "mutations")]
use crate::mutation::Mutation;
use crate::platform::{LoaderEvent, LoaderPlatform};
use crate::state::{LoaderState, OpOutcome};
use shared_abi::control::{OpKind, SlotState, REPLY_NOT_PERSISTED, REPLY_OLD_SLOT_STUCK};
use shared_abi::payload::{LogLevel, PayloadPhase, PayloadReport};
use shared_abi::{NtStatus, Slot};

mod handover;
mod slots;
#[cfg(test)]
mod tests;

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

    fn with_state<R>(&self, f: impl FnOnce(&mut LoaderState<P::Image>) -> R) -> R {
        self.platform.with_state(f)
    }

    fn claim(&self, op: OpKind) -> Result<(), NtStatus> {
        self.with_state(|s| {
            if s.stopping {
                Err(NtStatus::DEVICE_NOT_READY)
            } else if s.busy {
                Err(NtStatus::DEVICE_BUSY)
            } else {
                s.busy = true;
                s.busy_op = op;
                Ok(())
            }
        })?;
        self.platform.event_reset(LoaderEvent::Idle);
        Ok(())
    }

    /// Ends an operation: reaps any slot stopped from outside first (under
    /// the same claim), then clears `busy` and signals `Idle`.
    fn release(&self) {
        loop {
            let reap = self.with_state(|s| {
                if s.reap_pending && !s.stopping {
                    s.reap_pending = false;
                    true
                } else {
                    s.busy = false;
                    s.busy_op = OpKind::NONE;
                    false
                }
            });
            if !reap {
                break;
            }
            self.reap_stopped();
        }
        self.platform.event_set(LoaderEvent::Idle);
    }

    fn fail(&self, status: NtStatus, op: OpKind, slot: Option<Slot>) -> NtStatus {
        let now = self.platform.now();
        self.with_state(|s| s.record_error(status, op, slot, now));
        match slot {
            Some(slot) => self.platform.log(LogLevel::ERROR, format_args!("{} slot {slot}: {status}", op.name())),
            None => self.platform.log(LogLevel::ERROR, format_args!("{}: {status}", op.name())),
        }
        status
    }

    fn outcome(&self, status: NtStatus, flags: u32) -> OpOutcome {
        let active = self.with_state(|s| s.active);
        OpOutcome { status, active, flags }
    }

    /// Runs `body` as one serialized control operation.
    fn operation(&self, op: OpKind, body: impl FnOnce(&Self) -> OpOutcome) -> OpOutcome {
        if let Err(status) = self.claim(op) {
            let active = self.with_state(|s| s.active);
            return OpOutcome { status, active, flags: 0 };
        }
        let outcome = body(self);
        self.release();
        outcome
    }

    /// Loader start, from a thread of the loader (never from its own
    /// `DriverEntry` thread: `ZwLoadDriver` there would wait on the load lock
    /// that thread holds). Loads `active_from_config` if any.
    pub fn start(&self, active_from_config: Option<Slot>) -> OpOutcome {
        self.operation(OpKind::START, |l| {
            l.with_state(|s| s.persisted = active_from_config);
            match active_from_config {
                Some(slot) => l.bring_up(slot, OpKind::START),
                None => l.outcome(NtStatus::SUCCESS, 0),
            }
        })
    }

    /// `IOCTL_LOADER_LOAD`: loads the persisted slot (after an `unload`, the
    /// slot that was active before it; A if none is known) when no payload
    /// is active; succeeds at once when one is.
    pub fn load(&self) -> OpOutcome {
        self.operation(OpKind::LOAD, |l| {
            let (active, persisted, previous) = l.with_state(|s| (s.active, s.persisted, s.previous));
            if active.is_some() {
                return l.outcome(NtStatus::SUCCESS, 0);
            }
            let slot = persisted.or(previous).unwrap_or(Slot::A);
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
        let generation = self.with_state(LoaderState::next_generation);
        let switched = self
            .load_slot(slot, op, generation, |checked| {
                self.prepare_generation(None, slot, generation, checked).map(|_| ())
            })
            .and_then(|()| self.switch(slot, op, None));
        match switched {
            Ok(()) => self.outcome(NtStatus::SUCCESS, 0),
            Err(status) => self.outcome(self.fail(status, op, Some(slot)), 0),
        }
    }

    /// Makes `new` the active slot, in one critical section with the check
    /// that its payload has not reported a teardown meanwhile (a foreign
    /// stop landing between its registration and this switch). On refusal
    /// the slot is retired again and `DELETE_PENDING` returned.
    fn switch(&self, new: Slot, op: OpKind, old: Option<Slot>) -> Result<(), NtStatus> {
        let now = self.platform.now();
        #[cfg(feature = "mutations")]
        let check_report = self.platform.mutation() != Mutation::SwitchIgnoresTeardownReport;
        #[cfg(not(feature = "mutations"))]
        let check_report = true;
        let switched = self.with_state(|s| {
            if check_report && s.slots[new].teardown_reported {
                return false;
            }
            s.enter(new, SlotState::ACTIVE, op, now);
            s.slots[new].last_status = NtStatus::SUCCESS.0;
            s.active = Some(new);
            if old.is_some() {
                s.previous = old;
            }
            true
        });
        if switched {
            return Ok(());
        }
        self.platform.log(LogLevel::WARN, format_args!("slot {new}: torn down from outside before the switch"));
        self.discard(new, op);
        Err(NtStatus::DELETE_PENDING)
    }

    /// Writes the commit point. The operation has taken effect either way;
    /// a failed write is reported with [`REPLY_NOT_PERSISTED`] and recorded
    /// in `last_error`, and the loader keeps what it persisted before.
    fn persist(&self, slot: Option<Slot>, op: OpKind) -> OpOutcome {
        match self.platform.persist_active(slot) {
            Ok(()) => {
                self.with_state(|s| s.persisted = slot);
                self.outcome(NtStatus::SUCCESS, 0)
            }
            Err(status) => {
                self.fail(status, op, slot);
                self.outcome(NtStatus::SUCCESS, REPLY_NOT_PERSISTED)
            }
        }
    }

    /// `IOCTL_LOADER_UPGRADE`: loads and registers `target` (if `None`, the
    /// slot other than the active one, or than the one active last), makes
    /// it active, retires the old one (bounded), then
    /// persists the choice. Any failure before the switch leaves the old
    /// payload active and records the error.
    pub fn upgrade(&self, target: Option<Slot>) -> OpOutcome {
        self.operation(OpKind::UPGRADE, |l| l.switch_to(target, OpKind::UPGRADE))
    }

    /// `IOCTL_LOADER_ROLLBACK`: switches back to the slot that was active
    /// before the last switch (the inactive slot if none is known).
    pub fn rollback(&self) -> OpOutcome {
        self.operation(OpKind::ROLLBACK, |l| {
            let (active, previous) = l.with_state(|s| (s.active, s.previous));
            match active {
                None => l.outcome(l.fail(NtStatus::INVALID_DEVICE_REQUEST, OpKind::ROLLBACK, None), 0),
                Some(a) => l.switch_to(Some(previous.filter(|&p| p != a).unwrap_or(a.other())), OpKind::ROLLBACK),
            }
        })
    }

    fn switch_to(&self, target: Option<Slot>, op: OpKind) -> OpOutcome {
        let (old, previous) = self.with_state(|s| (s.active, s.previous));
        // The slot other than the active one; with none active (unloaded,
        // or stopped from outside), other than the one active last.
        let new = target.unwrap_or_else(|| old.or(previous).map_or(Slot::A, Slot::other));
        if Some(new) == old {
            return self.outcome(self.fail(NtStatus::INVALID_PARAMETER, op, Some(new)), 0);
        }
        if let Err(status) = self.refuse_while_handover_pending() {
            return self.outcome(self.fail(status, op, Some(new)), 0);
        }
        #[cfg(feature = "mutations")]
        if self.platform.mutation() == Mutation::PersistBeforeSwitch {
            let _ = self.platform.persist_active(Some(new));
        }
        if let Err(status) = self.claim_empty(new) {
            return self.outcome(self.fail(status, op, Some(new)), 0);
        }
        let generation = self.with_state(LoaderState::next_generation);
        let mut plan = None;
        let loaded = self.load_slot(new, op, generation, |checked| {
            plan = self.prepare_generation(old, new, generation, checked)?;
            Ok(())
        });
        #[cfg(feature = "mutations")]
        let loaded = if self.platform.mutation() == Mutation::ActivateFailedUpgrade { Ok(()) } else { loaded };
        let transferred = loaded.and_then(|()| match (plan, old) {
            (Some(plan), Some(old)) => self.begin_handover(plan, old, new).inspect_err(|_| self.discard(new, op)),
            _ => Ok(()),
        });
        if let Err(status) = transferred.and_then(|()| self.switch(new, op, old)) {
            return self.outcome(self.fail(status, op, Some(new)), 0);
        }
        self.after_switch(plan, old, new, generation);
        let mut flags = 0;
        if let Some(old) = old {
            if let Err(status) = self.retire(old, op) {
                self.fail(status, op, Some(old));
                flags |= REPLY_OLD_SLOT_STUCK;
            }
        }
        // Commit point: a reboot now starts the new payload.
        let persisted = self.persist(Some(new), op);
        OpOutcome { flags: flags | persisted.flags, ..persisted }
    }

    /// `IOCTL_LOADER_UNLOAD`: retires the active payload (bounded) and
    /// persists "no payload"; the loader keeps running.
    pub fn unload(&self) -> OpOutcome {
        self.operation(OpKind::UNLOAD, |l| {
            if let Err(status) = l.refuse_while_handover_pending() {
                return l.outcome(l.fail(status, OpKind::UNLOAD, None), 0);
            }
            let Some(active) = l.with_state(|s| s.active.take()) else {
                return l.outcome(NtStatus::SUCCESS, 0);
            };
            l.with_state(|s| s.previous = Some(active));
            if let Err(status) = l.retire(active, OpKind::UNLOAD) {
                return l.outcome(l.fail(status, OpKind::UNLOAD, Some(active)), REPLY_OLD_SLOT_STUCK);
            }
            l.persist(None, OpKind::UNLOAD)
        })
    }

    /// The loader's own `DriverUnload`. Refuses new operations, waits for the
    /// one in flight (its own waits are bounded, and it starts no driver
    /// unload once stopping is set), waits without a bound for every retire
    /// worker (the loader's image must outlive them, and no payload may
    /// outlive the services table it was lent), then retires what is left on
    /// this thread: the active payload, and any unload a worker left to it.
    /// A nested `ZwUnloadDriver` belongs on the thread running the loader's
    /// own unload; no other thread of the loader calls one from here on.
    pub fn stop(&self) {
        if self.with_state(|s| core::mem::replace(&mut s.stopping, true)) {
            return; // a second stop has nothing left to do
        }
        loop {
            let busy = self.with_state(|s| {
                if s.busy {
                    true
                } else {
                    // Held for good: a late shutdown hook must not run now.
                    s.busy = true;
                    s.busy_op = OpKind::STOP;
                    false
                }
            });
            if !busy {
                break;
            }
            self.platform.event_wait(LoaderEvent::Idle, None);
        }
        for slot in Slot::ALL {
            #[cfg(feature = "mutations")]
            if self.platform.mutation() == Mutation::StopSkipsJoin {
                continue;
            }
            self.platform.join_retire_worker(slot);
        }
        for slot in Slot::ALL {
            let (state, holds_image) = self.with_state(|s| (s.slots[slot].state, s.slots[slot].image.is_some()));
            if state == SlotState::ACTIVE {
                self.with_state(|s| s.active = None);
                self.retire_inline(slot, OpKind::STOP);
            } else if holds_image {
                // A worker left the unload to us, or a slot stopped from
                // outside was not reaped yet: finish it here.
                self.retire_inline(slot, OpKind::STOP);
            }
        }
    }

    /// System shutdown (`IRP_MJ_SHUTDOWN`): lets the active payload flush,
    /// as one operation, so no retirement (an operation, the stop, a reap)
    /// can release the image meanwhile. If an operation is running it waits
    /// for it, at most the teardown bound, then gives up (the payload then
    /// flushes nothing; the failure is recorded).
    pub fn shutdown(&self) {
        #[cfg(feature = "mutations")]
        if self.platform.mutation() == Mutation::ShutdownUnserialized {
            let target = self.with_state(|s| {
                let slot = s.active?;
                let r = &s.slots[slot];
                Some((r.image?, r.checked?.entries.shutdown?))
            });
            if let Some((image, entry)) = target {
                self.platform.call_shutdown(image, entry);
            }
            return;
        }
        let mut claimed = self.claim(OpKind::SHUTDOWN);
        if claimed == Err(NtStatus::DEVICE_BUSY) {
            let bound = self.with_state(|s| s.unload_timeout_ms);
            self.platform.event_wait(LoaderEvent::Idle, Some(bound));
            claimed = self.claim(OpKind::SHUTDOWN);
        }
        if let Err(status) = claimed {
            self.fail(status, OpKind::SHUTDOWN, None);
            return;
        }
        let target = self.with_state(|s| {
            let slot = s.active?;
            let r = &s.slots[slot];
            Some((r.image?, r.checked?.entries.shutdown?))
        });
        if let Some((image, entry)) = target {
            self.platform.call_shutdown(image, entry);
        }
        self.release();
    }

    /// The payload's `report` service: keeps its latest report for `status`,
    /// and learns from it that something outside the loader tore an active
    /// payload down (`sc stop` of its service goes through FltMgr's
    /// `FilterUnloadCallback` straight to the payload). Such a slot shows as
    /// `stopped` at once, is no longer active, and is reaped (the loader's
    /// reference dropped) by the next operation or a reap request. Any
    /// thread, `PASSIVE_LEVEL`; never blocks.
    pub fn on_report(&self, slot: Slot, report: &PayloadReport) {
        let now = self.platform.now();
        let phase = PayloadPhase(report.phase);
        let torn_down = phase == PayloadPhase::TORN_DOWN;
        let tearing_down = torn_down || phase == PayloadPhase::TEARING_DOWN;
        #[cfg(feature = "mutations")]
        let tearing_down = tearing_down && self.platform.mutation() != Mutation::IgnoreForeignTeardown;
        let (foreign, reap) = self.with_state(|s| {
            let r = &mut s.slots[slot];
            r.report = *report;
            r.report_time = now;
            if !tearing_down {
                return (false, false);
            }
            r.torn_down_reported |= torn_down;
            match r.state {
                SlotState::ACTIVE => {
                    r.may_call_teardown = false;
                    r.unloaded_by_foreign = true;
                    s.enter(slot, SlotState::STOPPED, OpKind::EXTERNAL, now);
                    if s.active == Some(slot) {
                        s.active = None;
                        s.previous = Some(slot);
                    }
                    s.reap_pending |= torn_down;
                    (true, torn_down)
                }
                SlotState::STOPPED => {
                    s.reap_pending |= torn_down;
                    (false, torn_down)
                }
                SlotState::LOADING | SlotState::REGISTERING => {
                    // Only a foreign unload tears a registering payload down
                    // (the loader retires it only once it is RETIRING): the
                    // switch is refused, and the retirement leaves the
                    // driver unload to whoever started it.
                    r.teardown_reported = true;
                    r.unloaded_by_foreign = true;
                    (false, false)
                }
                _ => (false, false),
            }
        });
        if foreign {
            self.platform.log(LogLevel::WARN, format_args!("slot {slot}: payload torn down from outside the loader"));
        }
        if reap {
            self.platform.request_reap();
        }
    }

    /// Reaps slots stopped from outside, as an operation of its own (the
    /// platform runs it on a thread of the loader when `request_reap` asks).
    /// If another operation runs, that one reaps them before it ends.
    pub fn reap(&self) -> OpOutcome {
        self.operation(OpKind::EXTERNAL, |l| l.outcome(NtStatus::SUCCESS, 0))
    }

    fn reap_stopped(&self) {
        for slot in Slot::ALL {
            let reap = self.with_state(|s| {
                let r = &s.slots[slot];
                // Not before its teardown finished: until then it may still
                // call the loader, and the loader holds it mapped.
                // Nor while it is the target of a handover still finishing.
                let importing = s.pending.is_some_and(|h| h.new == slot);
                r.state == SlotState::STOPPED
                    && r.image.is_some()
                    && !r.worker_running
                    && r.torn_down_reported
                    && !importing
            });
            if reap {
                if let Err(status) = self.retire(slot, OpKind::EXTERNAL) {
                    self.platform.log(LogLevel::WARN, format_args!("slot {slot}: reaping: {status}"));
                }
            }
        }
    }

    /// Records a failure the platform met outside an operation (an invalid
    /// configuration, a malformed control request) so `status` shows it.
    pub fn record_error(&self, status: NtStatus, op: OpKind, slot: Option<Slot>) {
        self.fail(status, op, slot);
    }

    /// The payload's `wait_registration_settled` service.
    pub fn wait_registration_settled(&self, slot: Slot) {
        self.platform.event_wait(LoaderEvent::Settled(slot), None);
    }

    /// The status snapshot (service names and pool counts left zero). A
    /// slot left STUCK because its driver lingered is looked up again first,
    /// so `stuck` always means something of it remains. `PASSIVE_LEVEL`.
    pub fn status(&self) -> shared_abi::control::LoaderStatus {
        for slot in Slot::ALL {
            self.forget_if_gone(slot);
        }
        let now = self.platform.now();
        self.with_state(|s| s.snapshot(now))
    }
}
