//! The loader's side of the exactly-once handover (`crate::handover` has
//! the rules and why): choosing the plan, running its steps over the two
//! referenced images, and finishing it on the old slot's retire worker.
//!
//! Owns the invariant that the new slot's image, which the final import
//! calls, stays referenced until the handover is finished: while one is
//! pending, no operation switches or unloads and no reap retires the new
//! slot.
use super::Loader;
use crate::handover::{HandoverSteps, OwnerWord, Plan};
use crate::platform::LoaderPlatform;
use crate::state::PendingHandover;
use loader_parsers::payload::{CheckedPayload, HandoverEntries};
use shared_abi::control::HandoverMode;
use shared_abi::payload::LogLevel;
use shared_abi::{NtStatus, Slot};

/// The two payloads of one handover, as the loader holds them.
pub(super) struct Steps<'a, P: LoaderPlatform> {
    loader: &'a Loader<P>,
    old_slot: Slot,
    old: Option<(P::Image, HandoverEntries)>,
    new: (P::Image, HandoverEntries),
}

impl<P: LoaderPlatform> HandoverSteps for Steps<'_, P> {
    type Blob = P::Blob;

    fn publish(&self, word: OwnerWord) {
        self.loader.platform.publish_owner(word);
        self.loader.with_state(|s| s.handover.owner_generation = u32::from(word.owner));
    }

    fn close_marks(&self) {
        self.loader.platform.close_marks();
    }

    fn wait_old_drained(&self) -> bool {
        self.loader.platform.wait_old_drained(self.old_slot)
    }

    fn export_old(&self, final_state: bool) -> Result<P::Blob, NtStatus> {
        let (image, entries) = self.old.ok_or(NtStatus::NOT_SUPPORTED)?;
        let state = entries.state.ok_or(NtStatus::NOT_SUPPORTED)?;
        self.loader.platform.call_export(image, state.export, final_state)
    }

    fn import_new(&self, blob: &P::Blob, final_state: bool) -> NtStatus {
        let (image, entries) = self.new;
        let Some(state) = entries.state else { return NtStatus::NOT_SUPPORTED };
        let status = self.loader.platform.call_import(image, state.import, blob, final_state);
        let bytes = self.loader.platform.blob_len(blob);
        self.loader.with_state(|s| {
            let h = &mut s.handover;
            h.last_status = status.0;
            h.last_state_bytes = bytes;
            if !status.is_success() {
                h.refused = h.refused.saturating_add(1);
            } else if final_state {
                h.state_transfers = h.state_transfers.saturating_add(1);
            }
        });
        status
    }

    fn free(&self, blob: P::Blob) {
        self.loader.platform.free_blob(blob);
    }

    fn quiesce_old(&self) -> NtStatus {
        match self.old {
            Some((image, entries)) => self.loader.platform.call_quiesce(image, entries.quiesce),
            None => NtStatus::NOT_SUPPORTED,
        }
    }
}

impl<P: LoaderPlatform> Loader<P> {
    /// The steps over the images the two slots hold now; `None` if the new
    /// slot holds no handover-capable payload.
    fn steps(&self, old: Slot, new: Slot) -> Option<Steps<'_, P>> {
        self.with_state(|s| {
            let entries = |slot: Slot| {
                let r = &s.slots[slot];
                Some((r.image?, r.checked?.entries.handover?))
            };
            Some(Steps { loader: self, old_slot: old, old: entries(old), new: entries(new)? })
        })
    }

    /// Right before the new payload registers (`load_slot`'s `prepare`):
    /// with nothing to hand over from, the new generation owns everything
    /// from its first callback. With an old payload and both payloads able
    /// to take part (ABI 1.2), the plan: the new payload is placed directly
    /// below the old one and registers under the old steady word (it passes
    /// everything until the handover word).
    pub(super) fn prepare_generation(
        &self,
        old: Option<Slot>,
        new: Slot,
        generation: u16,
        checked: &CheckedPayload,
    ) -> Result<Option<Plan>, NtStatus> {
        let Some(old) = old else {
            self.platform.publish_owner(OwnerWord::steady(generation));
            self.with_state(|s| s.handover.owner_generation = u32::from(generation));
            return Ok(None);
        };
        let (old_generation, old_entries) = self.with_state(|s| {
            let r = &s.slots[old];
            (r.generation, r.checked.and_then(|c| c.entries.handover))
        });
        let (Some(new_entries), Some(old_entries)) = (checked.entries.handover, old_entries) else {
            // One of the two predates the handover: reported at the switch.
            return Ok(None);
        };
        self.platform.place_below(new, old)?;
        self.platform.clear_marks();
        Ok(Some(Plan {
            old: old_generation,
            new: generation,
            carry_state: new_entries.state.is_some() && old_entries.state.is_some(),
        }))
    }

    /// After the new payload registered (attached below the old one and
    /// passing everything), before the switch: the snapshot of the old
    /// generation's state. A refusal aborts (the caller retires the new
    /// payload; the old one stays active with its state, and the owner
    /// word never changed).
    pub(super) fn begin_handover(&self, plan: Plan, old: Slot, new: Slot) -> Result<(), NtStatus> {
        let Some(steps) = self.steps(old, new) else { return Err(NtStatus::INTERNAL_ERROR) };
        plan.transfer_initial(&steps).inspect_err(|status| {
            self.platform.log(LogLevel::WARN, format_args!("slot {new}: refused the state of slot {old}: {status}"));
        })
    }

    /// The switch happened: flips the owner word (exact handover) or hands
    /// everything to the new generation (a payload too old for it), and
    /// records the mode. With a plan, the handover is pending until the old
    /// slot's retirement finishes it.
    pub(super) fn after_switch(&self, plan: Option<Plan>, old: Option<Slot>, new: Slot, generation: u16) {
        let Some(old) = old else { return };
        if let (Some(plan), Some(steps)) = (plan, self.steps(old, new)) {
            plan.flip(&steps);
            self.with_state(|s| {
                s.pending = Some(PendingHandover { old, new, plan });
                s.handover.mode = HandoverMode::EXACT.0;
                s.handover.exact_handovers = s.handover.exact_handovers.saturating_add(1);
                if !plan.carry_state {
                    s.handover.last_status = NtStatus::NOT_SUPPORTED.0;
                }
            });
            return;
        }
        self.platform.publish_owner(OwnerWord::steady(generation));
        self.with_state(|s| {
            s.handover.mode = HandoverMode::NONE_PAYLOAD_TOO_OLD.0;
            s.handover.owner_generation = u32::from(generation);
            s.handover.last_status = NtStatus::NOT_SUPPORTED.0;
        });
        self.platform.log(
            LogLevel::WARN,
            format_args!("slot {new}: handover: none (payload too old): both filtered for a moment"),
        );
    }

    /// On `slot`'s retirement, before its teardown: if `slot` is the old
    /// side of the pending handover, finishes it (the steady word for the
    /// new generation, the old one quiesced, its final state carried) and
    /// ends it.
    pub(super) fn finish_handover_of(&self, slot: Slot) {
        let Some(pending) = self.with_state(|s| s.pending.filter(|h| h.old == slot)) else { return };
        if let Some(steps) = self.steps(pending.old, pending.new) {
            let finished = pending.plan.finish(&steps);
            if !finished.drained {
                self.with_state(|s| {
                    s.handover.mode = HandoverMode::NOT_DRAINED.0;
                    s.handover.last_status = NtStatus::IO_TIMEOUT.0;
                });
                self.platform.log(
                    LogLevel::WARN,
                    format_args!("slot {slot}: handover: still processing when the bound ran out; not exact"),
                );
            }
            if !finished.quiesce.is_success() {
                self.with_state(|s| s.handover.last_status = finished.quiesce.0);
                self.platform.log(
                    LogLevel::WARN,
                    format_args!("slot {slot}: quiesce: {}; its final state is not carried", finished.quiesce),
                );
            }
            if let Some(status) = finished.state.filter(|s| !s.is_success()) {
                self.platform.log(LogLevel::WARN, format_args!("slot {}: final state: {status}", pending.new));
            }
        } else {
            self.platform.publish_owner(OwnerWord::steady(pending.plan.new));
            self.platform.close_marks();
        }
        self.with_state(|s| {
            if s.pending == Some(pending) {
                s.pending = None;
            }
        });
    }

    /// `DEVICE_BUSY` while a handover is pending (its old slot still
    /// retiring): the new slot is the import's target until then.
    pub(super) fn refuse_while_handover_pending(&self) -> Result<(), NtStatus> {
        if self.with_state(|s| s.pending.is_some()) {
            Err(NtStatus::DEVICE_BUSY)
        } else {
            Ok(())
        }
    }
}
