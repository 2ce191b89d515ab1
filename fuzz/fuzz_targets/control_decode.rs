//! Control-request decoding and status/reply decoding on arbitrary bytes.
//!
//! Input: `[selector u8][code u32 LE][output_len u16 LE][input ...]`. A
//! selector below 5 replaces the code by one of the real control codes, so
//! the fuzzer spends its time past the code check. Asserts the contract the
//! kernel relies on: an accepted request fits the caller's output buffer,
//! and decode/encode round-trips byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_parsers::control::{self, ControlCommand};
use shared_abi::control::{ALL_IOCTLS, METHOD_BUFFERED, SLOT_COUNT};

fuzz_target!(|data: &[u8]| {
    let Some((header, input)) = data.split_at_checked(7) else {
        return;
    };
    let selector = usize::from(header[0]);
    let raw = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let code = ALL_IOCTLS.get(selector).map_or(raw, |c| c.0);
    let output_len = usize::from(u16::from_le_bytes([header[5], header[6]]));

    if let Ok(command) = control::decode_request(code, input, output_len) {
        assert_eq!(command.ioctl().0, code);
        assert_eq!(code & 3, METHOD_BUFFERED);
        assert!(output_len >= command.min_output_len());
        if let ControlCommand::Upgrade { slot: Some(slot) } = command {
            assert!(slot.index() < SLOT_COUNT);
        }
        if command != ControlCommand::QueryStatus || !input.is_empty() {
            assert_eq!(input.len(), control::REQUEST_LEN);
        }
    }

    if let Ok(status) = control::decode_status(input) {
        // A record that says it is whole round-trips in full; a 1.1-sized
        // one round-trips as the 1.1 prefix, with the handover left empty.
        let whole =
            input.len() >= control::STATUS_LEN && usize::try_from(status.size).is_ok_and(|s| s >= control::STATUS_LEN);
        let len = if whole { control::STATUS_LEN } else { control::MIN_STATUS_LEN };
        if !whole {
            assert_eq!(status.handover, Default::default());
        }
        let mut out = vec![0u8; len];
        assert_eq!(control::encode_status(&status, &mut out), Ok(len));
        assert_eq!(usize::try_from(u32::from_le_bytes([out[0], out[1], out[2], out[3]])), Ok(len));
        assert_eq!(&out[4..], &input[4..len]);
    }
    if let Ok(reply) = control::decode_reply(input) {
        let mut out = [0u8; control::REPLY_LEN];
        assert_eq!(control::encode_reply(&reply, &mut out), Ok(control::REPLY_LEN));
        assert_eq!(&out[..], &input[..control::REPLY_LEN]);
    }
    // Encoding into a short buffer writes the 1.1 prefix if that fits and
    // refuses otherwise, never writing past the buffer.
    let mut short = vec![0u8; output_len.min(600)];
    let wrote = control::encode_status(&Default::default(), &mut short);
    if short.len() >= control::STATUS_LEN {
        assert_eq!(wrote, Ok(control::STATUS_LEN));
    } else if short.len() >= control::MIN_STATUS_LEN {
        assert_eq!(wrote, Ok(control::MIN_STATUS_LEN));
    } else {
        assert!(wrote.is_err());
    }
});
