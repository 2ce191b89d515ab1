//! Single-threaded transitions of the loader; the races are the model's job
//! (`tests/`). Each payload image is the parsers' fixture, so the real
//! parser checks it here too.
extern crate std;
use super::*;
use crate::handover::OwnerWord;
use crate::platform::LoaderEvent;
use core::cell::{Cell, RefCell};
use loader_parsers::fixture::{self, put32, put64, IMAGE_BASE};
use shared_abi::control::{HandoverMode, REPLY_OLD_SLOT_STUCK, SLOT_NONE};
use shared_abi::PerSlot;
use std::vec::Vec;

/// Images are numbered per load; `refs[i]` counts references on image `i`.
struct Fake {
    state: RefCell<LoaderState<usize>>,
    events: RefCell<Vec<(LoaderEvent, bool)>>,
    refs: RefCell<Vec<i32>>,
    loaded: Cell<PerSlot<Option<usize>>>,
    calls: RefCell<Vec<&'static str>>,
    good: Vec<u8>,
    bad_magic: Vec<u8>,
    bad_images: Cell<bool>,
    register_status: Cell<NtStatus>,
    lose_driver_after_load: Cell<bool>,
    reference_fails: Cell<bool>,
    /// Retire workers never run: the bound always expires.
    workers_hang: Cell<bool>,
    /// The last `ActiveSlot` written (`Some(None)`: "no payload").
    #[allow(clippy::option_option)] // "never written" and "written: none" differ
    persisted: Cell<Option<Option<Slot>>>,
    /// The wait on "retired" times out just as the worker finishes.
    worker_finishes_as_wait_times_out: Cell<bool>,
    /// `ZwUnloadDriver` returns but the driver stays (a deferred unload).
    unload_defers: Cell<bool>,
    pending_workers: RefCell<Vec<Slot>>,
    /// Every owner word published, in order.
    words: RefCell<Vec<OwnerWord>>,
    /// The generation each registration was told.
    generations: RefCell<Vec<u16>>,
    /// What an import answers.
    import_status: Cell<NtStatus>,
    /// Whether the old generation's count drains within the bound.
    drains: Cell<bool>,
}

/// Offsets in the fixture's `.text` used as the handover entries.
const QUIESCE_OFFSET: u32 = 0x20;
const EXPORT_OFFSET: u32 = 0x28;
const IMPORT_OFFSET: u32 = 0x30;

impl Fake {
    fn new() -> Self {
        let good = fixture::payload().mapped();
        let mut bad_magic = good.clone();
        put32(&mut bad_magic, fixture::payload().descriptor_rva as usize + 4, 0x4E4F_5045);
        Fake {
            state: RefCell::new(LoaderState::new(1000)),
            events: RefCell::new(Vec::new()),
            refs: RefCell::new(Vec::new()),
            loaded: Cell::new(PerSlot::new(None, None)),
            calls: RefCell::new(Vec::new()),
            good,
            bad_magic,
            bad_images: Cell::new(false),
            register_status: Cell::new(NtStatus::SUCCESS),
            lose_driver_after_load: Cell::new(false),
            reference_fails: Cell::new(false),
            workers_hang: Cell::new(false),
            persisted: Cell::new(None),
            worker_finishes_as_wait_times_out: Cell::new(false),
            unload_defers: Cell::new(false),
            pending_workers: RefCell::new(Vec::new()),
            words: RefCell::new(Vec::new()),
            generations: RefCell::new(Vec::new()),
            import_status: Cell::new(NtStatus::SUCCESS),
            drains: Cell::new(true),
        }
    }

    /// A fake whose payloads have the handover entries (ABI 1.2), with or
    /// without the state pair.
    fn with_handover(state: bool) -> Self {
        let mut f = Fake::new();
        let mut d = fixture::sample_descriptor();
        put64(&mut d, 104, fixture::text_va(QUIESCE_OFFSET));
        if state {
            put64(&mut d, 112, fixture::text_va(EXPORT_OFFSET));
            put64(&mut d, 120, fixture::text_va(IMPORT_OFFSET));
        }
        f.good = fixture::payload().with_descriptor(&d).mapped();
        f
    }
    fn count(&self, what: &str) -> usize {
        self.calls.borrow().iter().filter(|c| **c == what).count()
    }
    fn set_loaded(&self, slot: Slot, image: Option<usize>) {
        let mut l = self.loaded.get();
        l[slot] = image;
        self.loaded.set(l);
    }
    fn is_set(&self, e: LoaderEvent) -> bool {
        self.events.borrow().iter().rev().find(|(x, _)| *x == e).is_none_or(|(_, set)| *set)
    }
    fn all_released(&self) -> bool {
        self.refs.borrow().iter().all(|&r| r == 0)
    }
    fn run_pending_workers(&self) {
        loop {
            let next = self.pending_workers.borrow_mut().pop();
            let Some(slot) = next else { break };
            Loader::new(self).retire_worker(slot);
        }
    }
}

impl LoaderPlatform for &Fake {
    type Image = usize;
    type Bytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn with_state<R>(&self, f: impl FnOnce(&mut LoaderState<usize>) -> R) -> R {
        f(&mut self.state.borrow_mut())
    }
    fn event_set(&self, e: LoaderEvent) {
        self.events.borrow_mut().push((e, true));
    }
    fn event_reset(&self, e: LoaderEvent) {
        self.events.borrow_mut().push((e, false));
    }
    fn event_wait(&self, e: LoaderEvent, timeout_ms: Option<u32>) -> bool {
        if let LoaderEvent::Retired(_) = e {
            if self.worker_finishes_as_wait_times_out.get() {
                self.run_pending_workers();
                return false;
            }
            if !self.workers_hang.get() {
                self.run_pending_workers();
            }
        }
        let set = self.is_set(e);
        assert!(set || timeout_ms.is_some(), "an unbounded wait on {e:?} would hang");
        set
    }
    fn load_driver(&self, slot: Slot) -> Result<(), NtStatus> {
        self.calls.borrow_mut().push("load_driver");
        let mut refs = self.refs.borrow_mut();
        refs.push(i32::from(!self.lose_driver_after_load.get()));
        if !self.lose_driver_after_load.get() {
            self.set_loaded(slot, Some(refs.len() - 1));
        }
        Ok(())
    }
    fn reference_image(&self, slot: Slot) -> Result<usize, NtStatus> {
        if self.reference_fails.get() {
            return Err(NtStatus::OBJECT_TYPE_MISMATCH);
        }
        let image = self.loaded.get()[slot].ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
        self.refs.borrow_mut()[image] += 1;
        Ok(image)
    }
    fn image_bytes(&self, image: usize) -> (&[u8], u64) {
        assert!(self.refs.borrow()[image] > 1, "image read without a reference");
        let bytes = if self.bad_images.get() { &self.bad_magic } else { &self.good };
        (bytes.as_slice(), IMAGE_BASE)
    }
    fn call_register(&self, image: usize, entry: u64, slot: Slot, generation: u16) -> NtStatus {
        assert!(self.refs.borrow()[image] > 1, "call without a reference");
        assert_ne!(generation, 0, "a registration without a generation");
        self.generations.borrow_mut().push(generation);
        assert!(!self.is_set(LoaderEvent::Settled(slot)), "settled before the registration call");
        assert_eq!(entry, fixture::text_va(fixture::REGISTER_OFFSET), "not the checked registration entry");
        self.calls.borrow_mut().push("register");
        self.register_status.get()
    }
    fn call_teardown(&self, image: usize, entry: u64) -> NtStatus {
        assert!(self.refs.borrow()[image] > 1, "call without a reference");
        assert_eq!(entry, fixture::text_va(fixture::TEARDOWN_OFFSET));
        self.calls.borrow_mut().push("teardown");
        NtStatus::SUCCESS
    }
    fn call_shutdown(&self, image: usize, entry: u64) {
        assert!(self.refs.borrow()[image] > 1, "call without a reference");
        assert_eq!(entry, fixture::text_va(fixture::SHUTDOWN_OFFSET));
        self.calls.borrow_mut().push("shutdown");
    }
    type Blob = u32;
    fn publish_owner(&self, word: OwnerWord) {
        self.words.borrow_mut().push(word);
    }
    fn clear_marks(&self) {
        self.calls.borrow_mut().push("clear_marks");
    }
    fn close_marks(&self) {
        let last = *self.words.borrow().last().expect("a word was published");
        assert_eq!(last.lower, crate::handover::NO_GENERATION, "the table closes after the steady word");
        self.calls.borrow_mut().push("close_marks");
    }
    fn wait_old_drained(&self, _old: Slot) -> bool {
        self.calls.borrow_mut().push("drained");
        self.drains.get()
    }
    fn place_below(&self, _new: Slot, _old: Slot) -> Result<(), NtStatus> {
        self.calls.borrow_mut().push("place_below");
        Ok(())
    }
    fn call_quiesce(&self, image: usize, entry: u64) -> NtStatus {
        assert!(self.refs.borrow()[image] > 1, "call without a reference");
        assert_eq!(entry, fixture::text_va(QUIESCE_OFFSET));
        self.calls.borrow_mut().push("quiesce");
        NtStatus::SUCCESS
    }
    fn call_export(&self, image: usize, entry: u64, final_state: bool) -> Result<u32, NtStatus> {
        assert!(self.refs.borrow()[image] > 1, "call without a reference");
        assert_eq!(entry, fixture::text_va(EXPORT_OFFSET));
        self.calls.borrow_mut().push(if final_state { "export_final" } else { "export" });
        Ok(64)
    }
    fn call_import(&self, image: usize, entry: u64, blob: &u32, final_state: bool) -> NtStatus {
        assert!(self.refs.borrow()[image] > 1, "call without a reference");
        assert_eq!((entry, *blob), (fixture::text_va(IMPORT_OFFSET), 64));
        self.calls.borrow_mut().push(if final_state { "import_final" } else { "import" });
        self.import_status.get()
    }
    fn blob_len(&self, blob: &u32) -> u32 {
        *blob
    }
    fn free_blob(&self, _blob: u32) {
        self.calls.borrow_mut().push("free_blob");
    }
    fn unload_driver(&self, slot: Slot) -> NtStatus {
        self.calls.borrow_mut().push("unload_driver");
        if self.unload_defers.get() {
            return NtStatus::SUCCESS;
        }
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
    fn start_retire_worker(&self, slot: Slot) -> Result<(), NtStatus> {
        self.pending_workers.borrow_mut().push(slot);
        Ok(())
    }
    fn join_retire_worker(&self, slot: Slot) {
        self.calls.borrow_mut().push("join");
        if self.pending_workers.borrow().contains(&slot) {
            self.workers_hang.set(false);
            self.run_pending_workers();
        }
    }
    fn persist_active(&self, slot: Option<Slot>) -> Result<(), NtStatus> {
        self.persisted.set(Some(slot));
        Ok(())
    }
    fn now(&self) -> u64 {
        42
    }
}

#[test]
fn load_upgrade_rollback_unload() {
    let f = Fake::new();
    let l = Loader::new(&f);
    assert_eq!(l.load().status, NtStatus::SUCCESS);
    assert_eq!(l.status().active_slot, 0);
    assert_eq!(f.persisted.get(), Some(Some(Slot::A)));
    let up = l.upgrade(None);
    assert_eq!((up.status, up.active, up.flags), (NtStatus::SUCCESS, Some(Slot::B), 0));
    assert_eq!(f.state.borrow().slot_state(Slot::A), SlotState::EMPTY);
    assert_eq!(f.state.borrow().slot_state(Slot::B), SlotState::ACTIVE);
    assert_eq!(f.persisted.get(), Some(Some(Slot::B)));
    assert_eq!(l.rollback().active, Some(Slot::A));
    assert_eq!(l.unload().status, NtStatus::SUCCESS);
    assert_eq!(f.persisted.get(), Some(None));
    assert!(f.all_released());
    assert_eq!((f.count("register"), f.count("teardown")), (3, 3));
    assert!(Slot::ALL.iter().all(|&s| f.is_set(LoaderEvent::Settled(s))));
}

#[test]
fn after_unload_load_brings_back_the_slot_that_was_active() {
    let f = Fake::new();
    let l = Loader::new(&f);
    l.load();
    l.upgrade(None);
    l.unload();
    assert_eq!(l.load().active, Some(Slot::B));
    assert_eq!(f.persisted.get(), Some(Some(Slot::B)));
}

#[test]
fn a_concurrent_operation_gets_busy_and_the_same_slot_is_refused() {
    let f = Fake::new();
    let l = Loader::new(&f);
    l.load();
    f.state.borrow_mut().busy = true;
    assert_eq!(l.upgrade(None).status, NtStatus::DEVICE_BUSY);
    f.state.borrow_mut().busy = false;
    assert_eq!(l.upgrade(Some(Slot::A)).status, NtStatus::INVALID_PARAMETER);
    f.state.borrow_mut().slots[Slot::B].state = SlotState::STUCK;
    f.state.borrow_mut().slots[Slot::B].worker_running = true;
    assert_eq!(l.upgrade(Some(Slot::B)).status, NtStatus::IMAGE_ALREADY_LOADED);
    assert_eq!(l.status().active_slot, 0);
}

#[test]
fn a_bad_image_is_refused_before_any_payload_code_runs() {
    let f = Fake::new();
    f.bad_images.set(true);
    let l = Loader::new(&f);
    let out = l.load();
    assert_eq!(out.status, NtStatus::INVALID_IMAGE_FORMAT);
    assert_eq!((f.count("register"), f.count("teardown"), f.count("unload_driver")), (0, 0, 1));
    assert_eq!(f.state.borrow().slot_state(Slot::A), SlotState::EMPTY);
    assert!(f.is_set(LoaderEvent::Settled(Slot::A)));
    assert!(f.all_released());
    assert_eq!(l.status().last_error.status, NtStatus::INVALID_IMAGE_FORMAT.0);
}

#[test]
fn a_failed_upgrade_keeps_the_old_payload_active() {
    let f = Fake::new();
    let l = Loader::new(&f);
    l.load();
    f.register_status.set(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION);
    let out = l.upgrade(None);
    assert_eq!((out.status, out.active), (NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION, Some(Slot::A)));
    let st = l.status();
    assert_eq!(st.slots[0].state, SlotState::ACTIVE.0);
    assert_eq!(st.slots[1].state, SlotState::EMPTY.0);
    assert_eq!((st.last_error.op, st.last_error.slot), (OpKind::UPGRADE.0, 1));
    assert!(Slot::ALL.iter().all(|&s| f.is_set(LoaderEvent::Settled(s))));
    assert_eq!(f.persisted.get(), Some(Some(Slot::A)));
}

#[test]
fn a_driver_gone_before_the_reference_fails_cleanly() {
    let f = Fake::new();
    f.lose_driver_after_load.set(true);
    let l = Loader::new(&f);
    assert_eq!(l.load().status, NtStatus::OBJECT_NAME_NOT_FOUND);
    assert_eq!(f.count("register"), 0);
    assert!(f.is_set(LoaderEvent::Settled(Slot::A)));
    assert_eq!(f.state.borrow().slot_state(Slot::A), SlotState::EMPTY);
}

/// Defect 1: when the reference fails after `ZwLoadDriver` succeeded (a
/// wrong object type, for one), the driver was left loaded and orphaned and
/// the slot answered `IMAGE_ALREADY_LOADED` until reboot. It is unloaded now.
#[test]
fn a_failed_reference_unloads_what_was_loaded() {
    let f = Fake::new();
    f.reference_fails.set(true);
    let l = Loader::new(&f);
    assert_eq!(l.load().status, NtStatus::OBJECT_TYPE_MISMATCH);
    assert_eq!((f.count("register"), f.count("unload_driver")), (0, 1));
    assert_eq!(f.loaded.get()[Slot::A], None, "the payload stayed loaded");
    assert_eq!(f.state.borrow().slot_state(Slot::A), SlotState::EMPTY);
    f.reference_fails.set(false);
    assert_eq!(l.load().status, NtStatus::SUCCESS, "the slot is usable again");
}

#[test]
fn stop_retires_everything_and_refuses_new_operations() {
    let f = Fake::new();
    let l = Loader::new(&f);
    l.load();
    l.stop();
    assert!(f.all_released());
    assert_eq!(l.load().status, NtStatus::DEVICE_NOT_READY);
    assert_eq!(l.status().active_slot, SLOT_NONE);
    assert_eq!(f.count("join"), 3, "both slots' workers joined, then the inline retirement's");
}

/// The loader's stop lands while a retire worker is tearing a payload down:
/// the worker leaves the driver unload to the stop (which runs on the thread
/// unloading the loader), and the stop finishes it.
#[test]
fn a_retirement_in_flight_hands_its_unload_to_the_stop() {
    let f = Fake::new();
    let l = Loader::new(&f);
    l.load();
    f.workers_hang.set(true);
    let out = l.upgrade(None);
    assert_eq!(out.status, NtStatus::SUCCESS);
    assert_eq!(out.flags, REPLY_OLD_SLOT_STUCK);
    assert_eq!(f.count("unload_driver"), 0);
    // The operation returned; the stop begins, and joining the worker lets it
    // run: it finds the loader stopping and leaves the unload to the stop.
    l.stop();
    assert!(f.state.borrow().slot(Slot::A).image().is_none());
    assert_eq!(f.count("unload_driver"), 2, "A by the stop after the hand-off, B as the active payload");
    assert!(f.all_released());
    assert_eq!(f.count("teardown"), 2, "each payload torn down once");
    // The worker tore A down (while the stop joined it) but left the unload:
    // the stop's own retirement of A (a join, then the unload) follows.
    let calls = f.calls.borrow();
    let worker_teardown = calls.iter().position(|c| *c == "teardown").unwrap();
    assert_eq!(calls[worker_teardown + 1..worker_teardown + 3], ["join", "join"], "{calls:?}");
    assert_eq!(calls[worker_teardown + 3], "unload_driver", "{calls:?}");
}

/// Defect 7: `sc stop` of the active payload's service tears it down through
/// FltMgr; the payload reports it, the slot shows `stopped`, nothing is
/// active, and `load` really loads again.
#[test]
fn a_payload_stopped_from_outside_is_shown_stopped_and_load_reloads_it() {
    let f = Fake::new();
    let l = Loader::new(&f);
    l.load();
    let torn = PayloadReport { phase: PayloadPhase::TORN_DOWN.0, ..PayloadReport::default() };
    // The foreign unload: the payload tears down and reports; its driver goes.
    l.on_report(Slot::A, &torn);
    assert_eq!(f.state.borrow().slot_state(Slot::A), SlotState::STOPPED);
    assert_eq!(l.status().active_slot, SLOT_NONE);
    let image = f.loaded.get()[Slot::A].unwrap();
    f.refs.borrow_mut()[image] -= 1;
    f.set_loaded(Slot::A, None);
    assert_eq!(l.reap().status, NtStatus::SUCCESS);
    assert!(f.all_released(), "the loader's reference was not dropped");
    assert_eq!(f.count("teardown"), 0, "the loader called into a payload torn down from outside");
    assert_eq!(f.count("unload_driver"), 0, "a second unload of a driver already being unloaded");
    assert_eq!(f.state.borrow().slot_state(Slot::A), SlotState::STOPPED);
    let out = l.load();
    assert_eq!((out.status, out.active), (NtStatus::SUCCESS, Some(Slot::A)));
    assert_eq!(f.count("load_driver"), 2, "load returned at once without loading");
}

/// A teardown reported while the slot registers (a foreign stop between the
/// registration and the switch) keeps the slot from becoming active.
#[test]
fn a_teardown_reported_before_the_switch_refuses_the_switch() {
    let f = Fake::new();
    let l = Loader::new(&f);
    l.load();
    f.state.borrow_mut().slots[Slot::B].teardown_reported = true;
    // claim_empty clears the record, so mark it again once loading began.
    f.register_status.set(NtStatus::SUCCESS);
    let l2 = Loader::new(&f);
    l2.claim_empty(Slot::B).unwrap();
    l2.load_slot(Slot::B, OpKind::UPGRADE, 1, |_| Ok(())).unwrap();
    f.state.borrow_mut().slots[Slot::B].teardown_reported = true;
    assert_eq!(l2.switch(Slot::B, OpKind::UPGRADE, Some(Slot::A)), Err(NtStatus::DELETE_PENDING));
    assert_eq!(f.state.borrow().active(), Some(Slot::A));
    assert_ne!(f.state.borrow().slot_state(Slot::B), SlotState::ACTIVE);
}

#[test]
fn shutdown_calls_the_hook_of_the_active_payload_as_an_operation() {
    let f = Fake::new();
    let l = Loader::new(&f);
    l.shutdown();
    assert_eq!(f.count("shutdown"), 0, "no payload, no hook");
    l.load();
    l.shutdown();
    assert_eq!(f.count("shutdown"), 1);
    assert!(!f.state.borrow().is_busy());
    // An operation in flight that does not end within the bound: no hook.
    f.state.borrow_mut().busy = true;
    f.events.borrow_mut().push((LoaderEvent::Idle, false));
    l.shutdown();
    assert_eq!(f.count("shutdown"), 1);
    assert_eq!(l.status().last_error.op, OpKind::SHUTDOWN.0);
}

/// A retirement whose wait timed out while its worker finished with the
/// driver still lingering (a deferred unload) reported success; it reports
/// `IMAGE_ALREADY_LOADED`, and the slot shows STUCK.
#[test]
fn a_timed_out_retirement_that_lingers_is_an_error() {
    let f = Fake::new();
    let l = Loader::new(&f);
    l.load();
    f.worker_finishes_as_wait_times_out.set(true);
    f.unload_defers.set(true);
    let out = l.unload();
    assert_eq!(out.status, NtStatus::IMAGE_ALREADY_LOADED);
    assert_eq!(out.flags, REPLY_OLD_SLOT_STUCK);
    assert_eq!(f.state.borrow().slot_state(Slot::A), SlotState::STUCK);
}

/// Issue 12: both payloads take part (ABI 1.2 with the state pair). The
/// new one is placed below the old one, told its generation and attached
/// while the old one owns everything; the snapshot goes across before the
/// switch, the word flips after it, and the old slot's retirement quiesces
/// it, carries the final state and only then hands everything to the new
/// generation, before the old payload's teardown.
#[test]
fn an_exact_handover_runs_its_steps_in_order() {
    let f = Fake::with_handover(true);
    let l = Loader::new(&f);
    assert_eq!(l.load().status, NtStatus::SUCCESS);
    f.calls.borrow_mut().clear();
    let up = l.upgrade(None);
    assert_eq!((up.status, up.active), (NtStatus::SUCCESS, Some(Slot::B)));
    let (g1, g2) = (f.generations.borrow()[0], f.generations.borrow()[1]);
    assert_ne!(g1, g2);
    assert_eq!(*f.words.borrow(), [OwnerWord::steady(g1), OwnerWord::handover(g1, g2, true), OwnerWord::steady(g2)]);
    let calls = f.calls.borrow().clone();
    let at = |what: &str| calls.iter().position(|c| *c == what).unwrap_or_else(|| panic!("no {what} in {calls:?}"));
    assert!(at("place_below") < at("register"));
    assert!(at("clear_marks") < at("register"));
    assert!(at("register") < at("export") && at("export") < at("import"));
    assert!(at("import") < at("join"), "the snapshot crosses before the switch retires anything");
    assert!(at("drained") < at("quiesce"), "the steady word waits for the marks to drain");
    assert!(
        at("drained") < at("close_marks") && at("close_marks") < at("quiesce"),
        "the table closes with the steady word"
    );
    assert!(at("quiesce") < at("export_final") && at("export_final") < at("import_final"));
    assert!(at("import_final") < at("teardown"), "the final state is carried before the old one is torn down");
    let h = f.state.borrow().handover();
    assert_eq!((h.mode, h.state_transfers, h.refused, h.exact_handovers), (1, 1, 0, 1));
    assert_eq!(h.owner_generation, u32::from(g2));
    assert!(f.state.borrow().pending_handover().is_none());
}

/// An old generation still processing when the bound runs out: the new
/// one takes over all the same (the upgrade stands), and status says the
/// handover was not exact, with `STATUS_IO_TIMEOUT`.
#[test]
fn a_handover_whose_old_generation_does_not_drain_says_it_was_not_exact() {
    let f = Fake::with_handover(true);
    let l = Loader::new(&f);
    assert_eq!(l.load().status, NtStatus::SUCCESS);
    f.drains.set(false);
    let up = l.upgrade(None);
    assert_eq!((up.status, up.active), (NtStatus::SUCCESS, Some(Slot::B)));
    let g2 = f.generations.borrow()[1];
    assert_eq!(f.words.borrow().last(), Some(&OwnerWord::steady(g2)));
    let h = f.state.borrow().handover();
    assert_eq!((h.mode, h.last_status), (HandoverMode::NOT_DRAINED.0, NtStatus::IO_TIMEOUT.0));
    assert!(f.state.borrow().pending_handover().is_none());
}

/// A refused import rolls the upgrade back before the switch: the old
/// payload owns everything again and stays active, the new one is retired,
/// and status names the refusal.
#[test]
fn a_refused_state_import_keeps_the_old_payload() {
    let f = Fake::with_handover(true);
    let l = Loader::new(&f);
    assert_eq!(l.load().status, NtStatus::SUCCESS);
    f.import_status.set(NtStatus::REVISION_MISMATCH);
    let up = l.upgrade(None);
    assert_eq!((up.status, up.active), (NtStatus::REVISION_MISMATCH, Some(Slot::A)));
    let g1 = f.generations.borrow()[0];
    assert_eq!(f.words.borrow().last(), Some(&OwnerWord::steady(g1)));
    assert_eq!(f.state.borrow().slot_state(Slot::A), SlotState::ACTIVE);
    assert_eq!(f.state.borrow().slot_state(Slot::B), SlotState::EMPTY);
    assert_eq!(f.count("quiesce"), 0, "the old payload was never quiesced");
    let h = f.state.borrow().handover();
    assert_eq!((h.refused, h.last_status, h.state_transfers), (1, NtStatus::REVISION_MISMATCH.0, 0));
    assert_eq!(f.state.borrow().last_error().status, NtStatus::REVISION_MISMATCH.0);
}

/// Payloads without the handover entries (ABI 1.1) still upgrade; status
/// says there was no handover.
#[test]
fn payloads_too_old_for_a_handover_still_upgrade() {
    let f = Fake::new();
    let l = Loader::new(&f);
    assert_eq!(l.load().status, NtStatus::SUCCESS);
    assert_eq!(l.upgrade(None).status, NtStatus::SUCCESS);
    let h = f.state.borrow().handover();
    assert_eq!(h.mode, shared_abi::control::HandoverMode::NONE_PAYLOAD_TOO_OLD.0);
    assert_eq!(f.count("place_below") + f.count("quiesce") + f.count("export"), 0);
    let g2 = f.generations.borrow()[1];
    assert_eq!(f.words.borrow().last(), Some(&OwnerWord::steady(g2)));
}

/// While a handover's old slot is still retiring (its quiesce outlasted
/// the bound), nothing may retire or replace the new slot it imports into.
#[test]
fn nothing_switches_while_a_handover_is_finishing() {
    let f = Fake::with_handover(true);
    let l = Loader::new(&f);
    assert_eq!(l.load().status, NtStatus::SUCCESS);
    f.workers_hang.set(true);
    let up = l.upgrade(None);
    assert_eq!((up.status, up.flags), (NtStatus::SUCCESS, REPLY_OLD_SLOT_STUCK));
    assert!(f.state.borrow().pending_handover().is_some());
    assert_eq!(l.rollback().status, NtStatus::DEVICE_BUSY);
    assert_eq!(l.unload().status, NtStatus::DEVICE_BUSY);
    f.workers_hang.set(false);
    f.run_pending_workers();
    assert!(f.state.borrow().pending_handover().is_none());
    assert_eq!(l.rollback().status, NtStatus::SUCCESS);
}
