//! Export resolution and the payload check on arbitrary images, both layouts.
//!
//! Input: `[selector u8][rva u32 LE][len u16 LE][image ...]`. Bit 0 of the
//! selector picks the layout, the other bits the export name. Besides "no
//! panic", it asserts what the loader relies on: a resolved RVA lies inside
//! the image, a slice is exactly as long as asked and inside the input, and
//! a payload that passes the check has its entry points inside the image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_parsers::payload::{self, DESCRIPTOR_LEN};
use loader_parsers::pe::{self, Image, Layout};
use shared_abi::payload::{DESCRIPTOR_EXPORT, REGISTER_EXPORT};

const NAMES: [&str; 4] = [REGISTER_EXPORT, DESCRIPTOR_EXPORT, "DriverEntry", ""];
const BASE: u64 = 0xFFFF_F880_0100_0000;

fuzz_target!(|data: &[u8]| {
    let Some((header, image)) = data.split_at_checked(7) else {
        return;
    };
    let selector = header[0];
    let rva = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let len = usize::from(u16::from_le_bytes([header[5], header[6]]));
    let layout = if selector & 1 == 0 { Layout::File } else { Layout::Mapped };
    let name = NAMES[usize::from(selector >> 1) % NAMES.len()];

    let Ok(parsed) = Image::parse(image, layout) else {
        // A refused header refuses everything built on it.
        assert!(pe::export_rva(image, layout, name).is_err());
        return;
    };
    let size = parsed.size_of_image();
    if let Ok(found) = parsed.export_rva(name) {
        assert_eq!(pe::export_rva(image, layout, name), Ok(found), "parse once = parse again");
        assert!(found < size, "export {name} at {found:#x} outside SizeOfImage {size:#x}");
        if layout == Layout::Mapped {
            assert!((found as usize) < image.len());
        }
        if let Ok(bytes) = parsed.slice_at_rva(found, DESCRIPTOR_LEN) {
            assert_eq!(bytes.len(), DESCRIPTOR_LEN);
        }
    }
    if let Ok(slice) = parsed.slice_at_rva(rva, len) {
        assert_eq!(slice.len(), len);
        let start = slice.as_ptr() as usize - image.as_ptr() as usize;
        assert!(start + len <= image.len());
        if layout == Layout::Mapped {
            assert_eq!(start, rva as usize, "mapped RVAs are offsets");
        }
    }
    for name in pe::export_names(image, layout).take(256).flatten() {
        assert!(!name.contains(&0) && name.len() <= pe::MAX_EXPORT_NAME);
    }
    let checked = match layout {
        Layout::Mapped => payload::inspect_mapped(image, BASE).map(|c| (c, BASE)),
        Layout::File => payload::inspect_file(image).map(|c| (c, parsed.image_base())),
    };
    if let Ok((c, base)) = checked {
        // Every entry the loader would call is resident code of this image.
        let entries = [Some(c.entries.register), Some(c.entries.teardown), c.entries.shutdown];
        for va in entries.into_iter().flatten() {
            let rva = u32::try_from(va - base).expect("entry below the image base");
            assert!(rva < size);
            assert_eq!(parsed.check_code_rva(rva), Ok(()));
        }
    }
});
