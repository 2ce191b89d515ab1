//! The loader's PE export parser against `object`, an independent PE
//! reader, on the same file bytes.
//!
//! Input: `[selector u8][image ...]`; the selector picks the export name.
//! The loader's parser may be stricter than `object` (it refuses what a
//! payload must never be: forwarded entries, names or tables in discarded
//! sections, headers past the first page), but it must never disagree on
//! what it accepts:
//! - an export it resolves, `object` resolves to the same RVA;
//! - an export `object` resolves to an address, it either resolves the same
//!   way or refuses the image as malformed, never "not found";
//! - a forwarded export is never resolved;
//! - `SizeOfImage` and `ImageBase` agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_parsers::pe::{Image, Layout};
use object::read::pe::{ExportTarget, ImageNtHeaders, PeFile32, PeFile64};
use shared_abi::payload::{DESCRIPTOR_EXPORT, REGISTER_EXPORT};
use shared_abi::NtStatus;

const NAMES: [&str; 3] = [REGISTER_EXPORT, DESCRIPTOR_EXPORT, "DriverEntry"];

/// What `object` makes of the file: `(SizeOfImage, ImageBase, exports)`,
/// or `None` if it refuses the headers.
fn object_view(image: &[u8]) -> Option<(u32, u64, Option<Vec<(Vec<u8>, ExportTarget<'_>)>>)> {
    fn view<'a, H: ImageNtHeaders>(
        file: &object::read::pe::PeFile<'a, H, &'a [u8]>,
    ) -> (u32, u64, Option<Vec<(Vec<u8>, ExportTarget<'a>)>>) {
        let oh = file.nt_headers().optional_header();
        let exports = match file.export_table() {
            Ok(Some(table)) => table
                .exports()
                .ok()
                .map(|all| all.into_iter().filter_map(|e| e.name.map(|n| (n.to_vec(), e.target))).collect()),
            Ok(None) => Some(Vec::new()),
            Err(_) => None,
        };
        use object::read::pe::ImageOptionalHeader;
        (oh.size_of_image(), oh.image_base(), exports)
    }
    if let Ok(f) = PeFile64::parse(image) {
        return Some(view(&f));
    }
    PeFile32::parse(image).ok().map(|f| view(&f))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(selector) % NAMES.len()];
    let ours = Image::parse(image, Layout::File);
    let theirs = object_view(image);
    let (Ok(ours), Some((size_of_image, image_base, exports))) = (ours, theirs) else {
        return;
    };
    assert_eq!(ours.size_of_image(), size_of_image, "SizeOfImage");
    assert_eq!(ours.image_base(), image_base, "ImageBase");
    let found = ours.export_rva(name);
    let Some(exports) = exports else {
        // `object` refuses the export table; ours may only agree or be
        // stricter, never resolve an entry from a table object cannot read.
        return;
    };
    let matching: Vec<&ExportTarget<'_>> =
        exports.iter().filter(|(n, _)| n.as_slice() == name.as_bytes()).map(|(_, t)| t).collect();
    match found {
        Ok(rva) => {
            assert!(
                matching.iter().any(|t| matches!(t, ExportTarget::Address(a) if *a == rva)),
                "{name}: ours resolves {rva:#x}, object has {matching:?}"
            );
        }
        Err(NtStatus::PROCEDURE_NOT_FOUND) => {
            // Not found is only right if object has no plain address for it
            // either (a forwarded entry is "not found" by design).
            assert!(
                !matching.iter().any(|t| matches!(t, ExportTarget::Address(_))),
                "{name}: ours says not found, object has {matching:?}"
            );
        }
        Err(_) => {}
    }
});
