//! The negative control: the seed article's minifilter, loaded directly by
//! the I/O manager (no loader, no protocol).
//!
//! - [`Design::NaiveSeed`]: `DriverEntry` calls `FltRegisterFilter`, then builds
//!   its worker queues, then `FltStartFiltering`; `FilterUnloadCallback` stops
//!   the queues and unregisters (the crash in seed 003).
//! - [`Design::NaiveRegisterLast`]: the article's mitigation, set-up first
//!   and `FltRegisterFilter` last. The window shrinks; it does not close.
//!
//! Must stay as naive as the seed: no waits, no extra checks.
use crate::iomgr;
use crate::sync::Arc;
use crate::world::{Design, ImageId, World};
use shared_abi::NtStatus;

/// The naive `DriverEntry`.
pub fn driver_entry(w: &Arc<World>, id: ImageId) {
    if w.config.design == Design::NaiveSeed {
        let Ok(filter) = iomgr::flt_register(w, id) else { return };
        w.update(|k| k.objects[id].naive_filter = Some(filter));
        iomgr::setup(w, id);
        let _ = iomgr::flt_start(w, filter);
    } else {
        iomgr::setup(w, id);
        let Ok(filter) = iomgr::flt_register(w, id) else { return };
        w.update(|k| k.objects[id].naive_filter = Some(filter));
        let _ = iomgr::flt_start(w, filter);
    }
}

/// The naive `FilterUnloadCallback`: accepts every unload, stops the queues,
/// unregisters.
#[must_use]
pub fn filter_unload_callback(w: &Arc<World>, id: ImageId) -> NtStatus {
    iomgr::cleanup(w, id);
    let filter = w.kernel().objects[id].naive_filter;
    if let Some(filter) = filter {
        iomgr::flt_unregister(w, filter);
    }
    NtStatus::SUCCESS
}
