//! Bytes on the control device. The encoders and decoders are
//! `loader_parsers::control`'s, the same code the loader runs; this module
//! builds requests and is the tool's one door to them.

use shared_abi::control::ControlRequest;
use shared_abi::{Slot, ABI_MAJOR, ABI_MINOR};

pub use loader_parsers::control::{decode_reply, decode_status, encode_request, REPLY_LEN, STATUS_LEN};

/// A request for `slot` (or none: the loader chooses) from this tool's ABI version.
#[must_use]
pub fn request(slot: Option<Slot>) -> ControlRequest {
    ControlRequest {
        size: 16, // size_of::<ControlRequest>(), asserted in shared_abi
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        slot: Slot::word_of(slot),
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_abi_and_slot() {
        let bytes = encode_request(&request(Some(Slot::B)));
        assert_eq!(&bytes[0..4], &16u32.to_le_bytes());
        assert_eq!(&bytes[4..6], &ABI_MAJOR.to_le_bytes());
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
        let bytes = encode_request(&request(None));
        assert_eq!(&bytes[8..12], &shared_abi::control::SLOT_NONE.to_le_bytes());
    }

    #[test]
    fn short_replies_are_errors() {
        assert!(decode_reply(&[0u8; 8]).is_err());
        assert!(decode_status(&[0u8; 100]).is_err());
    }
}
