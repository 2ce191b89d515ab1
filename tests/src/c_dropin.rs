//! An unchanged C minifilter made a payload by relinking it with
//! `serialpayload.lib` (payload-c), in the model.
//!
//! Two halves:
//! - **The filter's own routines**, as a WDK minifilter writes them (the
//!   shape of `payload-c/example/legacyfilter.c`): `DriverEntry` calls
//!   `FltRegisterFilter` (whose out pointer writes `Globals.Filter`), builds
//!   its set-up (`iomgr::setup`, several steps), optionally stores its own
//!   `DriverUnload` (before or after registering), then calls
//!   `FltStartFiltering`; its `FilterUnloadCallback` accepts every unload,
//!   calls `FltUnregisterFilter` and tears its set-up down; its
//!   `DriverUnload` frees its globals, so it must come last (after its
//!   `DriverEntry` returned and its `FilterUnloadCallback` finished, the
//!   order `FltMgr` calls them in) and once. The same code runs relinked
//!   ([`Design::CRelinked`]) and plain ([`Design::CPlain`], loaded directly:
//!   the seed's race); only where its three `Flt*` calls land differs.
//! - **The library**, mirrored from `payload-c/src/{entry,glue,platform}.rs`
//!   decision by decision: the image's `DriverEntry` ([`image_driver_entry`]),
//!   the registration and teardown entries, the `FilterUnloadCallback`
//!   registered in the filter's place ([`library_filter_unload`]), the
//!   image's `DriverUnload` that chains the filter's
//!   ([`library_driver_unload`]), and the interposed `FltRegisterFilter`,
//!   `FltStartFiltering` and `FltUnregisterFilter`. They call the very
//!   `loader_protocol::payload` functions `entry.rs` calls (`driver_entry`,
//!   `register`, `teardown`, `filter_unload`, `driver_unload`) with
//!   [`CPayload`], the model of `platform.rs`'s `CPayload`.
//!
//! The glue's state is one lock per image (payload-c's `GLUE` spin lock),
//! never held across a call into the filter, `FltMgr` or the kernel.
//! [`GlueVariant`] holds the model's negative controls of the library;
//! payload-c itself has no such branch.
use crate::iomgr;
use crate::platforms::ModelPayload;
use crate::sync::{in_critical_section, lock, pause, Arc};
use crate::world::{Design, DriverObject, FilterRef, ImageId, SettleRef, UnloadRoutine, Violation, World};
use loader_protocol::{payload, Mutation, PayloadPlatform, PayloadState};
use shared_abi::payload::PayloadPhase;
use shared_abi::NtStatus;

/// Where the filter's `DriverEntry` stores its own `DriverUnload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetsDriverUnload {
    /// It does not (what the library's contract asks, and most minifilters).
    Never,
    /// First thing, before `FltRegisterFilter` (`FltMgr` then saves it and
    /// calls it after `FilterUnloadCallback`).
    BeforeRegister,
    /// After `FltRegisterFilter`, over `FltMgr`'s routine.
    AfterRegister,
}

/// The library the filter is linked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlueVariant {
    /// payload-c as shipped.
    Shipped,
    /// Twin: the `FilterUnloadCallback` the library registers forwards to
    /// the filter's own at once: no teardown, no wait for "registration
    /// settled" (a naive relinking library).
    ForwardingUnloadCallback,
    /// Twin: the image's `DriverUnload` calls the filter's `DriverUnload`
    /// first, then the protocol's teardown.
    ChainBeforeTeardown,
}

/// What the C minifilter does, and which library it is linked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CFilter {
    /// Its own `DriverUnload`.
    pub driver_unload: SetsDriverUnload,
    /// The library (relinked design only).
    pub glue: GlueVariant,
}

impl CFilter {
    /// A WDK minifilter that sets no `DriverUnload`, with the shipped library.
    #[must_use]
    pub const fn wdk() -> Self {
        CFilter { driver_unload: SetsDriverUnload::Never, glue: GlueVariant::Shipped }
    }
    /// The same, storing its own `DriverUnload` at `at`.
    #[must_use]
    pub const fn sets_driver_unload(self, at: SetsDriverUnload) -> Self {
        CFilter { driver_unload: at, ..self }
    }
    /// The same, linked with `glue`.
    #[must_use]
    pub const fn linked_with(self, glue: GlueVariant) -> Self {
        CFilter { glue, ..self }
    }
}

/// Which of the filter's routines the library is running (glue.rs's `Running`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Running {
    /// None: the filter's code runs on its own.
    Nothing,
    /// The filter's `DriverEntry`, from the registration entry.
    FilterEntry,
    /// The filter's `FilterUnloadCallback`, from the teardown.
    FilterUnload,
}

/// One image's glue state (glue.rs's `Glue`).
#[derive(Clone, Copy, Debug)]
pub struct GlueState {
    running: Running,
    /// The filter's registration with `FltMgr`, while it is live.
    registered: Option<FilterRef>,
    /// The filter registered a `FilterUnloadCallback` of its own.
    filter_unload: bool,
    /// A `DriverUnload` the filter set (chained after the teardown).
    filter_driver_unload: Option<UnloadRoutine>,
    /// `DriverUnload` as the real `FltRegisterFilter` left it.
    unload_after_register: UnloadRoutine,
    /// The filter's `DriverEntry` returned success.
    entry_succeeded: bool,
}

impl GlueState {
    const FRESH: GlueState = GlueState {
        running: Running::Nothing,
        registered: None,
        filter_unload: false,
        filter_driver_unload: None,
        unload_after_register: UnloadRoutine::None,
        entry_succeeded: false,
    };
}

/// Runs `f` on image `id`'s glue state under its lock (a critical section:
/// nothing in it may wait).
fn with_glue<R>(w: &World, id: ImageId, f: impl FnOnce(&mut GlueState) -> R) -> R {
    in_critical_section(|| {
        let mut glue = lock(&w.c_glue);
        if glue.len() <= id {
            glue.resize(id + 1, GlueState::FRESH);
        }
        f(&mut glue[id])
    })
}

/// `ffi::own_driver_unload`: the image's `DriverUnload` (the library's).
const OURS: UnloadRoutine = UnloadRoutine::Payload;

/// `ffi::driver_unload_of`: the driver object's `DriverUnload`.
fn driver_unload_of(w: &World, id: ImageId) -> UnloadRoutine {
    w.kernel().objects[id].unload
}

/// `ffi::set_driver_unload`: stores a non-NULL `routine` in `DriverUnload`.
fn set_driver_unload(w: &World, id: ImageId, routine: UnloadRoutine) {
    if routine == UnloadRoutine::None {
        return;
    }
    w.update(|k| k.objects[id].unload = routine);
}

// ---------------------------------------------------------------------------
// The library's entries (entry.rs).
// ---------------------------------------------------------------------------

/// The image's `DriverEntry` (`entry::driver_entry`): a fresh glue state
/// (`glue::loaded`), the driver object recorded, then the protocol's
/// `DriverEntry` (prepares "teardown finished", publishes the library's
/// `DriverUnload` last). The filter's own `DriverEntry` waits for the loader.
pub fn image_driver_entry(w: &Arc<World>, id: ImageId) {
    with_glue(w, id, |g| *g = GlueState::FRESH);
    payload::driver_entry(&CPayload::new(w, id));
}

/// The registration entry (`entry::register_entry`), on the loader's thread.
pub fn register_entry(w: &Arc<World>, id: ImageId, settle: SettleRef) -> NtStatus {
    payload::register(&CPayload::new(w, id), settle)
}

/// The descriptor's teardown entry (`entry::teardown_entry`).
pub fn teardown_entry(w: &Arc<World>, id: ImageId) -> NtStatus {
    payload::teardown(&CPayload::new(w, id))
}

/// The `FilterUnloadCallback` the library registered in the filter's place
/// (`entry::filter_unload`): `fltmc unload` is refused, a mandatory unload
/// is the protocol's teardown, which waits for "registration settled" and
/// then runs the filter's own callback.
pub fn library_filter_unload(w: &Arc<World>, id: ImageId, flags: u32) -> NtStatus {
    if w.config.c_filter.glue == GlueVariant::ForwardingUnloadCallback {
        let callback = with_glue(w, id, |g| g.filter_unload);
        return if callback { filter_unload_callback(w, id) } else { NtStatus::SUCCESS };
    }
    payload::filter_unload(&CPayload::new(w, id), flags)
}

/// The image's `DriverUnload` (`entry::driver_unload`): the protocol's
/// teardown, then the filter's own `DriverUnload` if it set one and its
/// `DriverEntry` succeeded.
pub fn library_driver_unload(w: &Arc<World>, id: ImageId) {
    if w.config.c_filter.glue == GlueVariant::ChainBeforeTeardown {
        chain_driver_unload(w, id);
        let _ = payload::driver_unload(&CPayload::new(w, id));
        return;
    }
    let _ = payload::driver_unload(&CPayload::new(w, id));
    chain_driver_unload(w, id);
}

// ---------------------------------------------------------------------------
// What the glue decides (glue.rs).
// ---------------------------------------------------------------------------

/// `glue::run_filter_entry`, the protocol's `register_filter`: runs the
/// filter's own `DriverEntry`, chains a `DriverUnload` it set after
/// `FltRegisterFilter`, and returns the registration it made.
fn run_filter_entry(w: &Arc<World>, id: ImageId) -> Result<FilterRef, NtStatus> {
    with_glue(w, id, |g| g.running = Running::FilterEntry);
    let status = filter_driver_entry(w, id);
    let (registered, after) = with_glue(w, id, |g| {
        g.running = Running::Nothing;
        g.entry_succeeded = status.is_success();
        (g.registered, g.unload_after_register)
    });
    let restore = if registered.is_some() && after != UnloadRoutine::None { after } else { OURS };
    let now = driver_unload_of(w, id);
    if now != UnloadRoutine::None && now != restore && now != OURS {
        with_glue(w, id, |g| g.filter_driver_unload = Some(now));
        set_driver_unload(w, id, restore);
    }
    if !status.is_success() {
        if let Some(left) = with_glue(w, id, |g| g.registered.take()) {
            iomgr::flt_unregister(w, left);
        }
        return Err(status);
    }
    registered.ok_or(NtStatus::INVALID_DEVICE_STATE)
}

/// The interposed `FltRegisterFilter` (`glue::register`): only from the
/// filter's `DriverEntry` as the library runs it, once; a `DriverUnload`
/// the filter set before is taken for chaining and the library's put back,
/// so `FltMgr` saves the library's; the registration goes to `FltMgr` with
/// the library's `FilterUnloadCallback` (which `iomgr` reaches as
/// [`library_filter_unload`] for this design).
fn glue_register(w: &Arc<World>, id: ImageId) -> Result<FilterRef, NtStatus> {
    with_glue(w, id, |g| {
        if g.running != Running::FilterEntry {
            return Err(NtStatus::INVALID_DEVICE_STATE);
        }
        if g.registered.is_some() {
            return Err(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION);
        }
        Ok(())
    })?;
    // (The driver-object and FilterUnloadCallback checks always pass here:
    // the model's filter registers its own driver object, with a callback.)
    let now = driver_unload_of(w, id);
    if now != UnloadRoutine::None && now != OURS {
        with_glue(w, id, |g| g.filter_driver_unload = Some(now));
        set_driver_unload(w, id, OURS);
    }
    with_glue(w, id, |g| g.filter_unload = true);
    let handle = iomgr::flt_register(w, id)?;
    let after = driver_unload_of(w, id);
    with_glue(w, id, |g| {
        g.registered = Some(handle);
        g.unload_after_register = after;
    });
    Ok(handle)
}

/// The interposed `FltStartFiltering` (`glue::start`): only the live registration.
fn glue_start(w: &Arc<World>, id: ImageId, filter: FilterRef) -> NtStatus {
    if with_glue(w, id, |g| g.registered) != Some(filter) {
        return NtStatus::INVALID_PARAMETER;
    }
    match iomgr::flt_start(w, filter) {
        Ok(()) => NtStatus::SUCCESS,
        Err(status) => status,
    }
}

/// The interposed `FltUnregisterFilter` (`glue::unregister`): the real one
/// at most once.
fn glue_unregister(w: &Arc<World>, id: ImageId, filter: FilterRef) {
    let taken = with_glue(w, id, |g| {
        if g.registered == Some(filter) {
            g.registered = None;
            Some(g.running)
        } else {
            None
        }
    });
    if taken.is_some() {
        iomgr::flt_unregister(w, filter);
    }
}

/// `glue::undo_filter`, the protocol's `unregister_filter`: the filter's
/// own `FilterUnloadCallback` (mandatory), then its registration
/// unregistered if the callback left it.
fn undo_filter(w: &Arc<World>, id: ImageId, filter: FilterRef) {
    let callback = with_glue(w, id, |g| {
        g.running = Running::FilterUnload;
        g.filter_unload
    });
    if callback {
        let _ = filter_unload_callback(w, id);
    }
    let left = with_glue(w, id, |g| {
        g.running = Running::Nothing;
        if g.registered == Some(filter) {
            g.registered.take()
        } else {
            None
        }
    });
    if let Some(left) = left {
        iomgr::flt_unregister(w, left);
    }
}

/// `glue::chain_driver_unload`: the filter's own `DriverUnload`, once, if
/// its `DriverEntry` had succeeded (called at the address the glue took).
fn chain_driver_unload(w: &Arc<World>, id: ImageId) {
    let chained = with_glue(w, id, |g| if g.entry_succeeded { g.filter_driver_unload.take() } else { None });
    if let Some(routine) = chained {
        iomgr::run_unload_routine(w, id, routine);
    }
}

/// `platform.rs`'s `CPayload`: `loader_protocol::PayloadPlatform` for a
/// relinked C minifilter. The protocol's steps map onto the filter's own
/// routines: `setup` and `cleanup` are nothing (they are inside the filter's
/// `DriverEntry` and callback), `register_filter` is the filter's
/// `DriverEntry` ([`run_filter_entry`]), `start_filtering` is nothing (the
/// filter starts itself), `unregister_filter` is the filter's own
/// callback ([`undo_filter`]). The events, the payload state, the waits and
/// the reports are the model's, as for every payload ([`ModelPayload`]).
pub struct CPayload<'w> {
    world: &'w Arc<World>,
    id: ImageId,
    model: ModelPayload<'w>,
}

impl<'w> CPayload<'w> {
    /// The library's platform in image `id`.
    #[must_use]
    pub fn new(world: &'w Arc<World>, id: ImageId) -> Self {
        CPayload { world, id, model: ModelPayload::new(world, id) }
    }
}

impl PayloadPlatform for CPayload<'_> {
    type Settle = SettleRef;
    type Filter = FilterRef;

    fn with_state<R>(&self, f: impl FnOnce(&mut PayloadState<SettleRef, FilterRef>) -> R) -> R {
        self.model.with_state(f)
    }
    fn teardown_done_init(&self) {
        self.model.teardown_done_init();
    }
    fn publish_driver_unload(&self) {
        // The library's DriverUnload ([`OURS`]).
        self.model.publish_driver_unload();
    }
    fn wait_settled(&self, s: SettleRef) {
        self.model.wait_settled(s);
    }
    fn setup(&self) -> Result<(), NtStatus> {
        Ok(())
    }
    fn register_filter(&self) -> Result<FilterRef, NtStatus> {
        run_filter_entry(self.world, self.id)
    }
    fn start_filtering(&self, _filter: FilterRef) -> Result<(), NtStatus> {
        Ok(())
    }
    fn unregister_filter(&self, filter: FilterRef) {
        undo_filter(self.world, self.id, filter);
    }
    fn cleanup(&self) {}
    fn teardown_done_set(&self) {
        self.model.teardown_done_set();
    }
    fn wait_teardown_done(&self) {
        self.model.wait_teardown_done();
    }
    fn report_phase(&self, s: SettleRef, phase: PayloadPhase) {
        self.model.report_phase(s, phase);
    }
    fn mutation(&self) -> Mutation {
        self.model.mutation()
    }
}

// ---------------------------------------------------------------------------
// The C minifilter's own code (the same source, relinked or plain).
// ---------------------------------------------------------------------------

/// The filter calls `FltRegisterFilter`: the interposer when relinked.
fn call_register(w: &Arc<World>, id: ImageId) -> Result<FilterRef, NtStatus> {
    if w.config.design == Design::CRelinked {
        glue_register(w, id)
    } else {
        iomgr::flt_register(w, id)
    }
}

/// The filter calls `FltStartFiltering`: the interposer when relinked.
fn call_start(w: &Arc<World>, id: ImageId, filter: FilterRef) -> NtStatus {
    if w.config.design == Design::CRelinked {
        return glue_start(w, id, filter);
    }
    match iomgr::flt_start(w, filter) {
        Ok(()) => NtStatus::SUCCESS,
        Err(status) => status,
    }
}

/// The filter calls `FltUnregisterFilter`: the interposer when relinked.
fn call_unregister(w: &Arc<World>, id: ImageId, filter: FilterRef) {
    if w.config.design == Design::CRelinked {
        glue_unregister(w, id, filter);
    } else {
        iomgr::flt_unregister(w, filter);
    }
}

/// The filter's own `DriverEntry` (renamed `SerialPayloadFilterEntry` when
/// relinked, and then run by the registration entry; the image's
/// `DriverEntry` when plain): `FltRegisterFilter`, its set-up,
/// `FltStartFiltering`; on a failure it undoes its own work and returns it.
pub fn filter_driver_entry(w: &Arc<World>, id: ImageId) -> NtStatus {
    let sets = w.config.c_filter.driver_unload;
    w.update(|k| {
        let o = &mut k.objects[id];
        o.c_entry_running = true;
        if sets == SetsDriverUnload::BeforeRegister {
            o.unload = UnloadRoutine::Filter;
        }
    });
    // (What the filter does before registering: its globals, its tables.)
    pause();
    let filter = match call_register(w, id) {
        Ok(filter) => filter,
        Err(status) => return entry_returns(w, id, status),
    };
    // FltRegisterFilter's out pointer: Globals.Filter.
    w.update(|k| k.objects[id].naive_filter = Some(filter));
    iomgr::setup(w, id);
    if sets == SetsDriverUnload::AfterRegister {
        w.update(|k| k.objects[id].unload = UnloadRoutine::Filter);
        pause();
    }
    let status = call_start(w, id, filter);
    if !status.is_success() {
        call_unregister(w, id, filter);
        iomgr::cleanup(w, id);
    }
    entry_returns(w, id, status)
}

fn entry_returns(w: &World, id: ImageId, status: NtStatus) -> NtStatus {
    w.update(|k| {
        let o = &mut k.objects[id];
        o.c_entry_running = false;
        o.c_entry_succeeded = status.is_success();
    });
    status
}

/// The filter's own `FilterUnloadCallback`: accepts every unload,
/// `FltUnregisterFilter(Globals.Filter)`, then tears its set-up down.
pub fn filter_unload_callback(w: &Arc<World>, id: ImageId) -> NtStatus {
    let filter = w.update(|k| {
        let o = &mut k.objects[id];
        o.c_callbacks_running += 1;
        o.naive_filter
    });
    if let Some(filter) = filter {
        call_unregister(w, id, filter);
    }
    iomgr::cleanup(w, id);
    w.update(|k| k.objects[id].c_callbacks_running -= 1);
    NtStatus::SUCCESS
}

/// The filter's own `DriverUnload`: frees the globals its `DriverEntry`
/// built and its `FilterUnloadCallback` used, so it must find its
/// `DriverEntry` returned, its callback finished, its filter unregistered,
/// and must run once.
pub fn filter_driver_unload(w: &World, id: ImageId) {
    let mut k = w.kernel();
    let o = &mut k.objects[id];
    let wrong = if o.c_entry_running {
        Some("the C filter's DriverUnload ran while its DriverEntry was still building")
    } else if o.c_callbacks_running > 0 {
        Some("the C filter's DriverUnload ran while its FilterUnloadCallback was still tearing down")
    } else if o.filter_registered {
        Some("the C filter's DriverUnload ran with its filter still registered (before its FilterUnloadCallback)")
    } else if o.c_driver_unloads > 0 {
        Some("the C filter's DriverUnload ran twice")
    } else {
        None
    };
    o.c_driver_unloads += 1;
    if let Some(what) = wrong {
        w.violation(&mut k, Violation::HalfBuiltTeardown, what);
    }
}

/// What must hold of every C image once everything stopped: a set-up that
/// was built was torn down, and the `DriverUnload` of a filter whose
/// `DriverEntry` succeeded ran (neither may be lost on the way).
pub fn check_end(filter: CFilter, objects: &[DriverObject], found: &mut Vec<(Violation, &'static str)>) {
    for o in objects {
        if o.setup_complete && !o.cleaned {
            found.push((Violation::HalfBuiltTeardown, "the C filter's set-up was never torn down"));
        }
        if filter.driver_unload != SetsDriverUnload::Never && o.c_entry_succeeded && o.c_driver_unloads == 0 {
            found.push((
                Violation::HalfBuiltTeardown,
                "the C filter's DriverEntry succeeded but its DriverUnload never ran",
            ));
        }
    }
}
