//! The loader's control device on Windows: `CreateFileW` to open it and
//! `NtDeviceIoControlFile` to send requests, so the caller gets the exact
//! `NTSTATUS` (`DeviceIoControl` would fold it into a Win32 error).
//!
//! The only `unsafe` code of the tool lives here. The handle is owned by an
//! `OwnedHandle` and is closed on drop; it is opened for synchronous I/O, so
//! every request has completed when `NtDeviceIoControlFile` returns.

use crate::transport::{status_from_win32, Control, Input, OpenError, Outcome, Output};
use shared_abi::control::IoctlCode;
use shared_abi::NtStatus;
use std::ffi::c_void;
use std::os::windows::io::{AsRawHandle, HandleOrInvalid, OwnedHandle};

const GENERIC_READ: u32 = 0x8000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;
const FILE_SHARE_READ: u32 = 1;
const FILE_SHARE_WRITE: u32 = 2;
const OPEN_EXISTING: u32 = 3;

/// `IO_STATUS_BLOCK`: the `Status`/`Pointer` union, then `Information`.
#[repr(C)]
struct IoStatusBlock {
    status: usize,
    information: usize,
}

#[link(name = "kernel32")]
extern "system" {
    fn CreateFileW(
        file_name: *const u16,
        desired_access: u32,
        share_mode: u32,
        security_attributes: *mut c_void,
        creation_disposition: u32,
        flags_and_attributes: u32,
        template_file: *mut c_void,
    ) -> *mut c_void;
}

#[link(name = "kernel32")]
extern "system" {
    fn SetConsoleCtrlHandler(handler: Option<unsafe extern "system" fn(u32) -> i32>, add: i32) -> i32;
}

/// Console control handler: Ctrl+C or Ctrl+Break while a request waits.
/// It says what happens, then lets the default handler end the process;
/// ending the process cancels the pending request (the loader completes it
/// with `STATUS_CANCELLED` at once), and the operation itself runs on in
/// the loader.
unsafe extern "system" fn on_ctrl(kind: u32) -> i32 {
    if kind <= 1 {
        eprintln!(
            "\nloaderctl: interrupted. The loader finishes the operation on its own; run `loaderctl status` to see its progress and result."
        );
    }
    0 // not handled: the default handler ends the process
}

/// Installs the Ctrl+C notice (once, at start).
pub fn install_ctrl_c_notice() {
    // SAFETY: registers a handler function of this program; no pointers kept.
    unsafe { SetConsoleCtrlHandler(Some(on_ctrl), 1) };
}

#[link(name = "ntdll")]
extern "system" {
    fn NtDeviceIoControlFile(
        file_handle: *mut c_void,
        event: *mut c_void,
        apc_routine: *mut c_void,
        apc_context: *mut c_void,
        io_status_block: *mut IoStatusBlock,
        io_control_code: u32,
        input_buffer: *const c_void,
        input_buffer_length: u32,
        output_buffer: *mut c_void,
        output_buffer_length: u32,
    ) -> i32;
    fn RtlGetLastNtStatus() -> i32;
}

/// An open handle to the loader's control device.
pub struct Device {
    handle: OwnedHandle,
}

impl Device {
    /// Opens `path` (normally `\\.\SerialLoader`) for read and write.
    pub fn open(path: &str) -> Result<Device, OpenError> {
        let wide: Vec<u16> = path.encode_utf16().chain(std::iter::once(0)).collect();
        // SAFETY: `wide` is NUL-terminated and outlives the call; the other
        // pointers are null, which CreateFileW documents as "none".
        let raw = unsafe {
            CreateFileW(
                wide.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                std::ptr::null_mut(),
                OPEN_EXISTING,
                0,
                std::ptr::null_mut(),
            )
        };
        // SAFETY: `raw` was just returned by CreateFileW and nothing else owns
        // it; it is either a valid handle or INVALID_HANDLE_VALUE, which is
        // what HandleOrInvalid expects.
        let owned = unsafe { HandleOrInvalid::from_raw_handle(raw) };
        OwnedHandle::try_from(owned).map(|handle| Device { handle }).map_err(|_| {
            let win32 = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            let win32 = u32::try_from(win32).unwrap_or(0);
            // SAFETY: reads this thread's last NTSTATUS from the TEB; no arguments.
            let last = NtStatus(unsafe { RtlGetLastNtStatus() });
            let status = if last.is_success() { status_from_win32(win32) } else { last };
            OpenError::Status { status, win32 }
        })
    }
}

impl Control for Device {
    fn control(&self, code: IoctlCode, input: &Input, output: Output) -> Outcome {
        let (in_ptr, in_len): (*const c_void, u32) = match input {
            Input::Bytes(b) if b.is_empty() => (std::ptr::null(), 0),
            Input::Bytes(b) => (b.as_ptr().cast(), u32::try_from(b.len()).unwrap_or(u32::MAX)),
            Input::Null { len } => (std::ptr::null(), *len),
        };
        let mut buffer = vec![
            0u8;
            match output {
                Output::Len(n) => usize::try_from(n).unwrap_or(0),
                Output::Null { .. } => 0,
            }
        ];
        let (out_ptr, out_len): (*mut c_void, u32) = match output {
            Output::Len(0) | Output::Null { len: 0 } => (std::ptr::null_mut(), 0),
            Output::Len(n) => (buffer.as_mut_ptr().cast(), n),
            Output::Null { len } => (std::ptr::null_mut(), len),
        };
        let mut iosb = IoStatusBlock { status: 0, information: 0 };
        // SAFETY: the handle is open (owned by `self`) and synchronous, so the
        // call completes before it returns and nothing keeps the pointers.
        // The buffers are either live for the call with exactly the lengths
        // passed, or null on purpose (raw tests); the I/O manager probes user
        // buffers and fails a bad one with a status instead of writing to it.
        let status = unsafe {
            NtDeviceIoControlFile(
                self.handle.as_raw_handle(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &raw mut iosb,
                code.0,
                in_ptr,
                in_len,
                out_ptr,
                out_len,
            )
        };
        let bytes = iosb.information;
        buffer.truncate(bytes.min(buffer.len()));
        Outcome { status: NtStatus(status), bytes, output: buffer }
    }
}
