//! One error-log entry's bytes: the `IO_ERROR_LOG_PACKET`, then the
//! insertion strings as NUL-terminated UTF-16, the whole at most
//! [`ERROR_LOG_MAXIMUM_SIZE`] bytes. Pure packing, built on every host so
//! it is tested there; `wrap::eventlog` hands the bytes to the kernel.
//!
//! Must never: write past the entry, or emit a string without its NUL
//! (strings that do not fit are cut, and the cut is reported).
use crate::types::IO_ERROR_LOG_PACKET;
use core::mem::size_of;

/// `ERROR_LOG_MAXIMUM_SIZE` on Windows 7 (x86 and x64: `ERROR_LOG_LIMIT_SIZE`,
/// 240): packet and strings together.
pub const ERROR_LOG_MAXIMUM_SIZE: usize = 240;
/// Where the strings start: right after the packet (no dump data).
pub const STRING_OFFSET: usize = size_of::<IO_ERROR_LOG_PACKET>();
/// UTF-16 units the strings may take, their NULs included.
pub const MAX_STRING_UNITS: usize = (ERROR_LOG_MAXIMUM_SIZE - STRING_OFFSET) / 2;

/// The entry's bytes: `packet`, then each of `strings` as UTF-16 with a
/// NUL. Returns the used length and whether a string was cut. At most
/// [`MAX_STRING_UNITS`] strings are kept (each needs its NUL); content
/// fills the room left, in order.
pub fn pack(packet: &IO_ERROR_LOG_PACKET, strings: &[&str], out: &mut [u8; ERROR_LOG_MAXIMUM_SIZE]) -> (usize, bool) {
    let head = packet_bytes(packet);
    let (dst_head, dst_strings) = out.split_at_mut(STRING_OFFSET);
    dst_head.copy_from_slice(&head);
    let kept = strings.len().min(MAX_STRING_UNITS);
    let mut room = MAX_STRING_UNITS - kept;
    let mut at = 0usize;
    let mut truncated = strings.len() > kept;
    for s in strings.iter().take(kept) {
        for unit in s.encode_utf16() {
            if room == 0 {
                truncated = true;
                break;
            }
            if let Some(dst) = dst_strings.get_mut(at..at + 2) {
                dst.copy_from_slice(&unit.to_le_bytes());
            }
            at += 2;
            room -= 1;
        }
        if let Some(dst) = dst_strings.get_mut(at..at + 2) {
            dst.copy_from_slice(&[0, 0]);
        }
        at += 2;
    }
    (STRING_OFFSET + at, truncated)
}

/// The packet's bytes in its C layout (little-endian; padding zero).
fn packet_bytes(p: &IO_ERROR_LOG_PACKET) -> [u8; STRING_OFFSET] {
    let mut b = [0u8; STRING_OFFSET];
    let mut put = |offset: usize, bytes: &[u8]| {
        if let Some(dst) = b.get_mut(offset..offset + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(0, &[p.MajorFunctionCode, p.RetryCount]);
    put(2, &p.DumpDataSize.to_le_bytes());
    put(4, &p.NumberOfStrings.to_le_bytes());
    put(6, &p.StringOffset.to_le_bytes());
    put(8, &p.EventCategory.to_le_bytes());
    put(0x0C, &p.ErrorCode.to_le_bytes());
    put(0x10, &p.UniqueErrorValue.to_le_bytes());
    put(0x14, &p.FinalStatus.to_le_bytes());
    put(0x18, &p.SequenceNumber.to_le_bytes());
    put(0x1C, &p.IoControlCode.to_le_bytes());
    put(0x20, &p.DeviceOffset.to_le_bytes());
    put(0x28, &p.DumpData[0].to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn the_packed_head_matches_the_struct_layout() {
        let p = IO_ERROR_LOG_PACKET {
            NumberOfStrings: 2,
            StringOffset: 48,
            ErrorCode: 0x60CA_0001,
            FinalStatus: -1_073_741_701,
            SequenceNumber: 7,
            ..Default::default()
        };
        let mut out = [0u8; ERROR_LOG_MAXIMUM_SIZE];
        pack(&p, &[], &mut out);
        let at = |o: usize| u32::from_le_bytes(out[o..o + 4].try_into().unwrap());
        assert_eq!(at(offset_of!(IO_ERROR_LOG_PACKET, ErrorCode)), 0x60CA_0001);
        assert_eq!(at(offset_of!(IO_ERROR_LOG_PACKET, FinalStatus)), 0xC000_007B);
        assert_eq!(at(offset_of!(IO_ERROR_LOG_PACKET, SequenceNumber)), 7);
        assert_eq!(out[offset_of!(IO_ERROR_LOG_PACKET, NumberOfStrings)], 2);
        assert_eq!(out[offset_of!(IO_ERROR_LOG_PACKET, StringOffset)], 48);
        assert_eq!(STRING_OFFSET, 48);
        assert_eq!(MAX_STRING_UNITS, 96);
    }

    #[test]
    fn strings_follow_the_packet_and_are_cut_to_fit() {
        let p = IO_ERROR_LOG_PACKET::default();
        let mut out = [0u8; ERROR_LOG_MAXIMUM_SIZE];
        let (len, cut) = pack(&p, &["ab", "c"], &mut out);
        assert_eq!((len, cut), (48 + 2 * 5, false));
        assert_eq!(&out[48..58], &[b'a', 0, b'b', 0, 0, 0, b'c', 0, 0, 0]);
        let long = [b'x'; 200];
        let long = core::str::from_utf8(&long).unwrap();
        let (len, cut) = pack(&p, &[long, "tail"], &mut out);
        assert!(cut);
        assert_eq!(len, ERROR_LOG_MAXIMUM_SIZE);
        assert_eq!(&out[len - 4..], &[0, 0, 0, 0], "both strings keep their NUL");
        let many = ["s"; 100];
        let (len, cut) = pack(&p, &many, &mut out);
        assert!(cut);
        assert_eq!(len, ERROR_LOG_MAXIMUM_SIZE, "96 empty strings, NULs only");
    }
}
