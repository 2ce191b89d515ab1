//! The filter's state across an upgrade or rollback (ABI 1.2): the two
//! entries the loader calls, around the filter's own [`StateOps`].
//!
//! The blob is a `StateBlobHeader` (written and checked here: size, magic,
//! the filter's schema, the data length) and the filter's bytes. A blob of
//! another schema is refused with `STATUS_REVISION_MISMATCH`, which rolls
//! the upgrade back. The final export runs after the quiesce (nothing
//! processes any more); the final import merges what the old generation
//! did after its snapshot. `PASSIVE_LEVEL`.
use crate::globals::spec;
use crate::platform::KernelPayload;
use loader_protocol::payload as protocol;
use shared_abi::payload::{StateBlobHeader, STATE_FINAL, STATE_MAGIC};
use shared_abi::NtStatus;

/// A filter's state export: the byte count, or `(STATUS_BUFFER_TOO_SMALL,
/// needed)`.
pub type ExportFn = fn(&mut [u8]) -> Result<usize, (NtStatus, usize)>;

/// What a filter provides to carry its state across.
#[derive(Clone, Copy)]
pub struct StateOps {
    /// The layout version of the bytes `export` writes and `import` reads.
    pub schema: u32,
    /// The filter's own version (recorded in the blob).
    pub version: u32,
    /// Writes the state into the buffer: the byte count, or
    /// `(STATUS_BUFFER_TOO_SMALL, needed)`.
    pub export: ExportFn,
    /// Takes the other generation's state: `final_state` false for the
    /// snapshot before the switch (replace), true for the old generation's
    /// final state (merge what it did after the snapshot).
    pub import: fn(&[u8], bool) -> Result<(), NtStatus>,
}

const HEADER: usize = core::mem::size_of::<StateBlobHeader>();

fn header_bytes(h: &StateBlobHeader) -> [u8; HEADER] {
    let mut out = [0u8; HEADER];
    for (chunk, v) in out.chunks_exact_mut(4).zip([h.size, h.magic, h.schema, h.payload_version, h.data_len, h.flags]) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn field(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..at.checked_add(4)?).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_le_bytes)
}

/// The export into `buffer`: status and bytes written (or needed).
pub(crate) fn export(buffer: &mut [u8], flags: u32) -> (NtStatus, usize) {
    let Some(ops) = spec().and_then(|s| s.state) else { return (NtStatus::NOT_SUPPORTED, 0) };
    if !protocol::may_export(&KernelPayload) {
        return (NtStatus::DELETE_PENDING, 0);
    }
    let Some((head, data)) = buffer.split_at_mut_checked(HEADER) else {
        return (NtStatus::BUFFER_TOO_SMALL, HEADER);
    };
    let n = match (ops.export)(data) {
        Ok(n) => n,
        Err((status, needed)) => return (status, needed.saturating_add(HEADER)),
    };
    let Ok(data_len) = u32::try_from(n) else { return (NtStatus::BUFFER_TOO_SMALL, usize::MAX) };
    let h = StateBlobHeader {
        size: shared_abi::size_u32::<StateBlobHeader>(),
        magic: STATE_MAGIC,
        schema: ops.schema,
        payload_version: ops.version,
        data_len,
        flags: flags & STATE_FINAL,
    };
    head.copy_from_slice(&header_bytes(&h));
    (NtStatus::SUCCESS, n.saturating_add(HEADER))
}

/// The import of `blob` (header and data).
pub(crate) fn import(blob: &[u8], flags: u32) -> NtStatus {
    let Some(ops) = spec().and_then(|s| s.state) else { return NtStatus::NOT_SUPPORTED };
    let (size, magic, schema, data_len) = (field(blob, 0), field(blob, 4), field(blob, 8), field(blob, 16));
    if size != Some(shared_abi::size_u32::<StateBlobHeader>()) || magic != Some(STATE_MAGIC) {
        return NtStatus::INVALID_PARAMETER;
    }
    if schema != Some(ops.schema) {
        return NtStatus::REVISION_MISMATCH;
    }
    let data = blob.get(HEADER..).unwrap_or(&[]);
    if data_len.and_then(|d| usize::try_from(d).ok()) != Some(data.len()) {
        return NtStatus::INFO_LENGTH_MISMATCH;
    }
    match (ops.import)(data, flags & STATE_FINAL != 0) {
        Ok(()) => NtStatus::SUCCESS,
        Err(status) => status,
    }
}

/// `PayloadDescriptor::export_state`.
///
/// # Safety
/// Called only by the loader: `buffer` is writable for `capacity` bytes (or
/// null with 0), `written` a valid out-pointer, for the call.
#[allow(unsafe_code)] // an ABI entry: the loader's raw buffer, checked here
pub unsafe extern "system" fn export_state_entry(
    buffer: *mut u8,
    capacity: usize,
    written: *mut usize,
    flags: u32,
) -> i32 {
    if written.is_null() {
        return NtStatus::INVALID_PARAMETER.0;
    }
    let buffer: &mut [u8] = if buffer.is_null() || capacity == 0 {
        &mut []
    } else {
        // SAFETY: per the contract.
        unsafe { core::slice::from_raw_parts_mut(buffer, capacity) }
    };
    let (status, n) = export(buffer, flags);
    // SAFETY: per the contract.
    unsafe { *written = n };
    status.0
}

/// `PayloadDescriptor::import_state`.
///
/// # Safety
/// Called only by the loader: `blob` is readable for `len` bytes (or null
/// with 0) for the call.
#[allow(unsafe_code)] // an ABI entry: the loader's raw buffer, checked here
#[must_use]
pub unsafe extern "system" fn import_state_entry(blob: *const u8, len: usize, flags: u32) -> i32 {
    let blob: &[u8] = if blob.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: per the contract.
        unsafe { core::slice::from_raw_parts(blob, len) }
    };
    import(blob, flags).0
}
