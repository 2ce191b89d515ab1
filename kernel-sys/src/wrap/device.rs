//! The control device: created with a DACL that admits only SYSTEM and
//! Administrators, dispatched to safe handlers, finished last.
//!
//! Order of creation, each step failing closed: `IoCreateDevice` (secure
//! open); the DACL; the dispatch table; the shutdown notification; the
//! symbolic link; and only then `DO_DEVICE_INITIALIZING` cleared. So the
//! device is never openable before it can answer. Dispatch runs at
//! `PASSIVE_LEVEL` in the caller's thread; handlers must not block long
//! there (long work goes to a thread of the driver, the IRP pended).
use crate::imports::{
    IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink, IoRegisterShutdownNotification,
    IoUnregisterShutdownNotification, ObOpenObjectByPointer, ZwClose, ZwSetSecurityObject,
};
use crate::types::{
    KernelMode, DACL_SECURITY_INFORMATION, DEVICE_OBJECT, DO_BUFFERED_IO, DO_DEVICE_INITIALIZING,
    FILE_DEVICE_SECURE_OPEN, FILE_DEVICE_UNKNOWN, HANDLE, IRP, IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE,
    IRP_MJ_DEVICE_CONTROL, IRP_MJ_SHUTDOWN, OBJ_KERNEL_HANDLE, WRITE_DAC,
};
use crate::wrap::driver::DriverObject;
use crate::wrap::irp::{complete_now, Ioctl, IoctlOutcome};
use crate::wrap::ustr::WideBuf;
use core::sync::atomic::{AtomicPtr, Ordering};
use shared_abi::NtStatus;

/// What the control device does with each request.
pub struct ControlHandlers {
    /// `IRP_MJ_DEVICE_CONTROL`.
    pub control: fn(Ioctl<'_>) -> IoctlOutcome,
    /// `IRP_MJ_SHUTDOWN` (system shutdown, file systems still up).
    pub shutdown: fn(),
    /// A pended request was cancelled (its caller went away); the work it
    /// started goes on. Any IRQL up to `DISPATCH_LEVEL`.
    pub cancelled: fn(),
}

static HANDLERS: AtomicPtr<ControlHandlers> = AtomicPtr::new(core::ptr::null_mut());
static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(core::ptr::null_mut());
/// The symbolic link `create` made, for `destroy` to delete (each driver
/// image has its own copy of this module, so one link per image).
static LINK: crate::wrap::lock::SpinLock<Option<WideBuf<64>>> = crate::wrap::lock::SpinLock::new(None);

fn handlers() -> Option<&'static ControlHandlers> {
    let p = HANDLERS.load(Ordering::Acquire);
    // SAFETY: only ever set from a `&'static ControlHandlers` in `create`.
    unsafe { p.as_ref() }
}

pub(crate) fn notify_cancelled() {
    if let Some(h) = handlers() {
        (h.cancelled)();
    }
}

/// The driver's one control device.
pub struct ControlDevice;

impl ControlDevice {
    /// Creates `name`, applies the self-relative security descriptor `sd`,
    /// installs `handlers`, registers for shutdown, links `link`, and only
    /// then lets it be opened. `DriverEntry` only. Fails closed: any step
    /// that fails deletes what came before.
    pub fn create(
        driver: DriverObject,
        name: &str,
        link: &str,
        sd: &[u8],
        handlers: &'static ControlHandlers,
    ) -> Result<ControlDevice, NtStatus> {
        let uname_buf: WideBuf<64> = WideBuf::from_ascii(name).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
        let ulink_buf: WideBuf<64> = WideBuf::from_ascii(link).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
        let uname = uname_buf.as_unicode();
        let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
        // SAFETY: `driver` is this driver's object (DriverEntry); the name
        // outlives the call; `device` is a valid out-pointer.
        let status = NtStatus(unsafe {
            IoCreateDevice(
                driver.as_raw(),
                0,
                &raw const uname,
                FILE_DEVICE_UNKNOWN,
                FILE_DEVICE_SECURE_OPEN,
                0,
                &raw mut device,
            )
        });
        status.to_result()?;
        let undo = |device: *mut DEVICE_OBJECT| {
            // SAFETY: created above, not yet reachable by name from user mode.
            unsafe { IoDeleteDevice(device) };
        };
        if let Err(e) = apply_dacl(device, sd) {
            undo(device);
            return Err(e);
        }
        // SAFETY: our device, still initialising; a plain flag store.
        unsafe { (*device).Flags |= DO_BUFFERED_IO };
        HANDLERS.store(core::ptr::from_ref(handlers).cast_mut(), Ordering::Release);
        for major in [IRP_MJ_CREATE, IRP_MJ_CLOSE, IRP_MJ_CLEANUP] {
            driver.set_dispatch(major, Some(dispatch_open_close));
        }
        driver.set_dispatch(IRP_MJ_DEVICE_CONTROL, Some(dispatch_control));
        driver.set_dispatch(IRP_MJ_SHUTDOWN, Some(dispatch_shutdown));
        // SAFETY: our device object, created above.
        if let Err(e) = NtStatus(unsafe { IoRegisterShutdownNotification(device) }).to_result() {
            undo(device);
            return Err(e);
        }
        let ulink = ulink_buf.as_unicode();
        // SAFETY: both names outlive the call.
        if let Err(e) = NtStatus(unsafe { IoCreateSymbolicLink(&raw const ulink, &raw const uname) }).to_result() {
            // SAFETY: registered above on this device.
            unsafe { IoUnregisterShutdownNotification(device) };
            undo(device);
            return Err(e);
        }
        LINK.with(|l| *l = Some(ulink_buf));
        DEVICE.store(device, Ordering::Release);
        // Last: from here the I/O manager lets the device be opened.
        // SAFETY: our device; a plain flag store.
        unsafe { (*device).Flags &= !DO_DEVICE_INITIALIZING };
        Ok(ControlDevice)
    }

    /// Removes the link, the shutdown notification and the device
    /// (`DriverUnload`, after every pended request was completed).
    pub fn destroy(self) {
        let device = DEVICE.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if device.is_null() {
            return;
        }
        if let Some(link) = LINK.with(Option::take) {
            let ulink = link.as_unicode();
            // SAFETY: the name outlives the call.
            unsafe { IoDeleteSymbolicLink(&raw const ulink) };
        }
        // SAFETY: registered in `create` on this device.
        unsafe { IoUnregisterShutdownNotification(device) };
        // SAFETY: our device; the driver is unloading.
        unsafe { IoDeleteDevice(device) };
    }
}

/// `sd`'s DACL on the device, set through a kernel handle (`IoCreateDeviceSecure`
/// lives in a static library, not in the kernel).
fn apply_dacl(device: *mut DEVICE_OBJECT, sd: &[u8]) -> Result<(), NtStatus> {
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: `device` is our live device object. No object type is passed:
    // the pointer is ours (and Wine refuses the typed form).
    NtStatus(unsafe {
        ObOpenObjectByPointer(
            device.cast(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null_mut(),
            WRITE_DAC,
            core::ptr::null_mut(),
            KernelMode,
            &raw mut handle,
        )
    })
    .to_result()?;
    // SAFETY: a handle opened above with WRITE_DAC; `sd` is a self-relative
    // security descriptor that outlives the call.
    let status = NtStatus(unsafe { ZwSetSecurityObject(handle, DACL_SECURITY_INFORMATION, sd.as_ptr().cast()) });
    // SAFETY: closes the handle opened above.
    unsafe { ZwClose(handle) };
    status.to_result()
}

/// `IRP_MJ_CREATE` / CLOSE / CLEANUP: the I/O manager already checked the
/// caller against the device's DACL for CREATE.
unsafe extern "system" fn dispatch_open_close(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> i32 {
    complete_now(irp, NtStatus::SUCCESS, 0)
}

/// `IRP_MJ_SHUTDOWN`.
unsafe extern "system" fn dispatch_shutdown(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> i32 {
    if let Some(h) = handlers() {
        (h.shutdown)();
    }
    complete_now(irp, NtStatus::SUCCESS, 0)
}

/// `IRP_MJ_DEVICE_CONTROL`.
unsafe extern "system" fn dispatch_control(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> i32 {
    let Some(h) = handlers() else {
        return complete_now(irp, NtStatus::DEVICE_NOT_READY, 0);
    };
    // SAFETY: the I/O manager passed this device-control IRP to our dispatch
    // routine, and we are in that call.
    let ioctl = unsafe { Ioctl::from_irp(irp) };
    match (h.control)(ioctl) {
        IoctlOutcome::Complete { status, information } => complete_now(irp, status, information),
        IoctlOutcome::Pended(_) => NtStatus::PENDING.0,
    }
}
