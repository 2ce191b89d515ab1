//! The kernel side of `loader_protocol::PayloadPlatform`: `FltRegisterFilter`
//! and friends, the loader's services, and the filter's own set-up and
//! clean-up, all through `kernel_sys`'s safe layer.
//!
//! State lives in a spin lock (closure-scoped: never held across a wait).
//! Waits happen only in `wait_settled` and `wait_teardown_done`, at
//! `PASSIVE_LEVEL`.
use crate::globals::{spec, DRIVER, STATE, TEARDOWN_DONE};
use crate::PAYLOAD_POOL;
use kernel_sys::wrap::filter::{self, Filter};
use kernel_sys::wrap::process::{current_irql, PASSIVE_LEVEL};
use kernel_sys::wrap::services::Services;
use loader_protocol::{PayloadPlatform, PayloadState};
use shared_abi::payload::{LogLevel, PayloadPhase, PayloadReport};
use shared_abi::NtStatus;

/// The zero-sized platform handle.
pub struct KernelPayload;

impl PayloadPlatform for KernelPayload {
    type Settle = Services;
    type Filter = Filter;

    fn with_state<R>(&self, f: impl FnOnce(&mut PayloadState<Services, Filter>) -> R) -> R {
        STATE.with(f)
    }

    fn teardown_done_init(&self) {
        // The event initialises itself on first use; touching it here keeps
        // DriverEntry's order explicit (prepared before DriverUnload exists).
        TEARDOWN_DONE.reset();
    }

    fn publish_driver_unload(&self) {
        if let Some(driver) = DRIVER.with(|d| *d) {
            driver.set_unload(crate::entry::driver_unload);
        }
    }

    fn wait_settled(&self, s: Services) {
        s.wait_settled();
    }

    fn setup(&self) -> Result<(), NtStatus> {
        spec().map_or(Err(NtStatus::DEVICE_NOT_READY), |s| (s.setup)())
    }

    fn register_filter(&self) -> Result<Filter, NtStatus> {
        let spec = spec().ok_or(NtStatus::DEVICE_NOT_READY)?;
        let driver = DRIVER.with(|d| *d).ok_or(NtStatus::DEVICE_NOT_READY)?;
        // The operation callbacks read the loader's handover services
        // without a lock: remembered before the filter can be called.
        if let Some(h) = STATE.with(|s| s.settle()).and_then(Services::handover).filter(|_| spec.handover) {
            h.remember();
        }
        // The one registration path of both payload kinds (fltreg.rs).
        crate::fltreg::register_filter(&spec.registration, spec.registration.FilterUnloadCallback, |r| {
            filter::register(driver, r)
        })
    }

    fn start_filtering(&self, f: Filter) -> Result<(), NtStatus> {
        filter::start(f)
    }

    fn unregister_filter(&self, f: Filter) {
        filter::unregister(f);
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
    // An ABI 1.0 loader time-stamps reports with a PASSIVE_LEVEL-only call.
    if s.abi_minor() == 0 && current_irql() != PASSIVE_LEVEL {
        return;
    }
    let mut report = PayloadReport { size: shared_abi::size_u32::<PayloadReport>(), ..PayloadReport::default() };
    if let Some(spec) = spec() {
        (spec.report)(&mut report);
    }
    report.phase = phase.0;
    report.pool_outstanding = PAYLOAD_POOL.outstanding();
    s.report(&report);
}

/// Sends the filter's current counters to the loader (shown by `loaderctl
/// status`). Callable at `<= DISPATCH_LEVEL` (any callback of the filter);
/// does nothing once the payload's teardown finished.
pub fn publish() {
    let current = STATE.with(|s| s.settle().map(|settle| (settle, s.phase())));
    if let Some((settle, phase)) = current {
        publish_with(settle, phase);
    }
}

/// Writes one line to the loader's log (or, before the registration and
/// after the teardown, to the debugger log). `<= DISPATCH_LEVEL`.
pub fn log(text: &str) {
    match STATE.with(|s| s.settle()) {
        Some(services) => services.log(LogLevel::INFO, text),
        None => kernel_sys::wrap::log::print("payload: ", format_args!("{text}")),
    }
}
