//! `DriverEntry` and `DriverUnload` of the loader.
//!
//! `DriverEntry` reads the configuration, installs the services the
//! payloads will call, creates the control device (finished last inside
//! `kernel_sys`), starts the initial load on the operation thread (never
//! `ZwLoadDriver` from inside `DriverEntry`, which can deadlock on the I/O
//! manager's load lock during boot), and publishes `DriverUnload` as its
//! very last act: until then an unload request for the loader itself fails,
//! so the Windows 7 unload-during-DriverEntry race cannot reach half-built
//! state here.
use crate::log;
use crate::ops::{self, Job};
use crate::platform::{self, loader};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel_sys::wrap::device::ControlDevice;
use kernel_sys::wrap::driver::{DriverObject, RegistryPath};
use kernel_sys::DRIVER_OBJECT;
use shared_abi::control::{DEVICE_NAME, DOS_DEVICE_NAME};
use shared_abi::NtStatus;

kernel_sys::driver_entry!(driver_main);

static DEVICE_CREATED: AtomicBool = AtomicBool::new(false);

/// Called by the I/O manager at `PASSIVE_LEVEL` on a system thread when the
/// `SerialLoader` service starts (system start, or `sc start`).
fn driver_main(driver: DriverObject, registry_path: &RegistryPath) -> Result<(), NtStatus> {
    let active = platform::init(registry_path.units());
    kernel_sys::wrap::services::install(&crate::services::HANDLERS);
    let sd = loader_parsers::security::control_device_sd();
    ControlDevice::create(driver, DEVICE_NAME, DOS_DEVICE_NAME, &sd, &crate::control::HANDLERS)?;
    DEVICE_CREATED.store(true, Ordering::Release);
    // From here DriverEntry cannot fail: the driver object stays, so its
    // events can be filed under it.
    crate::events::open(driver);
    crate::events::started(active);
    if let Ok(active) = active {
        if let Err((_, e)) = ops::start(Job::Start(active)) {
            log!("cannot start the initial load: {e}");
        }
    }
    log!("DriverEntry done");
    // Last: publishing DriverUnload opens the door to unload.
    driver.set_unload(driver_unload);
    Ok(())
}

/// Called by the I/O manager on `sc stop SerialLoader` at `PASSIVE_LEVEL`
/// (on Windows after the last handle to the control device closed). Waits
/// for the operation in flight, retires every payload (the loader's image
/// must outlive them), joins its threads, then removes the device.
extern "system" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    loader().stop();
    ops::join();
    platform::join_workers();
    crate::events::stopped();
    crate::events::close();
    if DEVICE_CREATED.swap(false, Ordering::AcqRel) {
        ControlDevice.destroy();
    }
    log!("unloaded");
}
