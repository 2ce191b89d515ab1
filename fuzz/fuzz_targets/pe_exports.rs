//! Export resolution and descriptor parsing on arbitrary images, both layouts.
//!
//! Input: `[selector u8][rva u32 LE][len u16 LE][image ...]`. Bit 0 of the
//! selector picks the layout, the other bits the export name. Besides "no
//! panic", it asserts what the loader relies on: a resolved RVA lies inside
//! the image, and a slice is exactly as long as asked and inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_protocol::pe::{self, Layout};
use shared_abi::payload::{DESCRIPTOR_EXPORT, REGISTER_EXPORT};

const NAMES: [&str; 4] = [REGISTER_EXPORT, DESCRIPTOR_EXPORT, "DriverEntry", ""];

fuzz_target!(|data: &[u8]| {
    let Some((header, image)) = data.split_at_checked(7) else {
        return;
    };
    let selector = header[0];
    let rva = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let len = usize::from(u16::from_le_bytes([header[5], header[6]]));
    let layout = if selector & 1 == 0 {
        Layout::File
    } else {
        Layout::Mapped
    };
    let name = NAMES[usize::from(selector >> 1) % NAMES.len()];

    if let Ok(found) = pe::export_rva(image, layout, name) {
        let size = pe::size_of_image(image, layout).expect("headers parsed once already");
        assert!(
            found < size,
            "export {name} at {found:#x} outside SizeOfImage {size:#x}"
        );
        if layout == Layout::Mapped {
            assert!((found as usize) < image.len());
        }
        if let Ok(bytes) = pe::slice_at_rva(image, layout, found, pe::DESCRIPTOR_LEN) {
            let d = pe::parse_descriptor(bytes).expect("104 bytes parse");
            let inside = d.entries_inside(0x1_4000_1000, 0x1_4000_0000, u64::from(size));
            let _ = loader_protocol::descriptor::check(&d.to_info(inside));
        }
    }
    if let Ok(slice) = pe::slice_at_rva(image, layout, rva, len) {
        assert_eq!(slice.len(), len);
        let start = slice.as_ptr() as usize - image.as_ptr() as usize;
        assert!(start + len <= image.len());
        if layout == Layout::Mapped {
            assert_eq!(start, rva as usize, "mapped RVAs are offsets");
        }
    }
    for name in pe::export_names(image, layout).take(256) {
        if let Ok(name) = name {
            assert!(!name.contains(&0) && name.len() <= pe::MAX_EXPORT_NAME);
        }
    }
    let _ = pe::parse_descriptor(image);
});
