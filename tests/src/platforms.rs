//! The model's implementations of the protocol's platform traits: the
//! loader driver (`ModelLoader`) and a payload image (`ModelPayload`).
//!
//! Each method does what the kernel driver's does, in model terms, and
//! checks what only the model can see (the image is mapped when called,
//! no wait happens inside a critical section). Must never add
//! synchronization the real drivers do not have.
use crate::iomgr;
use crate::sync::{in_critical_section, lock, pause, thread, Arc};
use crate::world::{FilterRef, ImageId, SettleRef, Violation, World};
use loader_protocol::descriptor::DescriptorInfo;
use loader_protocol::{payload, Loader, LoaderPlatform, LoaderState, Mutation, PayloadPlatform, PayloadState, Slot};
use shared_abi::payload::utf16_name;
use shared_abi::NtStatus;

/// The loader driver, in the model.
#[derive(Clone)]
pub struct ModelLoader(pub Arc<World>);

impl LoaderPlatform for ModelLoader {
    type Image = ImageId;

    fn with_state<R>(&self, f: impl FnOnce(&mut LoaderState<ImageId>) -> R) -> R {
        in_critical_section(|| f(&mut lock(&self.0.loader_state)))
    }
    fn settle_set(&self, slot: Slot) {
        self.0.update(|k| k.settled[slot] = true);
    }
    fn settle_reset(&self, slot: Slot) {
        self.0.update(|k| k.settled[slot] = false);
    }
    fn wait_settled(&self, slot: Slot) {
        self.0.wait_until("wait_registration_settled", |k| k.settled[slot]);
    }
    fn retired_set(&self, slot: Slot) {
        self.0.update(|k| k.retired[slot] = true);
    }
    fn retired_reset(&self, slot: Slot) {
        self.0.update(|k| k.retired[slot] = false);
    }
    /// The bound expires exactly when the retirement is blocked on a file
    /// that is still open (time passes only while something is stuck).
    fn retired_wait(&self, slot: Slot, timeout_ms: u32) -> bool {
        let bounded = timeout_ms != u32::MAX;
        self.0.wait_until("retired_wait", |k| k.retired[slot] || (bounded && k.draining[slot]));
        self.0.kernel().retired[slot]
    }
    fn load_driver(&self, slot: Slot) -> Result<(), NtStatus> {
        iomgr::load_driver(&self.0, slot)
    }
    fn reference_image(&self, slot: Slot) -> Result<ImageId, NtStatus> {
        let mut k = self.0.kernel();
        let id = World::named_object(&k, slot).ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
        World::add_ref(&mut k, id);
        Ok(id)
    }
    fn read_descriptor(&self, image: ImageId) -> Result<DescriptorInfo, NtStatus> {
        self.0.enter(image, "reading the descriptor");
        let slot = self.0.kernel().objects[image].slot;
        let mut info = DescriptorInfo::current(1, utf16_name("model"));
        if self.0.config.bad_descriptor[slot] {
            info.magic = 0;
        }
        self.0.leave(image);
        Ok(info)
    }
    fn call_register(&self, image: ImageId, slot: Slot) -> NtStatus {
        self.0.enter(image, "registration entry");
        let status = payload::register(&ModelPayload::new(&self.0, image), SettleRef(slot));
        self.0.leave(image);
        status
    }
    fn call_teardown(&self, image: ImageId) -> NtStatus {
        self.0.enter(image, "teardown entry");
        let status = payload::teardown(&ModelPayload::new(&self.0, image));
        self.0.leave(image);
        status
    }
    fn call_shutdown(&self, image: ImageId) {
        self.0.enter(image, "shutdown entry");
        self.0.leave(image);
    }
    fn unload_driver(&self, slot: Slot) -> NtStatus {
        iomgr::unload_driver(&self.0, slot)
    }
    fn release_image(&self, image: ImageId) {
        self.0.drop_ref(image, "loader's image reference");
    }
    fn start_retire_worker(&self, slot: Slot) -> Result<(), NtStatus> {
        let me = self.clone();
        let worker = thread::spawn(move || Loader::new(me).retire_worker(slot));
        lock(&self.0.workers).push(worker);
        Ok(())
    }
    fn persist_active(&self, slot: Option<Slot>) -> Result<(), NtStatus> {
        self.0.kernel().persisted = slot;
        Ok(())
    }
    fn now(&self) -> u64 {
        self.0.now()
    }
    fn mutation(&self) -> Mutation {
        self.0.config.mutation
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
}

impl PayloadPlatform for ModelPayload<'_> {
    type Settle = SettleRef;
    type Filter = FilterRef;

    fn with_state<R>(&self, f: impl FnOnce(&mut PayloadState<SettleRef, FilterRef>) -> R) -> R {
        in_critical_section(|| f(&mut lock(&self.world.payload_states)[self.id]))
    }
    fn wait_settled(&self, s: SettleRef) {
        // The loader's service, called through the services table.
        self.check_loader_mapped("wait_registration_settled after the loader unloaded");
        ModelLoader(self.world.clone()).wait_settled(s.0);
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
        let id = self.id;
        self.world.update(|k| k.objects[id].teardown_done = true);
    }
    fn wait_teardown_done(&self) {
        let id = self.id;
        self.world.wait_until("wait_teardown_done", |k| k.objects[id].teardown_done);
    }
    fn report_phase(&self, _s: SettleRef, _phase: shared_abi::payload::PayloadPhase) {
        // The loader's `report` service.
        self.check_loader_mapped("report after the loader unloaded");
        pause();
    }
    fn mutation(&self) -> Mutation {
        self.world.config.mutation
    }
}
