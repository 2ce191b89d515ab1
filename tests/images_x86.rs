//! Image checks on the x86 package (`target/package/x86/`, made by
//! `cargo xtask build`), with an independent PE reader (`object`) and
//! `llvm-objdump`:
//! - every kernel image is an I386 native WDM driver, subsystem version
//!   5.01, entered at `DriverEntry`;
//! - it imports only undecorated names, each listed for x86 in
//!   `kernel-imports.txt` with a first version no newer than XP (5.1), from
//!   ntoskrnl.exe, hal.dll and fltmgr.sys;
//! - its code holds no SSE, MMX or x87 instruction (the x86 kernel does not
//!   save that state for kernel code);
//! - the payload exports its two entries under their undecorated names,
//!   and the loader's own parser finds them;
//! - `loaderctl.exe` is an I386 console program for Windows 7.
use loader_tests::imports::{allowlist, never_imported, Arch};
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageThunkData, PeFile32};
use object::LittleEndian as LE;
use std::path::PathBuf;

fn package() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/package")
}

fn read(rel: &str) -> Vec<u8> {
    let p = package().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{} is missing ({e}); run `cargo xtask build`", p.display()))
}

/// The x86 kernel images: the package's two, the test payloads, and the
/// test world's Filter Manager.
fn kernel_images() -> Vec<String> {
    let mut v = vec!["x86/loader.sys".to_owned(), "x86/payload.sys".to_owned()];
    let dir = package().join("x86/test-payloads");
    let mut more: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} is missing ({e}); run `cargo xtask build`", dir.display()))
        .filter_map(Result::ok)
        .map(|e| format!("x86/test-payloads/{}", e.file_name().to_string_lossy()))
        .filter(|n| std::path::Path::new(n).extension().is_some_and(|x| x.eq_ignore_ascii_case("sys")))
        .collect();
    more.sort();
    assert!(more.len() >= 10, "only {} x86 test payloads", more.len());
    v.extend(more);
    v.push("x86/test-fltmgr/fltmgr.sys".to_owned());
    v
}

/// `DriverEntry`'s RVA from the linker map: on x86 the symbol is the
/// stdcall-decorated `_DriverEntry@8`.
fn driver_entry_rva_from_map(image: &str) -> u32 {
    let file = image.rsplit('/').next().unwrap_or(image);
    loader_tests::image_tools::map_symbol_rva(&package().join("maps/x86").join(format!("{file}.map")), "_DriverEntry@8")
}

#[test]
fn x86_kernel_images_are_i386_native_wdm_drivers_for_xp_and_later() {
    for image in kernel_images() {
        let bytes = read(&image);
        let file = PeFile32::parse(&*bytes).unwrap_or_else(|e| panic!("{image}: not PE32: {e}"));
        let nt = file.nt_headers();
        let fh = nt.file_header();
        let oh = nt.optional_header();
        assert_eq!(fh.machine.get(LE), pe::IMAGE_FILE_MACHINE_I386, "{image}: machine");
        assert_eq!(oh.magic.get(LE), pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC, "{image}: PE32 magic");
        assert_eq!(oh.subsystem.get(LE), pe::IMAGE_SUBSYSTEM_NATIVE, "{image}: subsystem");
        let subsystem = (oh.major_subsystem_version.get(LE), oh.minor_subsystem_version.get(LE));
        assert_eq!(subsystem, (5, 1), "{image}: subsystem version (5.01: XP and later)");
        let dllc = oh.dll_characteristics.get(LE);
        assert_ne!(dllc & pe::IMAGE_DLLCHARACTERISTICS_WDM_DRIVER, 0, "{image}: WDM driver flag");
        // A driver must be relocatable: the x86 kernel maps it anywhere.
        assert_eq!(fh.characteristics.get(LE) & pe::IMAGE_FILE_RELOCS_STRIPPED, 0, "{image}: relocations stripped");
        let entry = oh.address_of_entry_point.get(LE);
        assert_eq!(entry, driver_entry_rva_from_map(&image), "{image}: entry point is not DriverEntry");
        println!("{image}: I386, subsystem 5.01, {} bytes, entry 0x{entry:x}", bytes.len());
    }
}

#[test]
fn x86_kernel_images_import_only_undecorated_names_xp_exports() {
    let allowed = allowlist(Arch::X86);
    let never = never_imported(Arch::X86);
    for image in kernel_images().into_iter().filter(|i| !i.contains("test-fltmgr")) {
        let bytes = read(&image);
        let file = PeFile32::parse(&*bytes).expect("PE32");
        let table = file.import_table().expect("import table").expect("has imports");
        let mut descriptors = table.descriptors().expect("descriptors");
        let mut names = Vec::new();
        while let Some(d) = descriptors.next().expect("descriptor") {
            let dll = String::from_utf8_lossy(table.name(d.name.get(LE)).expect("dll name")).to_ascii_lowercase();
            assert!(["ntoskrnl.exe", "hal.dll", "fltmgr.sys"].contains(&dll.as_str()), "{image}: imports from {dll}");
            let mut thunks = table.thunks(d.original_first_thunk.get(LE)).expect("thunks");
            while let Some(t) = thunks.next::<pe::ImageNtHeaders32>().expect("thunk") {
                assert!(!t.is_ordinal(), "{image}: imports by ordinal from {dll}");
                let (_, name) = table.hint_name(t.address()).expect("imports by name");
                let name = String::from_utf8_lossy(name).into_owned();
                if let Some(reason) = never.get(&name) {
                    panic!("{image}: imports {name}: {reason}");
                }
                assert!(!name.contains('@'), "{image}: {name} is a decorated (stdcall/fastcall) name");
                let row = allowed.get(&name).unwrap_or_else(|| panic!("{image}: {name} is not listed for x86"));
                assert!(
                    !name.starts_with('_') || row.convention == "helper",
                    "{image}: {name} carries a C decoration (only the compiler helpers start with '_')"
                );
                assert_eq!(row.dll, dll, "{image}: {name} imported from {dll}");
                assert!(row.first <= (5, 1), "{image}: {name} needs NT {}.{}, newer than XP", row.first.0, row.first.1);
                names.push(name);
            }
        }
        assert!(names.len() > 3, "{image}: only {} imports", names.len());
        println!("{image}: {} undecorated imports, all XP (NT 5.1) exports", names.len());
    }
}

/// x87, MMX and SSE state: what an x86 kernel image must never touch.
fn floating_point_use(mnemonic: &str, operands: &str) -> bool {
    const X87_OR_SSE: [&str; 12] =
        ["fld", "fst", "fild", "fist", "fxch", "fnst", "fldcw", "fxsave", "fxrstor", "ldmxcsr", "stmxcsr", "emms"];
    const FENCES_AND_STREAMS: [&str; 5] = ["mfence", "lfence", "sfence", "movnti", "clflush"];
    let m = mnemonic.to_ascii_lowercase();
    let ops = operands.to_ascii_lowercase();
    let register = ops.split(|c: char| !c.is_ascii_alphanumeric() && c != '(').any(|w| {
        w.starts_with("xmm") || w.starts_with("ymm") || w.starts_with("zmm") || w.starts_with("st(") || {
            w.len() == 3 && w.starts_with("mm") && w.as_bytes()[2].is_ascii_digit()
        }
    });
    register
        || X87_OR_SSE.iter().any(|p| m.starts_with(p))
        || FENCES_AND_STREAMS.contains(&m.as_str())
        || (m.starts_with('f')
            && ["fadd", "fsub", "fmul", "fdiv", "fcom", "fucom", "fwait", "fninit"].iter().any(|p| m.starts_with(p)))
}

#[test]
fn x86_kernel_images_hold_no_sse_mmx_or_x87_instruction() {
    for image in kernel_images() {
        let code = loader_tests::image_tools::disassemble(&package().join(&image));
        assert!(code.len() > 100, "{image}: only {} instructions disassembled", code.len());
        let bad: Vec<String> =
            code.iter().filter(|(m, o)| floating_point_use(m, o)).map(|(m, o)| format!("{m} {o}")).take(10).collect();
        assert!(bad.is_empty(), "{image}: floating-point/SIMD instructions in x86 kernel code: {bad:#?}");
        println!("{image}: {} instructions, none SSE, MMX or x87", code.len());
    }
}

#[test]
fn the_floating_point_check_catches_what_it_looks_for() {
    for (m, o) in [
        ("movups", "xmmword ptr [eax], xmm0"),
        ("movq", "mm0, qword ptr [ecx]"),
        ("fld", "qword ptr [esp + 8]"),
        ("fild", "qword ptr [eax]"),
        ("fistp", "qword ptr [eax]"),
        ("fxch", "st(1)"),
        ("mfence", ""),
        ("movd", "xmm1, eax"),
    ] {
        assert!(floating_point_use(m, o), "missed {m} {o}");
    }
    for (m, o) in [("mov", "eax, dword ptr [ecx]"), ("lock", "cmpxchg8b qword ptr [esi]"), ("push", "ebx")] {
        assert!(!floating_point_use(m, o), "false alarm on {m} {o}");
    }
}

fn exports(bytes: &[u8]) -> Vec<(String, u32)> {
    let file = PeFile32::parse(bytes).expect("PE32");
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
fn x86_payload_exports_its_entries_undecorated() {
    use loader_parsers::pe::{export_rva, Layout};
    for image in ["x86/payload.sys", "x86/test-payloads/payload_v2.sys", "x86/test-payloads/tracker.sys"] {
        let bytes = read(image);
        let ex = exports(&bytes);
        assert!(ex.iter().all(|(n, _)| !n.contains('@') && !n.starts_with('_')), "{image}: decorated exports {ex:?}");
        for name in [shared_abi::payload::REGISTER_EXPORT, shared_abi::payload::DESCRIPTOR_EXPORT] {
            let (_, rva) = ex.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{image} lacks {name}: {ex:?}"));
            let ours =
                export_rva(&bytes, Layout::File, name).unwrap_or_else(|e| panic!("loader's parser: {name}: {e}"));
            assert_eq!(ours, *rva, "{image}: {name}: the loader's parser disagrees with `object`");
        }
        println!("{image}: exports {ex:?}");
    }
    let noexport = read("x86/test-payloads/payload_noexport.sys");
    assert!(
        export_rva(&noexport, Layout::File, shared_abi::payload::REGISTER_EXPORT).is_err(),
        "payload_noexport.sys must lack the registration entry"
    );
}

/// The loader's payload check reads the x86 descriptor layout (4-byte entry
/// pointers) from a PE32 image, and the fault builds fail it as on x64.
#[test]
fn x86_payloads_pass_the_loaders_check_and_the_fault_builds_fail_it() {
    use loader_parsers::payload::inspect_file;
    use shared_abi::NtStatus;
    let payload = read("x86/payload.sys");
    let checked = inspect_file(&payload).expect("x86/payload.sys passes the loader's check");
    assert_eq!(checked.payload_version, 1);
    assert_eq!(checked.abi_minor, shared_abi::ABI_MINOR);
    let base = u64::from(PeFile32::parse(&*payload).expect("PE32").nt_headers().optional_header.image_base.get(LE));
    let ex = exports(&payload);
    let register = ex.iter().find(|(n, _)| n == shared_abi::payload::REGISTER_EXPORT).map(|(_, r)| *r).unwrap();
    assert_eq!(checked.entries.register, base + u64::from(register));
    let handover = checked.entries.handover.expect("the x86 payload has the handover entries");
    assert!(handover.state.is_some(), "the x86 counter filter carries its state");
    for va in [checked.entries.teardown, handover.quiesce] {
        assert!(va > base && va < base + 0x10_0000, "entry 0x{va:x} outside the image at 0x{base:x}");
    }
    let dir = "x86/test-payloads";
    let version = |f: &str| inspect_file(&read(&format!("{dir}/{f}"))).map(|c| c.payload_version);
    assert_eq!(version("payload_v2.sys"), Ok(2));
    assert_eq!(version("payload_noexport.sys"), Err(NtStatus::PROCEDURE_NOT_FOUND));
    assert_eq!(version("payload_badmagic.sys"), Err(NtStatus::INVALID_IMAGE_FORMAT));
    assert_eq!(version("payload_badabi.sys"), Err(NtStatus::REVISION_MISMATCH));
    let old = inspect_file(&read(&format!("{dir}/payload_old.sys"))).expect("the x86 ABI 1.1 build passes");
    assert!(old.entries.handover.is_none(), "an ABI 1.1 build has no handover entries");
}

#[test]
fn x86_loaderctl_is_an_i386_console_program_for_windows7() {
    let bytes = read("x86/loaderctl.exe");
    let file = PeFile32::parse(&*bytes).expect("x86/loaderctl.exe is PE32");
    let nt = file.nt_headers();
    assert_eq!(nt.file_header().machine.get(LE), pe::IMAGE_FILE_MACHINE_I386);
    let oh = nt.optional_header();
    assert_eq!(oh.subsystem.get(LE), pe::IMAGE_SUBSYSTEM_WINDOWS_CUI);
    let os = (oh.major_operating_system_version.get(LE), oh.minor_operating_system_version.get(LE));
    assert!(os <= (6, 1), "x86/loaderctl.exe asks for Windows {os:?}, newer than Windows 7");
    let table = file.import_table().expect("imports").expect("has imports");
    let mut descriptors = table.descriptors().expect("descriptors");
    let mut dlls = Vec::new();
    while let Some(d) = descriptors.next().expect("descriptor") {
        dlls.push(String::from_utf8_lossy(table.name(d.name.get(LE)).expect("name")).to_ascii_lowercase());
    }
    assert!(!dlls.iter().any(|d| d.contains("bcryptprimitives")), "imports bcryptprimitives.dll: {dlls:?}");
    assert!(!dlls.iter().any(|d| d.starts_with("api-ms-win")), "imports API sets Windows 7 lacks: {dlls:?}");
    println!("x86/loaderctl.exe: {} bytes, OS {os:?}, imports {dlls:?}", bytes.len());
}

#[test]
fn x86_package_holds_what_the_x64_one_does() {
    for file in ["loader.sys", "payload.sys", "loaderctl.exe", "loader.inf", "payload.inf"] {
        assert!(package().join("x86").join(file).is_file(), "target/package/x86/{file} is missing");
    }
}

/// The loader calls what it checked: a 64-bit loader (this host's layout)
/// refuses a mapped x86 payload, which it could not call, and takes the
/// same payload built for x64.
#[test]
fn a_loader_refuses_a_payload_of_the_other_architecture() {
    use loader_parsers::fixture::map;
    use loader_parsers::payload::inspect_mapped;
    let x86 = read("x86/payload.sys");
    let base86 = u64::from(PeFile32::parse(&*x86).expect("PE32").nt_headers().optional_header.image_base.get(LE));
    assert_eq!(
        inspect_mapped(map(&x86).as_slice(), base86).map(|_| ()),
        Err(shared_abi::NtStatus::INVALID_IMAGE_FORMAT),
        "a 64-bit loader must refuse an x86 payload"
    );
    let x64 = read("x64/payload.sys");
    let base64 =
        object::read::pe::PeFile64::parse(&*x64).expect("PE32+").nt_headers().optional_header.image_base.get(LE);
    let checked = inspect_mapped(map(&x64).as_slice(), base64).expect("the x64 payload passes a 64-bit loader's check");
    assert_eq!(checked.payload_version, 1);
}
