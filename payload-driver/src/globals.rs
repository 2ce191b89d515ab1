//! The payload's globals: what `DriverEntry` records, the protocol's state
//! and the "teardown finished" event. Data only; the rules are in
//! `loader_protocol::payload`, the entry points in `entry.rs`.
use crate::Minifilter;
use kernel_sys::wrap::driver::DriverObject;
use kernel_sys::wrap::event::Event;
use kernel_sys::wrap::filter::Filter;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::services::Services;
use loader_protocol::PayloadState;

static SPEC: SpinLock<Option<&'static Minifilter>> = SpinLock::new(None);
pub(crate) static DRIVER: SpinLock<Option<DriverObject>> = SpinLock::new(None);
pub(crate) static STATE: SpinLock<PayloadState<Services, Filter>> = SpinLock::new(PayloadState::new());
/// "Teardown finished": a notification event of this image.
pub(crate) static TEARDOWN_DONE: Event = Event::notification(false);

/// Records the plugged-in filter (`DriverEntry`).
pub(crate) fn set_spec(spec: &'static Minifilter) {
    SPEC.with(|s| *s = Some(spec));
}

/// The plugged-in filter, once `DriverEntry` ran.
pub(crate) fn spec() -> Option<&'static Minifilter> {
    SPEC.with(|s| *s)
}
