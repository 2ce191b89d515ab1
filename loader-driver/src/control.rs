//! The control device: creation with a DACL that admits only SYSTEM and
//! Administrators, and the IRP dispatch routines.
//!
//! Only `METHOD_BUFFERED` codes exist. Request bytes are decoded by
//! `loader_protocol::control` (panic-free, every length checked) before
//! anything acts on them, and output never exceeds `OutputBufferLength`.
//! Dispatch runs at `PASSIVE_LEVEL` in the caller's thread.
use crate::log;
use crate::platform::{self, loader};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::{
    IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink, IofCompleteRequest, KernelMode,
    ObOpenObjectByPointer, ZwClose, ZwSetSecurityObject, DACL_SECURITY_INFORMATION, DEVICE_OBJECT, DO_BUFFERED_IO,
    DO_DEVICE_INITIALIZING, DRIVER_OBJECT, FILE_DEVICE_SECURE_OPEN, FILE_DEVICE_UNKNOWN, HANDLE, IO_NO_INCREMENT, IRP,
    OBJ_KERNEL_HANDLE, WRITE_DAC,
};
use loader_protocol::control::{decode_request, encode_reply, encode_status, ControlCommand};
use shared_abi::control::{OpKind, DEVICE_NAME, DOS_DEVICE_NAME};
use shared_abi::NtStatus;

static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(core::ptr::null_mut());

/// Creates `\Device\SerialLoader`, applies the admin-only DACL, and links
/// `\DosDevices\SerialLoader`. Fails closed: no DACL, no device.
pub fn create(driver: *mut DRIVER_OBJECT) -> Result<*mut DEVICE_OBJECT, NtStatus> {
    let name: WideBuf<64> = WideBuf::from_ascii(DEVICE_NAME).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let uname = name.as_unicode();
    let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: `driver` is ours (DriverEntry); the name outlives the call.
    let status = NtStatus(unsafe {
        IoCreateDevice(driver, 0, &uname, FILE_DEVICE_UNKNOWN, FILE_DEVICE_SECURE_OPEN, 0, &mut device)
    });
    status.to_result()?;
    if let Err(e) = apply_dacl(device) {
        log!("cannot apply the control device's DACL: {e}");
        // SAFETY: the device was created above and nothing references it yet.
        unsafe { IoDeleteDevice(device) };
        return Err(e);
    }
    let link: WideBuf<64> = WideBuf::from_ascii(DOS_DEVICE_NAME).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let ulink = link.as_unicode();
    // SAFETY: both names outlive the call.
    if let Err(e) = NtStatus(unsafe { IoCreateSymbolicLink(&ulink, &uname) }).to_result() {
        // SAFETY: as above.
        unsafe { IoDeleteDevice(device) };
        return Err(e);
    }
    // SAFETY: the device was created above and is not yet in use.
    let flags = unsafe { &mut (*device).Flags };
    *flags |= DO_BUFFERED_IO;
    *flags &= !DO_DEVICE_INITIALIZING;
    DEVICE.store(device, Ordering::Release);
    Ok(device)
}

/// `D:P(A;;GA;;;SY)(A;;GA;;;BA)`, built by `loader_protocol::security` from
/// exported routines only (`IoCreateDeviceSecure` is a static library).
fn apply_dacl(device: *mut DEVICE_OBJECT) -> Result<(), NtStatus> {
    let sd = loader_protocol::security::control_device_sd();
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: `device` is our live device object. No object type is passed:
    // the pointer is ours, and Wine rejects the typed form.
    NtStatus(unsafe {
        ObOpenObjectByPointer(
            device.cast(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null_mut(),
            WRITE_DAC,
            core::ptr::null_mut(),
            KernelMode,
            &mut handle,
        )
    })
    .to_result()?;
    // SAFETY: a handle opened above with WRITE_DAC; `sd` is a self-relative SD
    // that outlives the call.
    let status = NtStatus(unsafe { ZwSetSecurityObject(handle, DACL_SECURITY_INFORMATION, sd.as_ptr().cast()) });
    // SAFETY: closes the handle opened above.
    unsafe { ZwClose(handle) };
    status.to_result()
}

/// Removes the link and the device (DriverUnload).
pub fn destroy() {
    let device = DEVICE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if device.is_null() {
        return;
    }
    if let Some(link) = WideBuf::<64>::from_ascii(DOS_DEVICE_NAME) {
        let ulink = link.as_unicode();
        // SAFETY: the name outlives the call.
        unsafe { IoDeleteSymbolicLink(&ulink) };
    }
    // SAFETY: our device; DriverUnload runs after the last handle closed.
    unsafe { IoDeleteDevice(device) };
}

fn complete(irp: *mut IRP, status: NtStatus, information: usize) -> i32 {
    // SAFETY: `irp` is the IRP our dispatch routine was given and still owns.
    let io_status = unsafe { &mut (*irp).IoStatus };
    io_status.Status = status.0;
    io_status.Information = information;
    // SAFETY: completes the IRP exactly once.
    unsafe { IofCompleteRequest(irp, IO_NO_INCREMENT) };
    status.0
}

/// IRP_MJ_CREATE / IRP_MJ_CLOSE / IRP_MJ_CLEANUP. The I/O manager has already
/// checked the caller against the device's DACL for CREATE.
pub unsafe extern "system" fn dispatch_open_close(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> i32 {
    complete(irp, NtStatus::SUCCESS, 0)
}

/// IRP_MJ_SHUTDOWN: persist the active slot and call the payload's hook
/// while file systems are still up (seed 004).
pub unsafe extern "system" fn dispatch_shutdown(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> i32 {
    loader().shutdown();
    complete(irp, NtStatus::SUCCESS, 0)
}

/// IRP_MJ_DEVICE_CONTROL.
pub unsafe extern "system" fn dispatch_control(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> i32 {
    // SAFETY: the I/O manager passes a valid IRP, ours until completion.
    let irp_ref = unsafe { &*irp };
    // SAFETY: a dispatched IRP has a current stack location for our device.
    let stack = unsafe { &*irp_ref.CurrentStackLocation };
    let (code, in_len, out_len, buffer) = (
        stack.IoControlCode,
        stack.InputBufferLength as usize,
        stack.OutputBufferLength as usize,
        irp_ref.SystemBuffer,
    );
    // METHOD_BUFFERED: one system buffer of max(in, out) bytes, or NULL.
    let capacity = in_len.max(out_len);
    let buf: &mut [u8] = if buffer.is_null() || capacity == 0 {
        &mut []
    } else {
        // SAFETY: for METHOD_BUFFERED the I/O manager allocated `capacity`
        // bytes at SystemBuffer for this IRP; we own it until completion.
        unsafe { core::slice::from_raw_parts_mut(buffer.cast::<u8>(), capacity) }
    };
    let (status, information) = handle_control(code, buf, in_len, out_len);
    complete(irp, status, information)
}

/// Decodes and runs one request; returns the status and the bytes written.
fn handle_control(code: u32, buf: &mut [u8], in_len: usize, out_len: usize) -> (NtStatus, usize) {
    let input = buf.get(..in_len).unwrap_or(&[]);
    let command = match decode_request(code, input, out_len) {
        Ok(c) => c,
        Err(e) => {
            log!("control request 0x{code:08X} refused: {e}");
            loader().record_error(e, OpKind::CONTROL, None);
            return (e, 0);
        }
    };
    let out = buf.get_mut(..out_len).unwrap_or(&mut []);
    let result = match command {
        ControlCommand::QueryStatus => {
            let snapshot = platform::status();
            return match encode_status(&snapshot, out) {
                Ok(n) => (NtStatus::SUCCESS, n),
                Err(e) => (e, 0),
            };
        }
        ControlCommand::Upgrade { slot } => loader().upgrade(slot),
        ControlCommand::Rollback => loader().rollback(),
        ControlCommand::Load => loader().load(),
        ControlCommand::Unload => loader().unload(),
    };
    if !result.status.is_success() {
        return (result.status, 0);
    }
    match encode_reply(&result.to_reply(), out) {
        Ok(n) => (result.status, n),
        Err(e) => (e, 0),
    }
}
