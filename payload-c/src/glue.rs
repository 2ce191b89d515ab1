//! What the interposers decide: the C filter's `FltRegisterFilter`,
//! `FltStartFiltering` and `FltUnregisterFilter` calls, the runs of its own
//! `DriverEntry` and `FilterUnloadCallback`, and its `DriverUnload`.
//!
//! Owns the glue state (one spin lock, never held across a call into the
//! filter or `fltmgr.sys`): which of the filter's routines the library is
//! running, the filter's live registration with `FltMgr` (taken out once, so
//! the real `FltUnregisterFilter` runs at most once whatever the filter
//! does), the filter's own `FilterUnloadCallback` and `DriverUnload`.
//! The order of things (the filter's `DriverEntry` only when the loader
//! calls; its callback only on a settled registration) is
//! `loader_protocol::payload`'s, through `platform.rs`. `PASSIVE_LEVEL`.
use crate::ffi;
use crate::say;
use kernel_sys::flt::{FLTFL_FILTER_UNLOAD_MANDATORY, FLT_REGISTRATION, PFLT_FILTER_UNLOAD_CALLBACK};
use kernel_sys::wrap::driver::{DriverObject, RegistryPath};
use kernel_sys::wrap::lock::SpinLock;
use shared_abi::NtStatus;

/// A filter handle `FltMgr` returned (its address; never dereferenced).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FilterHandle(pub usize);

/// Which of the filter's routines the library is running.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Running {
    /// None: the filter's code runs on its own (callbacks, its threads).
    Nothing,
    /// The filter's `DriverEntry`, from the registration entry.
    FilterEntry,
    /// The filter's `FilterUnloadCallback`, from the teardown.
    FilterUnload,
}

struct Glue {
    running: Running,
    /// The filter's registration with `FltMgr`, while it is live.
    registered: Option<FilterHandle>,
    /// The filter's own `FilterUnloadCallback`.
    filter_unload: PFLT_FILTER_UNLOAD_CALLBACK,
    /// A `DriverUnload` the filter set (chained after the teardown).
    filter_driver_unload: Option<usize>,
    /// `DriverUnload` as the real `FltRegisterFilter` left it.
    unload_after_register: usize,
    /// The filter's `DriverEntry` returned success.
    entry_succeeded: bool,
}

static GLUE: SpinLock<Glue> = SpinLock::new(Glue {
    running: Running::Nothing,
    registered: None,
    filter_unload: None,
    filter_driver_unload: None,
    unload_after_register: 0,
    entry_succeeded: false,
});

/// The image's `DriverEntry` ran: a fresh state (under Wine an image whose
/// `DriverEntry` failed stays mapped and may run again), and the registry
/// path kept for the filter's `DriverEntry`.
pub fn loaded(_driver: DriverObject, registry_path: &RegistryPath) {
    GLUE.with(|g| {
        *g = Glue {
            running: Running::Nothing,
            registered: None,
            filter_unload: None,
            filter_driver_unload: None,
            unload_after_register: 0,
            entry_succeeded: false,
        };
    });
    ffi::keep_registry_path(registry_path);
}

/// The protocol's `register_filter`: runs the filter's own `DriverEntry`
/// (its `FltRegisterFilter` and `FltStartFiltering` land in the
/// interposers below) and returns the registration it made. A failing
/// `DriverEntry` undid its own work, as every `DriverEntry` must; a
/// registration it left behind is unregistered here.
pub fn run_filter_entry(driver: DriverObject) -> Result<FilterHandle, NtStatus> {
    GLUE.with(|g| g.running = Running::FilterEntry);
    let status = ffi::call_filter_entry(driver);
    let (registered, after) = GLUE.with(|g| {
        g.running = Running::Nothing;
        g.entry_succeeded = status.is_success();
        (g.registered, g.unload_after_register)
    });
    // A DriverUnload the filter set after FltRegisterFilter replaced FltMgr's:
    // chain it, and put back what FltMgr (or the library) had there.
    let ours = ffi::own_driver_unload();
    let restore = if registered.is_some() && after != 0 { after } else { ours };
    let now = ffi::driver_unload_of(driver);
    if let Some(theirs) = Some(now).filter(|&f| f != 0 && f != restore && f != ours) {
        GLUE.with(|g| g.filter_driver_unload = Some(theirs));
        ffi::set_driver_unload(driver, restore);
        say(format_args!("the filter set DriverUnload in DriverEntry: chained after the teardown"));
    }
    if !status.is_success() {
        say(format_args!("the filter's DriverEntry failed: {status}"));
        if let Some(left) = GLUE.with(|g| g.registered.take()) {
            say(format_args!("it left its filter registered: unregistering it"));
            ffi::real_unregister(left);
        }
        return Err(status);
    }
    registered.ok_or_else(|| {
        say(format_args!("the filter's DriverEntry succeeded without a registered filter: refused"));
        NtStatus::INVALID_DEVICE_STATE
    })
}

/// The interposed `FltRegisterFilter`. Only from the filter's `DriverEntry`
/// (as the library runs it), once, for this driver, with a
/// `FilterUnloadCallback` (the loader must be able to retire the payload).
/// Registers through `payload_driver::register_filter`, with the library's
/// `FilterUnloadCallback` in place of the filter's.
pub fn register(driver: usize, filter: &FLT_REGISTRATION) -> Result<FilterHandle, NtStatus> {
    let admitted = GLUE.with(|g| {
        if g.running != Running::FilterEntry {
            return Err(NtStatus::INVALID_DEVICE_STATE);
        }
        if g.registered.is_some() {
            return Err(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION);
        }
        Ok(())
    });
    if let Err(status) = admitted {
        say(format_args!("FltRegisterFilter refused: {status} (only once, from the filter's DriverEntry)"));
        return Err(status);
    }
    let Some(driver) = crate::platform::DRIVER.with(|d| *d).filter(|d| d.as_raw().addr() == driver) else {
        say(format_args!("FltRegisterFilter refused: not this image's driver object"));
        return Err(NtStatus::INVALID_PARAMETER);
    };
    if filter.FilterUnloadCallback.is_none() {
        say(format_args!("FltRegisterFilter refused: no FilterUnloadCallback (a payload must be unloadable)"));
        return Err(NtStatus::NOT_SUPPORTED);
    }
    // A DriverUnload the filter set before registering: FltMgr saves what it
    // finds, so it must find the library's (which chains the filter's).
    let ours = ffi::own_driver_unload();
    let now = ffi::driver_unload_of(driver);
    if let Some(theirs) = Some(now).filter(|&f| f != 0 && f != ours) {
        GLUE.with(|g| g.filter_driver_unload = Some(theirs));
        ffi::set_driver_unload(driver, ours);
        say(format_args!("the filter set DriverUnload before FltRegisterFilter: chained after the teardown"));
    }
    GLUE.with(|g| g.filter_unload = filter.FilterUnloadCallback);
    let handle =
        payload_driver::register_filter(filter, ffi::SUBSTITUTE_FILTER_UNLOAD, |r| ffi::real_register(driver, r))?;
    GLUE.with(|g| {
        g.registered = Some(handle);
        g.unload_after_register = ffi::driver_unload_of(driver);
    });
    Ok(handle)
}

/// The interposed `FltStartFiltering`: only for the live registration
/// (never a filter already unregistered).
pub fn start(filter: FilterHandle) -> NtStatus {
    if GLUE.with(|g| g.registered) != Some(filter) {
        say(format_args!("FltStartFiltering refused: the filter is not registered"));
        return NtStatus::INVALID_PARAMETER;
    }
    ffi::real_start(filter)
}

/// The interposed `FltUnregisterFilter`: the real one at most once. Outside
/// the filter's `DriverEntry` and `FilterUnloadCallback` (which the library
/// runs) it still unregisters, and says so: the filter stops filtering
/// while the loader shows the slot active; its later teardown finds
/// nothing to unregister.
pub fn unregister(filter: FilterHandle) {
    let taken = GLUE.with(|g| {
        if g.registered == Some(filter) {
            g.registered = None;
            Some(g.running)
        } else {
            None
        }
    });
    match taken {
        None => say(format_args!("FltUnregisterFilter of a filter not registered (any more): ignored")),
        Some(running) => {
            if running == Running::Nothing {
                say(format_args!(
                    "FltUnregisterFilter called outside the filter's unload path: it no longer filters; the \
                     loader retires it at the next unload or upgrade"
                ));
            }
            ffi::real_unregister(filter);
        }
    }
}

/// The protocol's `unregister_filter`, once per registration: the filter's
/// own `FilterUnloadCallback` with `FLTFL_FILTER_UNLOAD_MANDATORY` (its
/// `FltUnregisterFilter` lands in [`unregister`]), then its registration
/// unregistered if the callback left it.
pub fn undo_filter(filter: FilterHandle) {
    let callback = GLUE.with(|g| {
        g.running = Running::FilterUnload;
        g.filter_unload
    });
    if let Some(callback) = callback {
        let status = ffi::call_filter_unload(callback, FLTFL_FILTER_UNLOAD_MANDATORY);
        say(format_args!("the filter's FilterUnloadCallback (mandatory): {status}"));
    }
    let left = GLUE.with(|g| {
        g.running = Running::Nothing;
        if g.registered == Some(filter) {
            g.registered.take()
        } else {
            None
        }
    });
    if let Some(left) = left {
        say(format_args!("the filter's FilterUnloadCallback left it registered: unregistering it"));
        ffi::real_unregister(left);
    }
}

/// After the teardown, from the image's `DriverUnload`: the filter's own
/// `DriverUnload`, once, if its `DriverEntry` had succeeded.
pub fn chain_driver_unload() {
    let chained = GLUE.with(|g| if g.entry_succeeded { g.filter_driver_unload.take() } else { None });
    if let Some(routine) = chained {
        say(format_args!("calling the filter's own DriverUnload"));
        if let Some(driver) = crate::platform::DRIVER.with(|d| *d) {
            ffi::call_filter_driver_unload(routine, driver);
        }
    }
}
