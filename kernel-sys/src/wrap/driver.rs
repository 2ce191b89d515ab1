//! The driver object and `DriverEntry`.
//!
//! [`driver_entry!`](crate::driver_entry) writes the image's `DriverEntry`:
//! it checks the two pointers the I/O manager passes and hands safe views to
//! the driver's own entry, so no driver crate needs an `unsafe` block for it.
use crate::types::{DRIVER_OBJECT, IRP_MJ_MAXIMUM_FUNCTION, PDRIVER_DISPATCH, UNICODE_STRING};
use shared_abi::NtStatus;

/// `DriverUnload`, as a driver of this project writes it: no pointer to
/// look at (the driver keeps what it needs in its statics).
pub type UnloadRoutine = extern "system" fn(driver: *mut DRIVER_OBJECT);

/// The driver object of this image, as `DriverEntry` received it. Valid
/// until the driver has unloaded; the I/O manager keeps it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DriverObject(*mut DRIVER_OBJECT);

// SAFETY: a driver object is a kernel object usable from any thread; this
// handle only carries its address.
unsafe impl Send for DriverObject {}
// SAFETY: as above; every write through it is a pointer-sized store the
// driver makes during `DriverEntry` or its own unload path.
unsafe impl Sync for DriverObject {}

impl DriverObject {
    /// The raw pointer, for calls that take a `PDRIVER_OBJECT`.
    #[must_use]
    pub fn as_raw(self) -> *mut DRIVER_OBJECT {
        self.0
    }

    /// Publishes `DriverUnload`. From here an unload request reaches the
    /// driver; until then `NtUnloadDriver` refuses to unload it. Call it as
    /// `DriverEntry`'s last act.
    pub fn set_unload(self, routine: UnloadRoutine) {
        // SAFETY: the driver object outlives the driver; a pointer-sized
        // store of a function of this image. A safe `extern "system" fn`
        // coerces to the `unsafe` pointer type the structure declares.
        unsafe { (*self.0).DriverUnload = Some(routine as unsafe extern "system" fn(*mut DRIVER_OBJECT)) };
    }

    /// Sets the dispatch routine of `major` (ignored past
    /// `IRP_MJ_MAXIMUM_FUNCTION`). `DriverEntry` only, before any device of
    /// the driver can be opened.
    pub fn set_dispatch(self, major: usize, routine: PDRIVER_DISPATCH) {
        if major > IRP_MJ_MAXIMUM_FUNCTION {
            return;
        }
        // SAFETY: as in `set_unload`; `major` is in range.
        unsafe { (*self.0).MajorFunction[major] = routine };
    }

    /// `DriverStart` and `DriverSize`: where the image is mapped.
    #[must_use]
    pub fn image_range(self) -> (usize, usize) {
        // SAFETY: set by the I/O manager before DriverEntry; read-only after.
        let driver = unsafe { &*self.0 };
        (driver.DriverStart as usize, driver.DriverSize as usize)
    }
}

/// Up to this many UTF-16 units of the registry path are kept.
pub const REGISTRY_PATH_CHARS: usize = 300;

/// The service key path `DriverEntry` received, copied.
#[derive(Clone, Copy)]
pub struct RegistryPath {
    units: [u16; REGISTRY_PATH_CHARS],
    len: usize,
}

impl RegistryPath {
    /// The path's UTF-16 units (no terminator).
    #[must_use]
    pub fn units(&self) -> &[u16] {
        self.units.get(..self.len).unwrap_or(&[])
    }
}

/// Checks and copies what the I/O manager passed to `DriverEntry`.
///
/// # Safety
/// `driver` and `registry_path` must be the arguments the I/O manager passed
/// to `DriverEntry`, during that call.
#[doc(hidden)]
pub unsafe fn enter(
    driver: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> Result<(DriverObject, RegistryPath), NtStatus> {
    if driver.is_null() {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    // SAFETY: per the contract, null or a valid UNICODE_STRING for the call.
    let path = unsafe { registry_path.as_ref() }.ok_or(NtStatus::INVALID_PARAMETER)?;
    let mut out = RegistryPath { units: [0; REGISTRY_PATH_CHARS], len: 0 };
    if !path.Buffer.is_null() {
        let len = usize::from(path.Length / 2);
        // SAFETY: Length bytes of UTF-16 at Buffer, valid during DriverEntry.
        let units = unsafe { core::slice::from_raw_parts(path.Buffer, len) };
        let dst = out.units.get_mut(..len).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
        dst.copy_from_slice(units);
        out.len = len;
    }
    Ok((DriverObject(driver), out))
}

/// Writes the image's `DriverEntry`, calling `$main(driver, &registry_path)`
/// (a safe `fn(DriverObject, &RegistryPath) -> Result<(), NtStatus>`).
#[macro_export]
macro_rules! driver_entry {
    ($main:path) => {
        /// Called by the I/O manager at `PASSIVE_LEVEL` when the service starts.
        ///
        /// # Safety
        /// Called only by the I/O manager, with its driver object and
        /// registry path.
        #[no_mangle]
        pub unsafe extern "system" fn DriverEntry(
            driver: *mut $crate::DRIVER_OBJECT,
            registry_path: *const $crate::UNICODE_STRING,
        ) -> i32 {
            // SAFETY: the two arguments the I/O manager passed to DriverEntry.
            match unsafe { $crate::wrap::driver::enter(driver, registry_path) } {
                Ok((driver, path)) => match $main(driver, &path) {
                    Ok(()) => 0,
                    Err(status) => status.0,
                },
                Err(status) => status.0,
            }
        }
    };
}
