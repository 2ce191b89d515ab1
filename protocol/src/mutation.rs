//! Deliberate protocol bugs, for the model's negative controls only.
//!
//! Built only with the crate feature `mutations`, which the model (`tests/`)
//! enables and no driver build does: the shipped images contain none of
//! these branches. Each branch in the protocol is a `#[cfg(feature =
//! "mutations")]` statement next to the rule it breaks, and each has a twin
//! test in `tests/` that must catch it.

/// Which rule to break.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Mutation {
    /// The protocol as shipped.
    #[default]
    None,
    /// Loader: set "registration settled" before calling the registration
    /// entry (the seed's "event set too early").
    SettleBeforeRegister,
    /// Loader: drop the image reference right after checking the image,
    /// before calling into it.
    ReleaseImageEarly,
    /// Loader: forget to set "registration settled" when registration fails.
    NoSettleOnFailure,
    /// Loader: make the new slot active even when its registration failed.
    ActivateFailedUpgrade,
    /// Loader: when the image reference fails after `ZwLoadDriver`
    /// succeeded, return without unloading (the payload stays orphaned).
    NoUnloadAfterFailedReference,
    /// Loader: reset a slot's "retired" event before joining the slot's
    /// previous retire worker (a late signal satisfies the new wait).
    ResetBeforeJoin,
    /// Loader: a retirement whose wait timed out while the worker finished
    /// with the image still lingering reports success.
    TimeoutLingeringIsOk,
    /// Loader: ignore a payload's report that it was torn down from outside
    /// (the slot keeps showing ACTIVE while nothing filters).
    IgnoreForeignTeardown,
    /// Loader: switch to a new payload without checking, in the switch's
    /// critical section, whether it reported a teardown meanwhile (it then
    /// activates a payload already being torn down).
    SwitchIgnoresTeardownReport,
    /// Loader: the loader's own unload returns without joining the retire
    /// workers (loader code still runs after its image is gone).
    StopSkipsJoin,
    /// Loader: persist the new slot before the switch (a power cut then
    /// boots a slot whose registration never succeeded).
    PersistBeforeSwitch,
    /// Loader: the shutdown hook is called without serializing with an
    /// operation or the loader's stop.
    ShutdownUnserialized,
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
    /// Payload: `DriverEntry` publishes `DriverUnload` before it has
    /// prepared "teardown finished" (an unload landing there meets an
    /// uninitialised event).
    PublishUnloadFirst,
}
