//! The simulator's one state: filters, instances, `DriverUnload` hooks,
//! streams, the verifier's counts; the opaque handles it gives out; and the
//! events its waits use.
//!
//! Owns the data only. Every access goes through [`STATE`]'s spin lock in
//! a closure, which never calls into a filter and never waits; the rules
//! live in the modules that use it.
use fltsim_abi as abi;
use kernel_sys::flt::{
    PFLT_CONTEXT_CLEANUP_CALLBACK, PFLT_FILTER, PFLT_FILTER_UNLOAD_CALLBACK, PFLT_INSTANCE,
    PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK, PFLT_INSTANCE_SETUP_CALLBACK, PFLT_INSTANCE_TEARDOWN_CALLBACK,
    PFLT_POST_OPERATION_CALLBACK, PFLT_PRE_OPERATION_CALLBACK, PFLT_VOLUME,
};
use kernel_sys::wrap::event::Event;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::PDRIVER_UNLOAD;

pub use abi::{MAX_FILTERS, MAX_INSTANCES, OP_KINDS, VOLUMES};

/// A filter's (service) name.
pub type Name = WideBuf<{ abi::NAME_CHARS }>;
/// Context types a filter may register.
pub const MAX_CONTEXT_REGS: usize = 8;
/// `DriverUnload` hooks kept (one per driver that registered a filter).
pub const MAX_HOOKS: usize = 256;
/// Unloaded image ranges remembered.
pub const MAX_UNLOADED: usize = 32;
/// Streams: one per injector thread, then the files kept open.
pub const MAX_STREAMS: usize = abi::MAX_INJECT_THREADS as usize + abi::MAX_OPEN_FILES;
/// Stream contexts on one stream (one per instance at most).
pub const LINKS_PER_STREAM: usize = 8;

/// `FilterUnloadCallback` progress.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnloadCallback {
    NotCalled,
    Running,
    /// Returned success, or returned at all for a mandatory unload.
    Done,
}

/// One context type a filter registered.
#[derive(Clone, Copy)]
pub struct ContextReg {
    pub kind: u16,
    pub size: usize,
    pub tag: u32,
    pub cleanup: PFLT_CONTEXT_CLEANUP_CALLBACK,
}

impl ContextReg {
    const NONE: ContextReg = ContextReg { kind: 0, size: 0, tag: 0, cleanup: None };
}

/// What `FltRegisterFilter` copied out of the registration.
#[derive(Clone, Copy)]
pub struct Callbacks {
    pub unload: PFLT_FILTER_UNLOAD_CALLBACK,
    pub setup: PFLT_INSTANCE_SETUP_CALLBACK,
    pub query_teardown: PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK,
    pub teardown_start: PFLT_INSTANCE_TEARDOWN_CALLBACK,
    pub teardown_complete: PFLT_INSTANCE_TEARDOWN_CALLBACK,
    pub pre: [PFLT_PRE_OPERATION_CALLBACK; OP_KINDS],
    pub post: [PFLT_POST_OPERATION_CALLBACK; OP_KINDS],
    pub contexts: [ContextReg; MAX_CONTEXT_REGS],
    /// `FLT_REGISTRATION::Flags`.
    pub flags: u32,
}

impl Callbacks {
    pub const NONE: Callbacks = Callbacks {
        unload: None,
        setup: None,
        query_teardown: None,
        teardown_start: None,
        teardown_complete: None,
        pre: [None; OP_KINDS],
        post: [None; OP_KINDS],
        contexts: [ContextReg::NONE; MAX_CONTEXT_REGS],
        flags: 0,
    };
}

/// A registered filter (or the record of one, kept for display until its
/// slot is reused).
pub struct FilterRec {
    /// `abi::FILTER_*`.
    pub state: u32,
    pub generation: u32,
    /// The `DRIVER_OBJECT` it registered with.
    pub driver: usize,
    /// `DriverStart`, `DriverSize`.
    pub image: (usize, usize),
    pub name: Name,
    pub altitude: u64,
    pub altitude_text: [u16; 16],
    pub version: u32,
    pub is_payload: bool,
    pub callbacks: Callbacks,
    /// `FltStartFiltering` was called.
    pub started: bool,
    pub unload_callback: UnloadCallback,
    /// The flags of the `FilterUnloadCallback` running now.
    pub unload_flags: u32,
    pub unregister_returned: bool,
    pub drained: u32,
    /// Contexts allocated and not freed.
    pub contexts: i64,
    pub pre: [u64; OP_KINDS],
    pub post: [u64; OP_KINDS],
    pub processed: u64,
    /// When the slot was last freed (reuse the oldest first).
    pub freed_seq: u64,
}

impl FilterRec {
    pub const EMPTY: FilterRec = FilterRec {
        state: abi::FILTER_FREE,
        generation: 0,
        driver: 0,
        image: (0, 0),
        name: WideBuf::new(),
        altitude: 0,
        altitude_text: [0; 16],
        version: 0,
        is_payload: false,
        callbacks: Callbacks::NONE,
        started: false,
        unload_callback: UnloadCallback::NotCalled,
        unload_flags: 0,
        unregister_returned: false,
        drained: 0,
        contexts: 0,
        pre: [0; OP_KINDS],
        post: [0; OP_KINDS],
        processed: 0,
        freed_seq: 0,
    };

    /// Registered and not being unregistered.
    pub fn live(&self) -> bool {
        self.state == abi::FILTER_REGISTERED || self.state == abi::FILTER_FILTERING
    }

    /// Holds its altitude (and its driver object) against another registration.
    pub fn holds_registration(&self) -> bool {
        self.live() || self.state == abi::FILTER_UNREGISTERING
    }
}

/// An instance of filter `i / VOLUMES` on volume `i % VOLUMES`.
pub struct InstanceRec {
    /// `abi::INSTANCE_*`.
    pub state: u32,
    pub generation: u32,
    /// The filter generation it belongs to.
    pub filter_generation: u32,
    pub in_flight: u32,
    /// New callbacks are refused; the drain event is set when `in_flight` is 0.
    pub draining: bool,
    /// Contexts tied to it and not freed.
    pub contexts: u32,
}

impl InstanceRec {
    pub const EMPTY: InstanceRec = InstanceRec {
        state: abi::INSTANCE_FREE,
        generation: 0,
        filter_generation: 0,
        in_flight: 0,
        draining: false,
        contexts: 0,
    };
}

/// The `DriverUnload` a filter's driver had before `FltRegisterFilter`
/// replaced it with the simulator's hook.
#[derive(Clone, Copy)]
pub struct HookRec {
    pub used: bool,
    pub driver: usize,
    pub saved: PDRIVER_UNLOAD,
    pub filter: usize,
    pub generation: u32,
    pub image: (usize, usize),
    pub service: Name,
    pub seq: u64,
}

impl HookRec {
    pub const EMPTY: HookRec = HookRec {
        used: false,
        driver: 0,
        saved: None,
        filter: 0,
        generation: 0,
        image: (0, 0),
        service: WideBuf::new(),
        seq: 0,
    };
}

/// A stream context set on a stream by one instance.
#[derive(Clone, Copy)]
pub struct Link {
    pub instance: usize,
    pub instance_generation: u32,
    /// The context's body (what the filter holds).
    pub context: usize,
}

/// A stream: the file object simulated operations target.
#[derive(Clone, Copy)]
pub struct StreamRec {
    pub used: bool,
    /// A file kept open by `IOCTL_SIM_OPEN` (else an injector's stream).
    pub open_file: bool,
    pub id: u32,
    pub volume: usize,
    /// The name of a file kept open (for the snapshot).
    pub name: WideBuf<{ abi::PATH_CHARS }>,
    pub links: [Option<Link>; LINKS_PER_STREAM],
}

impl StreamRec {
    pub const EMPTY: StreamRec = StreamRec {
        used: false,
        open_file: false,
        id: 0,
        volume: 0,
        name: WideBuf::new(),
        links: [None; LINKS_PER_STREAM],
    };
}

/// The gap: consecutive operations no payload filter processed.
pub struct Gap {
    pub open: bool,
    pub ops: u64,
    pub start_qpc: i64,
}

/// The armed race.
pub struct Race {
    pub status: abi::RaceStatus,
    pub target: Name,
}

/// Everything, behind one lock.
pub struct Sim {
    pub filters: [FilterRec; MAX_FILTERS],
    pub instances: [InstanceRec; MAX_INSTANCES],
    pub hooks: [HookRec; MAX_HOOKS],
    pub unloaded: [(usize, usize); MAX_UNLOADED],
    pub unloaded_next: usize,
    pub streams: [StreamRec; MAX_STREAMS],
    pub totals: abi::Totals,
    pub violations: [abi::ViolationRecord; abi::MAX_VIOLATION_RECORDS],
    pub violation_records: usize,
    pub next_generation: u32,
    pub seq: u64,
    pub next_file_id: u32,
    pub gap: Gap,
    pub race: Race,
    pub job: abi::JobStatus,
    pub inject: abi::InjectStatus,
    pub inject_start_qpc: i64,
}

impl Sim {
    // Evaluated at compile time, for the static: never on a stack.
    #[allow(clippy::large_stack_arrays)]
    const fn new() -> Sim {
        const V: abi::ViolationRecord =
            abi::ViolationRecord { kind: 0, op: 0, generation: 0, reserved: 0, filter: [0; abi::NAME_CHARS] };
        Sim {
            filters: [FilterRec::EMPTY; MAX_FILTERS],
            instances: [InstanceRec::EMPTY; MAX_INSTANCES],
            hooks: [HookRec::EMPTY; MAX_HOOKS],
            unloaded: [(0, 0); MAX_UNLOADED],
            unloaded_next: 0,
            streams: [StreamRec::EMPTY; MAX_STREAMS],
            totals: abi::Snapshot::empty().totals,
            violations: [V; abi::MAX_VIOLATION_RECORDS],
            violation_records: 0,
            next_generation: 1,
            seq: 0,
            next_file_id: 1,
            gap: Gap { open: false, ops: 0, start_qpc: 0 },
            race: Race { status: abi::Snapshot::empty().race, target: WideBuf::new() },
            job: abi::JobStatus { kind: 0, state: 0, status: 0, reserved: 0, seq: 0 },
            inject: abi::InjectStatus { state: 0, threads: 0, requested: 0, done: 0, elapsed_ns: 0 },
            inject_start_qpc: 0,
        }
    }

    /// A new generation (never 0, at most [`GENERATION_MAX`], after which
    /// it wraps to 1).
    pub fn generation(&mut self) -> u32 {
        let g = self.next_generation;
        self.next_generation = if g == GENERATION_MAX { 1 } else { g + 1 };
        g
    }

    /// A new sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// The filter `idx` if it still is generation `generation`.
    pub fn filter(&self, idx: usize, generation: u32) -> Option<&FilterRec> {
        self.filters.get(idx).filter(|f| f.generation == generation && f.state != abi::FILTER_FREE)
    }

    /// As [`Sim::filter`], mutable.
    pub fn filter_mut(&mut self, idx: usize, generation: u32) -> Option<&mut FilterRec> {
        self.filters.get_mut(idx).filter(|f| f.generation == generation && f.state != abi::FILTER_FREE)
    }

    /// The live filter registered under `name`, if any.
    pub fn live_by_name(&self, name: &[u16]) -> Option<(usize, u32)> {
        self.filters
            .iter()
            .position(|f| f.holds_registration() && eq_ignore_case(f.name.units(), name))
            .and_then(|i| self.filters.get(i).map(|f| (i, f.generation)))
    }
}

/// ASCII case-insensitive comparison of two UTF-16 names (service names).
pub fn eq_ignore_case(a: &[u16], b: &[u16]) -> bool {
    let lower = |u: u16| if (u16::from(b'A')..=u16::from(b'Z')).contains(&u) { u + 32 } else { u };
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| lower(x) == lower(y))
}

/// The simulator's state.
pub static STATE: SpinLock<Sim> = SpinLock::new(Sim::new());

/// Per instance: set when its callbacks in flight reach 0 while it drains.
pub static INSTANCE_DRAINED: [Event; MAX_INSTANCES] = [const { Event::notification(true) }; MAX_INSTANCES];
/// Per instance: set when its last context is freed while it tears down.
pub static INSTANCE_CONTEXTS_FREED: [Event; MAX_INSTANCES] = [const { Event::notification(true) }; MAX_INSTANCES];
/// Per filter slot: a mutex (a synchronization event, initially signalled)
/// that orders `FltStartFiltering`, `FltUnregisterFilter` and detach.
pub static FILTER_SERIAL: [Event; MAX_FILTERS] = [const { Event::synchronization(true) }; MAX_FILTERS];
/// Per filter slot: set when its `FilterUnloadCallback` is not running.
pub static UNLOAD_CALLBACK_IDLE: [Event; MAX_FILTERS] = [const { Event::notification(true) }; MAX_FILTERS];

// An opaque handle is `tag << TAG_SHIFT | generation << 8 | index`. x64:
// a 16-bit tag over a 32-bit generation. x86: an 8-bit tag over a 16-bit
// generation (so generations wrap at `GENERATION_MAX` there).
#[cfg(target_pointer_width = "64")]
const TAG_SHIFT: u32 = 48;
#[cfg(target_pointer_width = "64")]
const FILTER_TAG: usize = 0xF1F1;
#[cfg(target_pointer_width = "64")]
const INSTANCE_TAG: usize = 0xF2F2;
#[cfg(target_pointer_width = "64")]
const VOLUME_TAG: usize = 0xF3F3;
/// The largest generation a handle holds.
#[cfg(target_pointer_width = "64")]
pub const GENERATION_MAX: u32 = u32::MAX;

#[cfg(target_pointer_width = "32")]
const TAG_SHIFT: u32 = 24;
#[cfg(target_pointer_width = "32")]
const FILTER_TAG: usize = 0xF1;
#[cfg(target_pointer_width = "32")]
const INSTANCE_TAG: usize = 0xF2;
#[cfg(target_pointer_width = "32")]
const VOLUME_TAG: usize = 0xF3;
/// The largest generation a handle holds.
#[cfg(target_pointer_width = "32")]
pub const GENERATION_MAX: u32 = 0xFFFF;

fn encode(tag: usize, generation: u32, index: usize) -> *mut core::ffi::c_void {
    core::ptr::without_provenance_mut((tag << TAG_SHIFT) | ((generation as usize) << 8) | (index & 0xFF))
}

fn decode(tag: usize, handle: *mut core::ffi::c_void) -> Option<(usize, u32)> {
    let v = handle.addr();
    if v >> TAG_SHIFT != tag {
        return None;
    }
    let generation = u32::try_from((v >> 8) & (GENERATION_MAX as usize)).ok()?;
    Some((v & 0xFF, generation))
}

/// The opaque `PFLT_FILTER` of filter slot `idx`, generation `generation`.
pub fn filter_handle(idx: usize, generation: u32) -> PFLT_FILTER {
    encode(FILTER_TAG, generation, idx)
}

/// The slot and generation a `PFLT_FILTER` names (not checked against the state).
pub fn decode_filter(handle: PFLT_FILTER) -> Option<(usize, u32)> {
    decode(FILTER_TAG, handle).filter(|&(i, _)| i < MAX_FILTERS)
}

/// The opaque `PFLT_INSTANCE` of instance slot `idx`.
pub fn instance_handle(idx: usize, generation: u32) -> PFLT_INSTANCE {
    encode(INSTANCE_TAG, generation, idx)
}

/// The slot and generation a `PFLT_INSTANCE` names.
pub fn decode_instance(handle: PFLT_INSTANCE) -> Option<(usize, u32)> {
    decode(INSTANCE_TAG, handle).filter(|&(i, _)| i < MAX_INSTANCES)
}

/// The opaque `PFLT_VOLUME` of volume `v`.
pub fn volume_handle(v: usize) -> PFLT_VOLUME {
    encode(VOLUME_TAG, 0, v)
}

/// The volume a `PFLT_VOLUME` names.
pub fn decode_volume(handle: PFLT_VOLUME) -> Option<usize> {
    decode(VOLUME_TAG, handle).map(|(v, _)| v).filter(|&v| v < VOLUMES)
}

/// Instance slot of filter `filter` on volume `volume`.
pub fn instance_index(filter: usize, volume: usize) -> usize {
    filter * VOLUMES + volume
}
