//! The Windows calls of the tool: the two control devices (`CreateFileW`,
//! `NtDeviceIoControlFile`, so a request's exact `NTSTATUS` comes back),
//! the service manager, and registry reads. The tool's only `unsafe` code.
use shared_abi::NtStatus;
use std::ffi::c_void;
use std::os::windows::io::{AsRawHandle, HandleOrInvalid, OwnedHandle};

const GENERIC_READ: u32 = 0x8000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;
const FILE_SHARE_READ_WRITE: u32 = 3;
const OPEN_EXISTING: u32 = 3;
const HKEY_LOCAL_MACHINE: usize = 0x8000_0002;
const KEY_QUERY_VALUE: u32 = 1;
const SC_MANAGER_CONNECT: u32 = 1;
const SERVICE_START_STOP_QUERY: u32 = 0x0010 | 0x0020 | 0x0004;
const SERVICE_CONTROL_STOP: u32 = 1;

#[repr(C)]
struct IoStatusBlock {
    status: usize,
    information: usize,
}

/// `SERVICE_STATUS`.
#[repr(C)]
#[derive(Default, Clone, Copy, Debug)]
pub struct ServiceStatus {
    pub service_type: u32,
    pub current_state: u32,
    pub controls_accepted: u32,
    pub win32_exit_code: u32,
    pub service_exit_code: u32,
    pub check_point: u32,
    pub wait_hint: u32,
}

/// `SERVICE_STOPPED`, `SERVICE_START_PENDING`, `SERVICE_STOP_PENDING`, `SERVICE_RUNNING`.
pub const SERVICE_STOPPED: u32 = 1;
pub const SERVICE_START_PENDING: u32 = 2;
pub const SERVICE_STOP_PENDING: u32 = 3;
pub const SERVICE_RUNNING: u32 = 4;

#[link(name = "kernel32")]
extern "system" {
    fn CreateFileW(
        name: *const u16,
        access: u32,
        share: u32,
        security: *mut c_void,
        disposition: u32,
        flags: u32,
        template: *mut c_void,
    ) -> *mut c_void;
}

#[link(name = "ntdll")]
extern "system" {
    fn NtDeviceIoControlFile(
        file: *mut c_void,
        event: *mut c_void,
        apc: *mut c_void,
        apc_context: *mut c_void,
        iosb: *mut IoStatusBlock,
        code: u32,
        input: *const c_void,
        input_len: u32,
        output: *mut c_void,
        output_len: u32,
    ) -> i32;
}

#[link(name = "advapi32")]
extern "system" {
    fn OpenSCManagerW(machine: *const u16, database: *const u16, access: u32) -> *mut c_void;
    fn OpenServiceW(manager: *mut c_void, name: *const u16, access: u32) -> *mut c_void;
    fn StartServiceW(service: *mut c_void, argc: u32, argv: *const *const u16) -> i32;
    fn ControlService(service: *mut c_void, control: u32, status: *mut ServiceStatus) -> i32;
    fn QueryServiceStatus(service: *mut c_void, status: *mut ServiceStatus) -> i32;
    fn CloseServiceHandle(handle: *mut c_void) -> i32;
    fn RegOpenKeyExW(key: usize, sub_key: *const u16, options: u32, access: u32, result: *mut usize) -> i32;
    fn RegQueryValueExW(
        key: usize,
        name: *const u16,
        reserved: *mut u32,
        kind: *mut u32,
        data: *mut u8,
        len: *mut u32,
    ) -> i32;
    fn RegCloseKey(key: usize) -> i32;
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// An open control device.
pub struct Device {
    handle: OwnedHandle,
}

impl Device {
    /// Opens `path` (`\\.\FltSim`, `\\.\SerialLoader`).
    pub fn open(path: &str) -> Result<Device, String> {
        let name = wide(path);
        // SAFETY: `name` is NUL-terminated and outlives the call; the null
        // pointers mean "none".
        let raw = unsafe {
            CreateFileW(
                name.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                FILE_SHARE_READ_WRITE,
                std::ptr::null_mut(),
                OPEN_EXISTING,
                0,
                std::ptr::null_mut(),
            )
        };
        // SAFETY: `raw` was just returned by CreateFileW and nothing else owns it.
        let owned = unsafe { HandleOrInvalid::from_raw_handle(raw) };
        OwnedHandle::try_from(owned)
            .map(|handle| Device { handle })
            .map_err(|_| format!("cannot open {path}: {}", std::io::Error::last_os_error()))
    }

    /// Sends `code` with `input`; returns the status and up to `output_len` bytes.
    pub fn control(&self, code: u32, input: &[u8], output_len: usize) -> (NtStatus, Vec<u8>) {
        let mut out = vec![0u8; output_len];
        let mut iosb = IoStatusBlock { status: 0, information: 0 };
        let in_ptr: *const c_void = if input.is_empty() { std::ptr::null() } else { input.as_ptr().cast() };
        let out_ptr: *mut c_void = if out.is_empty() { std::ptr::null_mut() } else { out.as_mut_ptr().cast() };
        // SAFETY: a synchronous handle owned by `self`, so the request has
        // completed when the call returns; the buffers live across it with
        // exactly the lengths passed.
        let status = unsafe {
            NtDeviceIoControlFile(
                self.handle.as_raw_handle(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &raw mut iosb,
                code,
                in_ptr,
                u32::try_from(input.len()).unwrap_or(u32::MAX),
                out_ptr,
                u32::try_from(out.len()).unwrap_or(u32::MAX),
            )
        };
        out.truncate(iosb.information.min(out.len()));
        (NtStatus(status), out)
    }
}

/// A service of the service manager.
pub struct Service {
    manager: *mut c_void,
    service: *mut c_void,
}

impl Service {
    /// Opens `name` for start, stop and query.
    pub fn open(name: &str) -> Result<Service, String> {
        // SAFETY: local machine, default database; checked for NULL.
        let manager = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_CONNECT) };
        if manager.is_null() {
            return Err(format!("OpenSCManager: {}", std::io::Error::last_os_error()));
        }
        let wname = wide(name);
        // SAFETY: an open manager handle; `wname` is NUL-terminated.
        let service = unsafe { OpenServiceW(manager, wname.as_ptr(), SERVICE_START_STOP_QUERY) };
        if service.is_null() {
            let e = std::io::Error::last_os_error();
            // SAFETY: closes the manager handle opened above.
            unsafe { CloseServiceHandle(manager) };
            return Err(format!("OpenService {name}: {e}"));
        }
        Ok(Service { manager, service })
    }

    /// `StartServiceW`; `Err` with the Win32 error.
    pub fn start(&self) -> Result<(), i32> {
        // SAFETY: an open service handle; no arguments.
        if unsafe { StartServiceW(self.service, 0, std::ptr::null()) } != 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
        }
    }

    /// `ControlService(SERVICE_CONTROL_STOP)`; `Err` with the Win32 error.
    pub fn stop(&self) -> Result<(), i32> {
        let mut st = ServiceStatus::default();
        // SAFETY: an open service handle and a status out-pointer.
        if unsafe { ControlService(self.service, SERVICE_CONTROL_STOP, &raw mut st) } != 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
        }
    }

    /// The service's state (`SERVICE_*`), 0 if the query fails.
    pub fn state(&self) -> u32 {
        let mut st = ServiceStatus::default();
        // SAFETY: an open service handle and a status out-pointer.
        if unsafe { QueryServiceStatus(self.service, &raw mut st) } != 0 {
            st.current_state
        } else {
            0
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: closes the two handles this value owns, once.
        unsafe { CloseServiceHandle(self.service) };
        // SAFETY: as above.
        unsafe { CloseServiceHandle(self.manager) };
    }
}

/// A `REG_DWORD` under `HKLM\<key>`, if present.
pub fn registry_dword(key: &str, value: &str) -> Option<u32> {
    let wkey = wide(key);
    let mut handle = 0usize;
    // SAFETY: a predefined root, a NUL-terminated path, an out-pointer.
    if unsafe { RegOpenKeyExW(HKEY_LOCAL_MACHINE, wkey.as_ptr(), 0, KEY_QUERY_VALUE, &raw mut handle) } != 0 {
        return None;
    }
    let wvalue = wide(value);
    let mut data = [0u8; 4];
    let mut len = 4u32;
    let mut kind = 0u32;
    // SAFETY: an open key; `data` holds `len` bytes; out-pointers.
    let r = unsafe {
        RegQueryValueExW(handle, wvalue.as_ptr(), std::ptr::null_mut(), &raw mut kind, data.as_mut_ptr(), &raw mut len)
    };
    // SAFETY: closes the key opened above.
    unsafe { RegCloseKey(handle) };
    (r == 0 && kind == 4 && len == 4).then(|| u32::from_le_bytes(data))
}

/// A `#[repr(C)]` type of integers only (`fltsim-abi`'s structures): any
/// bytes are a valid value, and a value's bytes may be copied out.
///
/// # Safety
/// Implement it only for such types.
pub unsafe trait Pod: Copy {}
// SAFETY: `#[repr(C)]`, integers and integer arrays only (fltsim-abi).
unsafe impl Pod for fltsim_abi::Snapshot {}
// SAFETY: as above.
unsafe impl Pod for fltsim_abi::InjectRequest {}
// SAFETY: as above.
unsafe impl Pod for fltsim_abi::FilterRequest {}
// SAFETY: as above.
unsafe impl Pod for fltsim_abi::FileRequest {}
// SAFETY: as above.
unsafe impl Pod for fltsim_abi::FileReply {}

/// A `T` from the start of `bytes`, if long enough.
pub fn from_bytes<T: Pod>(bytes: &[u8]) -> Option<T> {
    let bytes = bytes.get(..std::mem::size_of::<T>())?;
    // SAFETY: `bytes` holds size_of::<T>() bytes; any bytes are a valid T (Pod).
    Some(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// The bytes of `value`.
pub fn to_bytes<T: Pod>(value: &T) -> Vec<u8> {
    let n = std::mem::size_of::<T>();
    // SAFETY: `value` is `n` readable bytes with no padding (Pod).
    unsafe { std::slice::from_raw_parts((&raw const *value).cast::<u8>(), n) }.to_vec()
}
