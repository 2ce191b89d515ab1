//! Bytes on the control device. The encoders and decoders belong to
//! `loader_protocol::control`; this module builds requests and is the one
//! place that calls them.

use shared_abi::control::{ControlReply, ControlRequest, LoaderStatus, SLOT_NONE};
use shared_abi::{NtStatus, ABI_MAJOR, ABI_MINOR};

pub use interim::{decode_reply, decode_status, encode_request};

/// A request for `slot` (or [`SLOT_NONE`]) from this tool's ABI version.
#[must_use]
pub fn request(slot: Option<u32>) -> ControlRequest {
    ControlRequest {
        size: 16,
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        slot: slot.unwrap_or(SLOT_NONE),
        flags: 0,
    }
}

/// Stand-in with the same signatures as `loader_protocol::control`, used
/// until that module is written.
mod interim {
    use super::{ControlReply, ControlRequest, LoaderStatus, NtStatus, ABI_MAJOR};
    use shared_abi::control::{ErrorRecord, PoolCount, SlotStatus, SLOT_COUNT};
    use shared_abi::payload::{PayloadReport, NAME_CHARS};

    pub fn encode_request(req: &ControlRequest) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&req.size.to_le_bytes());
        out[4..6].copy_from_slice(&req.abi_major.to_le_bytes());
        out[6..8].copy_from_slice(&req.abi_minor.to_le_bytes());
        out[8..12].copy_from_slice(&req.slot.to_le_bytes());
        out[12..16].copy_from_slice(&req.flags.to_le_bytes());
        out
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl Reader<'_> {
        fn take<const N: usize>(&mut self) -> Result<[u8; N], NtStatus> {
            let end = self.at.checked_add(N).ok_or(NtStatus::BUFFER_TOO_SMALL)?;
            let chunk = self.bytes.get(self.at..end).ok_or(NtStatus::BUFFER_TOO_SMALL)?;
            self.at = end;
            let mut out = [0u8; N];
            out.copy_from_slice(chunk);
            Ok(out)
        }
        fn u16(&mut self) -> Result<u16, NtStatus> {
            self.take().map(u16::from_le_bytes)
        }
        fn u32(&mut self) -> Result<u32, NtStatus> {
            self.take().map(u32::from_le_bytes)
        }
        fn i32(&mut self) -> Result<i32, NtStatus> {
            self.take().map(i32::from_le_bytes)
        }
        fn u64(&mut self) -> Result<u64, NtStatus> {
            self.take().map(u64::from_le_bytes)
        }
        fn i64(&mut self) -> Result<i64, NtStatus> {
            self.take().map(i64::from_le_bytes)
        }
        fn name(&mut self) -> Result<[u16; NAME_CHARS], NtStatus> {
            let mut out = [0u16; NAME_CHARS];
            for c in &mut out {
                *c = self.u16()?;
            }
            Ok(out)
        }
    }

    pub fn decode_reply(bytes: &[u8]) -> Result<ControlReply, NtStatus> {
        let mut r = Reader { bytes, at: 0 };
        let reply = ControlReply { size: r.u32()?, status: r.i32()?, active_slot: r.u32()?, flags: r.u32()? };
        if reply.size as usize != 16 {
            return Err(NtStatus::INFO_LENGTH_MISMATCH);
        }
        Ok(reply)
    }

    pub fn decode_status(bytes: &[u8]) -> Result<LoaderStatus, NtStatus> {
        let mut r = Reader { bytes, at: 0 };
        let size = r.u32()?;
        let abi_major = r.u16()?;
        let abi_minor = r.u16()?;
        if abi_major != ABI_MAJOR {
            return Err(NtStatus::REVISION_MISMATCH);
        }
        if (size as usize) < 512 || bytes.len() < 512 {
            return Err(NtStatus::INFO_LENGTH_MISMATCH);
        }
        let active_slot = r.u32()?;
        let persisted_slot = r.u32()?;
        let busy = r.u32()?;
        let unload_timeout_ms = r.u32()?;
        let now = r.u64()?;
        let last_error = ErrorRecord { status: r.i32()?, op: r.u32()?, slot: r.u32()?, reserved: r.u32()?, time: r.u64()? };
        let loader_pool = PoolCount { tag: r.u32()?, reserved: r.u32()?, allocs: r.u64()?, frees: r.u64()? };
        let mut slots = [SlotStatus::default(); SLOT_COUNT];
        for s in &mut slots {
            s.state = r.u32()?;
            s.payload_version = r.u32()?;
            s.service = r.name()?;
            s.name = r.name()?;
            s.registered_since = r.u64()?;
            s.state_since = r.u64()?;
            s.last_status = r.i32()?;
            s.last_op = r.u32()?;
            s.report_time = r.u64()?;
            s.report = PayloadReport {
                size: r.u32()?,
                phase: r.u32()?,
                instances: r.u32()?,
                open_contexts: r.u32()?,
                creates: r.u64()?,
                reads: r.u64()?,
                writes: r.u64()?,
                pool_outstanding: r.i64()?,
            };
        }
        Ok(LoaderStatus {
            size,
            abi_major,
            abi_minor,
            active_slot,
            persisted_slot,
            busy,
            unload_timeout_ms,
            now,
            last_error,
            loader_pool,
            slots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_abi_and_slot() {
        let bytes = encode_request(&request(Some(1)));
        assert_eq!(&bytes[0..4], &16u32.to_le_bytes());
        assert_eq!(&bytes[4..6], &ABI_MAJOR.to_le_bytes());
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
        let bytes = encode_request(&request(None));
        assert_eq!(&bytes[8..12], &SLOT_NONE.to_le_bytes());
    }

    #[test]
    fn short_replies_are_errors() {
        assert!(decode_reply(&[0u8; 8]).is_err());
        assert!(decode_status(&[0u8; 100]).is_err());
    }
}
