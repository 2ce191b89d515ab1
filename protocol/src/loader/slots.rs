//! One slot's life: claim, load, check, register, retire.
//!
//! Owns the order of calls into an image and the single release of its
//! reference:
//! - "registration settled" of a slot is cleared only before its image is
//!   loaded and is set after the registration call returned, on every path;
//! - the image is referenced from right after `ZwLoadDriver` until after its
//!   last call returned, and released exactly once; an image whose reference
//!   failed is unloaded, not orphaned;
//! - the image is checked (parsed once, `loader_parsers::payload`) before any
//!   payload code runs, and its entry points are kept as data;
//! - retirement runs on a worker; the operation waits for it with a bound;
//!   a slot's previous worker is joined before its events are reused;
//! - once the loader is stopping, no worker starts a driver unload: it
//!   leaves that to the stop, which runs on the thread unloading the loader.
//!
//! Must never call into an image whose reference it does not hold, and never
//! leave "registration settled" cleared once the registration call returned
//! (or never happened).
use super::Loader;
#[cfg(feature = "mutations")]
use crate::mutation::Mutation;
use crate::platform::{LoaderEvent, LoaderPlatform};
use loader_parsers::payload::{inspect_mapped, CheckedPayload};
use shared_abi::control::{OpKind, SlotState};
use shared_abi::payload::LogLevel;
use shared_abi::{NtStatus, Slot};

/// Who runs a retirement's last steps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runner {
    /// A retire worker (or an operation retiring inline for want of one):
    /// hands the unload to the stop if the loader is stopping.
    Worker,
    /// The loader's own stop, on the thread unloading the loader.
    Stop,
}

impl<P: LoaderPlatform> Loader<P> {
    /// Takes a vacant slot for loading. A STUCK or STOPPED slot whose worker
    /// finished (the image lingered: someone else still held a reference) is
    /// looked up again first; `IMAGE_ALREADY_LOADED` while anything of it
    /// remains.
    pub(super) fn claim_empty(&self, slot: Slot) -> Result<(), NtStatus> {
        if !self.forget_if_gone(slot) {
            return Err(NtStatus::IMAGE_ALREADY_LOADED);
        }
        let now = self.platform.now();
        self.with_state(|s| {
            if !s.slots[slot].is_vacant() {
                return Err(NtStatus::IMAGE_ALREADY_LOADED);
            }
            s.slots[slot].clear_payload();
            s.enter(slot, SlotState::LOADING, OpKind::NONE, now);
            Ok(())
        })
    }

    /// Looks a lingering slot (STUCK, its worker done, no reference held)
    /// up again, and makes it EMPTY if its driver is gone. `false` while the
    /// driver is still there.
    pub(super) fn forget_if_gone(&self, slot: Slot) -> bool {
        let lingering = |s: &crate::state::LoaderState<P::Image>| {
            let r = &s.slots[slot];
            r.state == SlotState::STUCK && !r.worker_running && r.image.is_none()
        };
        if !self.with_state(|s| lingering(s)) {
            return true;
        }
        if !self.confirm_gone(slot) {
            return false;
        }
        self.with_state(|s| {
            if lingering(s) {
                let r = &mut s.slots[slot];
                // A payload stopped from outside keeps showing so.
                r.state = if r.unloaded_by_foreign { SlotState::STOPPED } else { SlotState::EMPTY };
            }
        });
        true
    }

    /// Loads, references, checks and registers the payload of a LOADING
    /// slot as `generation`. `prepare` runs after the check, right before
    /// the registration call (the handover places the new payload and
    /// publishes the owner word there); its error refuses the load. On
    /// failure the slot is retired again (bounded) and the error returned;
    /// "registration settled" is set on every path.
    pub(super) fn load_slot(
        &self,
        slot: Slot,
        op: OpKind,
        generation: u16,
        prepare: impl FnOnce(&CheckedPayload) -> Result<(), NtStatus>,
    ) -> Result<(), NtStatus> {
        let p = &self.platform;
        // No image of this slot exists, so no payload can be waiting on it.
        p.event_reset(LoaderEvent::Settled(slot));
        #[cfg(feature = "mutations")]
        if p.mutation() == Mutation::SettleBeforeRegister {
            p.event_set(LoaderEvent::Settled(slot));
        }
        let now = p.now();
        if self.with_state(|s| s.stopping) {
            // The loader's unload began: it must not meet a load in flight.
            p.event_set(LoaderEvent::Settled(slot));
            self.with_state(|s| s.enter(slot, SlotState::EMPTY, op, now));
            return Err(NtStatus::DEVICE_NOT_READY);
        }
        if let Err(status) = p.load_driver(slot) {
            p.event_set(LoaderEvent::Settled(slot));
            self.with_state(|s| s.enter(slot, SlotState::EMPTY, op, now));
            return Err(status);
        }
        // Between ZwLoadDriver returning and this reference, an unload may
        // have removed the driver (the look-up then fails), or the look-up
        // may fail for another reason with the driver still loaded. Either
        // way no payload code runs; the driver is unloaded so that nothing
        // of the slot is orphaned, and the slot ends EMPTY, or STUCK while
        // the driver lingers.
        let image = match p.reference_image(slot) {
            Ok(image) => image,
            Err(status) => {
                p.event_set(LoaderEvent::Settled(slot));
                self.unload_unreferenced(slot, op);
                return Err(status);
            }
        };
        self.with_state(|s| s.slots[slot].image = Some(image));
        let checked = {
            let (bytes, base) = p.image_bytes(image);
            inspect_mapped(&bytes, base)
        };
        let checked = match checked {
            Ok(checked) => checked,
            Err(status) => {
                // Not a payload we can trust: no code of it is called; the
                // I/O manager's unload still runs its DriverUnload.
                p.event_set(LoaderEvent::Settled(slot));
                self.discard(slot, op);
                return Err(status);
            }
        };
        if let Err(status) = prepare(&checked) {
            p.event_set(LoaderEvent::Settled(slot));
            self.discard(slot, op);
            return Err(status);
        }
        let now = p.now();
        self.with_state(|s| {
            let r = &mut s.slots[slot];
            r.checked = Some(checked);
            r.may_call_teardown = true;
            r.generation = generation;
            s.enter(slot, SlotState::REGISTERING, op, now);
        });
        #[cfg(feature = "mutations")]
        if p.mutation() == Mutation::ReleaseImageEarly {
            p.release_image(image);
            self.with_state(|s| s.slots[slot].released_early = true);
        }
        let status = p.call_register(image, checked.entries.register, slot, generation);
        #[cfg(feature = "mutations")]
        let skip_settle = !status.is_success() && p.mutation() == Mutation::NoSettleOnFailure;
        #[cfg(not(feature = "mutations"))]
        let skip_settle = false;
        if !skip_settle {
            p.event_set(LoaderEvent::Settled(slot));
        }
        if !status.is_success() {
            p.log(LogLevel::WARN, format_args!("slot {slot}: registration failed: {status}"));
            self.discard(slot, op);
            return Err(status);
        }
        let now = p.now();
        self.with_state(|s| s.slots[slot].registered_since = now);
        Ok(())
    }

    /// After a failed reference: unload what `ZwLoadDriver` loaded and see
    /// whether it went.
    fn unload_unreferenced(&self, slot: Slot, op: OpKind) {
        let p = &self.platform;
        #[cfg(feature = "mutations")]
        if p.mutation() == Mutation::NoUnloadAfterFailedReference {
            let now = p.now();
            self.with_state(|s| s.enter(slot, SlotState::EMPTY, op, now));
            return;
        }
        let unloaded = p.unload_driver(slot);
        let gone = self.confirm_gone(slot);
        let now = p.now();
        self.with_state(|s| {
            s.enter(slot, if gone { SlotState::EMPTY } else { SlotState::STUCK }, op, now);
            s.slots[slot].last_status = if gone { unloaded.0 } else { NtStatus::IMAGE_ALREADY_LOADED.0 };
        });
    }

    /// `true` if no driver object of the slot can be found any more.
    fn confirm_gone(&self, slot: Slot) -> bool {
        match self.platform.reference_image(slot) {
            Ok(lingering) => {
                self.platform.release_image(lingering);
                false
            }
            Err(_) => true,
        }
    }

    /// Retires a slot that never became active; a timeout leaves it STUCK.
    pub(super) fn discard(&self, slot: Slot, op: OpKind) {
        if let Err(status) = self.retire(slot, op) {
            self.platform.log(LogLevel::WARN, format_args!("slot {slot}: retirement pending: {status}"));
        }
    }

    /// Retires `slot` on a worker and waits for it at most the configured
    /// bound. `IO_TIMEOUT` leaves the slot STUCK; the worker finishes later.
    /// `IMAGE_ALREADY_LOADED`: the worker finished but the driver lingers
    /// (STUCK until a later look-up finds it gone).
    pub(super) fn retire(&self, slot: Slot, op: OpKind) -> Result<(), NtStatus> {
        self.start_retirement(slot, op);
        let timeout = self.with_state(|s| s.unload_timeout_ms);
        if self.platform.event_wait(LoaderEvent::Retired(slot), Some(timeout)) {
            // The worker finished; a driver that is still there lingers
            // (someone else holds it: a deferred unload, a foreign reference).
            let lingering = self.with_state(|s| s.slots[slot].state == SlotState::STUCK);
            return if lingering { Err(NtStatus::IMAGE_ALREADY_LOADED) } else { Ok(()) };
        }
        let now = self.platform.now();
        let (running, lingering) = self.with_state(|s| {
            if s.slots[slot].worker_running {
                s.enter(slot, SlotState::STUCK, op, now);
                (true, false)
            } else {
                // The worker finished between the timeout and this look.
                (false, s.slots[slot].state == SlotState::STUCK)
            }
        });
        if running {
            return Err(NtStatus::IO_TIMEOUT);
        }
        #[cfg(feature = "mutations")]
        if self.platform.mutation() == Mutation::TimeoutLingeringIsOk {
            return Ok(());
        }
        if lingering {
            Err(NtStatus::IMAGE_ALREADY_LOADED)
        } else {
            Ok(())
        }
    }

    /// Marks `slot` as retiring with its retirement under way. The slot's
    /// previous worker is joined first, so no late "retired" of it can
    /// satisfy the wait on this retirement.
    fn begin_retirement(&self, slot: Slot, op: OpKind) {
        #[cfg(feature = "mutations")]
        let reset_first = self.platform.mutation() == Mutation::ResetBeforeJoin;
        #[cfg(not(feature = "mutations"))]
        let reset_first = false;
        if reset_first {
            self.platform.event_reset(LoaderEvent::Retired(slot));
        }
        self.platform.join_retire_worker(slot);
        let now = self.platform.now();
        self.with_state(|s| {
            s.enter(slot, SlotState::RETIRING, op, now);
            s.slots[slot].worker_running = true;
        });
        if !reset_first {
            self.platform.event_reset(LoaderEvent::Retired(slot));
        }
    }

    fn start_retirement(&self, slot: Slot, op: OpKind) {
        self.begin_retirement(slot, op);
        if let Err(status) = self.platform.start_retire_worker(slot) {
            // No thread: retire inline. The bound is lost, not the order.
            self.platform
                .log(LogLevel::WARN, format_args!("slot {slot}: no retire worker ({status}), retiring inline"));
            self.retire_body(slot, Runner::Worker);
        }
    }

    /// Retires `slot` on the calling thread, without a bound (the loader's
    /// own stop).
    pub(super) fn retire_inline(&self, slot: Slot, op: OpKind) {
        self.begin_retirement(slot, op);
        self.retire_body(slot, Runner::Stop);
    }

    /// The retire worker (a thread the platform started). Tears the payload
    /// down, unloads it, drops the loader's reference (the image's last call
    /// has returned) and confirms the driver is gone: "unload returned" is
    /// not "unload happened" (seed 000). Then sets "retired".
    pub fn retire_worker(&self, slot: Slot) {
        self.retire_body(slot, Runner::Worker);
    }

    fn retire_body(&self, slot: Slot, runner: Runner) {
        let p = &self.platform;
        let (image, checked, call_teardown, foreign, released_early) = self.with_state(|s| {
            let r = &s.slots[slot];
            // The loader's own stop also calls the teardown of a payload
            // being torn down from outside that has not finished: a second
            // teardown returns once the first is done, so no payload calls
            // the loader after its unload. (Until that teardown finished,
            // whoever unloads the payload has not unmapped it either.)
            let wait_for_foreign = runner == Runner::Stop && r.unloaded_by_foreign && !r.torn_down_reported;
            (r.image, r.checked, r.may_call_teardown || wait_for_foreign, r.unloaded_by_foreign, r.released_early)
        });
        self.finish_handover_of(slot);
        if let (Some(image), Some(checked), true) = (image, checked, call_teardown) {
            let status = p.call_teardown(image, checked.entries.teardown);
            if !status.is_success() {
                p.log(LogLevel::WARN, format_args!("slot {slot}: teardown: {status}"));
            }
        }
        // The loader's unload began: the driver unload is the stop's to do,
        // on the thread unloading the loader. The teardown is done, so the
        // stop will not call into the payload again.
        let handed = runner == Runner::Worker
            && self.with_state(|s| {
                if s.stopping {
                    let r = &mut s.slots[slot];
                    r.handed_to_stop = true;
                    r.may_call_teardown = false;
                    r.worker_running = false;
                    true
                } else {
                    false
                }
            });
        if handed {
            p.event_set(LoaderEvent::Retired(slot));
            return;
        }
        // Whoever stopped the payload from outside unloads it; a second
        // unload of a driver being unloaded is at best refused.
        let unloaded = if foreign { NtStatus::SUCCESS } else { p.unload_driver(slot) };
        if let (Some(image), false) = (image, released_early) {
            p.release_image(image);
        }
        let gone = self.confirm_gone(slot);
        let now = p.now();
        self.with_state(|s| {
            let r = &mut s.slots[slot];
            r.image = None;
            r.may_call_teardown = false;
            r.released_early = false;
            r.handed_to_stop = false;
            r.worker_running = false;
            if gone {
                r.registered_since = 0;
            }
            r.last_status = if gone { unloaded.0 } else { NtStatus::IMAGE_ALREADY_LOADED.0 };
            let state = match (gone, foreign) {
                (false, _) => SlotState::STUCK,
                (true, true) => SlotState::STOPPED,
                (true, false) => SlotState::EMPTY,
            };
            let op = OpKind(r.last_op);
            s.enter(slot, state, op, now);
        });
        p.event_set(LoaderEvent::Retired(slot));
    }
}
