//! `loader_protocol::PayloadPlatform` for a relinked C minifilter.
//!
//! The protocol's steps map onto the filter's own routines:
//! - `setup`: nothing (the filter's set-up is inside its `DriverEntry`);
//! - `register_filter`: the filter's `DriverEntry`, whose `FltRegisterFilter`
//!   and `FltStartFiltering` are interposed (`glue::run_filter_entry`);
//! - `start_filtering`: nothing (the filter started itself, through the
//!   interposer, when it chose to);
//! - `unregister_filter`: the filter's own `FilterUnloadCallback`
//!   (mandatory), whose `FltUnregisterFilter` is interposed, and the
//!   filter's registration unregistered if it left it (`glue::undo_filter`);
//! - `cleanup`: nothing (the filter's clean-up is inside its callback).
//!
//! So the filter's `DriverEntry` runs only once the loader calls, its
//! `FilterUnloadCallback` runs exactly once and only on a registration that
//! has settled, and `FltUnregisterFilter` reaches `fltmgr.sys` at most once.
//! State lives in spin locks (closure-scoped, never held across a wait);
//! waits happen only in `wait_settled` and `wait_teardown_done`, at
//! `PASSIVE_LEVEL`.
use crate::glue::{self, FilterHandle};
use kernel_sys::wrap::driver::DriverObject;
use kernel_sys::wrap::event::Event;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::process::{current_irql, PASSIVE_LEVEL};
use kernel_sys::wrap::services::Services;
use loader_protocol::{PayloadPlatform, PayloadState};
use shared_abi::payload::{LogLevel, PayloadPhase, PayloadReport};
use shared_abi::NtStatus;

/// The driver object `DriverEntry` received.
pub(crate) static DRIVER: SpinLock<Option<DriverObject>> = SpinLock::new(None);
/// The protocol's payload state.
static STATE: SpinLock<PayloadState<Services, FilterHandle>> = SpinLock::new(PayloadState::new());
/// "Teardown finished": a notification event of this image.
static TEARDOWN_DONE: Event = Event::notification(false);

/// The zero-sized platform handle.
pub struct CPayload;

impl PayloadPlatform for CPayload {
    type Settle = Services;
    type Filter = FilterHandle;

    fn with_state<R>(&self, f: impl FnOnce(&mut PayloadState<Services, FilterHandle>) -> R) -> R {
        STATE.with(f)
    }

    fn teardown_done_init(&self) {
        TEARDOWN_DONE.reset();
    }

    fn publish_driver_unload(&self) {
        if let Some(driver) = DRIVER.with(|d| *d) {
            crate::ffi::publish_driver_unload(driver);
        }
    }

    fn wait_settled(&self, s: Services) {
        s.wait_settled();
    }

    fn setup(&self) -> Result<(), NtStatus> {
        Ok(())
    }

    fn register_filter(&self) -> Result<FilterHandle, NtStatus> {
        let driver = DRIVER.with(|d| *d).ok_or(NtStatus::DEVICE_NOT_READY)?;
        glue::run_filter_entry(driver)
    }

    fn start_filtering(&self, _filter: FilterHandle) -> Result<(), NtStatus> {
        Ok(())
    }

    fn unregister_filter(&self, filter: FilterHandle) {
        glue::undo_filter(filter);
    }

    fn cleanup(&self) {}

    fn teardown_done_set(&self) {
        TEARDOWN_DONE.set();
    }

    fn wait_teardown_done(&self) {
        TEARDOWN_DONE.wait();
    }

    fn report_phase(&self, s: Services, phase: PayloadPhase) {
        // An ABI 1.0 loader time-stamps reports with a PASSIVE_LEVEL-only call.
        if s.abi_minor() == 0 && current_irql() != PASSIVE_LEVEL {
            return;
        }
        let size = u32::try_from(core::mem::size_of::<PayloadReport>()).unwrap_or(0);
        let report = PayloadReport { size, phase: phase.0, ..PayloadReport::default() };
        s.report(&report);
    }
}

/// One line to the loader's log while it lends its services, else to the
/// debugger's. `<= DISPATCH_LEVEL`.
pub(crate) fn log(args: core::fmt::Arguments<'_>) {
    match STATE.with(|s| s.settle()) {
        Some(services) => {
            let mut line = Line { buf: [0; 200], len: 0 };
            let _ = core::fmt::Write::write_fmt(&mut line, args);
            services.log(LogLevel::INFO, line.text());
        }
        None => kernel_sys::wrap::log::print("serialpayload: ", args),
    }
}

/// A line for the loader's log, cut at its capacity (on a character boundary).
struct Line {
    buf: [u8; 200],
    len: usize,
}

impl Line {
    fn text(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("")
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            let mut utf8 = [0; 4];
            let encoded = c.encode_utf8(&mut utf8).as_bytes();
            let end = self.len.checked_add(encoded.len()).ok_or(core::fmt::Error)?;
            let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
            dst.copy_from_slice(encoded);
            self.len = end;
        }
        Ok(())
    }
}
