//! Image checks on the built kernel images and the control tool
//! (`target/package/`, made by `cargo xtask build`).
//!
//! An independent PE reader (`object`) shows each `.sys` as a native-
//! subsystem AMD64 WDM driver whose entry point is `DriverEntry`, importing
//! only Windows 7-available names from ntoskrnl.exe, hal.dll and fltmgr.sys
//! (the allowlist `kernel-imports.txt`). The payload's exports are checked
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

pub struct Allowed {
    pub dll: String,
    pub version: (u32, u32),
    /// A data export (a kernel variable), not a routine.
    pub data: bool,
}

/// The imports that must never appear on x64, with the reason.
fn never_imported() -> BTreeMap<String, String> {
    loader_tests::imports::never_imported(loader_tests::imports::Arch::X64)
}

/// The x64 rows of the allowlist.
fn allowlist() -> BTreeMap<String, Allowed> {
    loader_tests::imports::allowlist(loader_tests::imports::Arch::X64)
        .into_iter()
        .map(|(name, row)| (name, Allowed { dll: row.dll, version: row.first, data: row.convention == "data" }))
        .collect()
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
    loader_tests::image_tools::map_symbol_rva(&package().join("maps").join(format!("{file}.map")), "DriverEntry")
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
        let subsystem = (oh.major_subsystem_version.get(LE), oh.minor_subsystem_version.get(LE));
        assert_eq!(subsystem, (5, 2), "{image}: subsystem version (5.02: XP x64 / Server 2003 and later)");
        let entry = oh.address_of_entry_point.get(LE);
        assert_eq!(entry, driver_entry_rva_from_map(&image), "{image}: entry point is not DriverEntry");
        println!("{image}: {} bytes, entry 0x{entry:x}, DllCharacteristics 0x{dllc:04x}", bytes.len());
    }
}

#[test]
fn kernel_images_import_only_names_xp_x64_exports() {
    let allowed = allowlist();
    let never = never_imported();
    assert!(never.keys().all(|n| !allowed.contains_key(n)), "a name is both allowed and banned");
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
                if let Some(reason) = never.get(&name) {
                    panic!("{image}: imports {name}: {reason}");
                }
                let entry =
                    allowed.get(&name).unwrap_or_else(|| panic!("{image}: {name} is not in kernel-imports.txt"));
                assert_eq!(entry.dll, dll, "{image}: {name} imported from {dll}");
                if entry.version > (5, 2) {
                    newer_than_xp64.push(format!("{image}: {name} ({}.{})", entry.version.0, entry.version.1));
                }
                count += 1;
            }
        }
        assert!(count > 0, "{image}: no imports at all?");
        println!("{image}: {count} imports, all in the x64 allowlist");
    }
    // Subsystem 5.02 promises XP x64 / Server 2003: nothing newer may be imported.
    assert!(newer_than_xp64.is_empty(), "imports newer than XP x64 / Server 2003 (NT 5.2): {newer_than_xp64:#?}");
    println!("no import is newer than XP x64 / Server 2003 (NT 5.2)");
}

/// The import address table slot (virtual address) of every import of
/// `image`, by name.
fn iat_slots(bytes: &[u8]) -> BTreeMap<String, u64> {
    let file = PeFile64::parse(bytes).expect("PE32+");
    let base = file.nt_headers().optional_header.image_base.get(LE);
    let table = file.import_table().expect("import table").expect("has imports");
    let mut descriptors = table.descriptors().expect("descriptors");
    let mut slots = BTreeMap::new();
    while let Some(d) = descriptors.next().expect("descriptor") {
        let mut thunks = table.thunks(d.original_first_thunk.get(LE)).expect("thunks");
        let mut slot = u64::from(d.first_thunk.get(LE));
        while let Some(t) = thunks.next::<object::pe::ImageNtHeaders64>().expect("thunk") {
            let (_, name) = table.hint_name(t.address()).expect("imports by name");
            slots.insert(String::from_utf8_lossy(name).into_owned(), base + slot);
            slot += 8;
        }
    }
    slots
}

/// `llvm-objdump -d` (Intel syntax) of a packaged image: one
/// `(mnemonic, operands)` per instruction, the `# 0x...` target comment
/// kept in the operands.
fn disassemble(image: &str) -> Vec<(String, String)> {
    loader_tests::image_tools::disassemble(&package().join(image))
}

/// The 64-bit register a general-purpose register name belongs to.
fn reg64(name: &str) -> Option<&'static str> {
    const REGS: [(&str, [&str; 4]); 16] = [
        ("rax", ["rax", "eax", "ax", "al"]),
        ("rbx", ["rbx", "ebx", "bx", "bl"]),
        ("rcx", ["rcx", "ecx", "cx", "cl"]),
        ("rdx", ["rdx", "edx", "dx", "dl"]),
        ("rsi", ["rsi", "esi", "si", "sil"]),
        ("rdi", ["rdi", "edi", "di", "dil"]),
        ("rbp", ["rbp", "ebp", "bp", "bpl"]),
        ("rsp", ["rsp", "esp", "sp", "spl"]),
        ("r8", ["r8", "r8d", "r8w", "r8b"]),
        ("r9", ["r9", "r9d", "r9w", "r9b"]),
        ("r10", ["r10", "r10d", "r10w", "r10b"]),
        ("r11", ["r11", "r11d", "r11w", "r11b"]),
        ("r12", ["r12", "r12d", "r12w", "r12b"]),
        ("r13", ["r13", "r13d", "r13w", "r13b"]),
        ("r14", ["r14", "r14d", "r14w", "r14b"]),
        ("r15", ["r15", "r15d", "r15w", "r15b"]),
    ];
    REGS.iter().find(|(_, names)| names.contains(&name)).map(|(r, _)| *r)
}

/// Whether `operands` has a memory operand based or indexed on `reg`.
fn addresses_through(operands: &str, reg: &str) -> bool {
    let mut rest = operands;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else { break };
        let inside = &rest[open + 1..open + close];
        if inside.split(|c: char| !c.is_ascii_alphanumeric()).any(|tok| tok == reg) {
            return true;
        }
        rest = &rest[open + close + 1..];
    }
    false
}

/// The register an instruction writes, if its first operand is one.
fn written_register(mnemonic: &str, operands: &str) -> Option<&'static str> {
    if mnemonic.starts_with("cmp") || mnemonic.starts_with("test") || mnemonic.starts_with("push") {
        return None;
    }
    reg64(operands.split(',').next()?.trim())
}

/// Finds every read of a data import in `code`: the IAT slot holds the
/// variable's address, so reading the variable is the slot load and exactly
/// one dereference; the value (an opaque kernel object pointer) is never
/// dereferenced again. Returns the violations.
fn check_data_import_reads(code: &[(String, String)], name: &str, slot: u64) -> (usize, Vec<String>) {
    let target = format!("# 0x{slot:x}");
    let mut reads = 0;
    let mut bad = Vec::new();
    for (i, (mnemonic, operands)) in code.iter().enumerate() {
        // "... # 0x18000a6a8", perhaps followed by " <symbol+offset>".
        let refers = operands
            .find(&target)
            .is_some_and(|at| operands[at + target.len()..].chars().next().is_none_or(|c| !c.is_ascii_hexdigit()));
        if !refers {
            continue;
        }
        if mnemonic != "mov" {
            bad.push(format!("{name}: its IAT slot is used by `{mnemonic} {operands}` (a variable is not called)"));
            continue;
        }
        let Some(address) = written_register(mnemonic, operands) else {
            bad.push(format!("{name}: unexpected `{mnemonic} {operands}`"));
            continue;
        };
        reads += 1;
        // The one dereference: `mov R2, qword ptr [address]`.
        let mut value = None;
        let mut j = i + 1;
        while let Some((m, ops)) = code.get(j) {
            if addresses_through(ops, address) {
                if m == "mov" && ops.contains(&format!("qword ptr [{address}]")) {
                    value = written_register(m, ops);
                } else {
                    bad.push(format!("{name}: `{m} {ops}` reads through the variable's address oddly"));
                }
                break;
            }
            if written_register(m, ops) == Some(address) || m.starts_with("call") || m.starts_with("ret") {
                break;
            }
            j += 1;
        }
        let Some(value) = value else {
            bad.push(format!("{name}: the variable's address is loaded but its value never read"));
            continue;
        };
        // No second dereference: the value is never used as an address
        // until it is overwritten or control leaves the block.
        for (m, ops) in code.iter().skip(j + 1).take(32) {
            if addresses_through(ops, value) {
                bad.push(format!(
                    "{name}: its value is dereferenced again by `{m} {ops}` (the static is already the kernel's pointer)"
                ));
                break;
            }
            if written_register(m, ops) == Some(value) || m == "jmp" || m.starts_with("ret") {
                break;
            }
        }
    }
    (reads, bad)
}

/// Defect 1 of the Windows 7 correctness pass: `IoDriverObjectType` was
/// declared as `*mut *mut c_void` and dereferenced once more than the
/// import already does, handing `ObReferenceObjectByName` the first 8 bytes
/// of the `OBJECT_TYPE`. Every data import of every kernel image is checked
/// in the machine code itself.
#[test]
fn kernel_images_read_each_data_import_exactly_once() {
    let allowed = allowlist();
    let mut checked = 0;
    for image in kernel_images() {
        let bytes = read(&image);
        let slots = iat_slots(&bytes);
        let data: Vec<(&String, u64)> =
            slots.iter().filter(|(n, _)| allowed.get(*n).is_some_and(|a| a.data)).map(|(n, s)| (n, *s)).collect();
        if data.is_empty() {
            continue;
        }
        let code = disassemble(&image);
        for (name, slot) in data {
            let (reads, bad) = check_data_import_reads(&code, name, slot);
            assert!(bad.is_empty(), "{image}: {}", bad.join("; "));
            assert!(reads > 0, "{image}: imports {name} but never reads it");
            println!("{image}: {name}: {reads} read(s), each the IAT load and one dereference");
            checked += 1;
        }
    }
    assert!(checked >= 2, "expected loader.sys to read IoDriverObjectType and PsInitialSystemProcess");
}

/// The checker itself, on the machine code the first release shipped (three
/// loads before `ObReferenceObjectByName`) and on the correct two.
#[test]
fn the_data_import_check_catches_a_double_dereference() {
    let insn = |m: &str, o: &str| (m.to_owned(), o.to_owned());
    let slot = 0x1_8000_a6a8;
    let shipped = [
        insn("mov", "rax, qword ptr [rip + 18543] # 0x18000a6a8"),
        insn("mov", "rax, qword ptr [rax]"),
        insn("mov", "rax, qword ptr [rax]"),
        insn("mov", "qword ptr [rsp + 32], rax"),
        insn("call", "qword ptr [rip + 100] # 0x18000a6f0"),
    ];
    let (_, bad) = check_data_import_reads(&shipped, "IoDriverObjectType", slot);
    assert_eq!(bad.len(), 1, "{bad:?}");
    let fixed = [
        insn("mov", "rax, qword ptr [rip + 18543] # 0x18000a6a8"),
        insn("mov", "rax, qword ptr [rax]"),
        insn("lea", "rcx, [rsp + 72]"),
        insn("mov", "qword ptr [rsp + 32], rax"),
        insn("call", "qword ptr [rip + 100] # 0x18000a6f0"),
    ];
    let (reads, bad) = check_data_import_reads(&fixed, "IoDriverObjectType", slot);
    assert_eq!((reads, bad.len()), (1, 0), "{bad:?}");
    let called = [insn("call", "qword ptr [rip + 1] # 0x18000a6a8")];
    assert_eq!(check_data_import_reads(&called, "IoDriverObjectType", slot).1.len(), 1);
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

// ---------------------------------------------------------------------
// Resources: VERSIONINFO in every image, the event message table in
// loader.sys. Read back with `object`'s resource directory walker and a
// VS_VERSIONINFO / MESSAGE_RESOURCE_DATA reader of this file's own, not
// with the tools that wrote them.
// ---------------------------------------------------------------------

/// `RT_MESSAGETABLE`, `RT_VERSION`.
const RT_MESSAGETABLE: u16 = 11;
const RT_VERSION: u16 = 16;

/// The data of resource `type_id`/`name_id` (its first language) and that
/// language, or `None`.
fn resource(bytes: &[u8], type_id: u16, name_id: u16) -> Option<(Vec<u8>, u16)> {
    use object::read::pe::{ResourceDirectoryEntryData, ResourceNameOrId};
    let file = PeFile64::parse(bytes).expect("PE32+");
    let sections = file.section_table();
    let dir = file.data_directories().resource_directory(bytes, &sections).expect("resource directory")?;
    let by_id = |table: &object::read::pe::ResourceDirectoryTable<'_>, id: u16| {
        table.entries.iter().find(|e| matches!(e.name_or_id(), ResourceNameOrId::Id(i) if i == id)).copied()
    };
    let types = dir.root().expect("root table");
    let names = by_id(&types, type_id)?.data(dir).expect("type table").table()?;
    let langs = by_id(&names, name_id)?.data(dir).expect("name table").table()?;
    let lang = langs.entries.first()?;
    let ResourceNameOrId::Id(language) = lang.name_or_id() else { return None };
    let ResourceDirectoryEntryData::Data(entry) = lang.data(dir).expect("data entry") else { return None };
    let rva = entry.offset_to_data.get(LE);
    let size = entry.size.get(LE) as usize;
    let data = sections.pe_data_at(bytes, rva).expect("resource data in a section");
    Some((data.get(..size).expect("resource data size").to_vec(), language))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// A NUL-terminated UTF-16 string at `at`; returns it and the offset after its NUL.
fn utf16z(b: &[u8], at: usize) -> (String, usize) {
    let mut units = Vec::new();
    let mut i = at;
    loop {
        let u = u16_at(b, i);
        i += 2;
        if u == 0 {
            break;
        }
        units.push(u);
    }
    (String::from_utf16(&units).expect("UTF-16"), i)
}

fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// One node of a version resource: `wLength`, `wValueLength`, `wType`,
/// `szKey`, the value (raw bytes) and the children.
struct VerNode {
    key: String,
    text: bool,
    value: Vec<u8>,
    children: Vec<VerNode>,
}

fn ver_node(b: &[u8], at: usize) -> (VerNode, usize) {
    let length = usize::from(u16_at(b, at));
    let value_length = usize::from(u16_at(b, at + 2));
    let text = u16_at(b, at + 4) == 1;
    let end = at + length;
    let (key, after_key) = utf16z(b, at + 6);
    let value_at = align4(after_key);
    // A text value's length counts UTF-16 units, a binary one bytes.
    let value_bytes = if text { value_length * 2 } else { value_length };
    let value = b[value_at..(value_at + value_bytes).min(end)].to_vec();
    let mut children = Vec::new();
    let mut child = align4(value_at + value_bytes);
    while child + 6 <= end {
        let (node, next) = ver_node(b, child);
        children.push(node);
        child = align4(next);
    }
    (VerNode { key, text, value, children }, end)
}

/// What a VERSIONINFO says.
struct VersionInfo {
    file_version: [u16; 4],
    product_version: [u16; 4],
    file_type: u32,
    strings: BTreeMap<String, String>,
    translations: Vec<(u16, u16)>,
}

fn version_info(bytes: &[u8], image: &str) -> VersionInfo {
    let (data, language) = resource(bytes, RT_VERSION, 1).unwrap_or_else(|| panic!("{image}: no VERSIONINFO"));
    assert_eq!(language, 0x0409, "{image}: VERSIONINFO language");
    let (root, _) = ver_node(&data, 0);
    assert_eq!(root.key, "VS_VERSION_INFO", "{image}");
    let f = &root.value;
    assert_eq!(f.len(), 52, "{image}: VS_FIXEDFILEINFO size");
    assert_eq!(u32_at(f, 0), 0xFEEF_04BD, "{image}: VS_FIXEDFILEINFO signature");
    let split = |ms: u32, ls: u32| [(ms >> 16) as u16, (ms & 0xFFFF) as u16, (ls >> 16) as u16, (ls & 0xFFFF) as u16];
    let mut strings = BTreeMap::new();
    let mut translations = Vec::new();
    for block in &root.children {
        match block.key.as_str() {
            "StringFileInfo" => {
                for table in &block.children {
                    assert_eq!(table.key, "040904B0", "{image}: string table language/code page");
                    for s in &table.children {
                        assert!(s.text, "{image}: {} is not text", s.key);
                        let units: Vec<u16> =
                            s.value.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                        let text = String::from_utf16(&units).expect("UTF-16");
                        strings.insert(s.key.clone(), text.trim_end_matches('\0').to_owned());
                    }
                }
            }
            "VarFileInfo" => {
                for var in block.children.iter().filter(|v| v.key == "Translation") {
                    for pair in var.value.chunks_exact(4) {
                        translations.push((u16_at(pair, 0), u16_at(pair, 2)));
                    }
                }
            }
            other => panic!("{image}: unexpected version block {other}"),
        }
    }
    VersionInfo {
        file_version: split(u32_at(f, 8), u32_at(f, 12)),
        product_version: split(u32_at(f, 16), u32_at(f, 20)),
        file_type: u32_at(f, 36),
        strings,
        translations,
    }
}

/// `[workspace.metadata.product]` of the root Cargo.toml, read here on its own.
fn product_metadata() -> BTreeMap<String, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("Cargo.toml");
    let mut inside = false;
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[workspace.metadata.product]";
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_owned(), v.trim().trim_matches('"').to_owned());
            }
        }
    }
    out
}

/// Every image the package ships or the tests load that carries the
/// project's VERSIONINFO: the two drivers, the example payload's builds
/// and the tool.
fn versioned_images() -> Vec<String> {
    let mut v: Vec<String> = kernel_images()
        .into_iter()
        .filter(|i| i.rsplit('/').next().is_some_and(|f| f.starts_with("payload") || f == "loader.sys"))
        .collect();
    v.push("x64/loaderctl.exe".to_owned());
    v
}

#[test]
fn every_image_carries_a_versioninfo_with_the_workspace_version() {
    let meta = product_metadata();
    let version = env!("CARGO_PKG_VERSION");
    let numbers: Vec<u16> =
        version.split(['-', '+']).next().unwrap().split('.').map(|p| p.parse().expect("numeric version")).collect();
    let mut expected = [0u16; 4];
    expected[..numbers.len()].copy_from_slice(&numbers);
    let images = versioned_images();
    assert!(images.len() >= 4, "{images:?}");
    for image in images {
        let bytes = read(&image);
        let v = version_info(&bytes, &image);
        let file = image.rsplit('/').next().unwrap();
        let s = |k: &str| v.strings.get(k).cloned().unwrap_or_else(|| panic!("{image}: no {k}"));
        assert_eq!(s("ProductName"), meta["name"], "{image}");
        assert_eq!(s("CompanyName"), meta["company"], "{image}");
        assert_eq!(s("LegalCopyright"), meta["copyright"], "{image}");
        assert!(s("LegalCopyright").starts_with("Copyright"), "{image}");
        assert_eq!(s("FileVersion"), version, "{image}");
        assert_eq!(s("ProductVersion"), version, "{image}");
        assert_eq!(s("OriginalFilename"), file, "{image}");
        assert!(s("FileDescription").len() > 10, "{image}: FileDescription {:?}", s("FileDescription"));
        assert_eq!(v.file_version, expected, "{image}: numeric FILEVERSION");
        assert_eq!(v.product_version, expected, "{image}: numeric PRODUCTVERSION");
        let exe = std::path::Path::new(file).extension().is_some_and(|x| x.eq_ignore_ascii_case("exe"));
        let want_type = if exe { 1 } else { 3 }; // VFT_APP, VFT_DRV
        assert_eq!(v.file_type, want_type, "{image}: FILETYPE");
        assert_eq!(v.translations, [(0x0409, 1200)], "{image}: Translation");
        println!("{image}: {} {} \"{}\"", s("ProductName"), s("FileVersion"), s("FileDescription"));
    }
}

/// The reader above on a version resource built by hand, and on one with a
/// wrong version: the check can fail.
#[test]
fn the_version_reader_reads_what_it_is_given() {
    fn node(key: &str, kind: u16, value: &[u8], value_len: u16, children: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0u8; 6];
        for u in key.encode_utf16().chain([0]) {
            b.extend_from_slice(&u.to_le_bytes());
        }
        b.resize(align4(b.len()), 0);
        b.extend_from_slice(value);
        b.resize(align4(b.len()), 0);
        for c in children {
            b.extend_from_slice(c);
            b.resize(align4(b.len()), 0);
        }
        let len = u16::try_from(b.len()).expect("a small node");
        b[0..2].copy_from_slice(&len.to_le_bytes());
        b[2..4].copy_from_slice(&value_len.to_le_bytes());
        b[4..6].copy_from_slice(&kind.to_le_bytes());
        b
    }
    let text: Vec<u8> = "9.8.7".encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
    let fv = node("FileVersion", 1, &text, 6, &[]);
    let table = node("040904B0", 1, &[], 0, &[fv]);
    let sfi = node("StringFileInfo", 1, &[], 0, &[table]);
    let (root, _) = ver_node(&node("VS_VERSION_INFO", 0, &[0; 52], 52, &[sfi]), 0);
    assert_eq!(root.value.len(), 52);
    let s = &root.children[0].children[0].children[0];
    assert_eq!((s.key.as_str(), s.text, s.value.len()), ("FileVersion", true, 12));
    let units: Vec<u16> = s.value.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let planted = String::from_utf16(&units).unwrap();
    // What the image check compares: this planted version would fail it.
    assert_eq!(planted.trim_end_matches('\0'), "9.8.7");
    assert_ne!(planted.trim_end_matches('\0'), env!("CARGO_PKG_VERSION"));
}

/// The `MESSAGE_RESOURCE_DATA` of `loader.sys`: every (ID, text).
fn message_table(bytes: &[u8]) -> BTreeMap<u32, String> {
    let (data, language) = resource(bytes, RT_MESSAGETABLE, 1).expect("loader.sys has no message table");
    assert_eq!(language, 0x0409, "message table language");
    let blocks = u32_at(&data, 0) as usize;
    let mut out = BTreeMap::new();
    for i in 0..blocks {
        let (low, high, mut at) =
            (u32_at(&data, 4 + i * 12), u32_at(&data, 8 + i * 12), u32_at(&data, 12 + i * 12) as usize);
        for id in low..=high {
            let length = usize::from(u16_at(&data, at));
            let unicode = u16_at(&data, at + 2) == 1;
            assert!(unicode, "message 0x{id:08X} is not Unicode");
            let units: Vec<u16> =
                data[at + 4..at + length].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            let text = String::from_utf16(&units).expect("UTF-16");
            out.insert(id, text.trim_end_matches('\0').trim_end_matches(['\r', '\n']).to_owned());
            at += length;
        }
    }
    out
}

#[test]
fn loader_sys_carries_the_message_table_the_driver_writes_ids_of() {
    let bytes = read("x64/loader.sys");
    let table = message_table(&bytes);
    let ours: BTreeMap<u32, String> = loader_events::MESSAGES.iter().map(|m| (m.id.0, m.text.to_owned())).collect();
    assert_eq!(table.keys().collect::<Vec<_>>(), ours.keys().collect::<Vec<_>>(), "message IDs differ");
    for (id, text) in &ours {
        assert_eq!(&table[id], text, "message 0x{id:08X}");
    }
    // Every message ID the machine code holds as an immediate is one of the
    // table's (the driver takes them from loader_events, the table's source).
    let code = disassemble("x64/loader.sys");
    let pattern = loader_events::CUSTOMER_BIT | (loader_events::FACILITY << 16);
    let mut seen = std::collections::BTreeSet::new();
    for (_, operands) in &code {
        for token in operands.split(|c: char| c == ',' || c.is_whitespace()) {
            let Some(hex) = token.strip_prefix("0x") else { continue };
            let Ok(v) = u32::from_str_radix(hex, 16) else { continue };
            if v & 0x3FFF_0000 == pattern {
                assert!(ours.contains_key(&v), "loader.sys uses message ID 0x{v:08X}, absent from the table");
                seen.insert(v);
            }
        }
    }
    assert!(seen.len() >= ours.len() / 2, "only {} message IDs found in the code: {seen:x?}", seen.len());
    println!(
        "loader.sys: {} messages in its table; {} of them appear as immediates in its code",
        table.len(),
        seen.len()
    );
    for m in loader_events::MESSAGES {
        println!("  Event ID {:>2} {:<13} {}", m.id.code(), m.id.severity().name(), m.symbol);
    }
}

#[test]
fn only_loader_sys_carries_a_message_table() {
    assert!(resource(&read("x64/payload.sys"), RT_MESSAGETABLE, 1).is_none());
    assert!(resource(&read("x64/loaderctl.exe"), RT_MESSAGETABLE, 1).is_none());
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

// ---------------------------------------------------------------------------
// The C path (issue 11): the example C minifilter built plainly
// (`c_legacy.sys`) and relinked with serialpayload.lib (`c_relinked.sys`,
// `c_relinked_v2.sys`). The general checks above (native WDM driver entered
// at `DriverEntry`, Windows 7 allowlist, data imports, the simulator's
// exports) cover them too, as files of test-payloads/.

/// `(VA, symbol, object)` of every symbol of an lld-link map, by address.
fn map_symbols(image: &str) -> Vec<(u64, String, String)> {
    let file = image.rsplit('/').next().unwrap_or(image);
    let path = package().join("maps").join(format!("{file}.map"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} missing: {e}", path.display()));
    let mut out: Vec<(u64, String, String)> = text
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let [section, symbol, va, object] = cols.as_slice() else { return None };
            let (s, o) = section.split_once(':')?;
            if s.len() != 4 || o.len() != 8 || !s.bytes().chain(o.bytes()).all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            Some((u64::from_str_radix(va, 16).ok()?, (*symbol).to_owned(), (*object).to_owned()))
        })
        .collect();
    out.sort();
    out
}

/// The symbol (and its object) an address lies in: the nearest one at or below.
fn symbol_at(symbols: &[(u64, String, String)], va: u64) -> Option<&(u64, String, String)> {
    symbols.iter().rev().find(|(at, _, _)| *at <= va)
}

/// `llvm-objdump -d` of an image: `(address, mnemonic, operands)`.
fn disassemble_at(image: &str) -> Vec<(u64, String, String)> {
    let path = package().join(image);
    let out = std::process::Command::new("llvm-objdump-22")
        .args(["-d", "--no-show-raw-insn", "-M", "intel"])
        .arg(&path)
        .output()
        .expect("llvm-objdump-22 (Debian package llvm-22)");
    assert!(out.status.success(), "llvm-objdump failed on {image}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (addr, insn) = l.split_once(':')?;
            let addr = u64::from_str_radix(addr.trim(), 16).ok()?;
            let insn = insn.trim();
            let (mnemonic, operands) = insn.split_once(char::is_whitespace).unwrap_or((insn, ""));
            Some((addr, mnemonic.to_owned(), operands.trim().to_owned()))
        })
        .collect()
}

/// The addresses an instruction's operands name (`0x...`, the `# 0x...`
/// target of a rip-relative operand included).
fn named_addresses(operands: &str) -> Vec<u64> {
    operands
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|w| w.strip_prefix("0x"))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .collect()
}

const C_PAYLOADS: [(&str, u32); 2] = [("test-payloads/c_relinked.sys", 1), ("test-payloads/c_relinked_v2.sys", 2)];

/// The relinked C minifilter is a payload: it imports only ntoskrnl.exe,
/// hal.dll and fltmgr.sys names of the allowlist, exports the registration
/// entry and the descriptor (the loader's parser accepts it, with the
/// version the build gave), and keeps no INIT section (the filter's
/// `DriverEntry` runs after the I/O manager discards INIT). The plain
/// build is not a payload, and its `DriverEntry` is in INIT.
#[test]
fn the_relinked_c_minifilter_is_a_payload_and_the_plain_one_is_not() {
    use loader_parsers::payload::inspect_file;
    let allowed = allowlist();
    for (image, version) in C_PAYLOADS {
        let bytes = read(image);
        for (dll, name) in imports_by_name(&bytes) {
            assert!(["ntoskrnl.exe", "hal.dll", "fltmgr.sys"].contains(&dll.as_str()), "{image} imports from {dll}");
            let entry = allowed.get(&name).unwrap_or_else(|| panic!("{image}: {name} is not in kernel-imports.txt"));
            assert_eq!(entry.dll, dll, "{image}: {name} from {dll}");
        }
        let ex = exports(&bytes);
        for name in [shared_abi::payload::REGISTER_EXPORT, shared_abi::payload::DESCRIPTOR_EXPORT] {
            let (_, rva) = ex.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{image} lacks {name}"));
            let ours = loader_parsers::pe::export_rva(&bytes, loader_parsers::pe::Layout::File, name)
                .unwrap_or_else(|e| panic!("{image}: the loader's parser: {name}: {e}"));
            assert_eq!(ours, *rva, "{image}: {name}: the loader's parser disagrees with `object`");
        }
        let checked = inspect_file(&bytes).unwrap_or_else(|e| panic!("{image}: the loader refuses it: {e}"));
        assert_eq!(checked.payload_version, version, "{image}");
        let file = PeFile64::parse(&*bytes).expect("PE32+");
        let sections: Vec<String> = file
            .section_table()
            .iter()
            .map(|s| String::from_utf8_lossy(s.raw_name()).trim_end_matches('\0').to_owned())
            .collect();
        assert!(!sections.iter().any(|s| s.starts_with("INIT")), "{image} keeps an INIT section: {sections:?}");
        println!("{image}: a payload v{version}, exports {ex:?}, sections {sections:?}");
    }
    let legacy = read("test-payloads/c_legacy.sys");
    assert!(exports(&legacy).is_empty(), "c_legacy.sys exports {:?}", exports(&legacy));
    let symbols = map_symbols("test-payloads/c_legacy.sys");
    let entry = symbols.iter().find(|(_, s, _)| s == "DriverEntry").expect("DriverEntry in c_legacy.sys's map");
    let file = PeFile64::parse(&*legacy).expect("PE32+");
    let base = file.nt_headers().optional_header.image_base.get(LE);
    let rva = u32::try_from(entry.0 - base).expect("rva");
    let init = file.section_table().iter().find(|s| s.raw_name().starts_with(b"INIT")).expect("c_legacy.sys has INIT");
    let start = init.virtual_address.get(LE);
    assert!((start..start + init.virtual_size.get(LE)).contains(&rva), "the plain DriverEntry is not in INIT");
}

/// In the relinked image the import of `fltmgr.sys!FltRegisterFilter`
/// (its IAT slot) is read only by the library's code, and the filter's own
/// `FltRegisterFilter` call lands in the library's interposer. Checked in
/// the disassembly against the linker map (which object each address
/// belongs to).
#[test]
fn the_relinked_filter_reaches_flt_register_filter_only_through_the_library() {
    for (image, _) in C_PAYLOADS {
        let bytes = read(image);
        let slot = *iat_slots(&bytes).get("FltRegisterFilter").expect("imports FltRegisterFilter");
        let symbols = map_symbols(image);
        let is_library = |o: &str| o.starts_with("serialpayload:");
        let filter_object = |o: &str| {
            std::path::Path::new(o).extension().is_some_and(|x| x.eq_ignore_ascii_case("obj")) && !is_library(o)
        };
        let address_of = |name: &str| {
            symbols
                .iter()
                .find(|(_, s, _)| s == name)
                .unwrap_or_else(|| panic!("{image}: no {name} in the map"))
                .clone()
        };
        let interposer = address_of("FltRegisterFilter");
        assert!(is_library(&interposer.2), "{image}: FltRegisterFilter is not the library's: {interposer:?}");
        let imp = address_of("__imp_FltRegisterFilter");
        assert!(is_library(&imp.2), "{image}: __imp_FltRegisterFilter is not the library's: {imp:?}");
        let (mut from_library, mut filter_calls) = (0, 0);
        for (at, mnemonic, operands) in disassemble_at(image) {
            let names = named_addresses(&operands);
            let (_, symbol, object) =
                symbol_at(&symbols, at).unwrap_or_else(|| panic!("{image}: 0x{at:x} in no symbol"));
            if names.contains(&slot) {
                assert!(
                    is_library(object),
                    "{image}: 0x{at:x} ({symbol} in {object}) reads the FltRegisterFilter import: {mnemonic} {operands}"
                );
                from_library += 1;
            }
            if filter_object(object) && (names.contains(&interposer.0) || names.contains(&imp.0)) {
                assert!(mnemonic.starts_with("call") || mnemonic.starts_with("jmp"), "{mnemonic} {operands}");
                filter_calls += 1;
            }
        }
        assert!(from_library >= 1, "{image}: nothing reads the FltRegisterFilter import");
        assert!(filter_calls >= 1, "{image}: the filter's code never calls the interposer");
        println!(
            "{image}: FltRegisterFilter import (IAT 0x{slot:x}) read {from_library}x, only by serialpayload.lib; \
             the filter's {filter_calls} call(s) land in the interposer at 0x{:x}",
            interposer.0
        );
    }
}
