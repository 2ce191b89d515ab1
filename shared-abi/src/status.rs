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

            /// The names, in the order of [`NtStatus::ALL`].
            const NAMES: &'static [&'static str] = &[$(concat!("STATUS_", stringify!($name))),*];
            /// The explanations, in the order of [`NtStatus::ALL`].
            const TEXTS: &'static [&'static str] = &[$($text),*];

            /// The symbolic name, e.g. `STATUS_IMAGE_ALREADY_LOADED`.
            ///
            /// A scan of two parallel tables rather than a `match`: in the
            /// resident loader image this is a few dozen bytes of code
            /// instead of a jump table per use.
            #[must_use]
            pub fn name(self) -> Option<&'static str> {
                Self::ALL.iter().position(|s| *s == self).and_then(|i| Self::NAMES.get(i).copied())
            }

            /// A short plain-words explanation for a person.
            #[must_use]
            pub fn text(self) -> Option<&'static str> {
                Self::ALL.iter().position(|s| *s == self).and_then(|i| Self::TEXTS.get(i).copied())
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
    // Success and informational codes.
    SUCCESS = 0x0000_0000, "the operation succeeded";
    TIMEOUT = 0x0000_0102, "the wait timed out";
    PENDING = 0x0000_0103, "the operation is still in progress";
    IMAGE_NOT_AT_BASE = 0x4000_0003, "the image was relocated when it was loaded";
    // Warnings.
    DATATYPE_MISALIGNMENT = 0x8000_0002, "a buffer is misaligned";
    BUFFER_OVERFLOW = 0x8000_0005, "the output did not fit and was truncated";
    DEVICE_BUSY = 0x8000_0011, "another control operation is in progress";
    NO_MORE_ENTRIES = 0x8000_001A, "there are no more entries";
    // Errors: general, handles, buffers.
    UNSUCCESSFUL = 0xC000_0001, "the operation failed";
    NOT_IMPLEMENTED = 0xC000_0002, "the request is not implemented";
    INFO_LENGTH_MISMATCH = 0xC000_0004, "a structure has the wrong size";
    ACCESS_VIOLATION = 0xC000_0005, "a buffer address is invalid";
    INVALID_HANDLE = 0xC000_0008, "the handle is invalid";
    INVALID_PARAMETER = 0xC000_000D, "a parameter is invalid";
    NO_SUCH_DEVICE = 0xC000_000E, "the device does not exist";
    NO_SUCH_FILE = 0xC000_000F, "the image file does not exist";
    INVALID_DEVICE_REQUEST = 0xC000_0010, "the device does not accept this request";
    END_OF_FILE = 0xC000_0011, "the image file ends too early";
    NO_MEMORY = 0xC000_0017, "not enough memory";
    CONFLICTING_ADDRESSES = 0xC000_0018, "the image cannot be mapped at its address";
    INVALID_FILE_FOR_SECTION = 0xC000_0020, "the file is not an executable image";
    ACCESS_DENIED = 0xC000_0022, "access denied";
    BUFFER_TOO_SMALL = 0xC000_0023, "the buffer is too small";
    OBJECT_TYPE_MISMATCH = 0xC000_0024, "an object has another type than the one asked for";
    OBJECT_NAME_INVALID = 0xC000_0033, "the name is invalid";
    OBJECT_NAME_NOT_FOUND = 0xC000_0034, "no object of that name exists";
    OBJECT_NAME_COLLISION = 0xC000_0035, "an object of that name already exists";
    OBJECT_PATH_INVALID = 0xC000_0039, "the object path is invalid";
    OBJECT_PATH_NOT_FOUND = 0xC000_003A, "the object path was not found";
    OBJECT_PATH_SYNTAX_BAD = 0xC000_003B, "the object path is malformed";
    SECTION_TOO_BIG = 0xC000_0040, "the image is too large to map";
    SHARING_VIOLATION = 0xC000_0043, "the file is in use by another process";
    DELETE_PENDING = 0xC000_0056, "teardown has already begun";
    REVISION_MISMATCH = 0xC000_0059, "the payload was built for another ABI version";
    PRIVILEGE_NOT_HELD = 0xC000_0061, "a required privilege is not held";
    PROCEDURE_NOT_FOUND = 0xC000_007A, "the payload image lacks the required export";
    INVALID_IMAGE_FORMAT = 0xC000_007B, "the image is not a valid payload (bad PE or bad magic)";
    INSUFFICIENT_RESOURCES = 0xC000_009A, "not enough resources";
    DEVICE_NOT_READY = 0xC000_00A3, "the loader is not ready";
    ILLEGAL_FUNCTION = 0xC000_00AF, "the device does not support this function";
    IO_TIMEOUT = 0xC000_00B5, "the payload's teardown did not finish in time";
    NOT_SUPPORTED = 0xC000_00BB, "the request is not supported";
    INTERNAL_ERROR = 0xC000_00E5, "internal error";
    INVALID_USER_BUFFER = 0xC000_00E8, "a buffer is invalid";
    IMAGE_ALREADY_LOADED = 0xC000_010E, "an image of that service is still loaded";
    CANCELLED = 0xC000_0120, "the operation was cancelled";
    FILE_DELETED = 0xC000_0123, "the device object is being deleted";
    FILE_CLOSED = 0xC000_0128, "the handle was closed";
    INVALID_IMAGE_NOT_MZ = 0xC000_012F, "the file is not an executable image (no MZ header)";
    INVALID_IMAGE_PROTECT = 0xC000_0130, "the image has invalid section protections";
    INVALID_IMAGE_WIN_16 = 0xC000_0131, "the file is a 16-bit image";
    DLL_NOT_FOUND = 0xC000_0135, "a module the image imports was not found";
    ORDINAL_NOT_FOUND = 0xC000_0138, "an ordinal the image imports was not found";
    ENTRYPOINT_NOT_FOUND = 0xC000_0139, "a routine the image imports was not found";
    DLL_INIT_FAILED = 0xC000_0142, "the image could not be loaded or initialised (not a valid driver image)";
    INVALID_DEVICE_STATE = 0xC000_0184, "the device is not in a state to accept this request";
    IMAGE_ALREADY_LOADED_AS_DLL = 0xC000_019D, "the image is already loaded as a DLL";
    INVALID_BUFFER_SIZE = 0xC000_0206, "the buffer size is invalid";
    IMAGE_CHECKSUM_MISMATCH = 0xC000_0221, "the image's checksum is wrong (damaged file)";
    NOT_FOUND = 0xC000_0225, "not found";
    DRIVER_ORDINAL_NOT_FOUND = 0xC000_0262, "an ordinal the driver imports was not found";
    DRIVER_ENTRYPOINT_NOT_FOUND = 0xC000_0263, "a routine the driver imports was not found";
    DRIVER_UNABLE_TO_LOAD = 0xC000_026C, "the driver could not be loaded";
    DRIVER_BLOCKED_CRITICAL = 0xC000_036B, "the driver is blocked from loading";
    DRIVER_BLOCKED = 0xC000_036C, "the driver is blocked from loading";
    DRIVER_FAILED_PRIOR_UNLOAD = 0xC000_038E, "a previous image of the driver is still in memory";
    INVALID_IMAGE_HASH = 0xC000_0428, "the image's signature is missing or invalid";
    // Filter Manager.
    FLT_NO_HANDLER_DEFINED = 0xC01C_0001, "the filter has no handler for this operation";
    FLT_CONTEXT_ALREADY_DEFINED = 0xC01C_0002, "a context is already set on this object";
    FLT_INVALID_ASYNCHRONOUS_REQUEST = 0xC01C_0003, "the request cannot be made asynchronously";
    FLT_DISALLOW_FAST_IO = 0xC01C_0004, "fast I/O is not allowed for this operation";
    FLT_INVALID_NAME_REQUEST = 0xC01C_0005, "the file name request is invalid";
    FLT_NOT_SAFE_TO_POST_OPERATION = 0xC01C_0006, "the operation cannot be posted";
    FLT_NOT_INITIALIZED = 0xC01C_0007, "the Filter Manager is not initialised";
    FLT_FILTER_NOT_READY = 0xC01C_0008, "the filter is not ready (filtering has not started)";
    FLT_POST_OPERATION_CLEANUP = 0xC01C_0009, "the post-operation callback is cleaning up";
    FLT_INTERNAL_ERROR = 0xC01C_000A, "Filter Manager internal error";
    FLT_DELETING_OBJECT = 0xC01C_000B, "the filter object is being deleted";
    FLT_MUST_BE_NONPAGED_POOL = 0xC01C_000C, "the context must be in non-paged pool";
    FLT_DUPLICATE_ENTRY = 0xC01C_000D, "the filter registration has a duplicate entry";
    FLT_CBDQ_DISABLED = 0xC01C_000E, "the callback data queue is disabled";
    FLT_DO_NOT_ATTACH = 0xC01C_000F, "the filter does not attach to this volume";
    FLT_DO_NOT_DETACH = 0xC01C_0010, "the filter refused a non-mandatory unload";
    FLT_INSTANCE_ALTITUDE_COLLISION = 0xC01C_0011, "another filter instance has that altitude";
    FLT_INSTANCE_NAME_COLLISION = 0xC01C_0012, "another filter instance has that name";
    FLT_FILTER_NOT_FOUND = 0xC01C_0013, "no such filter is registered";
    FLT_VOLUME_NOT_FOUND = 0xC01C_0014, "no such volume";
    FLT_INSTANCE_NOT_FOUND = 0xC01C_0015, "no such filter instance";
    FLT_CONTEXT_ALLOCATION_NOT_FOUND = 0xC01C_0016, "the filter registered no context of that type";
    FLT_INVALID_CONTEXT_REGISTRATION = 0xC01C_0017, "the filter's context registration is invalid";
    FLT_NAME_CACHE_MISS = 0xC01C_0018, "the file name is not in the name cache";
    FLT_NO_DEVICE_OBJECT = 0xC01C_0019, "the volume has no device object";
    FLT_VOLUME_ALREADY_MOUNTED = 0xC01C_001A, "the volume is already mounted";
    FLT_ALREADY_ENLISTED = 0xC01C_001B, "the filter is already enlisted in the transaction";
    FLT_CONTEXT_ALREADY_LINKED = 0xC01C_001C, "the context is already linked to an object";
    FLT_NO_WAITER_FOR_REPLY = 0xC01C_0020, "no waiter for the filter's reply";
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
        assert_eq!(NtStatus(0x1234_5678).name(), None);
    }
}
