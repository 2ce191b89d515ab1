//! The model's kernel bookkeeping: driver objects and their images, the
//! loader's events, the payload's globals, the scenario's configuration and
//! the violation record.
//!
//! Owns every invariant check that is about memory or object lifetime (a
//! call into an unmapped image, a reference dropped twice, an image unmapped
//! with a filter still registered). Must never block while holding the
//! kernel lock except in `Condvar::wait`.
use crate::sync::{holds_critical_section, lock, Arc, Condvar, Mutex, MutexGuard};
use loader_protocol::{LoaderState, Mutation, PayloadState, Slot};
use shared_abi::PerSlot;
use std::sync::atomic::{AtomicU64, Ordering};

/// Index of a driver object (one per `ZwLoadDriver` that created one).
pub type ImageId = usize;

/// The loader's settle service handed to a payload: which slot it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleRef(pub Slot);

/// A registered filter: the image that registered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterRef(pub ImageId);

/// Which payload design runs in the images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Design {
    /// The protocol (`loader_protocol::payload`), loaded by the loader.
    Protocol,
    /// The seed's minifilter: `FltRegisterFilter`, then set-up, in `DriverEntry`;
    /// teardown in `FilterUnloadCallback`.
    NaiveSeed,
    /// The seed's mitigation: set-up first, `FltRegisterFilter` last.
    NaiveRegisterLast,
    /// An unchanged C minifilter relinked with `serialpayload.lib`
    /// (payload-c): the library's glue (`crate::c_dropin`) over
    /// `loader_protocol::payload`, loaded by the loader.
    CRelinked,
    /// The same C minifilter built plainly and loaded directly by the I/O
    /// manager (no loader, no library): the seed's race.
    CPlain,
}

impl Design {
    /// The loader loads it and the protocol runs in it (else the I/O
    /// manager loads it directly and nothing serializes it).
    #[must_use]
    pub fn loaded_by_loader(self) -> bool {
        matches!(self, Design::Protocol | Design::CRelinked)
    }
    /// One of the C minifilter designs (`crate::c_dropin`).
    #[must_use]
    pub fn is_c(self) -> bool {
        matches!(self, Design::CRelinked | Design::CPlain)
    }
}

/// What a scenario configures before it starts.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The payload design.
    pub design: Design,
    /// A negative-control mutation of the protocol.
    pub mutation: Mutation,
    /// Slots whose filter has an instance with an open file: unregistering
    /// it blocks until the scenario's closer thread closes the file.
    pub open_file: PerSlot<bool>,
    /// Slots whose payload fails `FltRegisterFilter`.
    pub register_fails: PerSlot<bool>,
    /// Slots whose image has a descriptor with a bad magic.
    pub bad_descriptor: PerSlot<bool>,
    /// Slots whose first image has a device with a handle open: the I/O
    /// manager defers its `DriverUnload` until the scenario closes it.
    pub device_open: PerSlot<bool>,
    /// Slots whose driver-object look-up fails even while the driver is
    /// loaded (a wrong object type, on Windows).
    pub reference_fails: PerSlot<bool>,
    /// How the loader's bounded waits expire.
    pub timeouts: Timeouts,
    /// Writing `Parameters\ActiveSlot` fails.
    pub persist_fails: bool,
    /// The C minifilter designs: what the filter does and which library
    /// glue it is linked with (ignored by the other designs).
    pub c_filter: crate::c_dropin::CFilter,
    /// The loom preemption bound of this scenario, where it is not the
    /// suite's 3 (`MODEL_PREEMPTIONS` overrides both).
    pub preemption_bound: Option<usize>,
}

/// When a bounded wait of the loader gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeouts {
    /// Exactly when the retirement is blocked on a file that is still open
    /// (time passes only while something is stuck).
    WhenDraining,
    /// Whenever what it waits for has not happened yet when it looks: under
    /// loom that is every point of the other threads' progress, so a bound
    /// expires "at any moment".
    AnyMoment,
}

impl Config {
    /// The protocol with no fault injected.
    #[must_use]
    pub fn protocol() -> Self {
        Config {
            design: Design::Protocol,
            mutation: Mutation::None,
            open_file: PerSlot::new(false, false),
            register_fails: PerSlot::new(false, false),
            bad_descriptor: PerSlot::new(false, false),
            device_open: PerSlot::new(false, false),
            reference_fails: PerSlot::new(false, false),
            timeouts: Timeouts::WhenDraining,
            persist_fails: false,
            c_filter: crate::c_dropin::CFilter::wdk(),
            preemption_bound: None,
        }
    }
    /// The protocol with `mutation` switched on.
    #[must_use]
    pub fn mutant(mutation: Mutation) -> Self {
        Config { mutation, ..Config::protocol() }
    }
    /// A naive design.
    #[must_use]
    pub fn naive(design: Design) -> Self {
        Config { design, ..Config::protocol() }
    }
    /// The C minifilter `filter` relinked with the library (payload-c), loaded by the loader.
    #[must_use]
    pub fn c_relinked(filter: crate::c_dropin::CFilter) -> Self {
        Config { design: Design::CRelinked, c_filter: filter, ..Config::protocol() }
    }
    /// The C minifilter `filter` built plainly, loaded directly by the I/O manager.
    #[must_use]
    pub fn c_plain(filter: crate::c_dropin::CFilter) -> Self {
        Config { design: Design::CPlain, c_filter: filter, ..Config::protocol() }
    }
}

/// The properties the model checks; each violation is counted under one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Code ran in, or was called in, an image that was not mapped.
    UnmappedCall,
    /// The set-up was cleaned up before it was fully built, or twice.
    HalfBuiltTeardown,
    /// A registration was not unregistered exactly once (or a freed filter
    /// was used).
    RegistrationNotOnce,
    /// A thread waited while inside a critical section.
    LockAcrossWait,
    /// Every thread blocked (loom's deadlock detection), or a wait that can
    /// never end.
    Deadlock,
    /// An upgrade did not end with exactly one active payload, or with a
    /// reported failure and the old one still active.
    UpgradeOutcome,
    /// An image reference was dropped twice, or leaked.
    ReferenceMisuse,
    /// A slot's state, or an operation's reply, disagrees with the world
    /// (an EMPTY slot with a driver loaded, an ACTIVE slot whose payload is
    /// torn down, a reply without "stuck" while the old slot still retires).
    SlotState,
    /// `ActiveSlot` was written with a slot whose last registration did not
    /// succeed (a power cut then boots a payload that never registered).
    PersistedBadSlot,
    /// An event of the payload was used before `DriverEntry` prepared it.
    UninitialisedEvent,
}

impl Violation {
    /// Every property, in report order.
    pub const ALL: [Violation; 10] = [
        Violation::UnmappedCall,
        Violation::HalfBuiltTeardown,
        Violation::RegistrationNotOnce,
        Violation::LockAcrossWait,
        Violation::Deadlock,
        Violation::UpgradeOutcome,
        Violation::ReferenceMisuse,
        Violation::SlotState,
        Violation::PersistedBadSlot,
        Violation::UninitialisedEvent,
    ];
    /// Short name for reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Violation::UnmappedCall => "unmapped-call",
            Violation::HalfBuiltTeardown => "half-built-teardown",
            Violation::RegistrationNotOnce => "registration-not-once",
            Violation::LockAcrossWait => "lock-across-wait",
            Violation::Deadlock => "deadlock",
            Violation::UpgradeOutcome => "upgrade-outcome",
            Violation::ReferenceMisuse => "reference-misuse",
            Violation::SlotState => "slot-state",
            Violation::PersistedBadSlot => "persisted-bad-slot",
            Violation::UninitialisedEvent => "uninitialised-event",
        }
    }
}

/// Which routine `DRIVER_OBJECT::DriverUnload` points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnloadRoutine {
    /// NULL: `NtUnloadDriver` fails.
    None,
    /// The payload's own `DriverUnload`.
    Payload,
    /// `FltMgr`'s, installed by `FltRegisterFilter`.
    FltMgr,
    /// The C minifilter's own `DriverUnload`, stored by its `DriverEntry`
    /// (`crate::c_dropin`).
    Filter,
}

/// One driver object and its image.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // a record of independent kernel facts
pub struct DriverObject {
    /// The service (slot) it was loaded for.
    pub slot: Slot,
    /// Its name is in the object namespace (`\FileSystem\<svc>`).
    pub named: bool,
    /// Object references; the image is unmapped when they reach zero.
    pub refs: u32,
    /// The image is mapped.
    pub mapped: bool,
    /// `DriverUnload`.
    pub unload: UnloadRoutine,
    /// The `DriverUnload` `FltRegisterFilter` saved.
    pub saved_unload: UnloadRoutine,
    /// `NtUnloadDriver` already began for it.
    pub unload_invoked: bool,
    /// Open handles on the driver's device object.
    pub device_refs: u32,
    /// The unload waits for the last device handle to close.
    pub unload_deferred: bool,
    /// Threads executing code of this image right now.
    pub running: u32,
    /// Set-up steps done, set-up complete, cleaned up.
    pub setup_steps: u8,
    /// The set-up finished.
    pub setup_complete: bool,
    /// The set-up was cleaned up.
    pub cleaned: bool,
    /// `FltMgr` holds a filter of this image.
    pub filter_registered: bool,
    /// Successful `FltRegisterFilter` calls.
    pub registrations: u32,
    /// `FltUnregisterFilter` calls on a registered filter.
    pub unregistrations: u32,
    /// Naive designs and the C minifilter: the filter handle global
    /// (`Globals.Filter`, written by `FltRegisterFilter` through its out pointer).
    pub naive_filter: Option<FilterRef>,
    /// The C minifilter's own `DriverEntry` is running.
    pub c_entry_running: bool,
    /// The C minifilter's own `DriverEntry` returned success.
    pub c_entry_succeeded: bool,
    /// Runs of the C minifilter's own `FilterUnloadCallback` in progress.
    pub c_callbacks_running: u32,
    /// Runs of the C minifilter's own `DriverUnload`.
    pub c_driver_unloads: u32,
    /// The payload's "teardown finished" event.
    pub teardown_done: bool,
    /// `DriverEntry` prepared "teardown finished".
    pub teardown_done_ready: bool,
    /// The registration call returned success.
    pub registered_ok: bool,
    /// Something outside the loader (`sc stop`, `fltmc unload`) unloaded it.
    pub foreign_unload: bool,
}

/// Everything the model's kernel tracks, behind one lock.
#[derive(Debug)]
pub struct Kernel {
    /// Every driver object ever created.
    pub objects: Vec<DriverObject>,
    /// Per-slot "registration settled" (initially signalled: nothing runs).
    pub settled: PerSlot<bool>,
    /// Per-slot "retirement finished".
    pub retired: PerSlot<bool>,
    /// No control operation runs.
    pub idle: bool,
    /// A filter unregistration of this slot is blocked on an open file.
    pub draining: PerSlot<bool>,
    /// The file keeping the slot's instance draining is still open.
    pub file_open: PerSlot<bool>,
    /// `Parameters\ActiveSlot` as on disk; `None` until first written.
    pub persisted: Option<Option<Slot>>,
    /// Threads running code of the loader's image (retire workers).
    pub loader_code_running: u32,
    /// The loader's image is mapped (it goes when the loader's own unload
    /// returned); payloads must not call its services after that.
    pub loader_mapped: bool,
    /// Violations found in this execution.
    pub violations: Vec<(Violation, &'static str)>,
    /// Where each foreign unload request landed (coverage evidence).
    pub landings: Vec<Landing>,
}

/// Where an unload request (`sc stop`, `fltmc unload`) met the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// No driver object of that name (not loaded yet, or gone).
    NotLoaded,
    /// `DriverEntry` still running: `DriverUnload` was NULL, the unload failed.
    RefusedInDriverEntry,
    /// `DriverEntry` done, the loader had not called the registration entry.
    BeforeRegistration,
    /// The registration call was running.
    DuringRegistration,
    /// Registered (or the registration failed and was undone).
    AfterRegistration,
    /// A teardown had already begun.
    DuringTeardown,
}

impl Landing {
    /// Every landing, in report order.
    pub const ALL: [Landing; 6] = [
        Landing::NotLoaded,
        Landing::RefusedInDriverEntry,
        Landing::BeforeRegistration,
        Landing::DuringRegistration,
        Landing::AfterRegistration,
        Landing::DuringTeardown,
    ];
    /// Short name for reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Landing::NotLoaded => "not-loaded",
            Landing::RefusedInDriverEntry => "in-driver-entry",
            Landing::BeforeRegistration => "before-register",
            Landing::DuringRegistration => "during-register",
            Landing::AfterRegistration => "after-register",
            Landing::DuringTeardown => "during-teardown",
        }
    }
}

/// One execution's world: the kernel, the loader's and the payloads' state.
pub struct World {
    /// The scenario's configuration.
    pub config: Config,
    /// Kernel bookkeeping.
    pub kernel: Mutex<Kernel>,
    /// Signalled on every change a waiter may be waiting for.
    pub changed: Condvar,
    /// The loader's protocol state.
    pub loader_state: Mutex<LoaderState<ImageId>>,
    /// Each image's payload globals, by [`ImageId`].
    pub payload_states: Mutex<Vec<PayloadState<SettleRef, FilterRef>>>,
    /// The C designs: each image's library glue state (payload-c's `GLUE`
    /// spin lock), by [`ImageId`].
    pub c_glue: Mutex<Vec<crate::c_dropin::GlueState>>,
    /// What happened, in order, when `MODEL_TRACE` is set (printed with the
    /// first violation of an execution, to replay a finding by reading).
    pub trace_log: Mutex<Vec<String>>,
    /// The retire worker the loader last started for each slot.
    pub workers: Mutex<PerSlot<Option<crate::sync::thread::JoinHandle<()>>>>,
    /// The payload image's bytes (the parsers' fixture), good and with a bad
    /// descriptor magic.
    pub images: (Vec<u8>, Vec<u8>),
    clock: AtomicU64,
}

/// The fixture payload image, mapped, and the same with a broken magic.
fn images() -> (Vec<u8>, Vec<u8>) {
    let fixture = loader_parsers::fixture::payload();
    let good = fixture.mapped();
    let mut bad = good.clone();
    let at = fixture.descriptor_rva as usize + 4;
    bad[at..at + 4].copy_from_slice(b"NOPE");
    (good, bad)
}

fn tracing() -> bool {
    std::env::var_os("MODEL_TRACE").is_some()
}

/// How long, in milliseconds, a std-build wait may last before it counts
/// as a deadlock (3 s; the negative controls shorten it).
pub static STD_WAIT_LIMIT_MS: AtomicU64 = AtomicU64::new(3_000);

/// The bound the model's loader is configured with (never real time).
pub const UNLOAD_TIMEOUT_MS: u32 = 5_000;

impl World {
    /// A fresh world for one execution.
    #[must_use]
    pub fn new(config: Config) -> Arc<World> {
        Arc::new(World {
            config,
            kernel: Mutex::new(Kernel {
                objects: Vec::new(),
                settled: PerSlot::new(true, true),
                retired: PerSlot::new(true, true),
                idle: true,
                draining: PerSlot::new(false, false),
                file_open: config.open_file,
                persisted: None,
                loader_code_running: 0,
                loader_mapped: true,
                violations: Vec::new(),
                landings: Vec::new(),
            }),
            changed: Condvar::new(),
            loader_state: Mutex::new(LoaderState::new(UNLOAD_TIMEOUT_MS)),
            payload_states: Mutex::new(Vec::new()),
            c_glue: Mutex::new(Vec::new()),
            workers: Mutex::new(PerSlot::new(None, None)),
            trace_log: Mutex::new(Vec::new()),
            images: images(),
            clock: AtomicU64::new(1),
        })
    }

    /// A model clock (not a scheduling point).
    pub fn now(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Locks the kernel.
    pub fn kernel(&self) -> MutexGuard<'_, Kernel> {
        lock(&self.kernel)
    }

    /// Records a violation.
    pub fn violation(&self, k: &mut Kernel, v: Violation, what: &'static str) {
        if k.violations.is_empty() && tracing() {
            let trace = lock(&self.trace_log);
            eprintln!("first violation: {v:?}: {what}; trace:");
            for line in trace.iter() {
                eprintln!("  {line}");
            }
        }
        k.violations.push((v, what));
    }

    /// Records a step of the execution (only when `MODEL_TRACE` is set).
    pub fn trace(&self, what: impl FnOnce() -> String) {
        if tracing() {
            let line = what();
            lock(&self.trace_log).push(line);
        }
    }

    /// Changes kernel state and wakes every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut Kernel) -> R) -> R {
        let mut k = self.kernel();
        let r = f(&mut k);
        drop(k);
        self.changed.notify_all();
        r
    }

    /// Blocks until `ready` holds. A wait from inside a critical section is
    /// a violation (recorded; the wait then returns at once).
    pub fn wait_until(&self, what: &'static str, ready: impl Fn(&Kernel) -> bool) {
        let mut k = self.kernel();
        if holds_critical_section() {
            // Recorded, then treated as satisfied: blocking here would turn
            // the finding into a deadlock that hides which rule broke.
            self.violation(&mut k, Violation::LockAcrossWait, what);
            return;
        }
        #[cfg(loom)]
        while !ready(&k) {
            k = self.changed.wait(k).expect("model lock poisoned");
        }
        // Real time on std: a wait that lasts this long never ends.
        #[cfg(not(loom))]
        {
            let limit = std::time::Duration::from_millis(STD_WAIT_LIMIT_MS.load(Ordering::Relaxed));
            let deadline = std::time::Instant::now() + limit;
            while !ready(&k) {
                let now = std::time::Instant::now();
                if now >= deadline {
                    self.violation(&mut k, Violation::Deadlock, what);
                    return;
                }
                k = self.changed.wait_timeout(k, deadline - now).expect("model lock poisoned").0;
            }
        }
    }

    /// Whether a bounded wait in [`Timeouts::AnyMoment`] gives up without
    /// blocking: always under loom (which then explores every point of the
    /// other threads' progress at which it looked), at random otherwise.
    #[must_use]
    pub fn gives_up_now(&self) -> bool {
        cfg!(loom) || crate::sync::coin()
    }

    /// The loader calls `entry` of image `id`: it must be the entry the
    /// parser checked (the fixture's code at `offset`).
    pub fn check_entry(&self, id: ImageId, entry: u64, offset: u32) {
        let expected = loader_parsers::fixture::text_va(offset);
        if entry != expected {
            let mut k = self.kernel();
            let _ = id;
            self.violation(&mut k, Violation::UnmappedCall, "a call to an address that is not the checked entry");
        }
    }

    /// A thread starts running code of image `id` (a call into it).
    pub fn enter(&self, id: ImageId, what: &'static str) {
        let mut k = self.kernel();
        if !k.objects[id].mapped {
            self.violation(&mut k, Violation::UnmappedCall, what);
        }
        k.objects[id].running += 1;
    }

    /// The call into image `id` returned.
    pub fn leave(&self, id: ImageId) {
        let mut k = self.kernel();
        k.objects[id].running -= 1;
    }

    /// Takes a reference on image `id`.
    pub fn add_ref(k: &mut Kernel, id: ImageId) {
        k.objects[id].refs += 1;
    }

    /// Drops a reference on image `id`; the last one unmaps the image.
    pub fn drop_ref(&self, id: ImageId, what: &'static str) {
        let mut k = self.kernel();
        if k.objects[id].refs == 0 {
            self.violation(&mut k, Violation::ReferenceMisuse, what);
            return;
        }
        k.objects[id].refs -= 1;
        if k.objects[id].refs == 0 {
            let o = &mut k.objects[id];
            o.mapped = false;
            o.named = false;
            let (running, registered) = (o.running, o.filter_registered);
            if running > 0 {
                self.violation(&mut k, Violation::UnmappedCall, "image unmapped while code runs in it");
            }
            if registered {
                self.violation(&mut k, Violation::RegistrationNotOnce, "image unmapped with its filter registered");
            }
        }
    }

    /// The newest named driver object of `slot`.
    #[must_use]
    pub fn named_object(k: &Kernel, slot: Slot) -> Option<ImageId> {
        k.objects.iter().rposition(|o| o.slot == slot && o.named)
    }
}
