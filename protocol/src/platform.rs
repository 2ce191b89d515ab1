//! The primitives the protocol is generic over: what a platform (the kernel
//! drivers, or the model in `tests/`) must provide.
//!
//! This module owns only trait definitions and the event names. It must
//! never hold state or logic: the protocol's rules live in [`crate::loader`]
//! and [`crate::payload`], once.
//!
//! Every piece of shared mutable state is reached through a closure-scoped
//! critical section (`with_state`), so a lock cannot be held across a wait:
//! the closure gets only `&mut` state and must return before any platform
//! call that may block. Implementations of `with_state` must never block
//! (kernel: a spin lock; model: a mutex that is never contended for long).
#[cfg(feature = "mutations")]
use crate::mutation::Mutation;
use crate::payload_state::PayloadState;
use crate::state::LoaderState;
use loader_parsers::pe::ImageBytes;
use shared_abi::payload::{LogLevel, PayloadPhase};
use shared_abi::{NtStatus, Slot};

/// The loader's notification events.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LoaderEvent {
    /// "Registration settled" of a slot: set once the registration call
    /// returned (or never happened), reset only while no image of the slot
    /// exists. The payload's teardown waits on it.
    Settled(Slot),
    /// "Retirement finished" of a slot: set by its retire worker as its
    /// last act.
    Retired(Slot),
    /// No control operation runs: set when `busy` is cleared, reset when it
    /// is claimed. The loader's own unload waits on it.
    Idle,
}

/// What the loader driver provides. Kernel: `KEVENTs` in statics, a spin
/// lock, `ZwLoadDriver`/`ZwUnloadDriver`, `ObReferenceObjectByName`, the
/// payload image's mapped bytes, and calls through its checked entries.
pub trait LoaderPlatform {
    /// A counted reference keeping a payload image mapped (kernel: a
    /// referenced `DRIVER_OBJECT` with its `DriverStart`/`DriverSize`).
    type Image: Copy;
    /// The mapped bytes of a referenced image, for the parser.
    type Bytes<'a>: ImageBytes
    where
        Self: 'a;

    /// Runs `f` on the loader's state under its lock. Short; never blocks.
    fn with_state<R>(&self, f: impl FnOnce(&mut LoaderState<Self::Image>) -> R) -> R;

    /// Signals an event (notification: stays set until reset).
    fn event_set(&self, event: LoaderEvent);
    /// Clears an event.
    fn event_reset(&self, event: LoaderEvent);
    /// Waits for an event: `None` without a bound, `Some(ms)` at most that
    /// long. `true` if it was signalled. `PASSIVE_LEVEL`, no lock held.
    fn event_wait(&self, event: LoaderEvent, timeout_ms: Option<u32>) -> bool;

    /// `ZwLoadDriver` on the slot's service key; runs the payload's `DriverEntry`.
    fn load_driver(&self, slot: Slot) -> Result<(), NtStatus>;
    /// `ObReferenceObjectByName` on the slot's driver object. Fails once the
    /// driver is gone.
    fn reference_image(&self, slot: Slot) -> Result<Self::Image, NtStatus>;
    /// The referenced image's mapped bytes and the address it is mapped at.
    fn image_bytes(&self, image: Self::Image) -> (Self::Bytes<'_>, u64);
    /// Calls the payload's registration entry (a checked entry point of
    /// `image`) with the services of `slot`, telling it its `generation`.
    fn call_register(&self, image: Self::Image, entry: u64, slot: Slot, generation: u16) -> NtStatus;
    /// Calls the payload's teardown entry. May block without bound (an
    /// instance draining, seed 002); the protocol calls it on a worker, or
    /// on the loader's own unloading thread.
    fn call_teardown(&self, image: Self::Image, entry: u64) -> NtStatus;
    /// Calls the payload's shutdown hook. Must not block long.
    fn call_shutdown(&self, image: Self::Image, entry: u64);

    /// A state blob in memory the loader owns (kernel: non-paged pool under
    /// the loader's tag).
    type Blob;
    /// Stores the owner word every payload's callbacks read
    /// ([`crate::handover`]). Any IRQL.
    fn publish_owner(&self, word: crate::handover::OwnerWord);
    /// Forgets every mark and opens the table (before a handover starts:
    /// marks of an earlier one must not be taken for new ones).
    fn clear_marks(&self);
    /// Closes the table of marks (right after the new steady word): a put
    /// then answers "recorded" without recording. Any IRQL.
    fn close_marks(&self);
    /// Waits until the count of operations slot `old`'s payload processes
    /// in flight is zero (`crate::handover`, step 3). `false` if it gave up
    /// (kernel: polling, after the retirement bound). `PASSIVE_LEVEL`, no
    /// lock held.
    fn wait_old_drained(&self, old: Slot) -> bool;
    /// Gives slot `new` an altitude directly below the one slot `old` runs
    /// at (kernel: its service's `Instances` key), before `new` registers.
    fn place_below(&self, new: Slot, old: Slot) -> Result<(), NtStatus>;
    /// Calls the payload's quiesce entry (handover): unregisters its filter,
    /// keeps its state. May block like a teardown.
    fn call_quiesce(&self, image: Self::Image, entry: u64) -> NtStatus;
    /// Calls the payload's state export into a blob of the loader's, and
    /// checks the blob's header.
    fn call_export(&self, image: Self::Image, entry: u64, final_state: bool) -> Result<Self::Blob, NtStatus>;
    /// Calls the payload's state import with a blob.
    fn call_import(&self, image: Self::Image, entry: u64, blob: &Self::Blob, final_state: bool) -> NtStatus;
    /// Bytes of a blob (for `status`).
    fn blob_len(&self, blob: &Self::Blob) -> u32;
    /// Frees a blob.
    fn free_blob(&self, blob: Self::Blob);
    /// `ZwUnloadDriver` on the slot's service key.
    fn unload_driver(&self, slot: Slot) -> NtStatus;
    /// `ObDereferenceObject`: the image may be unmapped right here.
    fn release_image(&self, image: Self::Image);
    /// Runs [`crate::Loader::retire_worker`]`(slot)` on a new thread of the
    /// loader (kernel: a system thread).
    fn start_retire_worker(&self, slot: Slot) -> Result<(), NtStatus>;
    /// Waits until the last retire worker started for `slot` has exited
    /// (returns at once if there is none). After this, no late signal of
    /// that worker can reach the slot's events.
    fn join_retire_worker(&self, slot: Slot);
    /// Asks for [`crate::Loader::reap`] to run soon on a thread of the
    /// loader (a payload was stopped from outside). Never blocks.
    fn request_reap(&self) {}
    /// Writes `Parameters\ActiveSlot` (`loader_parsers::config::encode_active_slot`)
    /// and flushes it.
    fn persist_active(&self, slot: Option<Slot>) -> Result<(), NtStatus>;
    /// System time, 100 ns units since 1601.
    fn now(&self) -> u64;

    /// Writes one line to the loader's log.
    fn log(&self, level: LogLevel, args: core::fmt::Arguments<'_>) {
        let _ = (level, args);
    }
    /// Negative controls only (feature `mutations`, never in a driver build).
    #[cfg(feature = "mutations")]
    fn mutation(&self) -> Mutation {
        Mutation::None
    }
}

/// What a payload driver provides. Kernel: a spin lock around the payload's
/// globals, `FltRegisterFilter` and friends, and the loader's services table.
pub trait PayloadPlatform {
    /// The loader's settle service for this image (kernel: the
    /// `*const LoaderServices` given to the registration entry).
    type Settle: Copy;
    /// A registered filter (kernel: `PFLT_FILTER`).
    type Filter: Copy;

    /// Runs `f` on the payload's state under its lock. Short; never blocks.
    fn with_state<R>(&self, f: impl FnOnce(&mut PayloadState<Self::Settle, Self::Filter>) -> R) -> R;
    /// Prepares "teardown finished" (kernel: initialises the image's
    /// notification event). `DriverEntry`, before `DriverUnload` is published.
    fn teardown_done_init(&self);
    /// Publishes `DriverUnload` in the driver object. From here an unload
    /// request reaches the payload. `DriverEntry`'s last act.
    fn publish_driver_unload(&self);
    /// Blocks until the loader settled this image's registration call
    /// (`LoaderServices::wait_registration_settled`).
    fn wait_settled(&self, settle: Self::Settle);
    /// The minifilter's own global set-up (the seed's `SetupWorkerQueues`).
    /// On failure it undoes its own partial work.
    fn setup(&self) -> Result<(), NtStatus>;
    /// `FltRegisterFilter`. From here on `FltMgr` owns `DriverUnload`.
    fn register_filter(&self) -> Result<Self::Filter, NtStatus>;
    /// `FltStartFiltering`.
    fn start_filtering(&self, filter: Self::Filter) -> Result<(), NtStatus>;
    /// `FltUnregisterFilter`; blocks while instances drain.
    fn unregister_filter(&self, filter: Self::Filter);
    /// The minifilter's own teardown (the seed's `StopWorkerQueues`).
    fn cleanup(&self);
    /// Signals "teardown finished".
    fn teardown_done_set(&self);
    /// Waits for "teardown finished", without a bound. `PASSIVE_LEVEL`, no
    /// lock held.
    fn wait_teardown_done(&self);
    /// Tells the loader the payload's phase (`LoaderServices::report`). The
    /// loader learns this way that something outside it tore the payload down.
    fn report_phase(&self, settle: Self::Settle, phase: PayloadPhase) {
        let _ = (settle, phase);
    }
    /// Negative controls only (feature `mutations`, never in a driver build).
    #[cfg(feature = "mutations")]
    fn mutation(&self) -> Mutation {
        Mutation::None
    }
}
