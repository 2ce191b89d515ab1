//! A synthetic payload image for tests, the protocol model and fuzz seeds
//! (feature `fixtures`; never in a driver build).
//!
//! [`build`] writes a small PE32+ file with `.text` and `.rdata` whose file
//! offsets differ from their RVAs, an export directory naming the given
//! exports (sorted) and a payload descriptor; [`map`] lays a file out as the
//! kernel maps it. The offsets of the interesting fields are returned so
//! tests can corrupt them.
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::missing_panics_doc,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

extern crate alloc;
use alloc::vec::Vec;
use alloc::{format, vec};
use shared_abi::payload::{utf16_name, DESCRIPTOR_EXPORT, PAYLOAD_MAGIC, REGISTER_EXPORT};
use shared_abi::ABI_MAJOR;

use crate::payload::DESCRIPTOR_LEN;

/// Where an export of the fixture points.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// An offset into the fixture's `.text`.
    Code(u32),
    /// The descriptor in `.rdata`.
    Descriptor,
    /// A forwarder string `"OTHER.<name>"`.
    Forward,
}

/// RVA of `.text`.
pub const TEXT_RVA: u32 = 0x1000;
/// RVA of `.rdata`.
pub const RDATA_RVA: u32 = 0x2000;
/// File offset of `.text`.
pub const TEXT_RAW: usize = 0x200;
/// File offset of `.rdata`.
pub const RDATA_RAW: usize = 0xA00;
/// Raw bytes of each section.
pub const SECTION_RAW_LEN: usize = 0x800;
/// `.rdata` is larger in memory than on disk (a zero-filled tail).
pub const RDATA_VIRTUAL_LEN: u32 = 0x1000;
/// `SizeOfImage`.
pub const IMAGE_SIZE: u32 = 0x3000;
/// `SizeOfOptionalHeader`.
pub const OPTIONAL_LEN: usize = 240;
/// `ImageBase` the fixture is linked for.
pub const IMAGE_BASE: u64 = 0x1_4000_0000;
/// File offset of the optional header.
pub const OPTIONAL_AT: usize = 0x58;
/// Offset in `.text` of the registration entry of [`payload`].
pub const REGISTER_OFFSET: u32 = 0x10;
/// Offset in `.text` of the teardown entry of [`sample_descriptor`].
pub const TEARDOWN_OFFSET: u32 = 0x10 + 0x10;
/// Offset in `.text` of the shutdown entry of [`sample_descriptor`].
pub const SHUTDOWN_OFFSET: u32 = 0x20 + 0x10;

/// Writes a little-endian `u16`.
pub fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
/// Writes a little-endian `u32`.
pub fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
/// Writes a little-endian `u64`.
pub fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A built image and the offsets of its interesting fields.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// The file bytes.
    pub file: Vec<u8>,
    /// File offset of the export directory.
    pub dir: usize,
    /// File offset of the first name string.
    pub first_name: usize,
    /// File offset of the descriptor.
    pub descriptor_at: usize,
    /// RVA of the descriptor.
    pub descriptor_rva: u32,
}

impl Fixture {
    /// The image as the kernel maps it.
    #[must_use]
    pub fn mapped(&self) -> Vec<u8> {
        map(&self.file)
    }

    /// Replaces the descriptor bytes.
    #[must_use]
    pub fn with_descriptor(mut self, d: &[u8; DESCRIPTOR_LEN]) -> Self {
        self.file[self.descriptor_at..self.descriptor_at + DESCRIPTOR_LEN].copy_from_slice(d);
        self
    }

    /// Sets section `index`'s `Characteristics`.
    #[must_use]
    pub fn with_section_flags(mut self, index: usize, flags: u32) -> Self {
        put32(&mut self.file, characteristics_at(index), flags);
        self
    }

    /// Renames section `index`.
    #[must_use]
    pub fn with_section_name(mut self, index: usize, name: [u8; 8]) -> Self {
        let at = OPTIONAL_AT + OPTIONAL_LEN + 40 * index;
        self.file[at..at + 8].copy_from_slice(&name);
        self
    }
}

/// File offset of section `index`'s `Characteristics`.
#[must_use]
pub const fn characteristics_at(index: usize) -> usize {
    OPTIONAL_AT + OPTIONAL_LEN + 40 * index + 36
}

/// The VA of `offset` into `.text`, as linked.
#[must_use]
pub const fn text_va(offset: u32) -> u64 {
    IMAGE_BASE + TEXT_RVA as u64 + offset as u64
}

/// A valid descriptor of payload version 2 (`"CounterFilter v2"`, ABI minor
/// 3), whose teardown and shutdown entries point into `.text`.
#[must_use]
pub fn sample_descriptor() -> [u8; DESCRIPTOR_LEN] {
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
    put64(&mut d, 88, text_va(TEARDOWN_OFFSET));
    put64(&mut d, 96, text_va(SHUTDOWN_OFFSET));
    d
}

/// A PE32+ file with `.text` and `.rdata` whose file offsets differ from
/// their RVAs, an export directory naming `exports` (sorted) and
/// [`sample_descriptor`] in `.rdata`.
#[allow(clippy::too_many_lines)]
#[must_use]
pub fn build(exports: &[(&str, Target)]) -> Fixture {
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
    put64(&mut file, opt + 24, IMAGE_BASE);
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
    Fixture { file, dir, first_name, descriptor_at: descriptor, descriptor_rva: rva_of(descriptor) }
}

/// A payload: both exports, `DriverEntry`, and a forwarded export.
#[must_use]
pub fn payload() -> Fixture {
    build(&[
        (REGISTER_EXPORT, Target::Code(REGISTER_OFFSET)),
        (DESCRIPTOR_EXPORT, Target::Descriptor),
        ("DriverEntry", Target::Code(0)),
        ("Forwarded", Target::Forward),
    ])
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Lays a file image out as the kernel maps it (no relocation: the image
/// is taken to load at its `ImageBase`).
#[must_use]
pub fn map(file: &[u8]) -> Vec<u8> {
    let nt = u32_at(file, 0x3C) as usize;
    let opt = nt + 24;
    let size = u32_at(file, opt + 56) as usize;
    let headers = u32_at(file, opt + 60) as usize;
    let count = u16_at(file, nt + 6) as usize;
    let table = opt + u16_at(file, nt + 20) as usize;
    let mut image = vec![0u8; size];
    image[..headers].copy_from_slice(&file[..headers]);
    for i in 0..count {
        let h = table + 40 * i;
        let va = u32_at(file, h + 12) as usize;
        let raw_len = u32_at(file, h + 16) as usize;
        let raw = u32_at(file, h + 20) as usize;
        let virt = u32_at(file, h + 8) as usize;
        let len = raw_len.min(if virt == 0 { raw_len } else { virt });
        image[va..va + len].copy_from_slice(&file[raw..raw + len]);
    }
    image
}
