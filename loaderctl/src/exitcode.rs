//! Exit codes, one per failure class, and the one-sentence error messages
//! that go with them. Every message names the symbolic `NTSTATUS`.

use shared_abi::NtStatus;

/// The process exit code; one value per failure class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: the operation succeeded.
    Success,
    /// 2: bad command line (clap's own code for usage errors).
    Usage,
    /// 3: the loader is not running or its device was not found.
    LoaderNotRunning,
    /// 4: access denied (not run as Administrator).
    AccessDenied,
    /// 5: the payload image was rejected before any of its code ran.
    ImageRejected,
    /// 6: the payload failed to start or to register.
    PayloadFailed,
    /// 7: another operation is running, or a slot is still occupied.
    Busy,
    /// 8: a payload's teardown is stuck.
    TeardownStuck,
    /// 9: malformed request or reply, or an internal error.
    Internal,
}

impl Exit {
    /// The numeric code the process returns.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Usage => 2,
            Exit::LoaderNotRunning => 3,
            Exit::AccessDenied => 4,
            Exit::ImageRejected => 5,
            Exit::PayloadFailed => 6,
            Exit::Busy => 7,
            Exit::TeardownStuck => 8,
            Exit::Internal => 9,
        }
    }
}

/// Shown by `loaderctl --help`; keep in step with [`Exit`].
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  2  usage error (bad command line)
  3  the loader is not running, or \\\\.\\SerialLoader was not found
  4  access denied: run from an elevated (Administrator) prompt
  5  payload image rejected (STATUS_PROCEDURE_NOT_FOUND, STATUS_INVALID_IMAGE_FORMAT,
     STATUS_REVISION_MISMATCH, STATUS_INFO_LENGTH_MISMATCH)
  6  payload failed to start or register (its DriverEntry or registration failed)
  7  busy, or the slot is still occupied (STATUS_DEVICE_BUSY,
     STATUS_IMAGE_ALREADY_LOADED, STATUS_OBJECT_NAME_COLLISION)
  8  teardown stuck (STATUS_IO_TIMEOUT, or the new payload is active but the
     old one has not unloaded: see `loaderctl diagnose`)
  9  malformed request or reply, or an internal error";

/// Statuses outside the ABI's list that the I/O manager (or Wine) can return
/// for malformed requests before the loader ever sees them (values from
/// `ntstatus.h`).
const EXTRA_NAMES: &[(u32, &str, &str)] = &[
    (0x8000_0002, "STATUS_DATATYPE_MISALIGNMENT", "a buffer is misaligned"),
    (0xC000_0005, "STATUS_ACCESS_VIOLATION", "a buffer address is invalid"),
    (0xC000_0008, "STATUS_INVALID_HANDLE", "the handle is invalid"),
    (0xC000_000E, "STATUS_NO_SUCH_DEVICE", "the device does not exist"),
    (0xC000_0017, "STATUS_NO_MEMORY", "not enough memory"),
    (0xC000_003A, "STATUS_OBJECT_PATH_NOT_FOUND", "the object path was not found"),
    (0xC000_00AF, "STATUS_ILLEGAL_FUNCTION", "the device does not support this function"),
    (0xC000_00BB, "STATUS_NOT_SUPPORTED", "the request is not supported"),
    (0xC000_00E8, "STATUS_INVALID_USER_BUFFER", "a buffer is invalid"),
    (0xC000_0123, "STATUS_FILE_DELETED", "the device object is being deleted"),
    (0xC000_0128, "STATUS_FILE_CLOSED", "the handle was closed"),
    (0xC000_0184, "STATUS_INVALID_DEVICE_STATE", "the device is not in a state to accept this request"),
];

/// The status with these bits (as printed in hex).
#[must_use]
pub fn status_from_bits(bits: u32) -> NtStatus {
    NtStatus(i32::from_ne_bytes(bits.to_ne_bytes()))
}

/// The symbolic name, also for the few I/O-manager statuses the ABI does not list.
#[must_use]
pub fn status_name(status: NtStatus) -> Option<&'static str> {
    status.name().or_else(|| EXTRA_NAMES.iter().find(|e| e.0 == status.bits()).map(|e| e.1))
}

/// A short plain-words text for a status.
#[must_use]
pub fn status_text(status: NtStatus) -> &'static str {
    status
        .text()
        .or_else(|| EXTRA_NAMES.iter().find(|e| e.0 == status.bits()).map(|e| e.2))
        .unwrap_or("the loader reported a status loaderctl does not know")
}

/// `STATUS_NAME (0xC000007A)`, or `NTSTATUS 0x...` when the name is unknown.
#[must_use]
pub fn status_label(status: NtStatus) -> String {
    match status_name(status) {
        Some(n) => format!("{n} (0x{:08X})", status.bits()),
        None => format!("NTSTATUS 0x{:08X}", status.bits()),
    }
}

/// `STATUS_NAME`, or the bare hex when unknown; for `raw`'s machine-read line.
#[must_use]
pub fn status_token(status: NtStatus) -> String {
    status_name(status).map_or_else(|| format!("0x{:08X}", status.bits()), str::to_owned)
}

/// Which kind of request a status answered; decides the class of "other" failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Status query, unload, raw: nothing is loaded by it.
    Query,
    /// Load, upgrade, rollback: a payload is loaded and registered.
    LoadsPayload,
}

/// The failure class of a failed `NTSTATUS`.
#[must_use]
pub fn classify(kind: RequestKind, status: NtStatus) -> Exit {
    if status.is_success() {
        return Exit::Success;
    }
    match status {
        NtStatus::ACCESS_DENIED => Exit::AccessDenied,
        NtStatus::OBJECT_NAME_NOT_FOUND | NtStatus::DEVICE_NOT_READY => Exit::LoaderNotRunning,
        // Only a request that loads an image can have its image rejected;
        // for the others these statuses mean the request itself was bad.
        NtStatus::PROCEDURE_NOT_FOUND
        | NtStatus::INVALID_IMAGE_FORMAT
        | NtStatus::REVISION_MISMATCH
        | NtStatus::INFO_LENGTH_MISMATCH => match kind {
            RequestKind::LoadsPayload => Exit::ImageRejected,
            RequestKind::Query => Exit::Internal,
        },
        NtStatus::DEVICE_BUSY | NtStatus::IMAGE_ALREADY_LOADED | NtStatus::OBJECT_NAME_COLLISION => Exit::Busy,
        NtStatus::IO_TIMEOUT => Exit::TeardownStuck,
        NtStatus::INVALID_PARAMETER
        | NtStatus::INVALID_DEVICE_REQUEST
        | NtStatus::BUFFER_TOO_SMALL
        | NtStatus::BUFFER_OVERFLOW
        | NtStatus::INVALID_BUFFER_SIZE
        | NtStatus::NOT_IMPLEMENTED
        | NtStatus::INTERNAL_ERROR => Exit::Internal,
        // The device is gone or going: the loader stopped under us.
        s if matches!(s.bits(), 0xC000_000E | 0xC000_003A | 0xC000_0123) => Exit::LoaderNotRunning,
        _ if EXTRA_NAMES.iter().any(|e| e.0 == status.bits()) => Exit::Internal,
        _ => match kind {
            RequestKind::LoadsPayload => Exit::PayloadFailed,
            RequestKind::Query => Exit::Internal,
        },
    }
}

/// A failure to report: its class and one sentence (without the `error: ` prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    /// `"{verb} refused: STATUS_X (0x...): text"`, classed by [`classify`].
    #[must_use]
    pub fn from_status(verb: &str, kind: RequestKind, status: NtStatus) -> Failure {
        let exit = classify(kind, status);
        let outcome = match exit {
            Exit::PayloadFailed | Exit::LoaderNotRunning => "failed",
            Exit::TeardownStuck => "stuck",
            _ => "refused",
        };
        let mut message = format!("{verb} {outcome}: {}: {}", status_label(status), status_text(status));
        match exit {
            Exit::AccessDenied => {
                message.push_str(" (run loaderctl from an elevated Administrator prompt)");
            }
            Exit::TeardownStuck => message.push_str(" (run `loaderctl diagnose` to see why)"),
            _ => {}
        }
        Failure { exit, message }
    }

    /// The loader's reply could not be decoded.
    #[must_use]
    pub fn malformed_reply(verb: &str, status: NtStatus) -> Failure {
        Failure {
            exit: Exit::Internal,
            message: format!(
                "{verb} failed: the loader's reply is malformed: {}: {}",
                status_label(status),
                status_text(status)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestKind::{LoadsPayload, Query};

    #[test]
    fn every_named_status_has_the_documented_class() {
        let expect = |s: NtStatus| -> Exit {
            match s {
                s if s.is_success() => Exit::Success,
                NtStatus::ACCESS_DENIED => Exit::AccessDenied,
                NtStatus::OBJECT_NAME_NOT_FOUND | NtStatus::DEVICE_NOT_READY => Exit::LoaderNotRunning,
                NtStatus::PROCEDURE_NOT_FOUND
                | NtStatus::INVALID_IMAGE_FORMAT
                | NtStatus::REVISION_MISMATCH
                | NtStatus::INFO_LENGTH_MISMATCH => Exit::ImageRejected,
                NtStatus::DEVICE_BUSY | NtStatus::IMAGE_ALREADY_LOADED | NtStatus::OBJECT_NAME_COLLISION => Exit::Busy,
                NtStatus::IO_TIMEOUT => Exit::TeardownStuck,
                NtStatus::INVALID_PARAMETER
                | NtStatus::INVALID_DEVICE_REQUEST
                | NtStatus::BUFFER_TOO_SMALL
                | NtStatus::BUFFER_OVERFLOW
                | NtStatus::INVALID_BUFFER_SIZE
                | NtStatus::NOT_IMPLEMENTED
                | NtStatus::INTERNAL_ERROR => Exit::Internal,
                _ => Exit::PayloadFailed,
            }
        };
        for &s in NtStatus::ALL {
            assert_eq!(classify(LoadsPayload, s), expect(s), "{s}");
        }
    }

    #[test]
    fn image_rejections_are_class_5_only_for_loading_requests() {
        for s in [
            NtStatus::PROCEDURE_NOT_FOUND,
            NtStatus::INVALID_IMAGE_FORMAT,
            NtStatus::REVISION_MISMATCH,
            NtStatus::INFO_LENGTH_MISMATCH,
        ] {
            assert_eq!(classify(LoadsPayload, s), Exit::ImageRejected);
            assert_eq!(classify(Query, s), Exit::Internal);
        }
        assert_eq!(classify(Query, NtStatus::IO_TIMEOUT), Exit::TeardownStuck);
        assert_eq!(classify(Query, NtStatus::DEVICE_BUSY), Exit::Busy);
    }

    #[test]
    fn payload_start_failures_are_class_6_only_for_loading_requests() {
        for s in [
            NtStatus::UNSUCCESSFUL,
            NtStatus::INSUFFICIENT_RESOURCES,
            NtStatus::DRIVER_UNABLE_TO_LOAD,
            NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION,
            status_from_bits(0xC0AB_CDEF),
        ] {
            assert_eq!(classify(LoadsPayload, s), Exit::PayloadFailed);
            assert_eq!(classify(Query, s), Exit::Internal);
        }
    }

    #[test]
    fn codes_are_distinct_and_documented() {
        let all = [
            Exit::Success,
            Exit::Usage,
            Exit::LoaderNotRunning,
            Exit::AccessDenied,
            Exit::ImageRejected,
            Exit::PayloadFailed,
            Exit::Busy,
            Exit::TeardownStuck,
            Exit::Internal,
        ];
        for (i, e) in all.iter().enumerate() {
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {}  ", e.code())), "{e:?}");
            for f in &all[i + 1..] {
                assert_ne!(e.code(), f.code());
            }
        }
    }

    #[test]
    fn messages_name_the_status() {
        let f = Failure::from_status("upgrade", LoadsPayload, NtStatus::PROCEDURE_NOT_FOUND);
        assert_eq!(f.exit.code(), 5);
        assert_eq!(
            f.message,
            "upgrade refused: STATUS_PROCEDURE_NOT_FOUND (0xC000007A): the payload image lacks the required export"
        );
        let f = Failure::from_status("unload", Query, NtStatus::IO_TIMEOUT);
        assert_eq!(f.exit.code(), 8);
        assert!(f.message.starts_with("unload stuck: STATUS_IO_TIMEOUT (0xC00000B5): "));
        assert!(f.message.contains("loaderctl diagnose"));
        let f = Failure::from_status("load", LoadsPayload, status_from_bits(0xC0AB_CDEF));
        assert!(f.message.starts_with("load failed: NTSTATUS 0xC0ABCDEF: "));
        assert_eq!(status_token(status_from_bits(0xC000_0005)), "STATUS_ACCESS_VIOLATION");
        assert_eq!(status_token(NtStatus(0x1234)), "0x00001234");
        for e in EXTRA_NAMES {
            assert_eq!(NtStatus::from_name(e.1), None, "{} is in the ABI list now; drop it here", e.1);
            let gone = matches!(e.0, 0xC000_000E | 0xC000_003A | 0xC000_0123);
            let want = if gone { Exit::LoaderNotRunning } else { Exit::Internal };
            assert_eq!(classify(LoadsPayload, status_from_bits(e.0)), want, "{}", e.1);
        }
    }
}
