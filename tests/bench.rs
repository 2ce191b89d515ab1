//! Benchmark (`cargo xtask bench`): prints figures, never passes or fails
//! on a time. Under Wine, in one run:
//! - upgrade latency through the loader, median and p99 over N cycles,
//!   measured around the IOCTL inside one `loaderctl` process;
//! - the same switch as whole commands (`loaderctl upgrade` per switch),
//!   and the switch done by hand with bare `sc stop` / `sc start` of the
//!   payload services alone (no registration, no serialization), and the
//!   ratio between the two;
//! - image sizes and the loader's non-paged footprint;
//! - where the bytes of loader.sys and payload.sys go: by section, and by
//!   function and crate from the LTO object they were linked from
//!   (`cargo xtask bench` builds it with `-Csave-temps` into
//!   `target/sizes/`).
//!
//! - issue 12: 1,000 switches (upgrades alternating with rollbacks) under
//!   a 4-thread I/O storm with the counter filter and with the change
//!   tracker (the `storm:`, `handover:` and `tracked:` lines); the extra
//!   latency the exactly-once handover adds to an upgrade (payloads with
//!   and without the handover entries, as a ratio); the callback cost of
//!   the owner word against a bare callback (ns/op).
//!
//! Record the figures in `docs/performance.md` with the machine and date.
#![allow(clippy::cast_precision_loss)] // figures printed for people, far below 2^52
use loader_tests::wine::{WineSession, LOADER_SERVICE, SLOT_SERVICES};
use std::time::{Duration, Instant};

const IOCTL_CYCLES: u32 = 300;
const COMMAND_CYCLES: usize = 30;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let median = percentile(&samples, 0.5);
    let p99 = percentile(&samples, 0.99);
    println!(
        "{label}: n={} median={:.1} ms p99={:.1} ms max={:.1} ms",
        samples.len(),
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    median
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse().ok())
}

/// The figures per architecture (issue 14): both packages' sizes side by
/// side, and the upgrade IOCTL median on the architecture under test
/// (`SERIAL_LOADER_ARCH`; `cargo xtask bench` runs this once per
/// architecture).
#[test]
fn arch_sizes_and_upgrade_median() {
    let arch = loader_tests::arch::arch();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/package");
    for f in ["loader.sys", "payload.sys", "loaderctl.exe"] {
        let len = |a: &str| std::fs::metadata(root.join(a).join(f)).map_or(0, |m| m.len());
        println!("size {f}: x64 {} bytes, x86 {} bytes", len("x64"), len("x86"));
    }
    let s = WineSession::start().expect("Wine session");
    s.install(0, 5000).expect("install");
    s.set_slot_image(1, "payload_v2.sys").expect("v2 into slot B");
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    let r = s.loaderctl(&["cycle", "--count", &IOCTL_CYCLES.to_string()]);
    assert_eq!(r.code, 0, "cycle failed: {}", r.all());
    let median_us = field(&r.all(), "median_us=").expect("median in cycle output");
    let p99_us = field(&r.all(), "p99_us=").expect("p99 in cycle output");
    println!(
        "{arch}: loader upgrade (IOCTL, in-process): n={IOCTL_CYCLES} median={:.2} ms p99={:.2} ms",
        median_us as f64 / 1e3,
        p99_us as f64 / 1e3
    );
    let survivors = s.stop();
    assert!(survivors.is_empty(), "Wine processes survived: {survivors:?}");
}

#[test]
fn upgrade_latency_and_footprint() {
    let s = WineSession::start().expect("Wine session");
    s.install(0, 5000).expect("install");
    s.set_slot_image(1, "payload_v2.sys").expect("v2 into slot B");
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    std::thread::sleep(Duration::from_secs(1));

    // 1. Inside one process: the IOCTL round trip of each upgrade.
    let r = s.loaderctl(&["cycle", "--count", &IOCTL_CYCLES.to_string()]);
    assert_eq!(r.code, 0, "cycle failed: {}", r.all());
    let median_us = field(&r.all(), "median_us=").expect("median in cycle output");
    let p99_us = field(&r.all(), "p99_us=").expect("p99 in cycle output");
    println!(
        "loader upgrade (IOCTL, in-process): n={IOCTL_CYCLES} median={:.2} ms p99={:.2} ms",
        median_us as f64 / 1e3,
        p99_us as f64 / 1e3
    );

    // 1b. The same with payloads built before the handover (ABI 1.1: no
    // placement, no state transfer, no drain): what an upgrade cost before.
    let old_us = {
        assert_eq!(s.loaderctl(&["unload"]).code, 0, "unload");
        s.set_slot_image(0, "payload_old.sys").expect("1.1 v1 into slot A");
        s.set_slot_image(1, "payload_v2_old.sys").expect("1.1 v2 into slot B");
        // `load` brings up the slot active last: A, after an even number of upgrades.
        assert_eq!(s.loaderctl(&["load"]).code, 0, "load the 1.1 payload");
        let r = s.loaderctl(&["cycle", "--count", &IOCTL_CYCLES.to_string()]);
        assert_eq!(r.code, 0, "cycle (1.1 payloads) failed: {}", r.all());
        let old_median = field(&r.all(), "median_us=").expect("median in cycle output");
        let old_p99 = field(&r.all(), "p99_us=").expect("p99 in cycle output");
        println!(
            "loader upgrade without the handover (ABI 1.1 payloads, IOCTL, in-process): n={IOCTL_CYCLES} median={:.2} ms p99={:.2} ms",
            old_median as f64 / 1e3,
            old_p99 as f64 / 1e3
        );
        assert_eq!(s.loaderctl(&["unload"]).code, 0, "unload");
        s.set_slot_image(0, "payload.sys").expect("v1 into slot A");
        s.set_slot_image(1, "payload_v2.sys").expect("v2 into slot B");
        assert_eq!(s.loaderctl(&["load"]).code, 0, "load again");
        old_median
    };
    println!(
        "extra upgrade latency of the exactly-once handover: ratio exact/1.1 (medians) = {:.2}",
        median_us as f64 / (old_us as f64).max(1.0)
    );

    // 2. As whole commands, one Wine process per switch.
    let mut via_loader = Vec::new();
    for _ in 0..COMMAND_CYCLES {
        let t = Instant::now();
        let r = s.loaderctl(&["upgrade"]);
        via_loader.push(t.elapsed());
        assert_eq!(r.code, 0, "upgrade: {}", r.all());
    }
    let loader_median = summary("loaderctl upgrade (whole command)", via_loader);
    // The loader's own pool (state blobs in flight during a handover) after
    // 630 upgrades: what it allocated, freed and still holds.
    let st = s.loaderctl(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap_or_default();
    let pool = v["loader_pool"].clone();
    assert!(pool.is_object(), "status --json has no loader_pool: {}", st.all());

    // 3. The same switch by hand, with the loader out of the way.
    let (ok, out) = s.sc(&["stop", LOADER_SERVICE]);
    assert!(ok, "sc stop loader: {out}");
    let (ok, out) = s.sc(&["start", SLOT_SERVICES[0]]);
    assert!(ok, "sc start {}: {out}", SLOT_SERVICES[0]);
    let mut by_hand = Vec::new();
    let mut current = 0usize;
    for _ in 0..COMMAND_CYCLES {
        let next = 1 - current;
        let t = Instant::now();
        let (ok1, o1) = s.sc(&["stop", SLOT_SERVICES[current]]);
        let (ok2, o2) = s.sc(&["start", SLOT_SERVICES[next]]);
        by_hand.push(t.elapsed());
        assert!(ok1 && ok2, "manual switch failed: {o1} {o2}");
        current = next;
    }
    let _ = s.sc(&["stop", SLOT_SERVICES[current]]);
    let hand_median = summary("bare sc stop + sc start (whole commands)", by_hand);
    println!(
        "ratio loaderctl upgrade / bare sc switch (medians): {:.2}",
        loader_median.as_secs_f64() / hand_median.as_secs_f64().max(1e-9)
    );

    // 4. Sizes and footprint.
    let pkg = loader_tests::arch::package_dir();
    for f in ["loader.sys", "payload.sys", "loaderctl.exe"] {
        let len = std::fs::metadata(pkg.join(f)).map_or(0, |m| m.len());
        println!("size {f}: {len} bytes");
    }
    let loader = std::fs::read(pkg.join("loader.sys")).expect("loader.sys");
    let pe = object::read::pe::PeFile64::parse(&*loader).expect("loader.sys is a PE32+ image");
    let size_of_image = pe.nt_headers().optional_header.size_of_image.get(object::LittleEndian);
    let pageable: Vec<String> = {
        use object::{Object, ObjectSection};
        pe.sections().filter_map(|sec| sec.name().ok().map(str::to_owned)).filter(|n| n.starts_with("PAGE")).collect()
    };
    println!(
        "loader non-paged footprint: {size_of_image} bytes of image (pageable sections: {}) + pool allocs={} frees={} outstanding={}",
        if pageable.is_empty() { "none".to_owned() } else { pageable.join(",") },
        pool["allocs"],
        pool["frees"],
        pool["outstanding"]
    );
    s.stop();
}

/// The LTO object an image was linked from (`crate_file` is the crate's
/// file name, e.g. `loader_driver`).
fn lto_object(crate_file: &str) -> Option<std::path::PathBuf> {
    let deps =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/sizes/x86_64-pc-windows-msvc/kernel/deps");
    std::fs::read_dir(&deps)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().map(|n| n.to_string_lossy().into_owned()).is_some_and(|n| {
                n.starts_with(&format!("{crate_file}.")) && n.ends_with("-cgu.0.rcgu.o") && !n.contains("no-opt")
            })
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// The crate (or `core::fmt`-like module) a demangled symbol belongs to.
fn owner(symbol: &str) -> String {
    let path = symbol.trim_start_matches('<');
    let mut parts = path.split("::");
    let first = parts.next().unwrap_or(path);
    match first {
        "core" | "alloc" => format!("{first}::{}", parts.next().unwrap_or("")),
        _ => first.split(' ').next().unwrap_or(first).to_owned(),
    }
}

fn size_breakdown(image: &str, crate_file: &str) {
    use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};
    let bytes = std::fs::read(loader_tests::arch::package_dir().join(image)).expect("packaged image");
    let pe = object::read::pe::PeFile64::parse(&*bytes).expect("PE32+");
    println!("size breakdown of {image} ({} bytes on disk):", bytes.len());
    for section in pe.sections() {
        let name = section.name().unwrap_or("?");
        let raw = section.file_range().map_or(0, |(_, len)| len);
        println!("  section {name:<8} {:>6} bytes in memory, {raw:>6} in the file", section.size());
    }
    let Some(path) = lto_object(crate_file) else {
        println!("  (no LTO object under target/sizes: run `cargo xtask bench`, which builds it)");
        return;
    };
    let data = std::fs::read(&path).expect("LTO object");
    let file = object::File::parse(&*data).expect("COFF object");
    // One COMDAT section per function: its size is the function's size.
    let mut functions: Vec<(u64, String)> = Vec::new();
    let mut rodata = 0u64;
    for section in file.sections() {
        match section.kind() {
            SectionKind::Text => {
                let name = file
                    .symbols()
                    .find(|s| s.section_index() == Some(section.index()) && s.kind() == SymbolKind::Text)
                    .and_then(|s| s.name().ok().map(|n| format!("{:#}", rustc_demangle::demangle(n))))
                    .unwrap_or_else(|| "(unnamed)".into());
                functions.push((section.size(), name));
            }
            SectionKind::ReadOnlyData | SectionKind::ReadOnlyString => rodata += section.size(),
            _ => {}
        }
    }
    functions.sort_by_key(|f| std::cmp::Reverse(f.0));
    let code: u64 = functions.iter().map(|f| f.0).sum();
    println!("  code in the LTO object: {code} bytes in {} functions; read-only data {rodata} bytes", functions.len());
    let mut by_owner: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (size, name) in &functions {
        *by_owner.entry(owner(name)).or_default() += size;
    }
    let mut owners: Vec<(String, u64)> = by_owner.into_iter().collect();
    owners.sort_by_key(|o| std::cmp::Reverse(o.1));
    for (owner, size) in owners.iter().take(12) {
        println!("  code by crate/module: {size:>6} bytes  {owner}");
    }
    for (size, name) in functions.iter().take(20) {
        let short: String = name.chars().take(110).collect();
        println!("  largest function: {size:>6} bytes  {short}");
    }
}

/// Where the bytes of the two kernel images go. Prints only.
#[test]
fn image_size_breakdown() {
    size_breakdown("loader.sys", "loader_driver");
    size_breakdown("payload.sys", "counter_filter");
}

/// Issue 10's figures, on the test world's Filter Manager (`tests/fltmgr`):
/// - the storm: 4 threads inject creates, reads and writes without pause
///   while the loader upgrades 1,000 times (each upgrade settled before the
///   next); operations no payload processed ("unfiltered"), processed by
///   two payload generations ("double"), and the longest gap;
/// - the wrapper's overhead: the same callback (counts, asks for the post
///   callback, counts again) as a bare image and behind the payload
///   wrapper, and no filter at all, in ns per operation (reads on one
///   injector thread, the median of 5 rounds after a warm-up round).
#[test]
fn storm_and_wrapper_overhead() {
    use loader_tests::fltsim;
    const UPGRADES: &str = "1000";
    const READS: u64 = 200_000;
    let wait_active = |s: &WineSession, want: &str| {
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let r = s.loaderctl(&["status", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
            let name = v["active_slot"]["name"].as_str();
            if name == Some(want) || (want == "*" && name.is_some()) || (want.is_empty() && name.is_none()) {
                return;
            }
            assert!(Instant::now() < deadline, "slot {want:?} never became the active one: {}", r.all());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let s = WineSession::start().expect("Wine session");
    s.install(0, 5000).expect("install");
    s.set_slot_image(1, "payload_v2.sys").expect("v2 into slot B");
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_active(&s, "A");

    // 1. The storm: 1,000 switches, upgrades alternating with rollbacks,
    // with the counter filter (its totals carried across every switch).
    let r = fltsim::fltsimctl_bounded(
        &s,
        &["storm", "--upgrades", UPGRADES, "--threads", "4", "--rollbacks"],
        Duration::from_hours(1),
    );
    assert_eq!(r.code, 0, "storm failed: {}", r.all());
    println!("counter filter:");
    for line in r.stdout.lines().filter(|l| l.starts_with("storm:") || l.starts_with("handover:") || l.starts_with('{'))
    {
        println!("{line}");
    }

    // 2. The wrapper's overhead.
    let median = |s: &WineSession| {
        let _warm_up = fltsim::inject(s, "read", READS, 1).expect("inject");
        let mut ns: Vec<u64> = (0..5)
            .map(|_| {
                let out = fltsim::inject(s, "read", READS, 1).expect("inject");
                field(&out, "ns_per_op=").expect("ns_per_op")
            })
            .collect();
        ns.sort_unstable();
        ns[2]
    };
    assert_eq!(s.loaderctl(&["unload"]).code, 0, "unload");
    wait_active(&s, "");
    let none = median(&s);
    // `load` brings up the slot that was active last: the image goes into both.
    for slot in 0..2 {
        s.set_slot_image(slot, "bench_wrapped.sys").expect("bench_wrapped.sys into the slots");
    }
    assert_eq!(s.loaderctl(&["load"]).code, 0, "load the wrapped bench filter");
    wait_active(&s, "*");
    let wrapped = median(&s);
    assert_eq!(s.loaderctl(&["unload"]).code, 0, "unload");
    wait_active(&s, "");
    for slot in 0..2 {
        s.set_slot_image(slot, "bench_wrapped_old.sys").expect("bench_wrapped_old.sys into the slots");
    }
    assert_eq!(s.loaderctl(&["load"]).code, 0, "load the 1.1 wrapped bench filter");
    wait_active(&s, "*");
    let wrapped_old = median(&s);
    assert_eq!(s.loaderctl(&["unload"]).code, 0, "unload");
    wait_active(&s, "");
    fltsim::install_filter_service(&s, "BenchBare", "bench_bare.sys", "370300").expect("BenchBare");
    let (ok, out) = s.sc(&["start", "BenchBare"]);
    assert!(ok, "sc start BenchBare: {out}");
    let bare = median(&s);
    let _ = s.sc(&["stop", "BenchBare"]);
    println!(
        "overhead: bare={bare} ns/op wrapped={wrapped} ns/op wrapped-1.1={wrapped_old} ns/op no-filter={none} ns/op wrapper-minus-bare={} ns/op owner-word={} ns/op ({READS} reads per round, 1 thread, median of 5)",
        i128::from(wrapped) - i128::from(bare),
        i128::from(wrapped) - i128::from(wrapped_old)
    );
    s.stop();

    // 3. The change tracker: 1,000 switches under a storm of writes to one
    // file; its tracked set against the set written.
    let s = WineSession::start().expect("Wine session");
    s.install(0, 5000).expect("install");
    s.set_slot_image(0, "tracker.sys").expect("tracker into slot A");
    s.set_slot_image(1, "tracker_v2.sys").expect("tracker v2 into slot B");
    let (ok, out) = s.sc(&["start", LOADER_SERVICE]);
    assert!(ok, "sc start: {out}");
    wait_active(&s, "A");
    let r = fltsim::fltsimctl_bounded(
        &s,
        &["storm", "--upgrades", UPGRADES, "--threads", "4", "--rollbacks", "--writes"],
        Duration::from_hours(1),
    );
    assert_eq!(r.code, 0, "tracker storm failed: {}", r.all());
    println!("change tracker:");
    for line in r.stdout.lines().filter(|l| {
        l.starts_with("storm:") || l.starts_with("handover:") || l.starts_with("tracked:") || l.starts_with('{')
    }) {
        println!("{line}");
    }
    s.stop();
}
