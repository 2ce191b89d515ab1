//! What a control request looks like to the rest of the tool: a code, an
//! input and an output buffer, and back an exact `NTSTATUS` with the bytes.
//! The real device (`device.rs`, Windows only) and the tests' fake loader
//! both implement [`Control`]. Safe code only.

use crate::exitcode::{status_label, Exit, Failure};
use shared_abi::control::{IoctlCode, WIN32_DEVICE_PATH};
use shared_abi::NtStatus;

/// The input buffer of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// These bytes (an empty vector passes a null pointer and length 0).
    Bytes(Vec<u8>),
    /// A null pointer that claims `len` bytes (for malformed-request tests).
    Null { len: u32 },
}

/// The output buffer of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A buffer of this many bytes (0 passes a null pointer).
    Len(u32),
    /// A null pointer that claims `len` bytes (for malformed-request tests).
    Null { len: u32 },
}

/// What a request came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The exact `NTSTATUS` of the request.
    pub status: NtStatus,
    /// `IoStatus.Information`: the bytes the driver returned.
    pub bytes: usize,
    /// The output buffer, cut to `bytes`.
    pub output: Vec<u8>,
}

/// Sends control requests to the loader.
pub trait Control {
    fn control(&self, code: IoctlCode, input: &Input, output: Output) -> Outcome;
}

/// Why the control device could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(windows), allow(dead_code))]
pub enum OpenError {
    /// `CreateFileW` failed with this `NTSTATUS` (and Win32 error).
    Status { status: NtStatus, win32: u32 },
    /// Not built for Windows.
    #[cfg_attr(windows, allow(dead_code))]
    Unsupported,
}

impl OpenError {
    /// The failure to report for opening `path`.
    #[must_use]
    pub fn failure(self, path: &str) -> Failure {
        match self {
            OpenError::Unsupported => Failure {
                exit: Exit::LoaderNotRunning,
                message: "loaderctl talks to a Windows kernel driver; run it on Windows or under Wine".to_owned(),
            },
            OpenError::Status { status, win32 } => {
                let (exit, why) = match status {
                    NtStatus::ACCESS_DENIED => (
                        Exit::AccessDenied,
                        "access denied; run loaderctl from an elevated Administrator prompt".to_owned(),
                    ),
                    NtStatus::OBJECT_NAME_NOT_FOUND
                    | NtStatus::DEVICE_NOT_READY
                    | NtStatus::OBJECT_PATH_NOT_FOUND
                    | NtStatus::NO_SUCH_DEVICE => (
                        Exit::LoaderNotRunning,
                        "the SerialLoader service is not running (start it with `sc start SerialLoader`)".to_owned(),
                    ),
                    _ => (Exit::Internal, format!("the device could not be opened (Windows error {win32})")),
                };
                Failure { exit, message: format!("cannot open {path}: {}: {why}", status_label(status)) }
            }
        }
    }
}

/// Opens the loader's control device (default [`WIN32_DEVICE_PATH`]).
pub fn open(path: Option<&str>) -> Result<Box<dyn Control + Send>, Failure> {
    let path = path.unwrap_or(WIN32_DEVICE_PATH);
    #[cfg(windows)]
    {
        crate::device::Device::open(path).map(|d| Box::new(d) as Box<dyn Control + Send>).map_err(|e| e.failure(path))
    }
    #[cfg(not(windows))]
    {
        Err(OpenError::Unsupported.failure(path))
    }
}

/// Maps a Win32 error to the `NTSTATUS` it most likely came from, for when
/// the last `NTSTATUS` is not available.
#[must_use]
#[cfg_attr(not(windows), allow(dead_code))]
pub fn status_from_win32(win32: u32) -> NtStatus {
    match win32 {
        2 => NtStatus::OBJECT_NAME_NOT_FOUND,
        3 => NtStatus::OBJECT_PATH_NOT_FOUND,
        5 => NtStatus::ACCESS_DENIED,
        21 => NtStatus::DEVICE_NOT_READY,
        170 => NtStatus::DEVICE_BUSY,
        _ => NtStatus::UNSUCCESSFUL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_failures_have_their_classes() {
        let f = OpenError::Status { status: status_from_win32(2), win32: 2 }.failure(WIN32_DEVICE_PATH);
        assert_eq!(f.exit.code(), 3);
        assert_eq!(
            f.message,
            "cannot open \\\\.\\SerialLoader: STATUS_OBJECT_NAME_NOT_FOUND (0xC0000034): the SerialLoader service is not running (start it with `sc start SerialLoader`)"
        );
        let f = OpenError::Status { status: status_from_win32(5), win32: 5 }.failure(WIN32_DEVICE_PATH);
        assert_eq!(f.exit.code(), 4);
        assert!(f.message.contains("STATUS_ACCESS_DENIED (0xC0000022): access denied"));
        let f = OpenError::Status { status: status_from_win32(3), win32: 3 }.failure(WIN32_DEVICE_PATH);
        assert_eq!(f.exit.code(), 3);
        assert!(f.message.contains("STATUS_OBJECT_PATH_NOT_FOUND"));
        let f = OpenError::Unsupported.failure(WIN32_DEVICE_PATH);
        assert_eq!(f.exit.code(), 3);
        assert!(f.message.contains("run it on Windows or under Wine"));
    }

    #[cfg(not(windows))]
    #[test]
    fn host_build_explains_it_needs_windows() {
        let f = open(None).err().expect("no device off Windows");
        assert_eq!(f.message, "loaderctl talks to a Windows kernel driver; run it on Windows or under Wine");
    }
}
