//! File and volume names: `FltGetFileNameInformation`,
//! `FltReferenceFileNameInformation`, `FltReleaseFileNameInformation`,
//! `FltParseFileNameInformation`, `FltGetVolumeName`.
//!
//! A name is the volume's device name followed by the stream's file name
//! (`\Device\Mup\TSCLIENT\SCARD\2`); normalized and opened names are the
//! same here (no short names, links or tunnelling), and short names are not
//! supported. A name block is pool memory with a reference count; every
//! string of the structure views its own buffer.
use crate::state::STATE;
use core::sync::atomic::{AtomicU32, Ordering};
use fltsim_abi as abi;
use kernel_sys::flt::{
    FLTFL_FILE_NAME_PARSED_EXTENSION, FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT, FLTFL_FILE_NAME_PARSED_PARENT_DIR,
    FLTFL_FILE_NAME_PARSED_STREAM, FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_NORMALIZED,
    FLT_FILE_NAME_OPENED, PFLT_VOLUME,
};
use kernel_sys::{ExAllocatePoolWithTag, ExFreePoolWithTag, POOL_NON_PAGED, UNICODE_STRING};
use shared_abi::NtStatus;

const MAGIC: u32 = u32::from_le_bytes(*b"FSnm");
const DEAD: u32 = u32::from_le_bytes(*b"fsnm");
const TAG: u32 = u32::from_le_bytes(*b"FSnm");
/// UTF-16 units of a full name.
const NAME_UNITS: usize = 128;

#[repr(C)]
struct NameBlock {
    magic: u32,
    refs: AtomicU32,
    info: FLT_FILE_NAME_INFORMATION,
    buffer: [u16; NAME_UNITS],
}

const INFO_OFFSET: usize = core::mem::offset_of!(NameBlock, info);

const EMPTY: UNICODE_STRING = UNICODE_STRING { Length: 0, MaximumLength: 0, Buffer: core::ptr::null_mut() };

fn block_of(info: *mut FLT_FILE_NAME_INFORMATION) -> Option<*mut NameBlock> {
    if info.is_null() {
        return None;
    }
    let b = info.wrapping_byte_sub(INFO_OFFSET).cast::<NameBlock>();
    // SAFETY: the filter passes a name this module gave out (its contract);
    // the block header precedes the structure.
    let magic = unsafe { (*b).magic };
    (magic == MAGIC).then_some(b)
}

/// A view of `len` units of `buffer` at `start`.
fn view(buffer: *mut u16, start: usize, len: usize) -> UNICODE_STRING {
    if len == 0 {
        return UNICODE_STRING { Length: 0, MaximumLength: 0, Buffer: buffer.wrapping_add(start) };
    }
    let bytes = u16::try_from(len * 2).unwrap_or(0);
    UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: buffer.wrapping_add(start) }
}

/// `FltGetFileNameInformation`.
pub fn get(data: *mut FLT_CALLBACK_DATA, options: u32, out: *mut *mut FLT_FILE_NAME_INFORMATION) -> NtStatus {
    if data.is_null() || out.is_null() {
        return NtStatus::INVALID_PARAMETER;
    }
    // SAFETY: the caller's out-pointer.
    unsafe { out.write(core::ptr::null_mut()) };
    let format = options & 0xFF;
    if format != FLT_FILE_NAME_NORMALIZED && format != FLT_FILE_NAME_OPENED {
        return NtStatus::NOT_SUPPORTED;
    }
    // SAFETY: the callback data the simulator passed to the filter, alive
    // during the callback the filter calls this from.
    let iopb = unsafe { (*data).Iopb };
    // SAFETY: its parameter block, alive as long.
    let file = unsafe { (*iopb).TargetFileObject };
    let Some(stream) = crate::inject::stream_of(file) else { return NtStatus::FLT_INVALID_NAME_REQUEST };
    let Some(volume) = STATE.with(|s| s.streams.get(stream).filter(|st| st.used).map(|st| st.volume)) else {
        return NtStatus::FLT_INVALID_NAME_REQUEST;
    };
    let file_name = crate::inject::name_of(stream);
    let volume_name = abi::VOLUME_NAMES.get(volume).copied().unwrap_or("");
    let mut units = [0u16; NAME_UNITS];
    let mut n = 0usize;
    for u in volume_name.encode_utf16().chain(file_name.units().iter().copied()) {
        let Some(slot) = units.get_mut(n) else { return NtStatus::OBJECT_NAME_INVALID };
        *slot = u;
        n += 1;
    }
    let volume_len = volume_name.len();
    // SAFETY: a plain non-paged allocation; checked for NULL.
    let b =
        unsafe { ExAllocatePoolWithTag(POOL_NON_PAGED, core::mem::size_of::<NameBlock>(), TAG) }.cast::<NameBlock>();
    if b.is_null() {
        return NtStatus::INSUFFICIENT_RESOURCES;
    }
    let buffer = b.wrapping_byte_add(core::mem::offset_of!(NameBlock, buffer)).cast::<u16>();
    let block = NameBlock {
        magic: MAGIC,
        refs: AtomicU32::new(1),
        info: FLT_FILE_NAME_INFORMATION {
            Size: u16::try_from(core::mem::size_of::<FLT_FILE_NAME_INFORMATION>()).unwrap_or(0),
            NamesParsed: 0,
            Format: format,
            Name: view(buffer, 0, n),
            Volume: view(buffer, 0, volume_len),
            Share: EMPTY,
            Extension: EMPTY,
            Stream: EMPTY,
            FinalComponent: EMPTY,
            ParentDir: EMPTY,
        },
        buffer: units,
    };
    // SAFETY: `b` is a fresh block of the right size and alignment (pool
    // blocks are 16-byte aligned); the strings view its own buffer.
    unsafe { b.write(block) };
    let info = b.wrapping_byte_add(INFO_OFFSET).cast::<FLT_FILE_NAME_INFORMATION>();
    STATE.with(|s| s.totals.names_allocated += 1);
    // SAFETY: the caller's out-pointer.
    unsafe { out.write(info) };
    NtStatus::SUCCESS
}

/// `FltReferenceFileNameInformation`.
pub fn reference(info: *mut FLT_FILE_NAME_INFORMATION) {
    match block_of(info) {
        // SAFETY: a live block; the count is atomic.
        Some(b) => unsafe {
            (*b).refs.fetch_add(1, Ordering::AcqRel);
        },
        None => STATE.with(|s| s.violation(abi::VIOLATION_BAD_OBJECT, None, None)),
    }
}

/// `FltReleaseFileNameInformation`: the last release frees it.
pub fn release(info: *mut FLT_FILE_NAME_INFORMATION) {
    let Some(b) = block_of(info) else {
        STATE.with(|s| s.violation(abi::VIOLATION_BAD_OBJECT, None, None));
        return;
    };
    // SAFETY: a live block; the count is atomic.
    let before = unsafe { (*b).refs.fetch_sub(1, Ordering::AcqRel) };
    if before == 1 {
        // SAFETY: the last reference: ours; marks it dead before the free.
        unsafe { (*b).magic = DEAD };
        // SAFETY: our block, freed once, with its tag.
        unsafe { ExFreePoolWithTag(b.cast(), TAG) };
        STATE.with(|s| s.totals.names_freed += 1);
    } else if before == 0 {
        STATE.with(|s| s.violation(abi::VIOLATION_BAD_OBJECT, None, None));
    }
}

/// `FltParseFileNameInformation`: share (network volumes: `\server\share`),
/// parent directory, final component, extension and stream, all views of
/// `Name`.
pub fn parse(info: *mut FLT_FILE_NAME_INFORMATION) -> NtStatus {
    let Some(b) = block_of(info) else {
        STATE.with(|s| s.violation(abi::VIOLATION_BAD_OBJECT, None, None));
        return NtStatus::INVALID_PARAMETER;
    };
    // SAFETY: a live block the caller holds a reference on; parsing writes
    // only the structure's own views.
    let i = unsafe { &mut (*b).info };
    // SAFETY: as above; the buffer is only read.
    let units = unsafe { &(*b).buffer };
    let total = usize::from(i.Name.Length / 2);
    let volume = usize::from(i.Volume.Length / 2);
    let buffer = i.Name.Buffer;
    let name = units.get(..total).unwrap_or(&[]);
    let slash = u16::from(b'\\');
    let mut rest = volume;
    let is_network = i.Volume.Length != 0
        && abi::VOLUME_NAMES.get(abi::VOLUME_MUP as usize).is_some_and(|m| m.len() == volume)
        && name.get(..volume).is_some_and(|v| v.iter().copied().eq(abi::VOLUME_NAMES[1].encode_utf16()));
    if is_network {
        // `\server\share` is the share; the rest is the path in it.
        let mut seen = 0;
        let mut end = volume;
        for (k, &u) in name.iter().enumerate().skip(volume) {
            if u == slash {
                seen += 1;
                if seen == 3 {
                    break;
                }
            }
            end = k + 1;
        }
        i.Share = view(buffer, volume, end - volume);
        rest = end;
    }
    let path = name.get(rest..).unwrap_or(&[]);
    let last_slash = path.iter().rposition(|&u| u == slash).map_or(0, |k| k + 1);
    i.ParentDir = view(buffer, rest, last_slash);
    let final_start = rest + last_slash;
    let final_component = name.get(final_start..).unwrap_or(&[]);
    i.FinalComponent = view(buffer, final_start, final_component.len());
    let colon = final_component.iter().position(|&u| u == u16::from(b':'));
    let stream_start = colon.map_or(final_component.len(), |c| c);
    i.Stream = view(buffer, final_start + stream_start, final_component.len() - stream_start);
    let base = final_component.get(..stream_start).unwrap_or(&[]);
    i.Extension = match base.iter().rposition(|&u| u == u16::from(b'.')) {
        Some(dot) => view(buffer, final_start + dot + 1, base.len() - dot - 1),
        None => view(buffer, final_start + base.len(), 0),
    };
    i.NamesParsed = FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT
        | FLTFL_FILE_NAME_PARSED_EXTENSION
        | FLTFL_FILE_NAME_PARSED_STREAM
        | FLTFL_FILE_NAME_PARSED_PARENT_DIR;
    NtStatus::SUCCESS
}

/// `FltGetVolumeName`.
pub fn volume_name(volume: PFLT_VOLUME, out: *mut UNICODE_STRING, needed: *mut u32) -> NtStatus {
    let Some(v) = crate::state::decode_volume(volume) else {
        STATE.with(|s| s.violation(abi::VIOLATION_BAD_OBJECT, None, None));
        return NtStatus::INVALID_PARAMETER;
    };
    let name = abi::VOLUME_NAMES.get(v).copied().unwrap_or("");
    let bytes = u16::try_from(name.len() * 2).unwrap_or(u16::MAX);
    if !needed.is_null() {
        // SAFETY: the caller's optional out-pointer.
        unsafe { needed.write(u32::from(bytes)) };
    }
    if out.is_null() {
        return NtStatus::BUFFER_TOO_SMALL;
    }
    // SAFETY: the caller's UNICODE_STRING, whose buffer holds MaximumLength bytes.
    let s = unsafe { &mut *out };
    if s.Buffer.is_null() || s.MaximumLength < bytes {
        return NtStatus::BUFFER_TOO_SMALL;
    }
    for (k, u) in name.encode_utf16().enumerate() {
        // SAFETY: k < name.len() <= MaximumLength / 2, inside the caller's buffer.
        unsafe { s.Buffer.wrapping_add(k).write(u) };
    }
    s.Length = bytes;
    NtStatus::SUCCESS
}
