//! The payload's globals: its stage and what its registration published.
//!
//! Owns only the data and its read accessors; the rules that move it are in
//! [`crate::payload`]. Lives behind the payload platform's lock.
use shared_abi::payload::PayloadPhase;

/// Where the payload is in its life. Only moves forward.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
    /// The image is mapped; `DriverEntry` has not recorded anything yet.
    Mapped,
    /// `DriverEntry` ran; waiting for the loader's registration call.
    Loaded,
    /// The registration call is running (set-up, `FltRegisterFilter`, start).
    Registering,
    /// Registered and filtering.
    Filtering,
    /// Handover (ABI 1.2): the filter is unregistered, its state kept for
    /// the final export; the loader's teardown finishes the rest.
    Quiesced,
    /// The registration call failed and undid itself.
    RegistrationFailed,
    /// A teardown is running.
    TearingDown,
    /// Torn down: nothing of the registration is left.
    TornDown,
}

/// The payload's globals, behind the platform's lock.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts
pub struct PayloadState<S, F> {
    pub(crate) stage: Stage,
    /// The loader's settle service, from the registration call on.
    pub(crate) settle: Option<S>,
    /// The registered filter; taken out (once) by whoever unregisters it.
    pub(crate) filter: Option<F>,
    /// The set-up finished; taken out (once) by whoever cleans it up.
    pub(crate) setup_built: bool,
    /// A teardown claimed the work (later teardowns wait for it).
    pub(crate) teardown_claimed: bool,
    /// A teardown has begun (refuses registration from then on).
    pub(crate) teardown_begun: bool,
    /// The quiesce holds the teardown claim: the next teardown call (the
    /// loader's, on the same retire worker) does the rest of the work.
    pub(crate) quiesce_holds_claim: bool,
}

impl<S: Copy, F: Copy> Default for PayloadState<S, F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Copy, F: Copy> PayloadState<S, F> {
    /// The state of a freshly mapped image (fits a `static`).
    #[must_use]
    pub const fn new() -> Self {
        PayloadState {
            stage: Stage::Mapped,
            settle: None,
            filter: None,
            setup_built: false,
            teardown_claimed: false,
            teardown_begun: false,
            quiesce_holds_claim: false,
        }
    }
    /// The loader's settle service, once registration was called.
    #[must_use]
    pub fn settle(&self) -> Option<S> {
        self.settle
    }
    /// The stage, for tests and diagnostics.
    #[must_use]
    pub fn stage(&self) -> Stage {
        self.stage
    }
    /// The phase as reported to the loader.
    #[must_use]
    pub fn phase(&self) -> PayloadPhase {
        match self.stage {
            Stage::Mapped | Stage::Loaded | Stage::RegistrationFailed => PayloadPhase::LOADED,
            Stage::Registering => PayloadPhase::REGISTERING,
            Stage::Filtering | Stage::Quiesced => PayloadPhase::FILTERING,
            Stage::TearingDown => PayloadPhase::TEARING_DOWN,
            Stage::TornDown => PayloadPhase::TORN_DOWN,
        }
    }
    /// A registration is live (filter registered).
    #[must_use]
    pub fn is_registered(&self) -> bool {
        self.filter.is_some()
    }
    /// A teardown has begun (the model's invariants read it).
    #[must_use]
    pub fn teardown_begun(&self) -> bool {
        self.teardown_begun
    }
}
