//! DriverEntry and DriverUnload of the loader.
//!
//! DriverEntry builds everything, starts the initial payload load on a
//! system thread (never `ZwLoadDriver` from inside DriverEntry, which can
//! deadlock on the I/O manager's load lock during boot), and publishes
//! DriverUnload as its very last act: until then an unload request for the
//! loader itself fails, so the Windows 7 unload-during-DriverEntry race
//! cannot reach half-built state here.
use crate::control;
use crate::log;
use crate::platform::{self, loader};
use core::ffi::c_void;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::registry::RegKey;
use kernel_sys::wrap::thread::{self, SystemThread};
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::{
    IoRegisterShutdownNotification, IoUnregisterShutdownNotification, DEVICE_OBJECT, DRIVER_OBJECT, IRP_MJ_CLEANUP,
    IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IRP_MJ_SHUTDOWN, UNICODE_STRING,
};
use loader_protocol::config::{self, Config};
use shared_abi::control::OpKind;
use shared_abi::NtStatus;

static STARTER: SpinLock<Option<SystemThread>> = SpinLock::new(None);
static DEVICE: SpinLock<usize> = SpinLock::new(0);

/// Called by the I/O manager at `PASSIVE_LEVEL` on a system thread when the
/// `SerialLoader` service starts (system start, or `sc start`).
///
/// # Safety
/// Called only by the I/O manager with its driver object and registry path.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(driver: *mut DRIVER_OBJECT, registry_path: *const UNICODE_STRING) -> i32 {
    // SAFETY: the I/O manager passes a valid registry path for DriverEntry's duration.
    let parameters = match unsafe { parameters_path(registry_path) } {
        Some(p) => p,
        None => return NtStatus::OBJECT_NAME_INVALID.0,
    };
    let config = read_config(&parameters);
    let loaded_config = config.as_ref().ok().copied();
    platform::init(parameters, loaded_config);
    if let Err(e) = &config {
        log!("configuration in Parameters is invalid: {e}; serving status only");
        loader().record_error(*e, OpKind::START, None);
    }

    let device = match control::create(driver) {
        Ok(d) => d,
        Err(e) => return e.0,
    };
    // SAFETY: our device object, created above.
    if NtStatus(unsafe { IoRegisterShutdownNotification(device) }).is_success() {
        DEVICE.with(|d| *d = device as usize);
    }
    // SAFETY: DriverEntry owns the driver object; plain stores of dispatch pointers.
    unsafe {
        let major = &mut (*driver).MajorFunction;
        major[IRP_MJ_CREATE] = Some(control::dispatch_open_close);
        major[IRP_MJ_CLOSE] = Some(control::dispatch_open_close);
        major[IRP_MJ_CLEANUP] = Some(control::dispatch_open_close);
        major[IRP_MJ_DEVICE_CONTROL] = Some(control::dispatch_control);
        major[IRP_MJ_SHUTDOWN] = Some(control::dispatch_shutdown);
    }

    if let Some(cfg) = loaded_config {
        match thread::spawn(start_thread, cfg.active) {
            Ok(t) => STARTER.with(|s| *s = Some(t)),
            Err(e) => log!("cannot start the initial load: {}", NtStatus(e)),
        }
    }

    log!("DriverEntry done");
    // Last: publishing DriverUnload opens the door to unload.
    // SAFETY: pointer-sized store into our driver object.
    unsafe { (*driver).DriverUnload = Some(driver_unload) };
    NtStatus::SUCCESS.0
}

unsafe extern "system" fn start_thread(context: *mut c_void) {
    let status = loader().start(Some(context as usize)).status;
    log!("initial load of slot {}: {status}", slot_letter(context as usize));
    thread::exit(0);
}

fn slot_letter(slot: usize) -> char {
    if slot == 0 {
        'A'
    } else {
        'B'
    }
}

/// Called by the I/O manager on `sc stop SerialLoader`, at `PASSIVE_LEVEL`,
/// after the last handle to the control device closed. Retires every
/// payload first (unbounded: the loader's image must outlive them).
unsafe extern "system" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    let starter = STARTER.with(Option::take);
    if let Some(t) = starter {
        t.join();
    }
    loader().stop();
    platform::join_workers();
    let device = DEVICE.with(|d| core::mem::take(d));
    if device != 0 {
        // SAFETY: registered in DriverEntry on this device.
        unsafe { IoUnregisterShutdownNotification(device as *mut DEVICE_OBJECT) };
    }
    control::destroy();
    log!("unloaded");
}

/// `<RegistryPath>\Parameters`.
///
/// # Safety
/// `registry_path` must be null or a valid `UNICODE_STRING`.
unsafe fn parameters_path(registry_path: *const UNICODE_STRING) -> Option<WideBuf<300>> {
    // SAFETY: per the contract.
    let path = unsafe { registry_path.as_ref() }?;
    if path.Buffer.is_null() {
        return None;
    }
    // SAFETY: Length bytes of UTF-16 at Buffer, valid for DriverEntry.
    let units = unsafe { core::slice::from_raw_parts(path.Buffer, usize::from(path.Length / 2)) };
    let mut out = WideBuf::from_units(units)?;
    out.push_ascii("\\Parameters")?;
    Some(out)
}

/// Reads and validates `Parameters`.
fn read_config(parameters: &WideBuf<300>) -> Result<Config, NtStatus> {
    let upath = parameters.as_unicode();
    let key = RegKey::open(&upath, false).map_err(NtStatus)?;
    let slot_a = key.query("SlotA").map_err(NtStatus)?;
    let slot_b = key.query("SlotB").map_err(NtStatus)?;
    let a = config::parse_service_name(slot_a.kind, slot_a.data())?;
    let b = config::parse_service_name(slot_b.kind, slot_b.data())?;
    let active = match key.query("ActiveSlot") {
        Ok(v) => config::parse_dword(v.kind, v.data())?,
        Err(_) => 0,
    };
    let timeout = match key.query("UnloadTimeoutMs") {
        Ok(v) => config::parse_dword(v.kind, v.data())?,
        Err(_) => 5000,
    };
    Config::new(a, b, active, timeout)
}
