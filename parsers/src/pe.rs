//! Export-directory resolution on a payload image, bounds-checked and
//! panic-free.
//!
//! The loader runs this on a payload it has just loaded, as mapped at
//! `DriverStart` ([`Layout::Mapped`]); tests and tools run it on `.sys`
//! files ([`Layout::File`]). The image is outside input: every offset, count
//! and RVA is checked before use, every failure is an `NtStatus`, and
//! nothing here calls into or trusts the image. Forwarded exports are
//! refused: a payload's entry points must be its own code.
//!
//! Bytes are reached only through [`ImageBytes::read`], one range at a time.
//! On a mapped image the parser asks only for ranges that are resident once
//! `DriverEntry` has returned: the headers, which must fit in the image's
//! first page, and ranges inside one section the kernel keeps (not
//! `IMAGE_SCN_MEM_DISCARDABLE`, and not named `INIT...`, which Windows 7
//! frees after `DriverEntry` whatever its flags say). So the kernel side
//! never forms a reference to a discarded page.
use shared_abi::NtStatus;

/// How the image bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// As mapped by the kernel: an RVA is an offset into the bytes.
    Mapped,
    /// As on disk: RVAs map to file offsets through the section headers.
    File,
}

/// Read access to an image's bytes, one range at a time.
///
/// The kernel implements it over a referenced, mapped driver image
/// (`DriverStart`, `DriverSize`); `[u8]` implements it for files and tests.
/// With [`Layout::Mapped`] the parser calls [`ImageBytes::read`] only for
/// ranges that stay resident after `DriverEntry` (see the module docs), so
/// an implementation may create the slice for exactly the range asked.
pub trait ImageBytes {
    /// Total bytes (`DriverSize`, or the file length).
    fn size(&self) -> usize;
    /// `len` bytes at `offset`; `None` if any of them lies past [`size`](ImageBytes::size).
    fn read(&self, offset: usize, len: usize) -> Option<&[u8]>;
}

impl<T: AsRef<[u8]> + ?Sized> ImageBytes for T {
    fn size(&self) -> usize {
        self.as_ref().len()
    }
    fn read(&self, offset: usize, len: usize) -> Option<&[u8]> {
        self.as_ref().get(offset..offset.checked_add(len)?)
    }
}

/// Longest export name this parser follows (bytes, without the NUL).
pub const MAX_EXPORT_NAME: usize = 512;
/// Where a mapped image's headers must end: its first page, which the
/// kernel maps for the image's whole life.
pub const MAPPED_HEADER_LIMIT: usize = 0x1000;

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
/// `IMAGE_SCN_MEM_DISCARDABLE`: freed after `DriverEntry`.
pub const IMAGE_SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
/// Windows 7 frees a section whose name starts with this after
/// `DriverEntry`, whether or not it is marked discardable.
pub const INIT_SECTION_PREFIX: &[u8] = b"INIT";

fn read<const N: usize>(bytes: &[u8], offset: usize) -> Result<[u8; N], NtStatus> {
    let end = offset.checked_add(N).ok_or(BAD)?;
    let chunk = bytes.get(offset..end).ok_or(BAD)?;
    <[u8; N]>::try_from(chunk).map_err(|_| BAD)
}

pub(crate) fn u16_at(bytes: &[u8], offset: usize) -> Result<u16, NtStatus> {
    read(bytes, offset).map(u16::from_le_bytes)
}

pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> Result<u32, NtStatus> {
    read(bytes, offset).map(u32::from_le_bytes)
}

pub(crate) fn u64_at(bytes: &[u8], offset: usize) -> Result<u64, NtStatus> {
    read(bytes, offset).map(u64::from_le_bytes)
}

fn to_usize(v: u32) -> Result<usize, NtStatus> {
    usize::try_from(v).map_err(|_| BAD)
}

/// Offset `base + delta`, or `INVALID_IMAGE_FORMAT` on overflow.
pub(crate) fn add(base: usize, delta: usize) -> Result<usize, NtStatus> {
    base.checked_add(delta).ok_or(BAD)
}

/// One section header, as far as RVA mapping needs it.
#[derive(Clone, Copy)]
struct Section {
    name: [u8; 8],
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

    /// The kernel frees this section once `DriverEntry` has returned.
    fn discarded(&self) -> bool {
        self.characteristics & IMAGE_SCN_MEM_DISCARDABLE != 0 || self.name.starts_with(INIT_SECTION_PREFIX)
    }
}

/// The checked headers of a PE image.
struct Headers<'a, I: ImageBytes + ?Sized> {
    image: &'a I,
    layout: Layout,
    /// `ImageBase` from the optional header (the VA the file was linked for).
    image_base: u64,
    size_of_image: u32,
    header_bytes: u32,
    /// The section table's bytes, exactly `count * 40` of them.
    sections: &'a [u8],
    export_rva: u32,
    export_size: u32,
    /// PE32 (a 32-bit image: 4-byte pointers), not PE32+.
    pe32: bool,
}

impl<'a, I: ImageBytes + ?Sized> Headers<'a, I> {
    /// Header bytes: on a mapped image only from its first page.
    fn header(image: &'a I, layout: Layout, offset: usize, len: usize) -> Result<&'a [u8], NtStatus> {
        if layout == Layout::Mapped && add(offset, len)? > MAPPED_HEADER_LIMIT {
            return Err(BAD);
        }
        image.read(offset, len).ok_or(BAD)
    }

    fn parse(image: &'a I, layout: Layout) -> Result<Self, NtStatus> {
        let dos = Self::header(image, layout, 0, 0x40)?;
        if u16_at(dos, 0)? != DOS_MAGIC {
            return Err(BAD);
        }
        let nt = to_usize(u32_at(dos, 0x3C)?)?;
        let file_header = Self::header(image, layout, nt, 4 + COFF_HEADER_LEN)?;
        if u32_at(file_header, 0)? != NT_SIGNATURE {
            return Err(BAD);
        }
        let section_count = usize::from(u16_at(file_header, 4 + 2)?);
        let optional_len = usize::from(u16_at(file_header, 4 + 16)?);
        let optional = add(nt, 4 + COFF_HEADER_LEN)?;
        let optional_bytes = Self::header(image, layout, optional, optional_len)?;
        let (count_at, dirs_at, image_base, pe32) = match u16_at(optional_bytes, 0)? {
            PE32_MAGIC => (92, 96, u64::from(u32_at(optional_bytes, 28)?), true),
            PE32_PLUS_MAGIC => (108, 112, u64_at(optional_bytes, 24)?, false),
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
        let sections = Self::header(image, layout, table, table_len)?;
        match layout {
            Layout::Mapped if to_usize(size_of_image)? > image.size() => return Err(BAD),
            // On disk, a truncated file is malformed even where the parts
            // this lookup needs survived.
            Layout::File if to_usize(header_bytes)? > image.size() => return Err(BAD),
            Layout::File => {
                for h in sections.chunks_exact(SECTION_HEADER_LEN) {
                    let raw_size = to_usize(u32_at(h, 16)?)?;
                    let raw_offset = to_usize(u32_at(h, 20)?)?;
                    if raw_size != 0 && add(raw_offset, raw_size)? > image.size() {
                        return Err(BAD);
                    }
                }
            }
            Layout::Mapped => {}
        }
        Ok(Headers { image, layout, image_base, size_of_image, header_bytes, sections, export_rva, export_size, pe32 })
    }

    fn sections(&self) -> impl Iterator<Item = Section> + 'a {
        self.sections.chunks_exact(SECTION_HEADER_LEN).filter_map(|h| {
            Some(Section {
                name: read::<8>(h, 0).ok()?,
                virtual_size: u32_at(h, 8).ok()?,
                virtual_address: u32_at(h, 12).ok()?,
                raw_size: u32_at(h, 16).ok()?,
                raw_offset: u32_at(h, 20).ok()?,
                characteristics: u32_at(h, 36).ok()?,
            })
        })
    }

    /// `len` bytes at `rva`, all inside one resident region of the image
    /// (and, on disk, inside one section's raw data or the headers).
    fn slice(&self, rva: u32, len: usize) -> Result<&'a [u8], NtStatus> {
        let (start, available) = self.region_of(rva)?;
        if len > available {
            return Err(BAD);
        }
        self.image.read(start, len).ok_or(BAD)
    }

    /// All bytes from `rva` to the end of the region holding it, at most `max`.
    fn tail(&self, rva: u32, max: usize) -> Result<&'a [u8], NtStatus> {
        let (start, available) = self.region_of(rva)?;
        self.image.read(start, available.min(max)).ok_or(BAD)
    }

    /// The section holding `rva` (in memory), with `rva`'s offset into it.
    fn section_of(&self, rva: u32) -> Option<(Section, u32)> {
        self.sections().find_map(|s| {
            let delta = rva.checked_sub(s.virtual_address)?;
            (delta < s.span()).then_some((s, delta))
        })
    }

    /// Offset (in the bytes) of `rva` and how many bytes of the same region
    /// follow it.
    ///
    /// A region is one section (its raw data, on disk) or the headers. A
    /// section the kernel frees after `DriverEntry` (discardable, or named
    /// `INIT...`) is refused in both layouts: the loader must never read it.
    fn region_of(&self, rva: u32) -> Result<(usize, usize), NtStatus> {
        if rva >= self.size_of_image {
            return Err(BAD);
        }
        let rva_offset = to_usize(rva)?;
        if let Some((s, delta)) = self.section_of(rva) {
            if s.discarded() {
                return Err(BAD);
            }
            return match self.layout {
                Layout::Mapped => {
                    let in_section = to_usize(s.span().checked_sub(delta).ok_or(BAD)?)?;
                    let end = to_usize(self.size_of_image)?.min(self.image.size());
                    let in_image = end.checked_sub(rva_offset).ok_or(BAD)?;
                    Ok((rva_offset, in_section.min(in_image)))
                }
                Layout::File => {
                    // Only the section's raw data exists on disk.
                    let in_file = s.raw_size.min(s.span()).checked_sub(delta).ok_or(BAD)?;
                    let start = add(to_usize(s.raw_offset)?, to_usize(delta)?)?;
                    let file_left = self.image.size().checked_sub(start).ok_or(BAD)?;
                    Ok((start, to_usize(in_file)?.min(file_left)))
                }
            };
        }
        if rva < self.header_bytes {
            let mut end = to_usize(self.header_bytes)?.min(self.image.size());
            if self.layout == Layout::Mapped {
                end = end.min(MAPPED_HEADER_LIMIT);
            }
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

    fn find_export(&self, name: &str) -> Result<u32, NtStatus> {
        let dir = self.export_directory()?;
        let wanted = name.as_bytes();
        for index in 0..dir.name_count() {
            if self.c_str(dir.name_rva(index)?)? == wanted {
                return self.resolve(&dir, index);
            }
        }
        Err(NOT_FOUND)
    }

    fn check_code(&self, rva: u32) -> Result<(), NtStatus> {
        if rva >= self.size_of_image {
            return Err(BAD);
        }
        match self.section_of(rva) {
            Some((s, _)) if s.characteristics & IMAGE_SCN_MEM_EXECUTE != 0 && !s.discarded() => Ok(()),
            _ => Err(BAD),
        }
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

/// A parsed image: headers checked once, then any number of look-ups.
pub struct Image<'a, I: ImageBytes + ?Sized> {
    headers: Headers<'a, I>,
}

impl<'a, I: ImageBytes + ?Sized> Image<'a, I> {
    /// Checks the headers (DOS, NT, optional, section table).
    pub fn parse(image: &'a I, layout: Layout) -> Result<Self, NtStatus> {
        Headers::parse(image, layout).map(|headers| Image { headers })
    }

    /// The RVA of the export `name`.
    ///
    /// A malformed image (bad headers, tables or name pointers outside the
    /// image or in a discarded section, a name without NUL, an ordinal past
    /// the address table) gives `STATUS_INVALID_IMAGE_FORMAT`; a missing
    /// name, a forwarded export or an image without export directory gives
    /// `STATUS_PROCEDURE_NOT_FOUND`.
    pub fn export_rva(&self, name: &str) -> Result<u32, NtStatus> {
        self.headers.find_export(name)
    }

    /// `len` bytes at `rva`, or `STATUS_INVALID_IMAGE_FORMAT` if any of them
    /// lies outside one resident region (on disk: outside one section's raw
    /// data).
    pub fn slice_at_rva(&self, rva: u32, len: usize) -> Result<&'a [u8], NtStatus> {
        self.headers.slice(rva, len)
    }

    /// Checks that `rva` may be called once `DriverEntry` has returned: it
    /// lies in an executable section that the kernel does not free
    /// (not discardable, not `INIT...`), else `STATUS_INVALID_IMAGE_FORMAT`.
    pub fn check_code_rva(&self, rva: u32) -> Result<(), NtStatus> {
        self.headers.check_code(rva)
    }

    /// `SizeOfImage`.
    #[must_use]
    pub fn size_of_image(&self) -> u32 {
        self.headers.size_of_image
    }

    /// `ImageBase` (where the file was linked to run).
    #[must_use]
    pub fn image_base(&self) -> u64 {
        self.headers.image_base
    }

    /// Whether this is a PE32 image (32-bit, x86: 4-byte pointers in its
    /// data) rather than PE32+ (x64).
    #[must_use]
    pub fn is_pe32(&self) -> bool {
        self.headers.pe32
    }
}

/// The RVA of the export `name` ([`Image::export_rva`]).
pub fn export_rva<I: ImageBytes + ?Sized>(image: &I, layout: Layout, name: &str) -> Result<u32, NtStatus> {
    Image::parse(image, layout)?.export_rva(name)
}

/// [`Image::slice_at_rva`] on a fresh parse.
pub fn slice_at_rva<I: ImageBytes + ?Sized>(
    image: &I,
    layout: Layout,
    rva: u32,
    len: usize,
) -> Result<&[u8], NtStatus> {
    Headers::parse(image, layout)?.slice(rva, len)
}

/// [`Image::check_code_rva`] on a fresh parse.
pub fn check_code_rva<I: ImageBytes + ?Sized>(image: &I, layout: Layout, rva: u32) -> Result<(), NtStatus> {
    Image::parse(image, layout)?.check_code_rva(rva)
}

/// The image's `SizeOfImage`, after the header checks [`export_rva`] makes.
pub fn size_of_image<I: ImageBytes + ?Sized>(image: &I, layout: Layout) -> Result<u32, NtStatus> {
    Headers::parse(image, layout).map(|h| h.size_of_image)
}

/// The export names in table order, for tests and diagnostics. A malformed
/// image or name yields one `Err` and ends the iteration.
pub fn export_names<I: ImageBytes + ?Sized>(
    image: &I,
    layout: Layout,
) -> impl Iterator<Item = Result<&[u8], NtStatus>> {
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
    use crate::fixture::{
        build, characteristics_at, map, payload, put32, Fixture, Target, IMAGE_SIZE, RDATA_RAW, RDATA_RVA,
        SECTION_RAW_LEN, TEXT_RAW, TEXT_RVA,
    };
    use shared_abi::payload::{DESCRIPTOR_EXPORT, REGISTER_EXPORT};
    use std::vec::Vec;
    use std::{format, vec};

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
            assert_eq!(export_rva(&image[..], layout, REGISTER_EXPORT), Ok(TEXT_RVA + crate::fixture::REGISTER_OFFSET));
            assert_eq!(export_rva(&image, layout, "DriverEntry"), Ok(TEXT_RVA));
            let at = export_rva(&image, layout, DESCRIPTOR_EXPORT).unwrap();
            assert_eq!(at, f.descriptor_rva);
            assert_eq!(slice_at_rva(&image[..], layout, at, 8).map(<[u8]>::len), Ok(8));
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
