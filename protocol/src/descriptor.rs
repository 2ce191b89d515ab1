//! The payload descriptor check: the one decision the loader makes about an
//! image *before* it runs any of the image's code.
//!
//! Owns [`DescriptorInfo`] (a plain copy of the exported
//! `shared_abi::payload::PayloadDescriptor`, plus what the platform learned
//! about the image's bounds) and the pure [`check`] over it. Must never touch
//! the image itself: the platform copies the fields out first.
use shared_abi::payload::{LoaderServices, PayloadDescriptor, NAME_CHARS, PAYLOAD_MAGIC};
use shared_abi::{NtStatus, ABI_MAJOR};

/// The descriptor fields the loader uses, copied out of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorInfo {
    /// `PayloadDescriptor::size` as the payload was built.
    pub size: u32,
    /// `PayloadDescriptor::magic`.
    pub magic: u32,
    /// ABI major version the payload was built against.
    pub abi_major: u16,
    /// ABI minor version the payload was built against.
    pub abi_minor: u16,
    /// The filter's own version.
    pub payload_version: u32,
    /// Smallest services table the payload accepts.
    pub min_services_size: u32,
    /// Reserved, must be zero.
    pub flags: u32,
    /// Display name, UTF-16, NUL padded.
    pub name: [u16; NAME_CHARS],
    /// The descriptor names a teardown entry.
    pub has_teardown: bool,
    /// The registration entry and every non-null entry in the descriptor
    /// lie inside `[DriverStart, DriverStart + DriverSize)` of the image.
    pub entries_inside_image: bool,
}

impl DescriptorInfo {
    /// A valid descriptor for `payload_version`, as a current payload exports
    /// it (used by the model and by tests).
    #[must_use]
    pub fn current(payload_version: u32, name: [u16; NAME_CHARS]) -> Self {
        DescriptorInfo {
            size: descriptor_size(),
            magic: PAYLOAD_MAGIC,
            abi_major: ABI_MAJOR,
            abi_minor: shared_abi::ABI_MINOR,
            payload_version,
            min_services_size: services_size(),
            flags: 0,
            name,
            has_teardown: true,
            entries_inside_image: true,
        }
    }

    /// Copies the fields of an exported descriptor. `image_start..+image_size`
    /// are the image's bounds; `register_entry` is the address of the
    /// registration export.
    #[must_use]
    pub fn from_export(d: &PayloadDescriptor, register_entry: usize, image_start: usize, image_size: usize) -> Self {
        let teardown = d.teardown.map(|f| f as usize);
        let shutdown = d.shutdown.map(|f| f as usize);
        let inside = |a: Option<usize>| a.is_none_or(|a| address_inside(a, image_start, image_size));
        DescriptorInfo {
            size: d.size,
            magic: d.magic,
            abi_major: d.abi_major,
            abi_minor: d.abi_minor,
            payload_version: d.payload_version,
            min_services_size: d.min_services_size,
            flags: d.flags,
            name: d.name,
            has_teardown: teardown.is_some(),
            entries_inside_image: address_inside(register_entry, image_start, image_size)
                && inside(teardown)
                && inside(shutdown),
        }
    }
}

#[allow(clippy::cast_possible_truncation)] // 104 bytes
const fn descriptor_size() -> u32 {
    core::mem::size_of::<PayloadDescriptor>() as u32
}

#[allow(clippy::cast_possible_truncation)] // 48 bytes
const fn services_size() -> u32 {
    core::mem::size_of::<LoaderServices>() as u32
}

/// Whether `address` lies in `[start, start + size)`, without overflow.
#[must_use]
pub fn address_inside(address: usize, start: usize, size: usize) -> bool {
    address >= start && address - start < size
}

/// Decides whether the loader may call into an image with this descriptor.
///
/// Order matters: a wrong magic means "not a payload at all", so nothing else
/// in it can be trusted; then the ABI major; then sizes; then the entries.
pub fn check(d: &DescriptorInfo) -> Result<(), NtStatus> {
    if d.magic != PAYLOAD_MAGIC {
        return Err(NtStatus::INVALID_IMAGE_FORMAT);
    }
    if d.abi_major != ABI_MAJOR {
        return Err(NtStatus::REVISION_MISMATCH);
    }
    // Minor versions only append fields: a larger descriptor is fine.
    if d.size < descriptor_size() || d.min_services_size > services_size() {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    if d.flags != 0 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    if !d.has_teardown {
        return Err(NtStatus::PROCEDURE_NOT_FOUND);
    }
    if !d.entries_inside_image {
        return Err(NtStatus::INVALID_IMAGE_FORMAT);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_abi::payload::utf16_name;

    fn good() -> DescriptorInfo {
        DescriptorInfo::current(1, utf16_name("counter"))
    }

    #[test]
    fn a_current_descriptor_passes() {
        assert_eq!(check(&good()), Ok(()));
    }

    #[test]
    fn each_defect_has_its_status() {
        type Defect = fn(&mut DescriptorInfo);
        let cases: [(Defect, NtStatus); 8] = [
            (|d| d.magic = 0x1234, NtStatus::INVALID_IMAGE_FORMAT),
            (|d| d.abi_major += 1, NtStatus::REVISION_MISMATCH),
            (|d| d.size -= 1, NtStatus::INFO_LENGTH_MISMATCH),
            (|d| d.min_services_size += 1, NtStatus::INFO_LENGTH_MISMATCH),
            (|d| d.flags = 1, NtStatus::INVALID_PARAMETER),
            (|d| d.has_teardown = false, NtStatus::PROCEDURE_NOT_FOUND),
            (|d| d.entries_inside_image = false, NtStatus::INVALID_IMAGE_FORMAT),
            (
                |d| {
                    d.magic = 0;
                    d.abi_major = 9;
                },
                NtStatus::INVALID_IMAGE_FORMAT,
            ),
        ];
        for (defect, status) in cases {
            let mut d = good();
            defect(&mut d);
            assert_eq!(check(&d), Err(status));
        }
    }

    #[test]
    fn newer_minor_and_larger_descriptor_are_accepted() {
        let mut d = good();
        d.abi_minor += 3;
        d.size += 16;
        d.min_services_size = 16;
        assert_eq!(check(&d), Ok(()));
    }

    #[test]
    fn address_bounds_are_half_open_and_overflow_free() {
        assert!(address_inside(0x1000, 0x1000, 0x10));
        assert!(address_inside(0x100F, 0x1000, 0x10));
        assert!(!address_inside(0x1010, 0x1000, 0x10));
        assert!(!address_inside(0x0FFF, 0x1000, 0x10));
        assert!(!address_inside(usize::MAX, usize::MAX, 0));
        assert!(address_inside(usize::MAX, usize::MAX - 1, 2));
    }
}
