//! One slot's life: claim, load, check, register, retire.
//!
//! Owns the order of calls into an image and the single release of its
//! reference. Must never call into an image whose reference it does not
//! hold, and never leave "registration settled" cleared once the
//! registration call returned (or never happened).
use super::Loader;
use crate::descriptor;
use crate::platform::{LoaderPlatform, Mutation, Slot};
use shared_abi::control::{OpKind, SlotState};
use shared_abi::payload::LogLevel;
use shared_abi::NtStatus;

impl<P: LoaderPlatform> Loader<P> {
    /// Takes an EMPTY slot for loading. A STUCK slot whose worker finished
    /// (the image lingered: someone else still held a reference) is looked
    /// up again first; `IMAGE_ALREADY_LOADED` while anything of it remains.
    pub(super) fn claim_empty(&self, slot: Slot) -> Result<(), NtStatus> {
        let lingering = self.platform.with_state(|s| {
            let r = &s.slots[slot];
            r.state == SlotState::STUCK && !r.worker_running
        });
        if lingering {
            match self.platform.reference_image(slot) {
                Ok(image) => {
                    self.platform.release_image(image);
                    return Err(NtStatus::IMAGE_ALREADY_LOADED);
                }
                Err(_) => self.platform.with_state(|s| {
                    let r = &mut s.slots[slot];
                    if r.state == SlotState::STUCK && !r.worker_running {
                        r.state = SlotState::EMPTY;
                    }
                }),
            }
        }
        let now = self.platform.now();
        self.platform.with_state(|s| {
            if s.slots[slot].state != SlotState::EMPTY {
                return Err(NtStatus::IMAGE_ALREADY_LOADED);
            }
            s.slots[slot].clear_payload();
            s.enter(slot, SlotState::LOADING, OpKind::NONE, now);
            Ok(())
        })
    }

    /// Loads, references, checks and registers the payload of a LOADING
    /// slot. On failure the slot is retired again (bounded) and the error
    /// returned; "registration settled" is set on every path.
    pub(super) fn load_slot(&self, slot: Slot, op: OpKind) -> Result<(), NtStatus> {
        let p = &self.platform;
        // No image of this slot exists, so no payload can be waiting on it.
        p.settle_reset(slot);
        if p.mutation() == Mutation::SettleBeforeRegister {
            p.settle_set(slot);
        }
        let now = p.now();
        if let Err(status) = p.load_driver(slot) {
            p.settle_set(slot);
            p.with_state(|s| s.enter(slot, SlotState::EMPTY, op, now));
            return Err(status);
        }
        // Between ZwLoadDriver returning and this reference, an unload may
        // have removed the driver: the lookup then fails and we stop cleanly.
        let image = match p.reference_image(slot) {
            Ok(image) => image,
            Err(status) => {
                p.settle_set(slot);
                p.with_state(|s| s.enter(slot, SlotState::EMPTY, op, now));
                return Err(status);
            }
        };
        p.with_state(|s| s.slots[slot].image = Some(image));
        let checked = p.read_descriptor(image).and_then(|d| descriptor::check(&d).map(|()| d));
        let info = match checked {
            Ok(info) => info,
            Err(status) => {
                // Not a payload we can trust: no code of it is called; the
                // I/O manager's unload still runs its DriverUnload.
                p.settle_set(slot);
                self.discard(slot, op);
                return Err(status);
            }
        };
        let now = p.now();
        p.with_state(|s| {
            let r = &mut s.slots[slot];
            r.payload_version = info.payload_version;
            r.name = info.name;
            r.may_call_teardown = true;
            s.enter(slot, SlotState::REGISTERING, op, now);
        });
        if p.mutation() == Mutation::ReleaseImageEarly {
            p.release_image(image);
            p.with_state(|s| s.slots[slot].released_early = true);
        }
        let status = p.call_register(image, slot);
        if status.is_success() || p.mutation() != Mutation::NoSettleOnFailure {
            p.settle_set(slot);
        }
        if !status.is_success() {
            p.log(LogLevel::WARN, format_args!("slot {slot}: registration failed: {status}"));
            self.discard(slot, op);
            return Err(status);
        }
        let now = p.now();
        p.with_state(|s| s.slots[slot].registered_since = now);
        Ok(())
    }

    /// Retires a slot that never became active; a timeout leaves it STUCK.
    fn discard(&self, slot: Slot, op: OpKind) {
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
        let timeout = self.platform.with_state(|s| s.unload_timeout_ms);
        if self.platform.retired_wait(slot, timeout) {
            // The worker finished; a driver that is still there lingers
            // (someone else holds it: a deferred unload, a foreign reference).
            let lingering = self.platform.with_state(|s| s.slots[slot].state == SlotState::STUCK);
            return if lingering { Err(NtStatus::IMAGE_ALREADY_LOADED) } else { Ok(()) };
        }
        let now = self.platform.now();
        let stuck = self.platform.with_state(|s| {
            if s.slots[slot].worker_running {
                s.enter(slot, SlotState::STUCK, op, now);
                true
            } else {
                false
            }
        });
        if stuck {
            Err(NtStatus::IO_TIMEOUT)
        } else {
            Ok(())
        }
    }

    /// Marks `slot` as retiring with its retirement under way.
    fn begin_retirement(&self, slot: Slot, op: OpKind) {
        let now = self.platform.now();
        self.platform.with_state(|s| {
            s.enter(slot, SlotState::RETIRING, op, now);
            s.slots[slot].worker_running = true;
        });
        self.platform.retired_reset(slot);
    }

    pub(super) fn start_retirement(&self, slot: Slot, op: OpKind) {
        self.begin_retirement(slot, op);
        if let Err(status) = self.platform.start_retire_worker(slot) {
            // No thread: retire inline. The bound is lost, not the order.
            self.platform
                .log(LogLevel::WARN, format_args!("slot {slot}: no retire worker ({status}), retiring inline"));
            self.retire_worker(slot);
        }
    }

    /// Retires `slot` on the calling thread, without a bound.
    pub(super) fn retire_inline(&self, slot: Slot, op: OpKind) {
        self.begin_retirement(slot, op);
        self.retire_worker(slot);
    }

    /// The retire worker (a system thread the platform started). Tears the
    /// payload down, unloads it, drops the loader's reference (the image's
    /// last call has returned) and confirms the driver is gone: "unload
    /// returned" is not "unload happened" (seed 000). Then sets "retired".
    pub fn retire_worker(&self, slot: Slot) {
        let p = &self.platform;
        let (image, may_call_teardown, released_early) = p.with_state(|s| {
            let r = &s.slots[slot];
            (r.image, r.may_call_teardown, r.released_early)
        });
        if let (Some(image), true) = (image, may_call_teardown) {
            let status = p.call_teardown(image);
            if !status.is_success() {
                p.log(LogLevel::WARN, format_args!("slot {slot}: teardown: {status}"));
            }
        }
        let unloaded = p.unload_driver(slot);
        if let (Some(image), false) = (image, released_early) {
            p.release_image(image);
        }
        let gone = match p.reference_image(slot) {
            Ok(lingering) => {
                p.release_image(lingering);
                false
            }
            Err(_) => true,
        };
        let now = p.now();
        p.with_state(|s| {
            let r = &mut s.slots[slot];
            r.image = None;
            r.may_call_teardown = false;
            r.released_early = false;
            r.worker_running = false;
            if gone {
                r.registered_since = 0;
            }
            r.last_status = if gone { unloaded.0 } else { NtStatus::IMAGE_ALREADY_LOADED.0 };
            let state = if gone { SlotState::EMPTY } else { SlotState::STUCK };
            let op = shared_abi::control::OpKind(r.last_op);
            s.enter(slot, state, op, now);
        });
        p.retired_set(slot);
    }
}
