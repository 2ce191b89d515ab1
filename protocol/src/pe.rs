//! Export-directory resolution on a payload image, bounds-checked and
//! panic-free.
//!
//! The loader runs this on the bytes `DriverStart..DriverStart + DriverSize`
//! of a payload it has just loaded ([`Layout::Mapped`]); tests and tools run
//! it on `.sys` files ([`Layout::File`]). The image is outside input: every
//! offset, count and RVA is checked before use, every failure is an
//! `NtStatus`, and nothing here calls into or trusts the image. Forwarded
//! exports are refused: a payload's entry points must be its own code.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

use crate::descriptor::DescriptorInfo;
use core::mem::size_of;
use shared_abi::payload::{PayloadDescriptor, NAME_CHARS};
use shared_abi::NtStatus;

/// How the image bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// As mapped by the kernel: an RVA is an offset into the bytes.
    Mapped,
    /// As on disk: RVAs map to file offsets through the section headers.
    File,
}

/// Longest export name this parser follows (bytes, without the NUL).
pub const MAX_EXPORT_NAME: usize = 512;

const BAD: NtStatus = NtStatus::INVALID_IMAGE_FORMAT;
const NOT_FOUND: NtStatus = NtStatus::PROCEDURE_NOT_FOUND;

const DOS_MAGIC: u16 = 0x5A4D; // "MZ"
const NT_SIGNATURE: u32 = 0x0000_4550; // "PE\0\0"
const PE32_MAGIC: u16 = 0x10B;
const PE32_PLUS_MAGIC: u16 = 0x20B;
const COFF_HEADER_LEN: usize = 20;
const SECTION_HEADER_LEN: usize = 40;
const EXPORT_DIRECTORY_LEN: usize = 40;
/// `IMAGE_SCN_MEM_EXECUTE`.
pub const IMAGE_SCN_MEM_EXECUTE: u32 = 0x2000_0000;
/// `IMAGE_SCN_MEM_DISCARDABLE`: freed after `DriverEntry` (e.g. `INIT`).
pub const IMAGE_SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;

fn read<const N: usize>(bytes: &[u8], offset: usize) -> Result<[u8; N], NtStatus> {
    let end = offset.checked_add(N).ok_or(BAD)?;
    let chunk = bytes.get(offset..end).ok_or(BAD)?;
    <[u8; N]>::try_from(chunk).map_err(|_| BAD)
}

fn u16_at(bytes: &[u8], offset: usize) -> Result<u16, NtStatus> {
    read(bytes, offset).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], offset: usize) -> Result<u32, NtStatus> {
    read(bytes, offset).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], offset: usize) -> Result<u64, NtStatus> {
    read(bytes, offset).map(u64::from_le_bytes)
}

fn to_usize(v: u32) -> Result<usize, NtStatus> {
    usize::try_from(v).map_err(|_| BAD)
}

/// Offset `base + delta`, or `INVALID_IMAGE_FORMAT` on overflow.
fn add(base: usize, delta: usize) -> Result<usize, NtStatus> {
    base.checked_add(delta).ok_or(BAD)
}

/// One section header, as far as RVA mapping needs it.
#[derive(Clone, Copy)]
struct Section {
    virtual_address: u32,
    virtual_size: u32,
    raw_offset: u32,
    raw_size: u32,
    characteristics: u32,
}

impl Section {
    /// Bytes the section spans in memory.
    fn span(&self) -> u32 {
        if self.virtual_size == 0 {
            self.raw_size
        } else {
            self.virtual_size
        }
    }
}

/// The checked headers of a PE image.
struct Headers<'a> {
    image: &'a [u8],
    layout: Layout,
    size_of_image: u32,
    header_bytes: u32,
    /// The section table's bytes, exactly `count * 40` of them.
    sections: &'a [u8],
    export_rva: u32,
    export_size: u32,
}

impl<'a> Headers<'a> {
    fn parse(image: &'a [u8], layout: Layout) -> Result<Self, NtStatus> {
        if u16_at(image, 0)? != DOS_MAGIC {
            return Err(BAD);
        }
        let nt = to_usize(u32_at(image, 0x3C)?)?;
        if u32_at(image, nt)? != NT_SIGNATURE {
            return Err(BAD);
        }
        let coff = add(nt, 4)?;
        let section_count = usize::from(u16_at(image, add(coff, 2)?)?);
        let optional_len = usize::from(u16_at(image, add(coff, 16)?)?);
        let optional = add(coff, COFF_HEADER_LEN)?;
        let optional_bytes = image.get(optional..add(optional, optional_len)?).ok_or(BAD)?;
        let (count_at, dirs_at) = match u16_at(optional_bytes, 0)? {
            PE32_MAGIC => (92, 96),
            PE32_PLUS_MAGIC => (108, 112),
            _ => return Err(BAD),
        };
        let size_of_image = u32_at(optional_bytes, 56)?;
        let header_bytes = u32_at(optional_bytes, 60)?;
        // Data directory 0 is the export directory; an image may list none.
        let (export_rva, export_size) = if u32_at(optional_bytes, count_at)? == 0 {
            (0, 0)
        } else {
            (u32_at(optional_bytes, dirs_at)?, u32_at(optional_bytes, add(dirs_at, 4)?)?)
        };
        let table = add(optional, optional_len)?;
        let table_len = section_count.checked_mul(SECTION_HEADER_LEN).ok_or(BAD)?;
        let sections = image.get(table..add(table, table_len)?).ok_or(BAD)?;
        match layout {
            Layout::Mapped if to_usize(size_of_image)? > image.len() => return Err(BAD),
            // On disk, a truncated file is malformed even where the parts
            // this lookup needs survived.
            Layout::File if to_usize(header_bytes)? > image.len() => return Err(BAD),
            Layout::File => {
                for h in sections.chunks_exact(SECTION_HEADER_LEN) {
                    let raw_size = to_usize(u32_at(h, 16)?)?;
                    let raw_offset = to_usize(u32_at(h, 20)?)?;
                    if raw_size != 0 && add(raw_offset, raw_size)? > image.len() {
                        return Err(BAD);
                    }
                }
            }
            Layout::Mapped => {}
        }
        Ok(Headers { image, layout, size_of_image, header_bytes, sections, export_rva, export_size })
    }

    fn sections(&self) -> impl Iterator<Item = Section> + 'a {
        self.sections.chunks_exact(SECTION_HEADER_LEN).filter_map(|h| {
            Some(Section {
                virtual_size: u32_at(h, 8).ok()?,
                virtual_address: u32_at(h, 12).ok()?,
                raw_size: u32_at(h, 16).ok()?,
                raw_offset: u32_at(h, 20).ok()?,
                characteristics: u32_at(h, 36).ok()?,
            })
        })
    }

    /// `len` bytes at `rva`, all inside the image (and, on disk, inside one
    /// section's raw data or the headers).
    fn slice(&self, rva: u32, len: usize) -> Result<&'a [u8], NtStatus> {
        let start = self.offset_of(rva, len)?;
        self.image.get(start..add(start, len)?).ok_or(BAD)
    }

    /// All bytes from `rva` to the end of the region holding it, at most `max`.
    fn tail(&self, rva: u32, max: usize) -> Result<&'a [u8], NtStatus> {
        let (start, available) = self.region_of(rva)?;
        let len = available.min(max);
        self.image.get(start..add(start, len)?).ok_or(BAD)
    }

    fn offset_of(&self, rva: u32, len: usize) -> Result<usize, NtStatus> {
        let (start, available) = self.region_of(rva)?;
        if len > available {
            return Err(BAD);
        }
        Ok(start)
    }

    /// The section holding `rva` (in memory), with `rva`'s offset into it.
    fn section_of(&self, rva: u32) -> Option<(Section, u32)> {
        self.sections().find_map(|s| {
            let delta = rva.checked_sub(s.virtual_address)?;
            (delta < s.span()).then_some((s, delta))
        })
    }

    /// File offset of `rva` and how many bytes of the same region follow it.
    ///
    /// A region is one section (its raw data, on disk) or the headers. A
    /// discardable section (`INIT`) is refused in both layouts: the kernel
    /// frees it once `DriverEntry` has returned, so the loader must never
    /// read it.
    fn region_of(&self, rva: u32) -> Result<(usize, usize), NtStatus> {
        if rva >= self.size_of_image {
            return Err(BAD);
        }
        let rva_offset = to_usize(rva)?;
        if let Some((s, delta)) = self.section_of(rva) {
            if s.characteristics & IMAGE_SCN_MEM_DISCARDABLE != 0 {
                return Err(BAD);
            }
            return match self.layout {
                Layout::Mapped => {
                    let in_section = to_usize(s.span().checked_sub(delta).ok_or(BAD)?)?;
                    let end = to_usize(self.size_of_image)?.min(self.image.len());
                    let in_image = end.checked_sub(rva_offset).ok_or(BAD)?;
                    Ok((rva_offset, in_section.min(in_image)))
                }
                Layout::File => {
                    // Only the section's raw data exists on disk.
                    let in_file = s.raw_size.min(s.span()).checked_sub(delta).ok_or(BAD)?;
                    let start = add(to_usize(s.raw_offset)?, to_usize(delta)?)?;
                    let file_left = self.image.len().checked_sub(start).ok_or(BAD)?;
                    Ok((start, to_usize(in_file)?.min(file_left)))
                }
            };
        }
        if rva < self.header_bytes {
            let end = to_usize(self.header_bytes)?.min(self.image.len());
            return Ok((rva_offset, end.checked_sub(rva_offset).ok_or(BAD)?));
        }
        Err(BAD)
    }

    fn export_directory(&self) -> Result<ExportDirectory<'a>, NtStatus> {
        if self.export_rva == 0 || self.export_size == 0 {
            return Err(NOT_FOUND);
        }
        let dir = self.slice(self.export_rva, EXPORT_DIRECTORY_LEN)?;
        let function_count = to_usize(u32_at(dir, 20)?)?;
        let name_count = to_usize(u32_at(dir, 24)?)?;
        let functions = self.slice(u32_at(dir, 28)?, function_count.checked_mul(4).ok_or(BAD)?)?;
        let names = self.slice(u32_at(dir, 32)?, name_count.checked_mul(4).ok_or(BAD)?)?;
        let ordinals = self.slice(u32_at(dir, 36)?, name_count.checked_mul(2).ok_or(BAD)?)?;
        Ok(ExportDirectory { functions, names, ordinals })
    }

    /// The NUL-terminated name at `rva`, without its NUL.
    fn c_str(&self, rva: u32) -> Result<&'a [u8], NtStatus> {
        let bytes = self.tail(rva, add(MAX_EXPORT_NAME, 1)?)?;
        let nul = bytes.iter().position(|b| *b == 0).ok_or(BAD)?;
        bytes.get(..nul).ok_or(BAD)
    }

    /// The RVA export `index` of the name table resolves to.
    fn resolve(&self, dir: &ExportDirectory<'_>, index: usize) -> Result<u32, NtStatus> {
        let ordinal = usize::from(u16_at(dir.ordinals, index.checked_mul(2).ok_or(BAD)?)?);
        let rva = u32_at(dir.functions, ordinal.checked_mul(4).ok_or(BAD)?)?;
        if rva == 0 {
            return Err(NOT_FOUND);
        }
        let forwarded = rva.checked_sub(self.export_rva).is_some_and(|delta| delta < self.export_size);
        if forwarded {
            return Err(NOT_FOUND);
        }
        if rva >= self.size_of_image {
            return Err(BAD);
        }
        Ok(rva)
    }
}

struct ExportDirectory<'a> {
    functions: &'a [u8],
    names: &'a [u8],
    ordinals: &'a [u8],
}

impl ExportDirectory<'_> {
    fn name_rva(&self, index: usize) -> Result<u32, NtStatus> {
        u32_at(self.names, index.checked_mul(4).ok_or(BAD)?)
    }

    fn name_count(&self) -> usize {
        self.names.len() / 4
    }
}

/// The RVA of the export `name`.
///
/// A malformed image (bad headers, tables or name pointers outside the
/// image, a name without NUL, an ordinal past the address table) gives
/// `STATUS_INVALID_IMAGE_FORMAT`; a missing name, a forwarded export or an
/// image without export directory gives `STATUS_PROCEDURE_NOT_FOUND`.
pub fn export_rva(image: &[u8], layout: Layout, name: &str) -> Result<u32, NtStatus> {
    let headers = Headers::parse(image, layout)?;
    let dir = headers.export_directory()?;
    let wanted = name.as_bytes();
    for index in 0..dir.name_count() {
        if headers.c_str(dir.name_rva(index)?)? == wanted {
            return headers.resolve(&dir, index);
        }
    }
    Err(NOT_FOUND)
}

/// `len` bytes at `rva` in the image, or `STATUS_INVALID_IMAGE_FORMAT` if
/// any of them lies outside it (on disk: outside one section's raw data).
pub fn slice_at_rva(image: &[u8], layout: Layout, rva: u32, len: usize) -> Result<&[u8], NtStatus> {
    Headers::parse(image, layout)?.slice(rva, len)
}

/// Checks that `rva` may be called once `DriverEntry` has returned: it lies
/// in an executable section that the kernel does not discard, else
/// `STATUS_INVALID_IMAGE_FORMAT`. The loader runs this on the registration
/// entry and on the descriptor's teardown and shutdown entries.
pub fn check_code_rva(image: &[u8], layout: Layout, rva: u32) -> Result<(), NtStatus> {
    let headers = Headers::parse(image, layout)?;
    if rva >= headers.size_of_image {
        return Err(BAD);
    }
    match headers.section_of(rva) {
        Some((s, _))
            if s.characteristics & IMAGE_SCN_MEM_EXECUTE != 0 && s.characteristics & IMAGE_SCN_MEM_DISCARDABLE == 0 =>
        {
            Ok(())
        }
        _ => Err(BAD),
    }
}

/// The image's `SizeOfImage`, after the header checks [`export_rva`] makes.
pub fn size_of_image(image: &[u8], layout: Layout) -> Result<u32, NtStatus> {
    Headers::parse(image, layout).map(|h| h.size_of_image)
}

/// The export names in table order, for tests and diagnostics. A malformed
/// image or name yields one `Err` and ends the iteration.
pub fn export_names(image: &[u8], layout: Layout) -> impl Iterator<Item = Result<&[u8], NtStatus>> {
    let state = Headers::parse(image, layout).and_then(|h| {
        let dir = h.export_directory()?;
        Ok((h, dir))
    });
    let (mut state, mut failed) = match state {
        Ok(s) => (Some(s), None),
        Err(NOT_FOUND) => (None, None),
        Err(e) => (None, Some(e)),
    };
    let mut index = 0usize;
    core::iter::from_fn(move || {
        if let Some(e) = failed.take() {
            return Some(Err(e));
        }
        let (headers, dir) = state.as_ref()?;
        if index >= dir.name_count() {
            return None;
        }
        let name = dir.name_rva(index).and_then(|rva| headers.c_str(rva));
        index = index.checked_add(1)?;
        if name.is_err() {
            state = None;
        }
        Some(name)
    })
}

/// Bytes of a [`PayloadDescriptor`].
pub const DESCRIPTOR_LEN: usize = size_of::<PayloadDescriptor>();

/// A [`PayloadDescriptor`] read as plain data: function pointers stay
/// numbers until [`RawDescriptor::validate`] has placed them in the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawDescriptor {
    pub size: u32,
    pub magic: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub payload_version: u32,
    pub min_services_size: u32,
    pub flags: u32,
    pub name: [u16; NAME_CHARS],
    pub teardown_va: u64,
    pub shutdown_va: u64,
}

/// Reads a descriptor in the `repr(C)` little-endian layout of
/// [`PayloadDescriptor`]; fewer than 104 bytes give
/// `STATUS_INFO_LENGTH_MISMATCH`. Checks nothing else: see
/// [`RawDescriptor::validate`].
pub fn parse_descriptor(bytes: &[u8]) -> Result<RawDescriptor, NtStatus> {
    let d = bytes.get(..DESCRIPTOR_LEN).ok_or(NtStatus::INFO_LENGTH_MISMATCH)?;
    let mut name = [0u16; NAME_CHARS];
    let mut offset = 24;
    for ch in &mut name {
        *ch = u16_at(d, offset)?;
        offset = add(offset, 2)?;
    }
    Ok(RawDescriptor {
        size: u32_at(d, 0)?,
        magic: u32_at(d, 4)?,
        abi_major: u16_at(d, 8)?,
        abi_minor: u16_at(d, 10)?,
        payload_version: u32_at(d, 12)?,
        min_services_size: u32_at(d, 16)?,
        flags: u32_at(d, 20)?,
        name,
        teardown_va: u64_at(d, 88)?,
        shutdown_va: u64_at(d, 96)?,
    })
}

impl RawDescriptor {
    /// The fields the protocol's descriptor check (`crate::descriptor::check`,
    /// the one decision about a payload's identity) works on.
    /// `entries_inside_image` is the caller's finding that the registration
    /// entry and the descriptor's entries are code of the image (the loader
    /// uses [`check_code_rva`] on the mapped image).
    #[must_use]
    pub fn to_info(&self, entries_inside_image: bool) -> DescriptorInfo {
        DescriptorInfo {
            size: self.size,
            magic: self.magic,
            abi_major: self.abi_major,
            abi_minor: self.abi_minor,
            payload_version: self.payload_version,
            min_services_size: self.min_services_size,
            flags: self.flags,
            name: self.name,
            has_teardown: self.teardown_va != 0,
            entries_inside_image,
        }
    }

    /// Whether `register_va` and the descriptor's non-null entries lie in
    /// `image_base..image_base + image_size` (a bounds check only; tools and
    /// tests use it where no mapped image is at hand).
    #[must_use]
    pub fn entries_inside(&self, register_va: u64, image_base: u64, image_size: u64) -> bool {
        let Some(end) = image_base.checked_add(image_size) else { return false };
        let inside = |va: u64| va >= image_base && va < end;
        inside(register_va)
            && (self.teardown_va == 0 || inside(self.teardown_va))
            && (self.shutdown_va == 0 || inside(self.shutdown_va))
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    clippy::panic,
    clippy::cast_possible_truncation
)]
mod tests {
    extern crate std;
    use super::*;
    use shared_abi::payload::{utf16_name, DESCRIPTOR_EXPORT, PAYLOAD_MAGIC, REGISTER_EXPORT};
    use shared_abi::ABI_MAJOR;
    use std::vec::Vec;
    use std::{format, vec};

    /// Where an export of the fixture points.
    #[derive(Clone, Copy)]
    enum Target {
        /// An offset into the fixture's `.text`.
        Code(u32),
        /// The descriptor in `.rdata`.
        Descriptor,
        /// A forwarder string `"OTHER.<name>"`.
        Forward,
    }

    const TEXT_RVA: u32 = 0x1000;
    const RDATA_RVA: u32 = 0x2000;
    const TEXT_RAW: usize = 0x200;
    const RDATA_RAW: usize = 0xA00;
    const SECTION_RAW_LEN: usize = 0x800;
    /// `.rdata` is larger in memory than on disk (a zero-filled tail).
    const RDATA_VIRTUAL_LEN: u32 = 0x1000;
    const IMAGE_SIZE: u32 = 0x3000;
    const OPTIONAL_LEN: usize = 240;

    fn put16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// Offsets of the fixture's interesting fields, for the corruption tests.
    struct Fixture {
        file: Vec<u8>,
        /// File offset of the export directory.
        dir: usize,
        /// File offset of the first name string.
        first_name: usize,
        descriptor_rva: u32,
    }

    fn sample_descriptor() -> [u8; DESCRIPTOR_LEN] {
        let mut d = [0u8; DESCRIPTOR_LEN];
        put32(&mut d, 0, DESCRIPTOR_LEN as u32);
        put32(&mut d, 4, PAYLOAD_MAGIC);
        put16(&mut d, 8, ABI_MAJOR);
        put16(&mut d, 10, 3);
        put32(&mut d, 12, 2);
        put32(&mut d, 16, 48);
        for (i, ch) in utf16_name("CounterFilter v2").iter().enumerate() {
            put16(&mut d, 24 + 2 * i, *ch);
        }
        put64(&mut d, 88, 0x1_4000_1010);
        put64(&mut d, 96, 0x1_4000_1020);
        d
    }

    /// A PE32+ file with `.text` and `.rdata` whose file offsets differ from
    /// their RVAs, and an export directory naming `exports` (sorted).
    #[allow(clippy::too_many_lines)]
    fn build(exports: &[(&str, Target)]) -> Fixture {
        let mut file = vec![0u8; RDATA_RAW + SECTION_RAW_LEN];
        // DOS header.
        put16(&mut file, 0, 0x5A4D);
        put32(&mut file, 0x3C, 0x40);
        // NT headers.
        put32(&mut file, 0x40, 0x4550);
        let coff = 0x44;
        put16(&mut file, coff, 0x8664);
        put16(&mut file, coff + 2, 2);
        put16(&mut file, coff + 16, OPTIONAL_LEN as u16);
        put16(&mut file, coff + 18, 0x2022);
        let opt = coff + 20;
        put16(&mut file, opt, 0x20B);
        put32(&mut file, opt + 16, TEXT_RVA); // AddressOfEntryPoint
        put64(&mut file, opt + 24, 0x1_4000_0000); // ImageBase
        put32(&mut file, opt + 32, 0x1000); // SectionAlignment
        put32(&mut file, opt + 36, 0x200); // FileAlignment
        put32(&mut file, opt + 56, IMAGE_SIZE);
        put32(&mut file, opt + 60, 0x200); // SizeOfHeaders
        put16(&mut file, opt + 68, 1); // Subsystem: native
        put32(&mut file, opt + 108, 16);
        // Sections.
        let table = opt + OPTIONAL_LEN;
        for (i, (name, rva, virtual_len, raw, flags)) in [
            (*b".text\0\0\0", TEXT_RVA, SECTION_RAW_LEN as u32, TEXT_RAW, 0x6000_0020u32),
            (*b".rdata\0\0", RDATA_RVA, RDATA_VIRTUAL_LEN, RDATA_RAW, 0x4000_0040),
        ]
        .into_iter()
        .enumerate()
        {
            let h = table + 40 * i;
            file[h..h + 8].copy_from_slice(&name);
            put32(&mut file, h + 8, virtual_len);
            put32(&mut file, h + 12, rva);
            put32(&mut file, h + 16, SECTION_RAW_LEN as u32);
            put32(&mut file, h + 20, raw as u32);
            put32(&mut file, h + 36, flags);
        }
        // .text: a recognisable byte pattern.
        for (i, b) in file[TEXT_RAW..TEXT_RAW + SECTION_RAW_LEN].iter_mut().enumerate() {
            *b = (i as u8) ^ 0xCC;
        }
        // .rdata: directory, tables, strings, descriptor.
        let mut sorted: Vec<(&str, Target)> = exports.to_vec();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let n = sorted.len();
        let dir = RDATA_RAW;
        let functions = dir + 40;
        let names = functions + 4 * n;
        let ordinals = names + 4 * n;
        let mut strings = ordinals + 2 * n;
        let rva_of = |offset: usize| RDATA_RVA + (offset - RDATA_RAW) as u32;
        let descriptor = RDATA_RAW + 0x700;
        file[descriptor..descriptor + DESCRIPTOR_LEN].copy_from_slice(&sample_descriptor());
        let dll_name = strings;
        file[strings..strings + 12].copy_from_slice(b"payload.sys\0");
        strings += 12;
        let mut first_name = 0;
        for (i, (name, target)) in sorted.iter().enumerate() {
            if i == 0 {
                first_name = strings;
            }
            put32(&mut file, names + 4 * i, rva_of(strings));
            put16(&mut file, ordinals + 2 * i, i as u16);
            file[strings..strings + name.len()].copy_from_slice(name.as_bytes());
            strings += name.len() + 1;
            let rva = match target {
                Target::Code(off) => TEXT_RVA + off,
                Target::Descriptor => rva_of(descriptor),
                Target::Forward => {
                    let fwd = format!("OTHER.{name}");
                    let at = strings;
                    file[at..at + fwd.len()].copy_from_slice(fwd.as_bytes());
                    strings += fwd.len() + 1;
                    rva_of(at)
                }
            };
            put32(&mut file, functions + 4 * i, rva);
        }
        assert!(strings <= descriptor, "fixture strings overflow into the descriptor");
        put32(&mut file, dir + 12, rva_of(dll_name));
        put32(&mut file, dir + 16, 1); // Base
        put32(&mut file, dir + 20, n as u32);
        put32(&mut file, dir + 24, n as u32);
        put32(&mut file, dir + 28, rva_of(functions));
        put32(&mut file, dir + 32, rva_of(names));
        put32(&mut file, dir + 36, rva_of(ordinals));
        // Data directory 0: the export directory, up to the descriptor.
        put32(&mut file, opt + 112, RDATA_RVA);
        put32(&mut file, opt + 116, (descriptor - RDATA_RAW) as u32);
        Fixture { file, dir, first_name, descriptor_rva: rva_of(descriptor) }
    }

    fn payload() -> Fixture {
        build(&[
            (REGISTER_EXPORT, Target::Code(0x10)),
            (DESCRIPTOR_EXPORT, Target::Descriptor),
            ("DriverEntry", Target::Code(0)),
            ("Forwarded", Target::Forward),
        ])
    }

    /// Lays a file image out as the kernel maps it.
    fn map(file: &[u8]) -> Vec<u8> {
        let nt = u32_at(file, 0x3C).unwrap() as usize;
        let opt = nt + 24;
        let size = u32_at(file, opt + 56).unwrap() as usize;
        let headers = u32_at(file, opt + 60).unwrap() as usize;
        let count = u16_at(file, nt + 6).unwrap() as usize;
        let table = opt + u16_at(file, nt + 20).unwrap() as usize;
        let mut image = vec![0u8; size];
        image[..headers].copy_from_slice(&file[..headers]);
        for i in 0..count {
            let h = table + 40 * i;
            let va = u32_at(file, h + 12).unwrap() as usize;
            let raw_len = u32_at(file, h + 16).unwrap() as usize;
            let raw = u32_at(file, h + 20).unwrap() as usize;
            let virt = u32_at(file, h + 8).unwrap() as usize;
            let len = raw_len.min(if virt == 0 { raw_len } else { virt });
            image[va..va + len].copy_from_slice(&file[raw..raw + len]);
        }
        image
    }

    const BOTH: [Layout; 2] = [Layout::File, Layout::Mapped];

    fn image_for(f: &Fixture, layout: Layout) -> Vec<u8> {
        match layout {
            Layout::File => f.file.clone(),
            Layout::Mapped => map(&f.file),
        }
    }

    #[test]
    fn fixture_exports_resolve_in_both_layouts() {
        let f = payload();
        for layout in BOTH {
            let image = image_for(&f, layout);
            assert_eq!(export_rva(&image, layout, REGISTER_EXPORT), Ok(TEXT_RVA + 0x10));
            assert_eq!(export_rva(&image, layout, "DriverEntry"), Ok(TEXT_RVA));
            let at = export_rva(&image, layout, DESCRIPTOR_EXPORT).unwrap();
            assert_eq!(at, f.descriptor_rva);
            let bytes = slice_at_rva(&image, layout, at, DESCRIPTOR_LEN).unwrap();
            let d = parse_descriptor(bytes).unwrap();
            assert_eq!(d.magic, PAYLOAD_MAGIC);
            assert_eq!(d.payload_version, 2);
            assert_eq!(d.name, utf16_name("CounterFilter v2"));
            assert_eq!(d.teardown_va, 0x1_4000_1010);
            let info = d.to_info(d.entries_inside(0x1_4000_1000, 0x1_4000_0000, u64::from(IMAGE_SIZE)));
            assert_eq!(crate::descriptor::check(&info), Ok(()));
            let code = slice_at_rva(&image, layout, TEXT_RVA + 4, 4).unwrap();
            assert_eq!(code, &[4 ^ 0xCC, 5 ^ 0xCC, 6 ^ 0xCC, 7 ^ 0xCC]);
            let names: Vec<_> = export_names(&image, layout).map(Result::unwrap).collect();
            assert_eq!(
                names,
                [&b"DriverEntry"[..], b"Forwarded", b"LoaderPayloadDescriptor", b"LoaderPayloadRegister"]
            );
            assert_eq!(size_of_image(&image, layout), Ok(IMAGE_SIZE));
        }
        // The layouts really differ: file offsets are not RVAs.
        assert_eq!(export_rva(&f.file, Layout::Mapped, REGISTER_EXPORT), Err(BAD));
    }

    #[test]
    fn missing_and_forwarded_exports_are_not_found() {
        let f = payload();
        for layout in BOTH {
            let image = image_for(&f, layout);
            assert_eq!(export_rva(&image, layout, "Forwarded"), Err(NOT_FOUND));
            assert_eq!(export_rva(&image, layout, "LoaderPayloadRegisterX"), Err(NOT_FOUND));
            assert_eq!(export_rva(&image, layout, "LoaderPayload"), Err(NOT_FOUND));
            assert_eq!(export_rva(&image, layout, ""), Err(NOT_FOUND));
        }
        let none = build(&[]);
        assert_eq!(export_rva(&none.file, Layout::File, REGISTER_EXPORT), Err(NOT_FOUND));
        // No export directory at all.
        let mut bare = payload().file;
        put32(&mut bare, 0x58 + 112, 0);
        put32(&mut bare, 0x58 + 116, 0);
        assert_eq!(export_rva(&bare, Layout::File, REGISTER_EXPORT), Err(NOT_FOUND));
        assert_eq!(export_names(&bare, Layout::File).count(), 0);
        // Zero data directories.
        let mut nodirs = payload().file;
        put32(&mut nodirs, 0x58 + 108, 0);
        assert_eq!(export_rva(&nodirs, Layout::File, REGISTER_EXPORT), Err(NOT_FOUND));
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let f = payload();
        for layout in BOTH {
            let image = image_for(&f, layout);
            for len in 0..image.len() {
                let cut = &image[..len];
                let r = export_rva(cut, layout, REGISTER_EXPORT);
                assert!(r.is_err(), "{layout:?} truncated to {len} resolved {r:?}");
                let _ = export_names(cut, layout).count();
                let _ = slice_at_rva(cut, layout, RDATA_RVA, 4);
            }
        }
        // A Mapped image shorter than SizeOfImage is malformed even if the
        // export directory happens to be inside it.
        let mapped = map(&f.file);
        assert_eq!(export_rva(&mapped[..0x2FFF], Layout::Mapped, REGISTER_EXPORT), Err(BAD));
    }

    #[test]
    fn bad_headers_are_invalid_image_format() {
        let f = payload();
        let corrupt = |at: usize, bytes: &[u8]| {
            let mut img = f.file.clone();
            img[at..at + bytes.len()].copy_from_slice(bytes);
            export_rva(&img, Layout::File, REGISTER_EXPORT)
        };
        assert_eq!(corrupt(0, b"ZM"), Err(BAD));
        assert_eq!(corrupt(0x3C, &u32::MAX.to_le_bytes()), Err(BAD));
        assert_eq!(corrupt(0x3C, &0x7FFF_FFF0u32.to_le_bytes()), Err(BAD));
        assert_eq!(corrupt(0x40, b"PX\0\0"), Err(BAD));
        assert_eq!(corrupt(0x58, &0x10Cu16.to_le_bytes()), Err(BAD)); // optional magic
        assert_eq!(corrupt(0x44 + 16, &0xFFFFu16.to_le_bytes()), Err(BAD)); // optional header length
        assert_eq!(corrupt(0x44 + 2, &0xFFFFu16.to_le_bytes()), Err(BAD)); // section count
                                                                           // Section count zero: the export directory RVA maps nowhere.
        assert_eq!(corrupt(0x44 + 2, &0u16.to_le_bytes()), Err(BAD));
    }

    #[test]
    fn out_of_range_rvas_and_huge_counts_are_refused() {
        let f = payload();
        let d = f.dir;
        let cases: [(usize, u32); 8] = [
            (d + 20, u32::MAX),      // NumberOfFunctions
            (d + 24, u32::MAX),      // NumberOfNames
            (d + 24, 0x4000_0000),   // NumberOfNames * 4 wraps in 32 bits
            (d + 28, u32::MAX),      // AddressOfFunctions
            (d + 32, 0x2FFF),        // AddressOfNames: last byte of the image
            (d + 36, IMAGE_SIZE),    // AddressOfNameOrdinals: just past the image
            (d + 20, 1),             // ordinals past the address table
            (0x58 + 112, 0x10_0000), // export directory RVA outside the image
        ];
        for layout in BOTH {
            for (at, value) in cases {
                let mut file = f.file.clone();
                put32(&mut file, at, value);
                let image = image_for_file(&file, layout);
                let r = export_rva(&image, layout, REGISTER_EXPORT);
                assert_eq!(r, Err(BAD), "{layout:?}: {value:#x} at {at:#x}");
            }
            let image = image_for(&f, layout);
            assert_eq!(slice_at_rva(&image, layout, u32::MAX, 1), Err(BAD));
            assert_eq!(slice_at_rva(&image, layout, IMAGE_SIZE - 4, 5), Err(BAD));
            assert_eq!(slice_at_rva(&image, layout, RDATA_RVA, usize::MAX), Err(BAD));
            // The zero-filled tail of .rdata exists in memory only.
            let tail = slice_at_rva(&image, layout, IMAGE_SIZE - 4, 4).map(<[u8]>::len);
            assert_eq!(tail, if layout == Layout::Mapped { Ok(4) } else { Err(BAD) });
        }
        let mut file = f.file.clone();
        put32(&mut file, 0x58 + 112, 0x2FE0);
        assert_eq!(export_rva(&file, Layout::File, REGISTER_EXPORT), Err(BAD));
        // An export whose address lies outside the image.
        let mut file = f.file.clone();
        for i in 0..4 {
            put32(&mut file, f.dir + 40 + 4 * i, 0xF000_0000);
        }
        assert_eq!(export_rva(&file, Layout::File, REGISTER_EXPORT), Err(BAD));
    }

    fn image_for_file(file: &[u8], layout: Layout) -> Vec<u8> {
        match layout {
            Layout::File => file.to_vec(),
            Layout::Mapped => map_lenient(file),
        }
    }

    /// Maps with the fixture's known layout, whatever the corrupted headers say.
    fn map_lenient(file: &[u8]) -> Vec<u8> {
        let mut image = vec![0u8; IMAGE_SIZE as usize];
        image[..0x200].copy_from_slice(&file[..0x200]);
        image[0x1000..0x1800].copy_from_slice(&file[TEXT_RAW..TEXT_RAW + SECTION_RAW_LEN]);
        image[0x2000..0x2800].copy_from_slice(&file[RDATA_RAW..RDATA_RAW + SECTION_RAW_LEN]);
        image
    }

    #[test]
    fn names_without_nul_are_refused() {
        let f = payload();
        // The first name runs to the end of .rdata's raw data with no NUL.
        let mut file = f.file.clone();
        for b in &mut file[f.first_name..] {
            if *b == 0 {
                *b = b'x';
            }
        }
        assert_eq!(export_rva(&file, Layout::File, REGISTER_EXPORT), Err(BAD));
        let names: Vec<_> = export_names(&file, Layout::File).collect();
        assert_eq!(names, [Err(BAD)]);
        // A name longer than MAX_EXPORT_NAME is refused too.
        let long = "N".repeat(MAX_EXPORT_NAME + 1);
        let padded = build(&[(long.as_str(), Target::Code(0))]);
        assert_eq!(export_rva(&padded.file, Layout::File, &long), Err(BAD));
        let ok = "N".repeat(MAX_EXPORT_NAME - 300);
        let fits = build(&[(ok.as_str(), Target::Code(0))]);
        assert_eq!(export_rva(&fits.file, Layout::File, &ok), Ok(TEXT_RVA));
    }

    #[test]
    fn descriptor_parsing_and_identity_checks() {
        let good = sample_descriptor();
        assert_eq!(parse_descriptor(&good[..103]), Err(NtStatus::INFO_LENGTH_MISMATCH));
        assert_eq!(parse_descriptor(&[]), Err(NtStatus::INFO_LENGTH_MISMATCH));
        let d = parse_descriptor(&good).unwrap();
        assert_eq!((d.size, d.abi_major, d.abi_minor, d.min_services_size, d.flags), (104, ABI_MAJOR, 3, 48, 0));
        assert_eq!(d.shutdown_va, 0x1_4000_1020);
        let base = 0x1_4000_0000;
        let size = u64::from(IMAGE_SIZE);
        let register = base + 0x1000;
        let verdict = |x: &RawDescriptor| crate::descriptor::check(&x.to_info(x.entries_inside(register, base, size)));
        assert_eq!(verdict(&d), Ok(()));
        let check = |f: fn(&mut RawDescriptor)| {
            let mut x = d;
            f(&mut x);
            verdict(&x)
        };
        assert_eq!(check(|x| x.magic = u32::from_le_bytes(*b"SLPX")), Err(BAD));
        assert_eq!(check(|x| x.abi_major = ABI_MAJOR + 1), Err(NtStatus::REVISION_MISMATCH));
        assert_eq!(check(|x| x.abi_minor = 99), Ok(()));
        assert_eq!(check(|x| x.size = 100), Err(NtStatus::INFO_LENGTH_MISMATCH));
        assert_eq!(check(|x| x.size = 200), Ok(()));
        assert_eq!(check(|x| x.min_services_size = 49), Err(NtStatus::INFO_LENGTH_MISMATCH));
        assert_eq!(check(|x| x.flags = 1), Err(NtStatus::INVALID_PARAMETER));
        assert_eq!(check(|x| x.teardown_va = 0), Err(NtStatus::PROCEDURE_NOT_FOUND));
        assert_eq!(check(|x| x.teardown_va = 0x1_4000_3000), Err(BAD));
        assert_eq!(check(|x| x.teardown_va = 0x1_3FFF_FFFF), Err(BAD));
        assert_eq!(check(|x| x.shutdown_va = 0), Ok(()));
        assert_eq!(check(|x| x.shutdown_va = 0xFFFF_F800_0000_0000), Err(BAD));
        assert!(!d.entries_inside(register, u64::MAX, 2));
    }

    const WINE_DIR: &str = "/usr/lib/x86_64-linux-gnu/wine/x86_64-windows";

    fn wine(name: &str) -> Vec<u8> {
        let path = format!("{WINE_DIR}/{name}");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (Wine is installed by the project's setup)"))
    }

    /// The section header holding `rva`, from a separate minimal reading.
    fn section_flags(file: &[u8], rva: u32) -> Option<u32> {
        let nt = u32_at(file, 0x3C).ok()? as usize;
        let count = u16_at(file, nt + 6).ok()? as usize;
        let table = nt + 24 + u16_at(file, nt + 20).ok()? as usize;
        (0..count).find_map(|i| {
            let h = table + 40 * i;
            let va = u32_at(file, h + 12).ok()?;
            let vs = u32_at(file, h + 8).ok()?;
            (rva >= va && rva < va + vs).then(|| u32_at(file, h + 36).ok()).flatten()
        })
    }

    #[test]
    fn real_wine_kernel_images_resolve_exports() {
        const CODE: u32 = 0x20;
        for (image, wanted) in [
            (
                "ntoskrnl.exe",
                &["KeBugCheckEx", "IoCreateDevice", "ZwLoadDriver", "ObReferenceObjectByName", "ExAllocatePoolWithTag"]
                    [..],
            ),
            ("fltmgr.sys", &["FltRegisterFilter", "FltStartFiltering", "FltUnregisterFilter"][..]),
            ("hal.dll", &["HalGetBusData", "HalMakeBeep"][..]),
        ] {
            let file = wine(image);
            let mapped = map(&file);
            let names: Vec<_> = export_names(&file, Layout::File).collect::<Result<_, _>>().unwrap();
            assert!(names.len() > 2, "{image}: {} names", names.len());
            assert!(names.windows(2).all(|w| w[0] < w[1]), "{image}: names not sorted");
            for name in wanted {
                let rva = export_rva(&file, Layout::File, name).unwrap_or_else(|e| panic!("{image}!{name}: {e}"));
                let flags = section_flags(&file, rva).expect("export inside a section");
                assert!(flags & CODE != 0, "{image}!{name} at {rva:#x} is not in code");
                assert_eq!(check_code_rva(&file, Layout::File, rva), Ok(()), "{image}!{name}");
                assert_eq!(export_rva(&mapped, Layout::Mapped, name), Ok(rva), "{image}!{name}");
            }
            assert_eq!(export_rva(&file, Layout::File, "LoaderPayloadRegister"), Err(NOT_FOUND));
            // Every named export resolves the same way in both layouts.
            for name in names.iter().take(400) {
                let name = core::str::from_utf8(name).unwrap();
                assert_eq!(
                    export_rva(&file, Layout::File, name),
                    export_rva(&mapped, Layout::Mapped, name),
                    "{image}!{name}"
                );
            }
        }
    }

    /// File offset of section `index`'s Characteristics in the fixture.
    const fn characteristics_at(index: usize) -> usize {
        0x58 + OPTIONAL_LEN + 40 * index + 36
    }

    #[test]
    fn discardable_sections_are_never_read_and_code_must_be_resident() {
        let f = payload();
        for layout in BOTH {
            let image = image_for(&f, layout);
            let register = export_rva(&image, layout, REGISTER_EXPORT).unwrap();
            assert_eq!(check_code_rva(&image, layout, register), Ok(()));
            // Data, headers, past the image: not callable.
            assert_eq!(check_code_rva(&image, layout, f.descriptor_rva), Err(BAD));
            assert_eq!(check_code_rva(&image, layout, 0x40), Err(BAD));
            assert_eq!(check_code_rva(&image, layout, IMAGE_SIZE), Err(BAD));
            assert_eq!(check_code_rva(&image, layout, u32::MAX), Err(BAD));
        }
        // .text marked discardable (like INIT): the entry would be freed.
        let mut init = f.file.clone();
        let at = characteristics_at(0);
        put32(&mut init, at, 0x6000_0020 | IMAGE_SCN_MEM_DISCARDABLE);
        for layout in BOTH {
            let image = image_for_file(&init, layout);
            let register = export_rva(&image, layout, REGISTER_EXPORT).unwrap();
            assert_eq!(check_code_rva(&image, layout, register), Err(BAD));
        }
        // .text not executable.
        let mut data = f.file.clone();
        put32(&mut data, at, 0x4000_0040);
        assert_eq!(check_code_rva(&data, Layout::File, TEXT_RVA), Err(BAD));
        // Export tables in a discardable section: refused before any read.
        let mut edata = f.file.clone();
        put32(&mut edata, characteristics_at(1), 0x4000_0040 | IMAGE_SCN_MEM_DISCARDABLE);
        for layout in BOTH {
            let image = image_for_file(&edata, layout);
            assert_eq!(export_rva(&image, layout, REGISTER_EXPORT), Err(BAD));
            assert_eq!(slice_at_rva(&image, layout, f.descriptor_rva, 8), Err(BAD));
        }
    }

    #[test]
    fn real_wine_forwarded_exports_are_refused() {
        // Both are forwarders ("NTDLL.Rtl…", "ntdll.Nls…") in Wine's images.
        let kernel32 = wine("kernel32.dll");
        assert_eq!(export_rva(&kernel32, Layout::File, "AcquireSRWLockExclusive"), Err(NOT_FOUND));
        assert!(export_names(&kernel32, Layout::File).any(|n| n == Ok(b"AcquireSRWLockExclusive")));
        let nt = wine("ntoskrnl.exe");
        assert_eq!(export_rva(&nt, Layout::File, "NlsAnsiCodePage"), Err(NOT_FOUND));
        assert!(export_rva(&kernel32, Layout::File, "CreateFileW").is_ok());
    }
}
