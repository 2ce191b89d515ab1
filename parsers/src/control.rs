//! Decoding and encoding of the control device's requests and replies.
//!
//! The kernel side runs [`decode_request`] on every `IRP_MJ_DEVICE_CONTROL`
//! before it looks at anything else, and writes its answers with
//! [`encode_status`] / [`encode_reply`]; `loaderctl` uses the mirror images.
//! Every byte that reaches this module comes from user mode, so nothing here
//! may panic, index unchecked, or write past the caller's buffer. It never
//! names a path or a service: a request selects a *slot*, and which image a
//! slot loads is the loader's admin-only configuration (`config.rs`).
use core::mem::size_of;
use shared_abi::control::{
    ControlReply, ControlRequest, ErrorRecord, HandoverStatus, IoctlCode, LoaderStatus, PoolCount, SlotStatus,
    IOCTL_LOADER_LOAD, IOCTL_LOADER_QUERY_STATUS, IOCTL_LOADER_ROLLBACK, IOCTL_LOADER_UNLOAD, IOCTL_LOADER_UPGRADE,
    METHOD_BUFFERED, SLOT_NONE,
};
use shared_abi::payload::{PayloadReport, NAME_CHARS};
use shared_abi::{NtStatus, Slot, ABI_MAJOR};

/// Bytes of a [`ControlRequest`] on the wire.
pub const REQUEST_LEN: usize = size_of::<ControlRequest>();
/// Bytes of a [`ControlReply`] on the wire.
pub const REPLY_LEN: usize = size_of::<ControlReply>();
/// Bytes of a [`LoaderStatus`] on the wire.
pub const STATUS_LEN: usize = size_of::<LoaderStatus>();
/// The shortest status a reader may ask for: a 1.0/1.1 reader's, without
/// the handover part.
pub const MIN_STATUS_LEN: usize = shared_abi::control::STATUS_SIZE_1_1;

/// What a well-formed control request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlCommand {
    /// `IOCTL_LOADER_QUERY_STATUS`.
    QueryStatus,
    /// `IOCTL_LOADER_UPGRADE`; `None` lets the loader pick the inactive slot.
    Upgrade { slot: Option<Slot> },
    /// `IOCTL_LOADER_ROLLBACK`.
    Rollback,
    /// `IOCTL_LOADER_LOAD`.
    Load,
    /// `IOCTL_LOADER_UNLOAD`.
    Unload,
}

impl ControlCommand {
    /// The control code that carries this command.
    #[must_use]
    pub const fn ioctl(self) -> IoctlCode {
        match self {
            ControlCommand::QueryStatus => IOCTL_LOADER_QUERY_STATUS,
            ControlCommand::Upgrade { .. } => IOCTL_LOADER_UPGRADE,
            ControlCommand::Rollback => IOCTL_LOADER_ROLLBACK,
            ControlCommand::Load => IOCTL_LOADER_LOAD,
            ControlCommand::Unload => IOCTL_LOADER_UNLOAD,
        }
    }

    /// Smallest output buffer the command needs.
    #[must_use]
    pub const fn min_output_len(self) -> usize {
        match self {
            ControlCommand::QueryStatus => MIN_STATUS_LEN,
            _ => REPLY_LEN,
        }
    }
}

/// Checks a control request and says what it asks for.
///
/// Checks, in this order (the first failing one decides the status):
/// 1. the transfer method is `METHOD_BUFFERED` and the code is one of ours,
///    else `STATUS_INVALID_DEVICE_REQUEST`;
/// 2. the input: for a mutating code exactly 16 bytes, for the status code
///    empty or 16 bytes, else `STATUS_INFO_LENGTH_MISMATCH`; its `size`
///    field is 16, else `STATUS_INVALID_BUFFER_SIZE`; `abi_major` is
///    [`ABI_MAJOR`], else `STATUS_REVISION_MISMATCH`; `flags` is zero and
///    `slot` is `SLOT_NONE` (or, for an upgrade only, a slot index below
///    `SLOT_COUNT`), else `STATUS_INVALID_PARAMETER`;
/// 3. `output_len` holds the answer (512 bytes for the status code, 16 for
///    the others), else `STATUS_BUFFER_TOO_SMALL`.
pub fn decode_request(ioctl: u32, input: &[u8], output_len: usize) -> Result<ControlCommand, NtStatus> {
    let code = IoctlCode(ioctl);
    if code.method() != METHOD_BUFFERED {
        return Err(NtStatus::INVALID_DEVICE_REQUEST);
    }
    let command = match code {
        IOCTL_LOADER_QUERY_STATUS => {
            if !input.is_empty() {
                let req = parse_request(input)?;
                require_no_slot(req.slot)?;
            }
            ControlCommand::QueryStatus
        }
        IOCTL_LOADER_UPGRADE => {
            let req = parse_request(input)?;
            let slot = if req.slot == SLOT_NONE {
                None
            } else {
                Some(Slot::from_word(req.slot).ok_or(NtStatus::INVALID_PARAMETER)?)
            };
            ControlCommand::Upgrade { slot }
        }
        IOCTL_LOADER_ROLLBACK | IOCTL_LOADER_LOAD | IOCTL_LOADER_UNLOAD => {
            let req = parse_request(input)?;
            require_no_slot(req.slot)?;
            match code {
                IOCTL_LOADER_ROLLBACK => ControlCommand::Rollback,
                IOCTL_LOADER_LOAD => ControlCommand::Load,
                _ => ControlCommand::Unload,
            }
        }
        _ => return Err(NtStatus::INVALID_DEVICE_REQUEST),
    };
    if output_len < command.min_output_len() {
        return Err(NtStatus::BUFFER_TOO_SMALL);
    }
    Ok(command)
}

fn require_no_slot(slot: u32) -> Result<(), NtStatus> {
    if slot == SLOT_NONE {
        Ok(())
    } else {
        Err(NtStatus::INVALID_PARAMETER)
    }
}

/// Parses and checks the 16-byte request header (everything but the slot).
fn parse_request(input: &[u8]) -> Result<ControlRequest, NtStatus> {
    if input.len() != REQUEST_LEN {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    let mut r = Reader::new(input);
    let req =
        ControlRequest { size: r.u32()?, abi_major: r.u16()?, abi_minor: r.u16()?, slot: r.u32()?, flags: r.u32()? };
    if usize::try_from(req.size) != Ok(REQUEST_LEN) {
        return Err(NtStatus::INVALID_BUFFER_SIZE);
    }
    if req.abi_major != ABI_MAJOR {
        return Err(NtStatus::REVISION_MISMATCH);
    }
    if req.flags != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    Ok(req)
}

/// The request's wire bytes (little-endian `repr(C)` layout), as given:
/// the caller fills in `size` and the versions.
#[must_use]
pub fn encode_request(req: &ControlRequest) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut w = Writer::new(&mut out);
    // Cannot fail: the buffer is exactly the struct's size.
    let _ = w
        .u32(req.size)
        .and_then(|w| w.u16(req.abi_major))
        .and_then(|w| w.u16(req.abi_minor))
        .and_then(|w| w.u32(req.slot))
        .and_then(|w| w.u32(req.flags));
    out
}

/// Writes `status` into `out` in its `repr(C)` little-endian layout and
/// returns the byte count: all of it ([`STATUS_LEN`]) if `out` holds it, the
/// 1.1 prefix ([`MIN_STATUS_LEN`], with `size` saying so) for an older
/// reader's shorter buffer. Never writes past `out`; a buffer shorter than
/// the prefix is left untouched and gives `STATUS_BUFFER_TOO_SMALL`.
pub fn encode_status(status: &LoaderStatus, out: &mut [u8]) -> Result<usize, NtStatus> {
    let len = if out.len() >= STATUS_LEN { STATUS_LEN } else { MIN_STATUS_LEN };
    let dst = out.get_mut(..len).ok_or(NtStatus::BUFFER_TOO_SMALL)?;
    let mut w = Writer::new(dst);
    w.u32(u32::try_from(len).map_err(|_| NtStatus::INTERNAL_ERROR)?)?
        .u16(status.abi_major)?
        .u16(status.abi_minor)?
        .u32(status.active_slot)?
        .u32(status.persisted_slot)?
        .u32(status.busy)?
        .u32(status.unload_timeout_ms)?
        .u64(status.now)?;
    write_error(&mut w, &status.last_error)?;
    write_pool(&mut w, &status.loader_pool)?;
    for slot in &status.slots {
        write_slot(&mut w, slot)?;
    }
    if len == STATUS_LEN {
        let h = &status.handover;
        w.u32(h.mode)?
            .i32(h.last_status)?
            .u32(h.owner_generation)?
            .u32(h.state_transfers)?
            .u32(h.refused)?
            .u32(h.unmarked)?
            .u32(h.last_state_bytes)?
            .u32(h.exact_handovers)?;
    }
    if w.pos != len {
        return Err(NtStatus::INTERNAL_ERROR);
    }
    Ok(len)
}

fn write_error(w: &mut Writer<'_>, e: &ErrorRecord) -> Result<(), NtStatus> {
    w.i32(e.status)?.u32(e.op)?.u32(e.slot)?.u32(e.reserved)?.u64(e.time)?;
    Ok(())
}

fn write_pool(w: &mut Writer<'_>, p: &PoolCount) -> Result<(), NtStatus> {
    w.u32(p.tag)?.u32(p.reserved)?.u64(p.allocs)?.u64(p.frees)?;
    Ok(())
}

fn write_slot(w: &mut Writer<'_>, s: &SlotStatus) -> Result<(), NtStatus> {
    w.u32(s.state)?.u32(s.payload_version)?;
    w.name(&s.service)?.name(&s.name)?;
    w.u64(s.registered_since)?.u64(s.state_since)?.i32(s.last_status)?.u32(s.last_op)?.u64(s.report_time)?;
    let r = &s.report;
    w.u32(r.size)?
        .u32(r.phase)?
        .u32(r.instances)?
        .u32(r.open_contexts)?
        .u64(r.creates)?
        .u64(r.reads)?
        .u64(r.writes)?
        .i64(r.pool_outstanding)?;
    Ok(())
}

/// Reads a status snapshot. Accepts at least 512 bytes whose `size` field
/// is at least 512 (a newer loader may append fields; they are ignored);
/// the handover part is read when `size` and the input hold it (a 1.1
/// loader's snapshot has none: it reads as zeros). Shorter input or a
/// smaller `size` gives `STATUS_INFO_LENGTH_MISMATCH`, another `abi_major`
/// `STATUS_REVISION_MISMATCH`.
pub fn decode_status(bytes: &[u8]) -> Result<LoaderStatus, NtStatus> {
    let mut r = Reader::new(bytes.get(..MIN_STATUS_LEN).ok_or(NtStatus::INFO_LENGTH_MISMATCH)?);
    let size = r.u32()?;
    if usize::try_from(size).is_ok_and(|s| s < MIN_STATUS_LEN) {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    let abi_major = r.u16()?;
    if abi_major != ABI_MAJOR {
        return Err(NtStatus::REVISION_MISMATCH);
    }
    let abi_minor = r.u16()?;
    let active_slot = r.u32()?;
    let persisted_slot = r.u32()?;
    let busy = r.u32()?;
    let unload_timeout_ms = r.u32()?;
    let now = r.u64()?;
    let last_error = ErrorRecord { status: r.i32()?, op: r.u32()?, slot: r.u32()?, reserved: r.u32()?, time: r.u64()? };
    let loader_pool = PoolCount { tag: r.u32()?, reserved: r.u32()?, allocs: r.u64()?, frees: r.u64()? };
    let slots = [read_slot(&mut r)?, read_slot(&mut r)?];
    let handover = match bytes.get(MIN_STATUS_LEN..STATUS_LEN) {
        Some(tail) if usize::try_from(size).is_ok_and(|s| s >= STATUS_LEN) => {
            let mut r = Reader::new(tail);
            HandoverStatus {
                mode: r.u32()?,
                last_status: r.i32()?,
                owner_generation: r.u32()?,
                state_transfers: r.u32()?,
                refused: r.u32()?,
                unmarked: r.u32()?,
                last_state_bytes: r.u32()?,
                exact_handovers: r.u32()?,
            }
        }
        _ => HandoverStatus::default(),
    };
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
        handover,
    })
}

fn read_slot(r: &mut Reader<'_>) -> Result<SlotStatus, NtStatus> {
    Ok(SlotStatus {
        state: r.u32()?,
        payload_version: r.u32()?,
        service: r.name()?,
        name: r.name()?,
        registered_since: r.u64()?,
        state_since: r.u64()?,
        last_status: r.i32()?,
        last_op: r.u32()?,
        report_time: r.u64()?,
        report: PayloadReport {
            size: r.u32()?,
            phase: r.u32()?,
            instances: r.u32()?,
            open_contexts: r.u32()?,
            creates: r.u64()?,
            reads: r.u64()?,
            writes: r.u64()?,
            pool_outstanding: r.i64()?,
        },
    })
}

/// Writes `reply` (16 bytes, little-endian) into `out`; a shorter buffer is
/// left untouched and gives `STATUS_BUFFER_TOO_SMALL`.
pub fn encode_reply(reply: &ControlReply, out: &mut [u8]) -> Result<usize, NtStatus> {
    let dst = out.get_mut(..REPLY_LEN).ok_or(NtStatus::BUFFER_TOO_SMALL)?;
    Writer::new(dst).u32(reply.size)?.i32(reply.status)?.u32(reply.active_slot)?.u32(reply.flags)?;
    Ok(REPLY_LEN)
}

/// Reads a reply: at least 16 bytes with a `size` field of at least 16
/// (forward compatible), else `STATUS_INFO_LENGTH_MISMATCH`.
pub fn decode_reply(bytes: &[u8]) -> Result<ControlReply, NtStatus> {
    let mut r = Reader::new(bytes.get(..REPLY_LEN).ok_or(NtStatus::INFO_LENGTH_MISMATCH)?);
    let reply = ControlReply { size: r.u32()?, status: r.i32()?, active_slot: r.u32()?, flags: r.u32()? };
    if usize::try_from(reply.size).is_ok_and(|s| s < REPLY_LEN) {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    Ok(reply)
}

/// Little-endian cursor over input bytes; running off the end is an error.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], NtStatus> {
        let end = self.pos.checked_add(N).ok_or(NtStatus::INFO_LENGTH_MISMATCH)?;
        let chunk = self.bytes.get(self.pos..end).ok_or(NtStatus::INFO_LENGTH_MISMATCH)?;
        let array = <[u8; N]>::try_from(chunk).map_err(|_| NtStatus::INFO_LENGTH_MISMATCH)?;
        self.pos = end;
        Ok(array)
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
        for ch in &mut out {
            *ch = self.u16()?;
        }
        Ok(out)
    }
}

/// Little-endian cursor over an output buffer; running off the end is an
/// error and writes nothing.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<&mut Self, NtStatus> {
        let end = self.pos.checked_add(bytes.len()).ok_or(NtStatus::BUFFER_TOO_SMALL)?;
        self.buf.get_mut(self.pos..end).ok_or(NtStatus::BUFFER_TOO_SMALL)?.copy_from_slice(bytes);
        self.pos = end;
        Ok(self)
    }

    fn u16(&mut self, v: u16) -> Result<&mut Self, NtStatus> {
        self.put(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> Result<&mut Self, NtStatus> {
        self.put(&v.to_le_bytes())
    }
    fn i32(&mut self, v: i32) -> Result<&mut Self, NtStatus> {
        self.put(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<&mut Self, NtStatus> {
        self.put(&v.to_le_bytes())
    }
    fn i64(&mut self, v: i64) -> Result<&mut Self, NtStatus> {
        self.put(&v.to_le_bytes())
    }
    fn name(&mut self, name: &[u16; NAME_CHARS]) -> Result<&mut Self, NtStatus> {
        for ch in name {
            self.u16(*ch)?;
        }
        Ok(self)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects, clippy::panic)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::offset_of;
    use shared_abi::control::{ALL_IOCTLS, FILE_DEVICE_UNKNOWN, FILE_READ_ACCESS, FILE_WRITE_ACCESS};
    use shared_abi::ABI_MINOR;

    fn req(slot: u32) -> ControlRequest {
        ControlRequest { size: 16, abi_major: ABI_MAJOR, abi_minor: ABI_MINOR, slot, flags: 0 }
    }

    fn bytes(r: &ControlRequest) -> [u8; 16] {
        encode_request(r)
    }

    #[test]
    fn request_encoding_is_the_repr_c_layout() {
        let b = encode_request(&ControlRequest {
            size: 16,
            abi_major: 0x0102,
            abi_minor: 0x0304,
            slot: 0x0506_0708,
            flags: 0x090A_0B0C,
        });
        assert_eq!(b, [16, 0, 0, 0, 2, 1, 4, 3, 8, 7, 6, 5, 0x0C, 0x0B, 0x0A, 9]);
        assert_eq!(offset_of!(ControlRequest, slot), 8);
    }

    #[test]
    fn well_formed_requests_decode() {
        let q = IOCTL_LOADER_QUERY_STATUS.0;
        assert_eq!(decode_request(q, &[], 512), Ok(ControlCommand::QueryStatus));
        assert_eq!(decode_request(q, &bytes(&req(SLOT_NONE)), 4096), Ok(ControlCommand::QueryStatus));
        let u = IOCTL_LOADER_UPGRADE.0;
        assert_eq!(decode_request(u, &bytes(&req(SLOT_NONE)), 16), Ok(ControlCommand::Upgrade { slot: None }));
        assert_eq!(decode_request(u, &bytes(&req(0)), 16), Ok(ControlCommand::Upgrade { slot: Some(Slot::A) }));
        assert_eq!(decode_request(u, &bytes(&req(1)), 16), Ok(ControlCommand::Upgrade { slot: Some(Slot::B) }));
        assert_eq!(decode_request(IOCTL_LOADER_ROLLBACK.0, &bytes(&req(SLOT_NONE)), 16), Ok(ControlCommand::Rollback));
        assert_eq!(decode_request(IOCTL_LOADER_LOAD.0, &bytes(&req(SLOT_NONE)), 16), Ok(ControlCommand::Load));
        assert_eq!(decode_request(IOCTL_LOADER_UNLOAD.0, &bytes(&req(SLOT_NONE)), 16), Ok(ControlCommand::Unload));
        // A newer minor version is compatible.
        let mut newer = req(SLOT_NONE);
        newer.abi_minor = ABI_MINOR + 7;
        assert_eq!(decode_request(IOCTL_LOADER_LOAD.0, &bytes(&newer), 16), Ok(ControlCommand::Load));
        for c in [
            ControlCommand::QueryStatus,
            ControlCommand::Upgrade { slot: None },
            ControlCommand::Rollback,
            ControlCommand::Load,
            ControlCommand::Unload,
        ] {
            assert!(ALL_IOCTLS.contains(&c.ioctl()));
        }
    }

    #[test]
    fn unknown_and_non_buffered_codes_are_refused() {
        let ok = bytes(&req(SLOT_NONE));
        for code in [0, 0x0022_2000, IoctlCode::new(FILE_DEVICE_UNKNOWN, 0x805, 0, FILE_WRITE_ACCESS).0, u32::MAX] {
            assert_eq!(decode_request(code, &ok, 4096), Err(NtStatus::INVALID_DEVICE_REQUEST));
        }
        for c in ALL_IOCTLS {
            for method in 1..4 {
                assert_eq!(
                    decode_request(c.0 | method, &ok, 4096),
                    Err(NtStatus::INVALID_DEVICE_REQUEST),
                    "{c:?} method {method}"
                );
            }
            // Same function, other access bits: another code, refused.
            let other = IoctlCode::new(FILE_DEVICE_UNKNOWN, (c.0 >> 2) & 0xFFF, 0, (!(c.0 >> 14)) & 3);
            assert_eq!(decode_request(other.0, &ok, 4096), Err(NtStatus::INVALID_DEVICE_REQUEST));
        }
        let _ = FILE_READ_ACCESS;
    }

    #[test]
    fn mutating_codes_check_every_field() {
        for c in [IOCTL_LOADER_UPGRADE, IOCTL_LOADER_ROLLBACK, IOCTL_LOADER_LOAD, IOCTL_LOADER_UNLOAD] {
            let good = bytes(&req(SLOT_NONE));
            assert_eq!(decode_request(c.0, &[], 16), Err(NtStatus::INFO_LENGTH_MISMATCH));
            assert_eq!(decode_request(c.0, &good[..15], 16), Err(NtStatus::INFO_LENGTH_MISMATCH));
            let mut long = [0u8; 17];
            long[..16].copy_from_slice(&good);
            assert_eq!(decode_request(c.0, &long, 16), Err(NtStatus::INFO_LENGTH_MISMATCH));
            for size in [0, 15, 17, 512, u32::MAX] {
                let mut r = req(SLOT_NONE);
                r.size = size;
                assert_eq!(decode_request(c.0, &bytes(&r), 16), Err(NtStatus::INVALID_BUFFER_SIZE));
            }
            for major in [0, ABI_MAJOR + 1, u16::MAX] {
                let mut r = req(SLOT_NONE);
                r.abi_major = major;
                assert_eq!(decode_request(c.0, &bytes(&r), 16), Err(NtStatus::REVISION_MISMATCH));
            }
            let mut r = req(SLOT_NONE);
            r.flags = 1;
            assert_eq!(decode_request(c.0, &bytes(&r), 16), Err(NtStatus::INVALID_PARAMETER));
            for slot in [2, 3, 0x8000_0000, u32::MAX - 1] {
                assert_eq!(decode_request(c.0, &bytes(&req(slot)), 16), Err(NtStatus::INVALID_PARAMETER));
            }
            assert_eq!(decode_request(c.0, &good, 15), Err(NtStatus::BUFFER_TOO_SMALL));
            assert_eq!(decode_request(c.0, &good, 0), Err(NtStatus::BUFFER_TOO_SMALL));
        }
        // Only an upgrade may name a slot.
        for c in [IOCTL_LOADER_ROLLBACK, IOCTL_LOADER_LOAD, IOCTL_LOADER_UNLOAD, IOCTL_LOADER_QUERY_STATUS] {
            assert_eq!(decode_request(c.0, &bytes(&req(0)), 512), Err(NtStatus::INVALID_PARAMETER));
        }
    }

    /// Issue 6: a control request selects a slot and can carry nothing else,
    /// so it cannot smuggle a service name or an image path to the loader.
    #[test]
    fn a_request_cannot_name_a_service_or_a_path() {
        let header = bytes(&req(SLOT_NONE));
        let paths: [&str; 4] = [
            "\\??\\C:\\evil.sys",
            "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\Beep",
            "Beep",
            "..\\..\\Windows\\Temp\\x.sys",
        ];
        for code in ALL_IOCTLS {
            for path in paths {
                let mut input = header.to_vec();
                input.extend(path.encode_utf16().flat_map(u16::to_le_bytes));
                let r = decode_request(code.0, &input, 4096);
                assert_eq!(r, Err(NtStatus::INFO_LENGTH_MISMATCH), "{code:?} with {path:?}");
                // The name alone, without a header, is no request either.
                let name: std::vec::Vec<u8> = path.encode_utf16().flat_map(u16::to_le_bytes).collect();
                assert!(decode_request(code.0, &name, 4096).is_err(), "{code:?} with bare {path:?}");
            }
        }
        // The slot is an index into the admin's configuration, nothing more.
        for slot in (2..64).chain([0x4000_0000, u32::MAX - 1]) {
            let r = decode_request(IOCTL_LOADER_UPGRADE.0, &bytes(&req(slot)), 16);
            assert_eq!(r, Err(NtStatus::INVALID_PARAMETER), "slot {slot}");
        }
    }

    #[test]
    fn status_query_checks_input_and_output() {
        let q = IOCTL_LOADER_QUERY_STATUS.0;
        assert_eq!(decode_request(q, &[], 511), Err(NtStatus::BUFFER_TOO_SMALL));
        assert_eq!(decode_request(q, &[], 16), Err(NtStatus::BUFFER_TOO_SMALL));
        assert_eq!(decode_request(q, &[0; 4], 512), Err(NtStatus::INFO_LENGTH_MISMATCH));
        let mut r = req(SLOT_NONE);
        r.abi_major = 9;
        assert_eq!(decode_request(q, &bytes(&r), 512), Err(NtStatus::REVISION_MISMATCH));
    }

    fn sample_status() -> LoaderStatus {
        let mut s = LoaderStatus {
            size: 512,
            abi_major: ABI_MAJOR,
            abi_minor: 0x0A0B,
            active_slot: 1,
            persisted_slot: 0,
            busy: 0x1111_2222,
            unload_timeout_ms: 5000,
            now: 0x0102_0304_0506_0708,
            ..LoaderStatus::default()
        };
        s.last_error =
            ErrorRecord { status: NtStatus::IO_TIMEOUT.0, op: 3, slot: 0, reserved: 0, time: 0x1122_3344_5566_7788 };
        s.loader_pool = PoolCount { tag: shared_abi::POOL_TAG_LOADER, reserved: 0, allocs: 9, frees: 8 };
        for (i, slot) in s.slots.iter_mut().enumerate() {
            let i32v = i32::try_from(i).unwrap();
            let iu = u32::try_from(i).unwrap();
            slot.state = 3 + iu;
            slot.payload_version = 1 + iu;
            slot.service = shared_abi::payload::utf16_name(if i == 0 { "CounterFilterA" } else { "CounterFilterB" });
            slot.name = shared_abi::payload::utf16_name("Counter filter");
            slot.registered_since = 0xAAAA_0000 + u64::from(iu);
            slot.state_since = 0xBBBB_0000;
            slot.last_status = -1 - i32v;
            slot.last_op = 2;
            slot.report_time = 0xCCCC;
            slot.report = PayloadReport {
                size: 48,
                phase: 2,
                instances: 3,
                open_contexts: 4,
                creates: 5,
                reads: 6,
                writes: 7,
                pool_outstanding: -8,
            };
        }
        s
    }

    fn le32(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn le64(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn status_encoding_follows_the_repr_c_offsets() {
        let mut s = sample_status();
        s.size = u32::try_from(STATUS_LEN).unwrap();
        s.handover = HandoverStatus {
            mode: 1,
            last_status: NtStatus::REVISION_MISMATCH.0,
            owner_generation: 7,
            state_transfers: 3,
            refused: 1,
            unmarked: 2,
            last_state_bytes: 4096,
            exact_handovers: 5,
        };
        let mut buf = [0u8; 600];
        assert_eq!(encode_status(&s, &mut buf), Ok(STATUS_LEN));
        assert!(buf[STATUS_LEN..].iter().all(|b| *b == 0), "wrote past the struct");
        assert_eq!(le32(&buf, 0), 544);
        assert_eq!(le32(&buf, offset_of!(LoaderStatus, unload_timeout_ms)), 5000);
        assert_eq!(le64(&buf, offset_of!(LoaderStatus, now)), s.now);
        let e = offset_of!(LoaderStatus, last_error);
        assert_eq!(le64(&buf, e + offset_of!(ErrorRecord, time)), s.last_error.time);
        let p = offset_of!(LoaderStatus, loader_pool);
        assert_eq!(le64(&buf, p + offset_of!(PoolCount, frees)), 8);
        let slot1 = offset_of!(LoaderStatus, slots) + size_of::<SlotStatus>();
        assert_eq!(le64(&buf, slot1 + offset_of!(SlotStatus, registered_since)), 0xAAAA_0001);
        assert_eq!(le32(&buf, slot1 + offset_of!(SlotStatus, last_status)), u32::from_le_bytes((-2i32).to_le_bytes()));
        let rep = slot1 + offset_of!(SlotStatus, report);
        assert_eq!(
            le64(&buf, rep + offset_of!(PayloadReport, pool_outstanding)),
            u64::from_le_bytes((-8i64).to_le_bytes())
        );
        assert_eq!(buf[slot1 + offset_of!(SlotStatus, service) + 26], u8::try_from(u32::from('B')).unwrap());
        let h = offset_of!(LoaderStatus, handover);
        assert_eq!(le32(&buf, h + offset_of!(HandoverStatus, owner_generation)), 7);
        assert_eq!(le32(&buf, h + offset_of!(HandoverStatus, exact_handovers)), 5);
        assert_eq!(decode_status(&buf), Ok(s));
    }

    /// A 1.1 reader asks for 512 bytes: it gets the 1.1 snapshot, whose
    /// `size` says 512; a 1.2 reader of a 1.1 snapshot sees no handover.
    #[test]
    fn status_keeps_the_1_1_prefix_for_older_readers() {
        let mut s = sample_status();
        s.handover.mode = 1;
        let mut buf = [0u8; 543];
        assert_eq!(encode_status(&s, &mut buf), Ok(MIN_STATUS_LEN));
        assert_eq!(le32(&buf, 0), 512);
        assert!(buf[MIN_STATUS_LEN..].iter().all(|b| *b == 0));
        let old = decode_status(&buf[..MIN_STATUS_LEN]).unwrap();
        assert_eq!(old.handover, HandoverStatus::default());
        assert_eq!(old.slots, s.slots);
        // A 1.1 snapshot followed by garbage: `size` says there is no more.
        buf[MIN_STATUS_LEN..].fill(0x77);
        assert_eq!(decode_status(&buf).unwrap().handover, HandoverStatus::default());
    }

    #[test]
    fn status_encoding_never_writes_past_a_short_buffer() {
        let s = sample_status();
        for len in [0, 1, 16, 511] {
            let mut buf = [0xEEu8; 511];
            assert_eq!(encode_status(&s, &mut buf[..len]), Err(NtStatus::BUFFER_TOO_SMALL));
            assert!(buf.iter().all(|b| *b == 0xEE));
        }
    }

    #[test]
    fn status_decoding_is_forward_compatible_and_strict() {
        let s = sample_status();
        let mut buf = [0u8; 640];
        encode_status(&s, &mut buf).unwrap();
        buf[..4].copy_from_slice(&640u32.to_le_bytes());
        buf[600] = 0x55; // a field a newer loader appended
        assert_eq!(decode_status(&buf).map(|d| d.size), Ok(640));
        assert_eq!(decode_status(&buf[..511]), Err(NtStatus::INFO_LENGTH_MISMATCH));
        buf[..4].copy_from_slice(&511u32.to_le_bytes());
        assert_eq!(decode_status(&buf), Err(NtStatus::INFO_LENGTH_MISMATCH));
        buf[..4].copy_from_slice(&512u32.to_le_bytes());
        buf[4..6].copy_from_slice(&(ABI_MAJOR + 1).to_le_bytes());
        assert_eq!(decode_status(&buf), Err(NtStatus::REVISION_MISMATCH));
    }

    #[test]
    fn replies_round_trip() {
        let r = ControlReply { size: 16, status: NtStatus::IMAGE_ALREADY_LOADED.0, active_slot: 1, flags: 1 };
        let mut buf = [0u8; 20];
        assert_eq!(encode_reply(&r, &mut buf), Ok(16));
        assert_eq!(&buf[4..8], &0xC000_010Eu32.to_le_bytes());
        assert!(buf[16..].iter().all(|b| *b == 0));
        assert_eq!(decode_reply(&buf), Ok(r));
        assert_eq!(decode_reply(&buf[..15]), Err(NtStatus::INFO_LENGTH_MISMATCH));
        let mut small = [0xEEu8; 15];
        assert_eq!(encode_reply(&r, &mut small), Err(NtStatus::BUFFER_TOO_SMALL));
        assert!(small.iter().all(|b| *b == 0xEE));
        buf[0] = 8;
        assert_eq!(decode_reply(&buf), Err(NtStatus::INFO_LENGTH_MISMATCH));
        buf[0] = 20;
        assert_eq!(decode_reply(&buf).map(|d| d.size), Ok(20));
    }
}
