//! The payload check: the one decision the loader makes about an image
//! *before* it runs any of the image's code, and the checked view it keeps.
//!
//! [`inspect_mapped`] walks a referenced, mapped payload image once: it
//! finds the two exports, reads the descriptor (the ABI struct
//! `shared_abi::payload::PayloadDescriptor`, read here as little-endian
//! bytes), checks its identity and sizes, and checks that every entry point
//! is resident code of the image. The result, [`CheckedPayload`], carries the
//! entry points as data; the loader keeps it with its reference on the image
//! and calls through it, never looking the exports up again.
use crate::pe::{add, u16_at, u32_at, u64_at, Image, ImageBytes, Layout};
use core::mem::size_of;
use shared_abi::payload::{
    LoaderServices, PayloadDescriptor, DESCRIPTOR_EXPORT, DESCRIPTOR_SIZE_1_1, NAME_CHARS, PAYLOAD_MAGIC,
    REGISTER_EXPORT,
};
use shared_abi::{NtStatus, ABI_MAJOR};

/// Bytes of the descriptor this loader reads (`size_of::<PayloadDescriptor>()`).
pub const DESCRIPTOR_LEN: usize = size_of::<PayloadDescriptor>();
/// Bytes of a 1.0/1.1 descriptor: the least a payload may declare.
pub const MIN_DESCRIPTOR_LEN: usize = DESCRIPTOR_SIZE_1_1 as usize;

/// Where the pointer-sized fields of a `PayloadDescriptor` lie in an image
/// of one architecture: the layout follows the image (PE32+ for x64, PE32
/// for x86), so a host tool reads either, and the loader refuses an image
/// of the other architecture ([`inspect_mapped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DescriptorLayout {
    pointer: usize,
    teardown: usize,
    shutdown: usize,
    quiesce: usize,
    export_state: usize,
    import_state: usize,
    /// The whole ABI 1.2 descriptor.
    len: usize,
    /// A 1.0/1.1 descriptor.
    min_len: usize,
    /// `size_of::<LoaderServices>()` on that architecture.
    services_len: usize,
}

/// The x64 layout (asserted against the struct in `shared_abi::payload`).
const X64_DESCRIPTOR: DescriptorLayout = DescriptorLayout {
    pointer: 8,
    teardown: 88,
    shutdown: 96,
    quiesce: 104,
    export_state: 112,
    import_state: 120,
    len: 128,
    min_len: 104,
    services_len: 80,
};

/// The x86 layout (asserted against the struct in `shared_abi::payload`).
const X86_DESCRIPTOR: DescriptorLayout = DescriptorLayout {
    pointer: 4,
    teardown: 88,
    shutdown: 92,
    quiesce: 96,
    export_state: 100,
    import_state: 104,
    len: 108,
    min_len: 96,
    services_len: 52,
};

/// The layout of the architecture this code is compiled for: the one a
/// loader can call.
#[cfg(target_pointer_width = "64")]
const NATIVE_DESCRIPTOR: DescriptorLayout = X64_DESCRIPTOR;
#[cfg(target_pointer_width = "32")]
const NATIVE_DESCRIPTOR: DescriptorLayout = X86_DESCRIPTOR;
const _: () = assert!(NATIVE_DESCRIPTOR.len == DESCRIPTOR_LEN);
const _: () = assert!(NATIVE_DESCRIPTOR.min_len == MIN_DESCRIPTOR_LEN);
const _: () = assert!(NATIVE_DESCRIPTOR.services_len == size_of::<LoaderServices>());
const _: () = assert!(NATIVE_DESCRIPTOR.pointer == size_of::<usize>());
#[cfg(target_pointer_width = "64")]
const _: () = assert!(
    core::mem::offset_of!(PayloadDescriptor, teardown) == X64_DESCRIPTOR.teardown
        && core::mem::offset_of!(PayloadDescriptor, shutdown) == X64_DESCRIPTOR.shutdown
        && core::mem::offset_of!(PayloadDescriptor, quiesce) == X64_DESCRIPTOR.quiesce
        && core::mem::offset_of!(PayloadDescriptor, export_state) == X64_DESCRIPTOR.export_state
        && core::mem::offset_of!(PayloadDescriptor, import_state) == X64_DESCRIPTOR.import_state
);
#[cfg(target_pointer_width = "32")]
const _: () = assert!(
    core::mem::offset_of!(PayloadDescriptor, teardown) == X86_DESCRIPTOR.teardown
        && core::mem::offset_of!(PayloadDescriptor, shutdown) == X86_DESCRIPTOR.shutdown
        && core::mem::offset_of!(PayloadDescriptor, quiesce) == X86_DESCRIPTOR.quiesce
        && core::mem::offset_of!(PayloadDescriptor, export_state) == X86_DESCRIPTOR.export_state
        && core::mem::offset_of!(PayloadDescriptor, import_state) == X86_DESCRIPTOR.import_state
);

impl DescriptorLayout {
    /// A pointer-sized field at `offset` of `d`, widened.
    fn pointer_at(&self, d: &[u8], offset: usize) -> Result<u64, NtStatus> {
        if self.pointer == 4 {
            u32_at(d, offset).map(u64::from)
        } else {
            u64_at(d, offset)
        }
    }
}

/// A payload's entry points: virtual addresses of resident code of the
/// checked image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryPoints {
    /// `LoaderPayloadRegister`.
    pub register: u64,
    /// The descriptor's teardown entry.
    pub teardown: u64,
    /// The descriptor's shutdown hook, if any.
    pub shutdown: Option<u64>,
    /// ABI 1.2: the handover entries, if the payload has them.
    pub handover: Option<HandoverEntries>,
}

/// A payload's handover entries (ABI 1.2): a payload with them reads the
/// loader's owner word in its callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandoverEntries {
    /// Stops filtering for good, keeping the state.
    pub quiesce: u64,
    /// Optional state export and import, both or neither.
    pub state: Option<StateEntries>,
}

/// The optional state pair of [`HandoverEntries`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateEntries {
    /// `export_state`.
    pub export: u64,
    /// `import_state`.
    pub import: u64,
}

/// What the loader knows about a payload whose image passed the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedPayload {
    /// ABI minor version the payload was built against.
    pub abi_minor: u16,
    /// The filter's own version (`loaderctl status` shows it).
    pub payload_version: u32,
    /// Display name, UTF-16, NUL padded.
    pub name: [u16; NAME_CHARS],
    /// Where to call it.
    pub entries: EntryPoints,
}

/// The descriptor's fields as the image declares them, unchecked.
struct Declared {
    size: u32,
    magic: u32,
    abi_major: u16,
    abi_minor: u16,
    payload_version: u32,
    min_services_size: u32,
    flags: u32,
    name: [u16; NAME_CHARS],
    teardown: u64,
    shutdown: u64,
    /// ABI 1.2 entries, zero when the descriptor is older or smaller.
    quiesce: u64,
    export_state: u64,
    import_state: u64,
}

impl Declared {
    /// Reads the `repr(C)` little-endian layout of `PayloadDescriptor`.
    fn read(d: &[u8], layout: &DescriptorLayout) -> Result<Declared, NtStatus> {
        let mut name = [0u16; NAME_CHARS];
        let mut offset = 24;
        for ch in &mut name {
            *ch = u16_at(d, offset)?;
            offset = add(offset, 2)?;
        }
        Ok(Declared {
            size: u32_at(d, 0)?,
            magic: u32_at(d, 4)?,
            abi_major: u16_at(d, 8)?,
            abi_minor: u16_at(d, 10)?,
            payload_version: u32_at(d, 12)?,
            min_services_size: u32_at(d, 16)?,
            flags: u32_at(d, 20)?,
            name,
            teardown: layout.pointer_at(d, layout.teardown)?,
            shutdown: layout.pointer_at(d, layout.shutdown)?,
            quiesce: 0,
            export_state: 0,
            import_state: 0,
        })
    }

    /// Reads the ABI 1.2 entries from the whole descriptor `d` (at least
    /// `layout.len` bytes).
    fn read_handover(&mut self, d: &[u8], layout: &DescriptorLayout) -> Result<(), NtStatus> {
        self.quiesce = layout.pointer_at(d, layout.quiesce)?;
        self.export_state = layout.pointer_at(d, layout.export_state)?;
        self.import_state = layout.pointer_at(d, layout.import_state)?;
        Ok(())
    }

    /// Whether the descriptor carries the ABI 1.2 entries.
    fn has_handover_fields(&self, layout: &DescriptorLayout) -> bool {
        self.abi_minor >= 2 && usize::try_from(self.size).is_ok_and(|s| s >= layout.len)
    }

    /// Identity and sizes. Order matters: a wrong magic means "not a
    /// payload at all", so nothing else in it can be trusted; then the ABI
    /// major; then sizes; then flags; then the mandatory entry.
    fn check(&self, layout: &DescriptorLayout) -> Result<(), NtStatus> {
        if self.magic != PAYLOAD_MAGIC {
            return Err(NtStatus::INVALID_IMAGE_FORMAT);
        }
        if self.abi_major != ABI_MAJOR {
            return Err(NtStatus::REVISION_MISMATCH);
        }
        // Minor versions only append fields: a larger descriptor is fine.
        let services_needed = usize::try_from(self.min_services_size).unwrap_or(usize::MAX);
        if usize::try_from(self.size).unwrap_or(0) < layout.min_len || services_needed > layout.services_len {
            return Err(NtStatus::INFO_LENGTH_MISMATCH);
        }
        if self.flags != 0 {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        if self.teardown == 0 {
            return Err(NtStatus::PROCEDURE_NOT_FOUND);
        }
        // State export and import come as a pair, and only with quiesce.
        if (self.export_state == 0) != (self.import_state == 0) || (self.export_state != 0 && self.quiesce == 0) {
            return Err(NtStatus::PROCEDURE_NOT_FOUND);
        }
        Ok(())
    }
}

/// Checks a payload image as the kernel mapped it at `base` (`DriverStart`)
/// and returns its checked view.
///
/// In this order, each failure refusing the image before any of its code
/// runs: both exports exist (`STATUS_PROCEDURE_NOT_FOUND`; a malformed image
/// `STATUS_INVALID_IMAGE_FORMAT`); magic (`STATUS_INVALID_IMAGE_FORMAT`);
/// ABI major (`STATUS_REVISION_MISMATCH`); descriptor and services sizes
/// (`STATUS_INFO_LENGTH_MISMATCH`); reserved flags (`STATUS_INVALID_PARAMETER`);
/// a teardown entry (`STATUS_PROCEDURE_NOT_FOUND`); every entry resident code
/// of the image, not in a section freed after `DriverEntry`
/// (`STATUS_INVALID_IMAGE_FORMAT`). An image of the other architecture
/// (PE32 for a 64-bit loader, PE32+ for a 32-bit one) is
/// `STATUS_INVALID_IMAGE_FORMAT` too: the loader could not call it.
pub fn inspect_mapped<I: ImageBytes + ?Sized>(image: &I, base: u64) -> Result<CheckedPayload, NtStatus> {
    let parsed = Image::parse(image, Layout::Mapped)?;
    if layout_of(&parsed) != NATIVE_DESCRIPTOR {
        return Err(NtStatus::INVALID_IMAGE_FORMAT);
    }
    inspect(&parsed, base)
}

/// [`inspect_mapped`] on a `.sys` file of either architecture (the
/// descriptor's layout follows the file's): entry points are VAs as linked
/// (relative to the file's `ImageBase`).
pub fn inspect_file<I: ImageBytes + ?Sized>(image: &I) -> Result<CheckedPayload, NtStatus> {
    let parsed = Image::parse(image, Layout::File)?;
    let base = parsed.image_base();
    inspect(&parsed, base)
}

fn layout_of<I: ImageBytes + ?Sized>(image: &Image<'_, I>) -> DescriptorLayout {
    if image.is_pe32() {
        X86_DESCRIPTOR
    } else {
        X64_DESCRIPTOR
    }
}

fn inspect<I: ImageBytes + ?Sized>(image: &Image<'_, I>, base: u64) -> Result<CheckedPayload, NtStatus> {
    let layout = layout_of(image);
    let register_rva = image.export_rva(REGISTER_EXPORT)?;
    let descriptor_rva = image.export_rva(DESCRIPTOR_EXPORT)?;
    let mut declared = Declared::read(image.slice_at_rva(descriptor_rva, layout.min_len)?, &layout)?;
    if declared.magic == PAYLOAD_MAGIC && declared.abi_major == ABI_MAJOR && declared.has_handover_fields(&layout) {
        declared.read_handover(image.slice_at_rva(descriptor_rva, layout.len)?, &layout)?;
    }
    declared.check(&layout)?;
    let code = |va: u64| -> Result<u64, NtStatus> {
        let rva = va.checked_sub(base).and_then(|r| u32::try_from(r).ok()).ok_or(NtStatus::INVALID_IMAGE_FORMAT)?;
        image.check_code_rva(rva).map(|()| va)
    };
    image.check_code_rva(register_rva)?;
    let register = base.checked_add(u64::from(register_rva)).ok_or(NtStatus::INVALID_IMAGE_FORMAT)?;
    let entries = EntryPoints {
        register,
        teardown: code(declared.teardown)?,
        shutdown: match declared.shutdown {
            0 => None,
            va => Some(code(va)?),
        },
        handover: match declared.quiesce {
            0 => None,
            va => Some(HandoverEntries {
                quiesce: code(va)?,
                state: match (declared.export_state, declared.import_state) {
                    (0, _) | (_, 0) => None,
                    (export, import) => Some(StateEntries { export: code(export)?, import: code(import)? }),
                },
            }),
        },
    };
    Ok(CheckedPayload {
        abi_minor: declared.abi_minor,
        payload_version: declared.payload_version,
        name: declared.name,
        entries,
    })
}

/// Whether `address` lies in `[start, start + size)`, without overflow.
#[must_use]
pub fn address_inside(address: u64, start: u64, size: u64) -> bool {
    address >= start && address.wrapping_sub(start) < size
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    extern crate std;
    use super::*;
    use crate::fixture::{self, put16, put32, put64, sample_descriptor, text_va, Target, IMAGE_BASE};
    use crate::pe::{IMAGE_SCN_MEM_DISCARDABLE, MAPPED_HEADER_LIMIT};
    use shared_abi::payload::utf16_name;

    const BASE: u64 = 0xFFFF_F880_0123_0000;

    /// The mapped fixture, relocated to `BASE` as the kernel would (only the
    /// descriptor's two pointers need it).
    fn mapped(d: &[u8; DESCRIPTOR_LEN], f: &fixture::Fixture) -> std::vec::Vec<u8> {
        let mut img = f.clone().with_descriptor(d).mapped();
        let at = f.descriptor_rva as usize;
        for field in [88, 96] {
            let va = u64::from_le_bytes(img[at + field..at + field + 8].try_into().unwrap());
            if va != 0 {
                put64(&mut img, at + field, va - IMAGE_BASE + BASE);
            }
        }
        img
    }

    fn check_mapped(d: &[u8; DESCRIPTOR_LEN]) -> Result<CheckedPayload, NtStatus> {
        inspect_mapped(&mapped(d, &fixture::payload())[..], BASE)
    }

    #[test]
    fn a_current_payload_passes_in_both_layouts_with_its_entries() {
        let c = check_mapped(&sample_descriptor()).unwrap();
        assert_eq!(c.payload_version, 2);
        assert_eq!(c.abi_minor, 3);
        assert_eq!(c.name, utf16_name("CounterFilter v2"));
        let rel = |off: u32| BASE + u64::from(fixture::TEXT_RVA + off);
        assert_eq!(
            c.entries,
            EntryPoints {
                register: rel(fixture::REGISTER_OFFSET),
                teardown: rel(fixture::TEARDOWN_OFFSET),
                shutdown: Some(rel(fixture::SHUTDOWN_OFFSET)),
                handover: None,
            }
        );
        let f = inspect_file(&fixture::payload().file[..]).unwrap();
        assert_eq!(f.entries.register, text_va(fixture::REGISTER_OFFSET));
        assert_eq!(f.entries.teardown, text_va(fixture::TEARDOWN_OFFSET));
    }

    #[test]
    fn each_defect_has_its_status() {
        type Defect = fn(&mut [u8; DESCRIPTOR_LEN]);
        let cases: [(Defect, NtStatus); 12] = [
            (|d| put32(d, 4, 0x1234), NtStatus::INVALID_IMAGE_FORMAT),
            (|d| put16(d, 8, ABI_MAJOR + 1), NtStatus::REVISION_MISMATCH),
            (|d| put32(d, 0, 103), NtStatus::INFO_LENGTH_MISMATCH),
            (|d| put32(d, 16, u32::try_from(size_of::<LoaderServices>()).unwrap() + 1), NtStatus::INFO_LENGTH_MISMATCH),
            (|d| put32(d, 20, 1), NtStatus::INVALID_PARAMETER),
            (|d| put64(d, 88, 0), NtStatus::PROCEDURE_NOT_FOUND),
            // Entries outside the image, or not code.
            (|d| put64(d, 88, BASE + u64::from(fixture::IMAGE_SIZE)), NtStatus::INVALID_IMAGE_FORMAT),
            (|d| put64(d, 88, BASE - 1), NtStatus::INVALID_IMAGE_FORMAT),
            (|d| put64(d, 96, BASE + u64::from(fixture::RDATA_RVA)), NtStatus::INVALID_IMAGE_FORMAT),
            (|d| put64(d, 96, 0xFFFF_F800_0000_0000), NtStatus::INVALID_IMAGE_FORMAT),
            // A wrong magic hides every other defect.
            (
                |d| {
                    put32(d, 4, 0);
                    put16(d, 8, 9);
                },
                NtStatus::INVALID_IMAGE_FORMAT,
            ),
            (|d| put16(d, 8, 0), NtStatus::REVISION_MISMATCH),
        ];
        for (i, (defect, status)) in cases.into_iter().enumerate() {
            let mut d = sample_descriptor();
            // Relocated already: the defects above are written as mapped VAs.
            put64(&mut d, 88, BASE + u64::from(fixture::TEXT_RVA + fixture::TEARDOWN_OFFSET));
            put64(&mut d, 96, BASE + u64::from(fixture::TEXT_RVA + fixture::SHUTDOWN_OFFSET));
            defect(&mut d);
            let img = fixture::payload().with_descriptor(&d).mapped();
            assert_eq!(inspect_mapped(&img[..], BASE).map(|_| ()), Err(status), "case {i}");
        }
    }

    #[test]
    fn newer_minor_larger_descriptor_and_no_shutdown_are_accepted() {
        let mut d = sample_descriptor();
        put16(&mut d, 10, 40);
        put32(&mut d, 0, 200);
        put32(&mut d, 16, 16);
        put64(&mut d, 96, 0);
        let c = check_mapped(&d).unwrap();
        assert_eq!((c.abi_minor, c.entries.shutdown), (40, None));
    }

    #[test]
    fn missing_exports_are_procedure_not_found() {
        for keep in [REGISTER_EXPORT, DESCRIPTOR_EXPORT] {
            let target = if keep == DESCRIPTOR_EXPORT { Target::Descriptor } else { Target::Code(0x10) };
            let f = fixture::build(&[(keep, target), ("DriverEntry", Target::Code(0))]);
            assert_eq!(inspect_file(&f.file[..]).map(|_| ()), Err(NtStatus::PROCEDURE_NOT_FOUND), "{keep}");
        }
    }

    /// ABI 1.2: the handover entries are read when the descriptor has
    /// them, checked like every entry, and come as the documented pairs; a
    /// 1.1 descriptor (104 bytes, minor 1) has none and still passes.
    #[test]
    fn handover_entries_are_read_checked_and_paired() {
        let code = |off: u32| BASE + u64::from(fixture::TEXT_RVA + off);
        let with = |quiesce: u64, export: u64, import: u64| {
            let mut d = sample_descriptor();
            put64(&mut d, 88, code(fixture::TEARDOWN_OFFSET));
            put64(&mut d, 96, code(fixture::SHUTDOWN_OFFSET));
            put64(&mut d, 104, quiesce);
            put64(&mut d, 112, export);
            put64(&mut d, 120, import);
            let img = fixture::payload().with_descriptor(&d).mapped();
            inspect_mapped(&img[..], BASE)
        };
        let (q, e, i) = (code(0x20), code(0x28), code(0x30));
        let full = with(q, e, i).unwrap().entries.handover.unwrap();
        assert_eq!(full, HandoverEntries { quiesce: q, state: Some(StateEntries { export: e, import: i }) });
        assert_eq!(with(q, 0, 0).unwrap().entries.handover, Some(HandoverEntries { quiesce: q, state: None }));
        assert_eq!(with(0, 0, 0).unwrap().entries.handover, None);
        assert_eq!(with(q, e, 0).map(|_| ()), Err(NtStatus::PROCEDURE_NOT_FOUND));
        assert_eq!(with(0, e, i).map(|_| ()), Err(NtStatus::PROCEDURE_NOT_FOUND));
        let rdata = BASE + u64::from(fixture::RDATA_RVA);
        assert_eq!(with(rdata, 0, 0).map(|_| ()), Err(NtStatus::INVALID_IMAGE_FORMAT));
        assert_eq!(with(q, e, rdata).map(|_| ()), Err(NtStatus::INVALID_IMAGE_FORMAT));
        // A 1.1 payload: 104 bytes, minor 1; whatever follows is not read.
        let mut old = sample_descriptor();
        put32(&mut old, 0, 104);
        put16(&mut old, 10, 1);
        put64(&mut old, 104, 0xDEAD_BEEF);
        let c = check_mapped(&old).unwrap();
        assert_eq!((c.abi_minor, c.entries.handover), (1, None));
    }

    /// Windows 7 frees a section named `INIT...` after `DriverEntry` even
    /// when it is not marked discardable: an entry there is refused (before
    /// this fix only the flag was checked), and so is a descriptor there.
    #[test]
    fn entries_in_init_sections_are_refused_by_name_and_by_flag() {
        let flagged = fixture::payload().with_section_flags(0, 0x6000_0020 | IMAGE_SCN_MEM_DISCARDABLE);
        let named = fixture::payload().with_section_name(0, *b"INIT\0\0\0\0");
        let named_long = fixture::payload().with_section_name(0, *b"INITKDBG");
        for f in [flagged, named, named_long] {
            assert_eq!(inspect_file(&f.file[..]).map(|_| ()), Err(NtStatus::INVALID_IMAGE_FORMAT));
            let img = mapped(&sample_descriptor(), &f);
            assert_eq!(inspect_mapped(&img[..], BASE).map(|_| ()), Err(NtStatus::INVALID_IMAGE_FORMAT));
        }
        // The descriptor and export tables in an INIT section: never read.
        let rdata_init = fixture::payload().with_section_name(1, *b"INITDATA");
        assert_eq!(inspect_file(&rdata_init.file[..]).map(|_| ()), Err(NtStatus::INVALID_IMAGE_FORMAT));
        // A section merely containing "INIT" later in its name is kept.
        let page_init = fixture::payload().with_section_name(0, *b"PAGEINIT");
        assert!(inspect_file(&page_init.file[..]).is_ok());
    }

    /// A reader that records every range asked, to show the parser never
    /// touches a page the kernel may have freed.
    struct Recording<'a> {
        bytes: &'a [u8],
        asked: core::cell::RefCell<std::vec::Vec<(usize, usize)>>,
    }

    impl ImageBytes for Recording<'_> {
        fn size(&self) -> usize {
            self.bytes.len()
        }
        fn read(&self, offset: usize, len: usize) -> Option<&[u8]> {
            self.asked.borrow_mut().push((offset, len));
            self.bytes.get(offset..offset.checked_add(len)?)
        }
    }

    #[test]
    fn a_mapped_image_is_read_only_in_its_first_page_and_resident_sections() {
        // An INIT section between .text and .rdata in memory: the fixture's
        // .text is renamed INIT and its registration entry moved to .rdata's
        // neighbour is not needed; what matters is that no read lands in it.
        let f = fixture::payload();
        let img = mapped(&sample_descriptor(), &f);
        let r = Recording { bytes: &img, asked: core::cell::RefCell::default() };
        inspect_mapped(&r, BASE).unwrap();
        let text = fixture::TEXT_RVA as usize..(fixture::TEXT_RVA as usize + fixture::SECTION_RAW_LEN);
        for &(offset, len) in r.asked.borrow().iter() {
            let end = offset + len;
            let in_headers = end <= MAPPED_HEADER_LIMIT;
            let in_rdata = offset >= fixture::RDATA_RVA as usize && end <= fixture::IMAGE_SIZE as usize;
            assert!(in_headers || in_rdata, "read {offset:#x}+{len:#x} outside the headers and .rdata");
            assert!(end <= text.start || offset >= text.end, "read {offset:#x}+{len:#x} inside code");
        }
        // Headers reaching past the first page are refused on a mapped image.
        let mut far = f.file.clone();
        put32(&mut far, 0x3C, 0x1000 - 8);
        let far_img = fixture::map(&f.file);
        let mut far_img = far_img;
        far_img[0x3C..0x40].copy_from_slice(&far[0x3C..0x40]);
        assert_eq!(inspect_mapped(&far_img[..], BASE).map(|_| ()), Err(NtStatus::INVALID_IMAGE_FORMAT));
    }

    #[test]
    fn address_bounds_are_half_open_and_overflow_free() {
        assert!(address_inside(0x1000, 0x1000, 0x10));
        assert!(address_inside(0x100F, 0x1000, 0x10));
        assert!(!address_inside(0x1010, 0x1000, 0x10));
        assert!(!address_inside(0x0FFF, 0x1000, 0x10));
        assert!(!address_inside(u64::MAX, u64::MAX, 0));
        assert!(address_inside(u64::MAX, u64::MAX - 1, 2));
    }
}
