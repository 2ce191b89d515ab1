//! Image checks on the built kernel images and the control tool
//! (`target/package/`, made by `cargo xtask build`).
//!
//! An independent PE reader (`object`) shows each `.sys` as a native-
//! subsystem AMD64 WDM driver whose entry point is `DriverEntry`, importing
//! only Windows 7-available names from ntoskrnl.exe, hal.dll and fltmgr.sys
//! (the allowlist `win7-imports.txt`). The payload's exports are checked
//! with `object` and with the loader's own parser, which must agree.
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageThunkData, PeFile64};
use object::LittleEndian as LE;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn package() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.join("target/package")
}

fn read(rel: &str) -> Vec<u8> {
    let p = package().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{} is missing ({e}); run `cargo xtask build`", p.display()))
}

struct Allowed {
    dll: String,
    version: (u32, u32),
}

fn allowlist() -> BTreeMap<String, Allowed> {
    let text = include_str!("win7-imports.txt");
    let mut map = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (Some(dll), Some(name), Some(ver)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("malformed allowlist line: {line}");
        };
        let (maj, min) = ver.split_once('.').expect("version like 5.2");
        let version = (maj.parse().expect("major"), min.parse().expect("minor"));
        map.insert(name.to_owned(), Allowed { dll: dll.to_ascii_lowercase(), version });
    }
    map
}

fn kernel_images() -> Vec<String> {
    let mut v = vec!["x64/loader.sys".to_owned(), "x64/payload.sys".to_owned()];
    if let Ok(rd) = std::fs::read_dir(package().join("test-payloads")) {
        let mut more: Vec<String> =
            rd.filter_map(Result::ok).map(|e| format!("test-payloads/{}", e.file_name().to_string_lossy())).collect();
        more.sort();
        v.extend(more);
    }
    v
}

/// The DriverEntry address (RVA) according to the linker map.
fn driver_entry_rva_from_map(image: &str) -> u32 {
    let file = image.rsplit('/').next().unwrap_or(image);
    let path = package().join("maps").join(format!("{file}.map"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} missing: {e}", path.display()));
    // lld-link map lines: "<section>:<offset>  <symbol>  <VA>  <object>"; the
    // VA follows the symbol name.
    let base = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Preferred load address is "))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("map states the preferred load address");
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = cols.iter().position(|c| *c == "DriverEntry") {
            if let Some(va) = cols.get(i + 1).and_then(|v| u64::from_str_radix(v, 16).ok()) {
                return u32::try_from(va - base).expect("rva fits");
            }
        }
    }
    panic!("DriverEntry not found in {}", path.display());
}

#[test]
fn kernel_images_are_native_amd64_wdm_drivers_entered_at_driver_entry() {
    for image in kernel_images() {
        let bytes = read(&image);
        let file = PeFile64::parse(&*bytes).unwrap_or_else(|e| panic!("{image}: not PE32+: {e}"));
        let nt = file.nt_headers();
        let fh = nt.file_header();
        let oh = nt.optional_header();
        assert_eq!(fh.machine.get(LE), pe::IMAGE_FILE_MACHINE_AMD64, "{image}: machine");
        assert_eq!(oh.magic.get(LE), pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC, "{image}: PE32+ magic");
        assert_eq!(oh.subsystem.get(LE), pe::IMAGE_SUBSYSTEM_NATIVE, "{image}: subsystem");
        let dllc = oh.dll_characteristics.get(LE);
        assert_ne!(dllc & pe::IMAGE_DLLCHARACTERISTICS_WDM_DRIVER, 0, "{image}: WDM driver flag");
        assert!(oh.major_subsystem_version.get(LE) <= 6, "{image}: subsystem version newer than Windows 7");
        let entry = oh.address_of_entry_point.get(LE);
        assert_eq!(entry, driver_entry_rva_from_map(&image), "{image}: entry point is not DriverEntry");
        println!("{image}: {} bytes, entry 0x{entry:x}, DllCharacteristics 0x{dllc:04x}", bytes.len());
    }
}

#[test]
fn kernel_images_import_only_windows7_names() {
    let allowed = allowlist();
    let mut newer_than_xp64 = Vec::new();
    for image in kernel_images() {
        let bytes = read(&image);
        let file = PeFile64::parse(&*bytes).expect("PE32+");
        let table = file.import_table().expect("import table").expect("has imports");
        let mut descriptors = table.descriptors().expect("descriptors");
        let mut count = 0;
        while let Some(d) = descriptors.next().expect("descriptor") {
            let dll = String::from_utf8_lossy(table.name(d.name.get(LE)).expect("dll name")).to_ascii_lowercase();
            assert!(["ntoskrnl.exe", "hal.dll", "fltmgr.sys"].contains(&dll.as_str()), "{image}: imports from {dll}");
            let mut thunks = table.thunks(d.original_first_thunk.get(LE)).expect("thunks");
            while let Some(t) = thunks.next::<object::pe::ImageNtHeaders64>().expect("thunk") {
                let (_, name) = table.hint_name(t.address()).expect("imports by name");
                let name = String::from_utf8_lossy(name).into_owned();
                let entry = allowed.get(&name).unwrap_or_else(|| panic!("{image}: {name} is not in win7-imports.txt"));
                assert_eq!(entry.dll, dll, "{image}: {name} imported from {dll}");
                assert!(entry.version <= (6, 1), "{image}: {name} needs Windows {:?}", entry.version);
                if entry.version > (5, 2) {
                    newer_than_xp64.push(format!("{image}: {name} ({}.{})", entry.version.0, entry.version.1));
                }
                count += 1;
            }
        }
        assert!(count > 0, "{image}: no imports at all?");
        println!("{image}: {count} imports, all in the Windows 7 allowlist");
    }
    if newer_than_xp64.is_empty() {
        println!("no import is newer than XP x64 / Server 2003 (NT 5.2)");
    }
    for n in &newer_than_xp64 {
        println!("newer than XP x64 / Server 2003: {n}");
    }
}

fn exports(bytes: &[u8]) -> Vec<(String, u32)> {
    let file = PeFile64::parse(bytes).expect("PE32+");
    let mut out = Vec::new();
    if let Some(table) = file.export_table().expect("export table") {
        for e in table.exports().expect("exports") {
            if let (Some(name), object::read::pe::ExportTarget::Address(rva)) = (e.name, e.target) {
                out.push((String::from_utf8_lossy(name).into_owned(), rva));
            }
        }
    }
    out
}

#[test]
fn payload_exports_its_registration_entry_and_descriptor() {
    use loader_parsers::pe::{export_rva, Layout};
    let bytes = read("x64/payload.sys");
    let ex = exports(&bytes);
    for name in [shared_abi::payload::REGISTER_EXPORT, shared_abi::payload::DESCRIPTOR_EXPORT] {
        let (_, rva) = ex.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("payload.sys lacks {name}"));
        // The loader's own bounds-checked parser must find the same RVA.
        let ours = export_rva(&bytes, Layout::File, name).unwrap_or_else(|e| panic!("loader's parser: {name}: {e}"));
        assert_eq!(ours, *rva, "{name}: loader's parser disagrees with `object`");
    }
    // The checked view the loader would build from this image.
    let checked = loader_parsers::payload::inspect_file(&bytes).expect("payload.sys passes the loader's check");
    assert_eq!(checked.payload_version, 1);
    let base = PeFile64::parse(&*bytes).expect("PE32+").nt_headers().optional_header.image_base.get(LE);
    let register = ex.iter().find(|(n, _)| n == shared_abi::payload::REGISTER_EXPORT).map(|(_, r)| *r).unwrap();
    assert_eq!(checked.entries.register, base + u64::from(register));
    assert!(checked.entries.teardown > base, "teardown entry missing");
}

#[test]
fn fault_builds_differ_exactly_where_they_should() {
    use loader_parsers::payload::inspect_file;
    let dir = "test-payloads";
    let noexport = read(&format!("{dir}/payload_noexport.sys"));
    assert_eq!(inspect_file(&noexport).map(|_| ()), Err(shared_abi::NtStatus::PROCEDURE_NOT_FOUND));
    let v2 = read(&format!("{dir}/payload_v2.sys"));
    assert_eq!(inspect_file(&v2).map(|c| c.payload_version), Ok(2));
    let badmagic = read(&format!("{dir}/payload_badmagic.sys"));
    assert_eq!(inspect_file(&badmagic).map(|_| ()), Err(shared_abi::NtStatus::INVALID_IMAGE_FORMAT));
    let badabi = read(&format!("{dir}/payload_badabi.sys"));
    assert_eq!(inspect_file(&badabi).map(|_| ()), Err(shared_abi::NtStatus::REVISION_MISMATCH));
}

#[test]
fn loaderctl_is_a_windows7_console_program() {
    let bytes = read("x64/loaderctl.exe");
    let file = PeFile64::parse(&*bytes).expect("loaderctl.exe is PE32+");
    let oh = file.nt_headers().optional_header();
    assert_eq!(oh.subsystem.get(LE), pe::IMAGE_SUBSYSTEM_WINDOWS_CUI);
    let table = file.import_table().expect("imports").expect("has imports");
    let mut descriptors = table.descriptors().expect("descriptors");
    let mut dlls = Vec::new();
    while let Some(d) = descriptors.next().expect("descriptor") {
        dlls.push(String::from_utf8_lossy(table.name(d.name.get(LE)).expect("name")).to_ascii_lowercase());
    }
    assert!(
        !dlls.iter().any(|d| d.contains("bcryptprimitives")),
        "imports bcryptprimitives.dll, absent on Windows 7: {dlls:?}"
    );
    assert!(!dlls.iter().any(|d| d.starts_with("api-ms-win")), "imports API sets Windows 7 lacks: {dlls:?}");
    println!("loaderctl.exe: {} bytes, imports {dlls:?}", bytes.len());
}

/// `(dll, name)` of every import of a PE32+ image, by name.
fn imports_by_name(bytes: &[u8]) -> Vec<(String, String)> {
    let file = PeFile64::parse(bytes).expect("PE32+");
    let Some(table) = file.import_table().expect("import table") else { return Vec::new() };
    let mut out = Vec::new();
    let mut descriptors = table.descriptors().expect("descriptors");
    while let Some(d) = descriptors.next().expect("descriptor") {
        let dll = String::from_utf8_lossy(table.name(d.name.get(LE)).expect("dll name")).to_ascii_lowercase();
        let mut thunks = table.thunks(d.original_first_thunk.get(LE)).expect("thunks");
        while let Some(t) = thunks.next::<object::pe::ImageNtHeaders64>().expect("thunk") {
            let (_, name) = table.hint_name(t.address()).expect("imports by name");
            out.push((dll.clone(), String::from_utf8_lossy(name).into_owned()));
        }
    }
    out
}

/// The test world's Filter Manager (`test-fltmgr/fltmgr.sys`, built for
/// the Wine suite, never packaged): a native WDM image entered at
/// `DriverEntry` that imports only from ntoskrnl.exe and hal.dll (Wine
/// clears the entry point of a native image loaded as a dependency that
/// imports neither ntdll nor kernel32), and that exports every
/// `fltmgr.sys` routine any kernel image here imports. Under Wine a name
/// the simulator lacked would bind to a stub: the image would load and die
/// only when it called it; this check fails first.
#[test]
fn the_test_filter_manager_exports_every_routine_the_images_import() {
    let sim = read("test-fltmgr/fltmgr.sys");
    let file = PeFile64::parse(&*sim).expect("fltmgr.sys is PE32+");
    let oh = file.nt_headers().optional_header();
    assert_eq!(oh.subsystem.get(LE), pe::IMAGE_SUBSYSTEM_NATIVE, "fltmgr.sys: subsystem");
    assert_eq!(oh.address_of_entry_point.get(LE), driver_entry_rva_from_map("test-fltmgr/fltmgr.sys"));
    for (dll, name) in imports_by_name(&sim) {
        assert!(["ntoskrnl.exe", "hal.dll"].contains(&dll.as_str()), "fltmgr.sys imports {name} from {dll}");
    }
    assert!(!package().join("x64/fltmgr.sys").exists(), "the simulator must never be in the package");
    let exported: std::collections::BTreeSet<String> = exports(&sim).into_iter().map(|(n, _)| n).collect();
    let mut checked = std::collections::BTreeSet::new();
    for image in kernel_images() {
        for (dll, name) in imports_by_name(&read(&image)) {
            if dll == "fltmgr.sys" {
                assert!(
                    exported.contains(&name),
                    "{image} imports fltmgr.sys!{name}, which the simulator does not export"
                );
                checked.insert(name);
            }
        }
    }
    assert!(checked.contains("FltRegisterFilter"), "no image imports from fltmgr.sys?");
    println!("fltmgr.sys (test world) exports all {} Flt routines the images import: {checked:?}", checked.len());
}
