//! The kernel side of `loader_protocol::payload::PayloadPlatform`:
//! FltRegisterFilter and friends, the loader's services, and the filter's
//! own set-up and clean-up.
//!
//! State lives in a spin lock (closure-scoped: never held across a wait).
//! Waits happen only in `wait_settled`, at `PASSIVE_LEVEL`.
use crate::entry::{driver, spec, PAYLOAD_POOL};
use core::cell::UnsafeCell;
use kernel_sys::flt::{FLT_REGISTRATION, FLT_REGISTRATION_SIZE_0200, FLT_REGISTRATION_VERSION_0200, PFLT_FILTER};
use kernel_sys::wrap::event::Event;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::{FltRegisterFilter, FltStartFiltering, FltUnregisterFilter};
use loader_protocol::{PayloadPlatform, PayloadState};
use shared_abi::payload::{LoaderServices, PayloadPhase, PayloadReport};
use shared_abi::NtStatus;

/// The loader's services table, as handed to the registration entry.
#[derive(Clone, Copy)]
pub struct Services(*const LoaderServices);
// SAFETY: the table is immutable and lives in the loader's image, which
// outlives every payload it loads.
unsafe impl Send for Services {}
impl Services {
    pub(crate) fn new(p: *const LoaderServices) -> Self {
        Services(p)
    }
    fn table(self) -> Option<&'static LoaderServices> {
        // SAFETY: non-null tables come from the loader and outlive this image.
        unsafe { self.0.as_ref() }
    }
}

/// A registered filter.
#[derive(Clone, Copy)]
pub struct FilterHandle(PFLT_FILTER);
// SAFETY: a PFLT_FILTER is an opaque FltMgr handle usable from any thread.
unsafe impl Send for FilterHandle {}

static STATE: SpinLock<PayloadState<Services, FilterHandle>> = SpinLock::new(PayloadState::new());

/// "Teardown finished": a notification event, initialised by DriverEntry
/// before DriverUnload is published (so before any teardown can run).
pub(crate) static TEARDOWN_DONE: Event = Event::new();

/// The registration actually passed to FltMgr: the filter's, adjusted to
/// the running kernel. Written once, before the first FltRegisterFilter.
struct RegistrationCell(UnsafeCell<Option<FLT_REGISTRATION>>);
// SAFETY: written only in `register_filter`, which the protocol runs at most
// once per image and never concurrently with itself; read by FltMgr after.
unsafe impl Sync for RegistrationCell {}
static REGISTRATION: RegistrationCell = RegistrationCell(UnsafeCell::new(None));

/// The zero-sized platform handle.
pub struct KernelPayload;

impl PayloadPlatform for KernelPayload {
    type Settle = Services;
    type Filter = FilterHandle;

    fn with_state<R>(&self, f: impl FnOnce(&mut PayloadState<Services, FilterHandle>) -> R) -> R {
        STATE.with(f)
    }

    fn wait_settled(&self, s: Services) {
        if let Some(t) = s.table() {
            // SAFETY: the loader's service; PASSIVE_LEVEL, no lock held (protocol rule).
            unsafe { (t.wait_registration_settled)(t.context) };
        }
    }

    fn setup(&self) -> Result<(), NtStatus> {
        spec().map_or(Err(NtStatus::DEVICE_NOT_READY), |s| (s.setup)())
    }

    fn register_filter(&self) -> Result<FilterHandle, NtStatus> {
        let spec = spec().ok_or(NtStatus::DEVICE_NOT_READY)?;
        let mut registration = spec.registration;
        if pre_vista() {
            // XP / Server 2003 FltMgr knows only the 0x0200 layout.
            registration.Version = FLT_REGISTRATION_VERSION_0200;
            registration.Size = FLT_REGISTRATION_SIZE_0200 as u16;
        }
        // SAFETY: see RegistrationCell: single writer, before FltMgr reads it.
        let slot = unsafe { &mut *REGISTRATION.0.get() };
        let reg: &FLT_REGISTRATION = slot.insert(registration);
        let mut handle: PFLT_FILTER = core::ptr::null_mut();
        // SAFETY: the driver object of this image (set in DriverEntry) and a
        // registration in a static that outlives the filter.
        let status = NtStatus(unsafe { FltRegisterFilter(driver(), reg, &mut handle) });
        status.to_result().map(|()| FilterHandle(handle))
    }

    fn start_filtering(&self, f: FilterHandle) -> Result<(), NtStatus> {
        // SAFETY: a handle FltRegisterFilter returned and not yet unregistered.
        NtStatus(unsafe { FltStartFiltering(f.0) }).to_result()
    }

    fn unregister_filter(&self, f: FilterHandle) {
        // SAFETY: as above; the protocol unregisters exactly once.
        unsafe { FltUnregisterFilter(f.0) };
    }

    fn cleanup(&self) {
        if let Some(s) = spec() {
            (s.cleanup)();
        }
    }

    fn teardown_done_set(&self) {
        TEARDOWN_DONE.set();
    }

    fn wait_teardown_done(&self) {
        TEARDOWN_DONE.wait();
    }

    fn report_phase(&self, s: Services, phase: PayloadPhase) {
        publish_with(s, phase);
    }
}

fn publish_with(s: Services, phase: PayloadPhase) {
    let Some(t) = s.table() else { return };
    let mut report = PayloadReport { size: core::mem::size_of::<PayloadReport>() as u32, ..PayloadReport::default() };
    if let Some(spec) = spec() {
        (spec.report)(&mut report);
    }
    report.phase = phase.0;
    report.pool_outstanding = PAYLOAD_POOL.outstanding();
    // SAFETY: the loader's service with a report that lives across the call.
    unsafe { (t.report)(t.context, &report) };
}

/// Sends the filter's current counters to the loader (shown by `loaderctl
/// status`). `PASSIVE_LEVEL` only (e.g. a pre-create callback): the loader
/// time-stamps the report with a `Zw` call.
pub fn publish() {
    let current = STATE.with(|s| s.settle().map(|settle| (settle, s.phase())));
    if let Some((settle, phase)) = current {
        publish_with(settle, phase);
    }
}

/// Writes one line to the loader's log (and DbgPrint).
pub fn log(text: &str) {
    let settle = STATE.with(|s| s.settle());
    if let Some(t) = settle.and_then(Services::table) {
        // SAFETY: the loader's service; `text` lives across the call.
        unsafe { (t.log)(t.context, 3, text.as_ptr(), text.len()) };
    } else {
        kernel_sys::wrap::log::print("payload: ", format_args!("{text}"));
    }
}

fn pre_vista() -> bool {
    kernel_sys::wrap::version::major() < 6
}
