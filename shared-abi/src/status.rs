//! `NTSTATUS` as a newtype with the symbolic names this product reports.
//!
//! Every error the product shows a person carries one of these names, never
//! only the hex value. `name()` returns `None` for codes not listed here;
//! callers print the hex then.

/// An `NTSTATUS` value.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct NtStatus(pub i32);

macro_rules! statuses {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $text:literal; )*) => {
        impl NtStatus {
            // NTSTATUS values are written as their unsigned hex; the bit
            // pattern is the point, so the wrap to i32 is intended.
            $( $(#[$doc])* #[allow(clippy::cast_possible_wrap)] pub const $name: NtStatus = NtStatus($value as u32 as i32); )*

            /// Every status this crate names, for tables and tests.
            pub const ALL: &'static [NtStatus] = &[$(NtStatus::$name),*];

            /// The symbolic name, e.g. `STATUS_IMAGE_ALREADY_LOADED`.
            #[must_use]
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( NtStatus::$name => Some(concat!("STATUS_", stringify!($name))), )*
                    _ => None,
                }
            }

            /// A short plain-words explanation for a person.
            #[must_use]
            pub fn text(self) -> Option<&'static str> {
                match self {
                    $( NtStatus::$name => Some($text), )*
                    _ => None,
                }
            }

            /// Looks a status up by its symbolic name (with or without `STATUS_`).
            #[must_use]
            pub fn from_name(name: &str) -> Option<NtStatus> {
                let bare = name.strip_prefix("STATUS_").unwrap_or(name);
                match bare {
                    $( stringify!($name) => Some(NtStatus::$name), )*
                    _ => None,
                }
            }
        }
    };
}

statuses! {
    SUCCESS = 0x0000_0000, "the operation succeeded";
    TIMEOUT = 0x0000_0102, "the wait timed out";
    PENDING = 0x0000_0103, "the operation is still in progress";
    BUFFER_OVERFLOW = 0x8000_0005, "the output did not fit and was truncated";
    DEVICE_BUSY = 0x8000_0011, "another control operation is in progress";
    UNSUCCESSFUL = 0xC000_0001, "the operation failed";
    NOT_IMPLEMENTED = 0xC000_0002, "the request is not implemented";
    INFO_LENGTH_MISMATCH = 0xC000_0004, "a structure has the wrong size";
    INVALID_PARAMETER = 0xC000_000D, "a parameter is invalid";
    INVALID_DEVICE_REQUEST = 0xC000_0010, "the device does not accept this request";
    ACCESS_DENIED = 0xC000_0022, "access denied";
    BUFFER_TOO_SMALL = 0xC000_0023, "the buffer is too small";
    OBJECT_NAME_INVALID = 0xC000_0033, "the name is invalid";
    OBJECT_NAME_NOT_FOUND = 0xC000_0034, "no object of that name exists";
    OBJECT_NAME_COLLISION = 0xC000_0035, "an object of that name already exists";
    DELETE_PENDING = 0xC000_0056, "teardown has already begun";
    REVISION_MISMATCH = 0xC000_0059, "the payload was built for another ABI version";
    PROCEDURE_NOT_FOUND = 0xC000_007A, "the payload image lacks the required export";
    INVALID_IMAGE_FORMAT = 0xC000_007B, "the image is not a valid payload (bad PE or bad magic)";
    INSUFFICIENT_RESOURCES = 0xC000_009A, "not enough resources";
    DEVICE_NOT_READY = 0xC000_00A3, "the loader is not ready";
    IO_TIMEOUT = 0xC000_00B5, "the payload's teardown did not finish in time";
    INTERNAL_ERROR = 0xC000_00E5, "internal error";
    IMAGE_ALREADY_LOADED = 0xC000_010E, "an image of that service is still loaded";
    CANCELLED = 0xC000_0120, "the operation was cancelled";
    INVALID_BUFFER_SIZE = 0xC000_0206, "the buffer size is invalid";
    NOT_FOUND = 0xC000_0225, "not found";
    DRIVER_UNABLE_TO_LOAD = 0xC000_026C, "the driver could not be loaded";
    FLT_DO_NOT_DETACH = 0xC01C_0010, "the filter refused a non-mandatory unload";
    FLT_INSTANCE_ALTITUDE_COLLISION = 0xC01C_0011, "another filter instance has that altitude";
}

impl NtStatus {
    /// `NT_SUCCESS`: success and informational codes.
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// `Ok(())` for success codes, `Err(self)` otherwise.
    pub const fn to_result(self) -> Result<(), NtStatus> {
        if self.is_success() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// The status a `Result` stands for.
    #[must_use]
    pub const fn from_result(r: Result<(), NtStatus>) -> NtStatus {
        match r {
            Ok(()) => NtStatus::SUCCESS,
            Err(e) => e,
        }
    }

    /// The raw bits, as printed in hex.
    #[must_use]
    #[allow(clippy::cast_sign_loss)] // the bit pattern, as printed
    pub const fn bits(self) -> u32 {
        self.0 as u32
    }
}

impl core::fmt::Display for NtStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} (0x{:08X})", self.bits()),
            None => write!(f, "NTSTATUS 0x{:08X}", self.bits()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NtStatus;

    #[test]
    fn names_round_trip_and_are_unique() {
        for (i, s) in NtStatus::ALL.iter().enumerate() {
            let name = s.name().expect("named");
            assert!(name.starts_with("STATUS_"));
            assert_eq!(NtStatus::from_name(name), Some(*s));
            for other in &NtStatus::ALL[i + 1..] {
                assert_ne!(s.0, other.0, "{name} duplicates a value");
            }
        }
    }

    #[test]
    fn success_follows_the_sign_bit() {
        assert!(NtStatus::SUCCESS.is_success());
        assert!(NtStatus::TIMEOUT.is_success());
        assert!(!NtStatus::PROCEDURE_NOT_FOUND.is_success());
        assert_eq!(NtStatus::IMAGE_ALREADY_LOADED.bits(), 0xC000_010E);
        assert_eq!(NtStatus(0x1234_5678u32 as i32).name(), None);
    }
}
