//! Exit codes, one per failure class, and the one-sentence error messages
//! that go with them. Every message names the symbolic `NTSTATUS`, from
//! shared-abi's one table (`NtStatus::name`/`text`); this module keeps no
//! status values of its own, only which named ones belong to which class.

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
  5  payload image rejected: not a loadable image, or not a payload of this ABI
     (STATUS_INVALID_IMAGE_FORMAT, STATUS_PROCEDURE_NOT_FOUND, STATUS_REVISION_MISMATCH,
     STATUS_INVALID_IMAGE_NOT_MZ, STATUS_DLL_INIT_FAILED, ...)
  6  payload failed to start or register (its DriverEntry or registration failed)
  7  busy, or the slot is still occupied (STATUS_DEVICE_BUSY,
     STATUS_IMAGE_ALREADY_LOADED, STATUS_DRIVER_FAILED_PRIOR_UNLOAD)
  8  teardown stuck (STATUS_IO_TIMEOUT, or the new payload is active but the
     old one has not unloaded: see `loaderctl diagnose`)
  9  malformed request or reply, or an internal error";

/// The status with these bits (as printed in hex): the tests' unnamed codes.
#[cfg(test)]
#[must_use]
pub fn status_from_bits(bits: u32) -> NtStatus {
    NtStatus(i32::from_ne_bytes(bits.to_ne_bytes()))
}

/// The symbolic name, from shared-abi's one table.
#[must_use]
pub fn status_name(status: NtStatus) -> Option<&'static str> {
    status.name()
}

/// A short plain-words text for a status.
#[must_use]
pub fn status_text(status: NtStatus) -> &'static str {
    status.text().unwrap_or("a status this version of loaderctl has no name for")
}

/// Statuses that say the image file itself is not a loadable payload image
/// (as the kernel's image loader, or Wine's, reports it).
const BAD_IMAGE: &[NtStatus] = &[
    NtStatus::PROCEDURE_NOT_FOUND,
    NtStatus::INVALID_IMAGE_FORMAT,
    NtStatus::REVISION_MISMATCH,
    NtStatus::INFO_LENGTH_MISMATCH,
    NtStatus::INVALID_IMAGE_NOT_MZ,
    NtStatus::INVALID_IMAGE_PROTECT,
    NtStatus::INVALID_IMAGE_WIN_16,
    NtStatus::INVALID_FILE_FOR_SECTION,
    NtStatus::SECTION_TOO_BIG,
    NtStatus::END_OF_FILE,
    NtStatus::IMAGE_CHECKSUM_MISMATCH,
    NtStatus::INVALID_IMAGE_HASH,
    NtStatus::DLL_INIT_FAILED,
    NtStatus::NO_SUCH_FILE,
    NtStatus::OBJECT_NAME_INVALID,
    NtStatus::DRIVER_ENTRYPOINT_NOT_FOUND,
    NtStatus::DRIVER_ORDINAL_NOT_FOUND,
    NtStatus::ENTRYPOINT_NOT_FOUND,
    NtStatus::ORDINAL_NOT_FOUND,
    NtStatus::DLL_NOT_FOUND,
    NtStatus::DRIVER_BLOCKED,
    NtStatus::DRIVER_BLOCKED_CRITICAL,
];

/// Statuses the I/O manager answers for a request that never reached the
/// loader's code, or a malformed one.
const REQUEST_REFUSED: &[NtStatus] = &[
    NtStatus::INVALID_PARAMETER,
    NtStatus::INVALID_DEVICE_REQUEST,
    NtStatus::BUFFER_TOO_SMALL,
    NtStatus::BUFFER_OVERFLOW,
    NtStatus::INVALID_BUFFER_SIZE,
    NtStatus::NOT_IMPLEMENTED,
    NtStatus::INTERNAL_ERROR,
    NtStatus::DATATYPE_MISALIGNMENT,
    NtStatus::ACCESS_VIOLATION,
    NtStatus::INVALID_HANDLE,
    NtStatus::NO_MEMORY,
    NtStatus::ILLEGAL_FUNCTION,
    NtStatus::NOT_SUPPORTED,
    NtStatus::INVALID_USER_BUFFER,
    NtStatus::FILE_CLOSED,
    NtStatus::INVALID_DEVICE_STATE,
];

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
        NtStatus::ACCESS_DENIED | NtStatus::PRIVILEGE_NOT_HELD => Exit::AccessDenied,
        // The device is gone or going: the loader stopped under us.
        NtStatus::OBJECT_NAME_NOT_FOUND
        | NtStatus::DEVICE_NOT_READY
        | NtStatus::NO_SUCH_DEVICE
        | NtStatus::OBJECT_PATH_NOT_FOUND
        | NtStatus::FILE_DELETED => Exit::LoaderNotRunning,
        NtStatus::DEVICE_BUSY
        | NtStatus::IMAGE_ALREADY_LOADED
        | NtStatus::OBJECT_NAME_COLLISION
        | NtStatus::DRIVER_FAILED_PRIOR_UNLOAD => Exit::Busy,
        NtStatus::IO_TIMEOUT => Exit::TeardownStuck,
        // Only a request that loads an image can have its image rejected;
        // for the others these statuses mean the request itself was bad.
        s if BAD_IMAGE.contains(&s) => match kind {
            RequestKind::LoadsPayload => Exit::ImageRejected,
            RequestKind::Query => Exit::Internal,
        },
        s if REQUEST_REFUSED.contains(&s) => Exit::Internal,
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
    fn every_named_status_has_one_class_and_bad_images_are_class_5() {
        for &s in NtStatus::ALL {
            let class = classify(LoadsPayload, s);
            if BAD_IMAGE.contains(&s) {
                assert_eq!(class, Exit::ImageRejected, "{s}");
            }
            if REQUEST_REFUSED.contains(&s) {
                assert_eq!(class, Exit::Internal, "{s}");
            }
            if s.is_success() {
                assert_eq!(class, Exit::Success, "{s}");
            }
        }
        // What Wine answers for a file that is not an image at all.
        assert_eq!(classify(LoadsPayload, NtStatus::DLL_INIT_FAILED), Exit::ImageRejected);
        assert_eq!(status_name(NtStatus::DLL_INIT_FAILED), Some("STATUS_DLL_INIT_FAILED"));
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
        assert_eq!(status_token(NtStatus::ACCESS_VIOLATION), "STATUS_ACCESS_VIOLATION");
        assert_eq!(status_token(NtStatus(0x1234)), "0x00001234");
    }
}
