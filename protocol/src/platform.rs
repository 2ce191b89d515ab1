//! The primitives the protocol is generic over: what a platform (the kernel
//! drivers, or the model in `tests/`) must provide.
//!
//! This module owns only trait definitions and the negative-control
//! [`Mutation`] switch. It must never hold state or logic: the protocol's
//! rules live in [`crate::loader`] and [`crate::payload`], once.
//!
//! Every piece of shared mutable state is reached through a closure-scoped
//! critical section (`with_state`), so a lock cannot be held across a wait:
//! the closure gets only `&mut` state and must return before any platform
//! call that may block. Implementations of `with_state` must never block
//! (kernel: a spin lock; model: a mutex that is never contended for long).
use crate::descriptor::DescriptorInfo;
use crate::loader::LoaderState;
use crate::payload::PayloadState;
use shared_abi::payload::{LogLevel, PayloadPhase};
use shared_abi::NtStatus;

/// A payload slot: `0` is A, `1` is B (`shared_abi::control::SLOT_COUNT`).
pub type Slot = usize;

/// Deliberate protocol bugs, switched on only by the model's negative
/// controls to prove the checker can see each one. Drivers never override
/// [`LoaderPlatform::mutation`] / [`PayloadPlatform::mutation`].
#[doc(hidden)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Mutation {
    /// The protocol as shipped.
    #[default]
    None,
    /// Loader: set "registration settled" before calling the registration
    /// entry (the seed's "event set too early").
    SettleBeforeRegister,
    /// Loader: drop the image reference right after reading the descriptor,
    /// before calling into the image.
    ReleaseImageEarly,
    /// Loader: forget to set "registration settled" when registration fails.
    NoSettleOnFailure,
    /// Loader: make the new slot active even when its registration failed.
    ActivateFailedUpgrade,
    /// Payload: teardown does not wait for the registration to settle.
    TeardownSkipsSettleWait,
    /// Payload: a failed registration waits on "settled" from inside the
    /// registration call (self-deadlock: the loader sets it only afterwards).
    RegisterWaitsOnSettle,
    /// Payload: teardown waits on "settled" inside its critical section.
    WaitUnderLock,
    /// Payload: a second, concurrent teardown returns before the first one
    /// finished (so the loader can unload while the payload still calls it).
    SecondTeardownReturnsEarly,
}

/// What the loader driver provides. Kernel: `KEVENTs` in statics, a spin lock,
/// `ZwLoadDriver`/`ZwUnloadDriver`, `ObReferenceObjectByName`, and calls
/// through the payload's exports.
pub trait LoaderPlatform {
    /// A counted reference keeping a payload image mapped (kernel: a
    /// referenced `DRIVER_OBJECT` with its `DriverStart`/`DriverSize`).
    type Image: Copy;

    /// Runs `f` on the loader's state under its lock. Short; never blocks.
    fn with_state<R>(&self, f: impl FnOnce(&mut LoaderState<Self::Image>) -> R) -> R;

    /// Signals "registration settled" for `slot` (notification event).
    fn settle_set(&self, slot: Slot);
    /// Clears "registration settled" for `slot`. The protocol calls it only
    /// while no image of `slot` exists.
    fn settle_reset(&self, slot: Slot);
    /// Waits for "registration settled" of `slot`, without a bound. The
    /// service a payload's teardown calls; `PASSIVE_LEVEL`, no lock held.
    fn wait_settled(&self, slot: Slot);

    /// Signals "retirement finished" for `slot` (notification event).
    fn retired_set(&self, slot: Slot);
    /// Clears "retirement finished" for `slot`.
    fn retired_reset(&self, slot: Slot);
    /// Waits at most `timeout_ms` (`u32::MAX`: forever) for "retirement
    /// finished"; `true` if it was signalled.
    fn retired_wait(&self, slot: Slot, timeout_ms: u32) -> bool;

    /// `ZwLoadDriver` on the slot's service key; runs the payload's `DriverEntry`.
    fn load_driver(&self, slot: Slot) -> Result<(), NtStatus>;
    /// `ObReferenceObjectByName` on the slot's driver object. Fails with
    /// `OBJECT_NAME_NOT_FOUND` once the driver is gone.
    fn reference_image(&self, slot: Slot) -> Result<Self::Image, NtStatus>;
    /// Finds the payload's exports in the referenced image and copies its
    /// descriptor. `PROCEDURE_NOT_FOUND` when an export is missing.
    fn read_descriptor(&self, image: Self::Image) -> Result<DescriptorInfo, NtStatus>;
    /// Calls the payload's registration entry with the services of `slot`.
    fn call_register(&self, image: Self::Image, slot: Slot) -> NtStatus;
    /// Calls the payload's teardown entry. May block without bound (an
    /// instance draining, seed 002); the protocol calls it on a worker only.
    fn call_teardown(&self, image: Self::Image) -> NtStatus;
    /// Calls the payload's shutdown hook. Must not block long.
    fn call_shutdown(&self, image: Self::Image);
    /// `ZwUnloadDriver` on the slot's service key.
    fn unload_driver(&self, slot: Slot) -> NtStatus;
    /// `ObDereferenceObject`: the image may be unmapped right here.
    fn release_image(&self, image: Self::Image);
    /// Runs [`crate::loader::Loader::retire_worker`]`(slot)` on another thread.
    fn start_retire_worker(&self, slot: Slot) -> Result<(), NtStatus>;
    /// Writes `Parameters\ActiveSlot` (absent for `None`) and flushes it.
    fn persist_active(&self, slot: Option<Slot>) -> Result<(), NtStatus>;
    /// System time, 100 ns units since 1601.
    fn now(&self) -> u64;

    /// Writes one line to the loader's log.
    fn log(&self, level: LogLevel, args: core::fmt::Arguments<'_>) {
        let _ = (level, args);
    }
    /// Negative controls only; see [`Mutation`].
    #[doc(hidden)]
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
    /// Signals "teardown finished" (kernel: a notification event of the
    /// payload image, initialised in `DriverEntry`).
    fn teardown_done_set(&self);
    /// Waits for "teardown finished", without a bound. `PASSIVE_LEVEL`, no
    /// lock held.
    fn wait_teardown_done(&self);
    /// Tells the loader the payload's phase (`LoaderServices::report`).
    fn report_phase(&self, settle: Self::Settle, phase: PayloadPhase) {
        let _ = (settle, phase);
    }
    /// Negative controls only; see [`Mutation`].
    #[doc(hidden)]
    fn mutation(&self) -> Mutation {
        Mutation::None
    }
}
