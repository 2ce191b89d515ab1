//! The model's implementations of the protocol's platform traits: the
//! loader driver (`ModelLoader`) and a payload image (`ModelPayload`).
//!
//! Each method does what the kernel driver's does, in model terms, and
//! checks what only the model can see (the image is mapped when called or
//! read, no wait happens inside a critical section, events are prepared
//! before use, the persisted slot registered). Must never add
//! synchronization the real drivers do not have.
use crate::iomgr;
use crate::sync::{in_critical_section, lock, pause, thread, Arc};
use crate::world::{Design, FilterRef, ImageId, SettleRef, Timeouts, UnloadRoutine, Violation, World};
use loader_parsers::fixture::IMAGE_BASE;
use loader_protocol::{
    payload, Loader, LoaderEvent, LoaderPlatform, LoaderState, Mutation, PayloadPlatform, PayloadState,
};
use shared_abi::control::SlotState;
use shared_abi::payload::{PayloadPhase, PayloadReport};
use shared_abi::{NtStatus, Slot};

fn thread_name() -> String {
    format!("{:?}", thread::current().id())
}

/// The loader driver, in the model.
#[derive(Clone)]
pub struct ModelLoader(pub Arc<World>);

impl ModelLoader {
    /// The activation rule, checked at the moment of the switch: an ACTIVE
    /// slot's payload had not begun its teardown when it became active.
    fn check_switches(&self, before: [SlotState; 2], s: &LoaderState<ImageId>) {
        let mut torn = false;
        for slot in Slot::ALL {
            if s.slot_state(slot) != SlotState::ACTIVE || before[slot.index()] == SlotState::ACTIVE {
                continue;
            }
            if let Some(image) = s.slot(slot).image() {
                // (Lock order: loader state, then payload states, then kernel;
                // the payload lock is dropped before the kernel's is taken.)
                torn |= lock(&self.0.payload_states)[image].teardown_begun();
            }
        }
        if torn {
            let mut k = self.0.kernel();
            self.0.violation(&mut k, Violation::SlotState, "activated a payload whose teardown had begun");
        }
    }
}

impl LoaderPlatform for ModelLoader {
    type Image = ImageId;
    type Bytes<'a> = &'a [u8];

    fn with_state<R>(&self, f: impl FnOnce(&mut LoaderState<ImageId>) -> R) -> R {
        in_critical_section(|| {
            let mut s = lock(&self.0.loader_state);
            let before = [s.slot_state(Slot::A), s.slot_state(Slot::B)];
            let before_active = s.active();
            let r = f(&mut s);
            self.check_switches(before, &s);
            let after = [s.slot_state(Slot::A), s.slot_state(Slot::B)];
            if after != before || s.active() != before_active {
                self.0.trace(|| {
                    format!(
                        "{:?}: state A {} B {}, active {:?}",
                        thread_name(),
                        after[0].name(),
                        after[1].name(),
                        s.active()
                    )
                });
            }
            r
        })
    }
    fn event_set(&self, event: LoaderEvent) {
        // (A late "retired" is what a twin is about: widen its window.)
        if let LoaderEvent::Retired(_) = event {
            crate::sync::delay();
        }
        self.0.update(|k| match event {
            LoaderEvent::Settled(slot) => k.settled[slot] = true,
            LoaderEvent::Retired(slot) => k.retired[slot] = true,
            LoaderEvent::Idle => k.idle = true,
        });
    }
    fn event_reset(&self, event: LoaderEvent) {
        self.0.update(|k| match event {
            LoaderEvent::Settled(slot) => k.settled[slot] = false,
            LoaderEvent::Retired(slot) => k.retired[slot] = false,
            LoaderEvent::Idle => k.idle = false,
        });
    }
    /// A bounded wait expires as [`Timeouts`] says: when the retirement is
    /// blocked on an open file, or whenever what it waits for has not
    /// happened yet when it looks.
    fn event_wait(&self, event: LoaderEvent, timeout_ms: Option<u32>) -> bool {
        let set = move |k: &crate::world::Kernel| match event {
            LoaderEvent::Settled(slot) => k.settled[slot],
            LoaderEvent::Retired(slot) => k.retired[slot],
            LoaderEvent::Idle => k.idle,
        };
        let bounded = timeout_ms.is_some();
        if bounded && self.0.config.timeouts == Timeouts::AnyMoment && self.0.gives_up_now() {
            let seen = set(&self.0.kernel());
            // (Widens the window between the wait's verdict and what the
            // caller does with it, for the std build.)
            pause();
            return seen;
        }
        let draining = move |k: &crate::world::Kernel| match event {
            LoaderEvent::Retired(slot) => bounded && k.draining[slot],
            _ => false,
        };
        self.0.wait_until("loader event wait", move |k| set(k) || draining(k));
        let seen = set(&self.0.kernel());
        if seen && event == LoaderEvent::Idle {
            // The loader's stop and shutdown look at `busy` again after this
            // wait: an operation that just claimed `busy` resets Idle a step
            // later. Let it run first (loom would otherwise count every turn
            // of that short spin as a new branch).
            thread::yield_now();
        }
        seen
    }
    fn load_driver(&self, slot: Slot) -> Result<(), NtStatus> {
        self.0.trace(|| format!("{:?}: ZwLoadDriver {slot}", thread_name()));
        iomgr::load_driver(&self.0, slot)
    }
    fn reference_image(&self, slot: Slot) -> Result<ImageId, NtStatus> {
        if self.0.config.reference_fails[slot] {
            return Err(NtStatus::OBJECT_TYPE_MISMATCH);
        }
        let mut k = self.0.kernel();
        let id = World::named_object(&k, slot).ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
        World::add_ref(&mut k, id);
        Ok(id)
    }
    fn image_bytes(&self, image: ImageId) -> (&[u8], u64) {
        let slot = {
            let mut k = self.0.kernel();
            if !k.objects[image].mapped {
                self.0.violation(&mut k, Violation::UnmappedCall, "read an unmapped image");
            }
            k.objects[image].slot
        };
        let bytes = if self.0.config.bad_descriptor[slot] { &self.0.images.1 } else { &self.0.images.0 };
        (bytes.as_slice(), IMAGE_BASE)
    }
    fn call_register(&self, image: ImageId, entry: u64, slot: Slot, _generation: u16) -> NtStatus {
        self.0.check_entry(image, entry, loader_parsers::fixture::REGISTER_OFFSET);
        self.0.enter(image, "registration entry");
        let status = if self.0.config.design == Design::CRelinked {
            crate::c_dropin::register_entry(&self.0, image, SettleRef(slot))
        } else {
            payload::register(&ModelPayload::new(&self.0, image), SettleRef(slot))
        };
        if status.is_success() {
            self.0.update(|k| k.objects[image].registered_ok = true);
        }
        self.0.leave(image);
        status
    }
    fn call_teardown(&self, image: ImageId, entry: u64) -> NtStatus {
        self.0.check_entry(image, entry, loader_parsers::fixture::TEARDOWN_OFFSET);
        self.0.enter(image, "teardown entry");
        let status = if self.0.config.design == Design::CRelinked {
            crate::c_dropin::teardown_entry(&self.0, image)
        } else {
            payload::teardown(&ModelPayload::new(&self.0, image))
        };
        self.0.leave(image);
        status
    }
    fn call_shutdown(&self, image: ImageId, entry: u64) {
        // The hook takes a while (it flushes what must survive).
        crate::sync::delay();
        self.0.check_entry(image, entry, loader_parsers::fixture::SHUTDOWN_OFFSET);
        self.0.enter(image, "shutdown entry");
        pause();
        self.0.leave(image);
    }
    // The images of these races predate the handover (the fixture has no
    // handover entries): the loader publishes owner words and nothing
    // else. The handover's own races are `model_handover`'s.
    type Blob = ();
    fn publish_owner(&self, _word: loader_protocol::handover::OwnerWord) {}
    fn clear_marks(&self) {}
    fn close_marks(&self) {}
    fn wait_old_drained(&self, _old: Slot) -> bool {
        true
    }
    fn place_below(&self, _new: Slot, _old: Slot) -> Result<(), NtStatus> {
        Ok(())
    }
    fn call_quiesce(&self, _image: ImageId, _entry: u64) -> NtStatus {
        NtStatus::NOT_SUPPORTED
    }
    fn call_export(&self, _image: ImageId, _entry: u64, _final_state: bool) -> Result<(), NtStatus> {
        Err(NtStatus::NOT_SUPPORTED)
    }
    fn call_import(&self, _image: ImageId, _entry: u64, _blob: &(), _final_state: bool) -> NtStatus {
        NtStatus::NOT_SUPPORTED
    }
    fn blob_len(&self, _blob: &()) -> u32 {
        0
    }
    fn free_blob(&self, _blob: ()) {}
    fn unload_driver(&self, slot: Slot) -> NtStatus {
        self.0.trace(|| format!("{:?}: ZwUnloadDriver {slot}", thread_name()));
        iomgr::unload_driver(&self.0, slot)
    }
    fn release_image(&self, image: ImageId) {
        self.0.trace(|| format!("{:?}: release image {image}", thread_name()));
        self.0.drop_ref(image, "loader's image reference");
    }
    fn start_retire_worker(&self, slot: Slot) -> Result<(), NtStatus> {
        let me = self.clone();
        self.0.update(|k| k.loader_code_running += 1);
        let worker = thread::spawn(move || {
            Loader::new(me.clone()).retire_worker(slot);
            me.0.update(|k| k.loader_code_running -= 1);
        });
        let previous = lock(&self.0.workers)[slot].replace(worker);
        if previous.is_some() {
            let mut k = self.0.kernel();
            self.0.violation(&mut k, Violation::ReferenceMisuse, "a retire worker started before the last was joined");
        }
        Ok(())
    }
    fn join_retire_worker(&self, slot: Slot) {
        let worker = lock(&self.0.workers)[slot].take();
        if let Some(worker) = worker {
            worker.join().expect("retire worker");
        }
    }
    fn persist_active(&self, slot: Option<Slot>) -> Result<(), NtStatus> {
        let mut k = self.0.kernel();
        if self.0.config.persist_fails {
            return Err(NtStatus::UNSUCCESSFUL);
        }
        if let Some(slot) = slot {
            // A power cut may follow any write: the slot must be one whose
            // newest image registered successfully.
            let ok = k.objects.iter().rev().find(|o| o.slot == slot).is_some_and(|o| o.registered_ok);
            if !ok {
                self.0.violation(
                    &mut k,
                    Violation::PersistedBadSlot,
                    "persisted a slot whose registration never succeeded",
                );
            }
        }
        k.persisted = Some(slot);
        Ok(())
    }
    fn now(&self) -> u64 {
        self.0.now()
    }
    fn mutation(&self) -> Mutation {
        self.0.config.mutation
    }
    fn log(&self, _level: shared_abi::payload::LogLevel, args: core::fmt::Arguments<'_>) {
        if std::env::var_os("MODEL_LOG").is_some() {
            eprintln!("{args}");
        }
    }
}

/// One payload image, in the model.
pub struct ModelPayload<'w> {
    world: &'w Arc<World>,
    id: ImageId,
}

impl<'w> ModelPayload<'w> {
    /// The payload code of image `id`.
    #[must_use]
    pub fn new(world: &'w Arc<World>, id: ImageId) -> Self {
        ModelPayload { world, id }
    }
}

impl ModelPayload<'_> {
    /// A payload calls a loader service: the loader's image must be mapped.
    fn check_loader_mapped(&self, what: &'static str) {
        let mut k = self.world.kernel();
        if !k.loader_mapped {
            self.world.violation(&mut k, Violation::UnmappedCall, what);
        }
    }

    fn check_teardown_done_ready(&self, what: &'static str) {
        let mut k = self.world.kernel();
        if !k.objects[self.id].teardown_done_ready {
            self.world.violation(&mut k, Violation::UninitialisedEvent, what);
        }
    }
}

impl PayloadPlatform for ModelPayload<'_> {
    type Settle = SettleRef;
    type Filter = FilterRef;

    fn with_state<R>(&self, f: impl FnOnce(&mut PayloadState<SettleRef, FilterRef>) -> R) -> R {
        pause();
        in_critical_section(|| f(&mut lock(&self.world.payload_states)[self.id]))
    }
    fn teardown_done_init(&self) {
        let id = self.id;
        pause();
        self.world.update(|k| k.objects[id].teardown_done_ready = true);
    }
    fn publish_driver_unload(&self) {
        let id = self.id;
        self.world.update(|k| k.objects[id].unload = UnloadRoutine::Payload);
        pause();
    }
    fn wait_settled(&self, s: SettleRef) {
        // The loader's service, called through the services table.
        self.check_loader_mapped("wait_registration_settled after the loader unloaded");
        ModelLoader(self.world.clone()).event_wait(LoaderEvent::Settled(s.0), None);
    }
    fn setup(&self) -> Result<(), NtStatus> {
        iomgr::setup(self.world, self.id);
        Ok(())
    }
    fn register_filter(&self) -> Result<FilterRef, NtStatus> {
        iomgr::flt_register(self.world, self.id)
    }
    fn start_filtering(&self, f: FilterRef) -> Result<(), NtStatus> {
        iomgr::flt_start(self.world, f)
    }
    fn unregister_filter(&self, f: FilterRef) {
        iomgr::flt_unregister(self.world, f);
    }
    fn cleanup(&self) {
        iomgr::cleanup(self.world, self.id);
    }
    fn teardown_done_set(&self) {
        self.check_teardown_done_ready("\"teardown finished\" set before DriverEntry prepared it");
        let id = self.id;
        self.world.update(|k| k.objects[id].teardown_done = true);
    }
    fn wait_teardown_done(&self) {
        self.check_teardown_done_ready("\"teardown finished\" waited on before DriverEntry prepared it");
        let id = self.id;
        self.world.wait_until("wait_teardown_done", |k| k.objects[id].teardown_done);
    }
    fn report_phase(&self, s: SettleRef, phase: PayloadPhase) {
        self.world.trace(|| format!("{:?}: image {} reports {}", thread_name(), self.id, phase.name()));
        // The loader's `report` service.
        self.check_loader_mapped("report after the loader unloaded");
        let report = PayloadReport { phase: phase.0, ..PayloadReport::default() };
        Loader::new(ModelLoader(self.world.clone())).on_report(s.0, &report);
    }
    fn mutation(&self) -> Mutation {
        self.world.config.mutation
    }
}
