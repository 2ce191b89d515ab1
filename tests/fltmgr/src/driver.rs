//! `DriverEntry` of the `FltMgr` service: the control device. There is no
//! `DriverUnload`: like Windows' Filter Manager, the simulator is never
//! unloaded (Wine then leaves it loaded when the service is stopped).
use crate::log;
use fltsim_abi as abi;
use kernel_sys::wrap::device::ControlDevice;
use kernel_sys::wrap::driver::{DriverObject, RegistryPath};
use shared_abi::NtStatus;

/// Called by the I/O manager at `PASSIVE_LEVEL` when the `FltMgr` service
/// starts (before the loader, in the loader's load-order group).
pub fn driver_main(driver: DriverObject, _registry_path: &RegistryPath) -> Result<(), NtStatus> {
    crate::verifier::init_qpc();
    let sd = loader_parsers::security::control_device_sd();
    ControlDevice::create(driver, abi::DEVICE_NAME, abi::DOS_DEVICE_NAME, &sd, &crate::control::HANDLERS)?;
    log!(
        "DriverEntry done: the test world's Filter Manager (volumes {} and {}, control device {})",
        abi::VOLUME_NAMES[0],
        abi::VOLUME_NAMES[1],
        abi::WIN32_DEVICE_PATH
    );
    Ok(())
}
