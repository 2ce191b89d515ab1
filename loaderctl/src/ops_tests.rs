//! The verbs against a fake loader.

use super::*;
use crate::fixtures;
use crate::instances::{Row, SlotFilter, Source};
use shared_abi::control::{IOCTL_LOADER_QUERY_STATUS, SLOT_NONE};
use shared_abi::Slot;
use std::cell::RefCell;
use std::collections::VecDeque;

/// Answers status queries from a queue of snapshots (the last one repeats)
/// and other codes from a queue of outcomes; records every request.
struct FakeLoader {
    statuses: RefCell<VecDeque<LoaderStatus>>,
    outcomes: RefCell<VecDeque<Outcome>>,
    seen: RefCell<Vec<(u32, Input, Output)>>,
}

impl FakeLoader {
    fn new(statuses: Vec<LoaderStatus>, outcomes: Vec<Outcome>) -> Self {
        FakeLoader {
            statuses: RefCell::new(statuses.into()),
            outcomes: RefCell::new(outcomes.into()),
            seen: RefCell::new(Vec::new()),
        }
    }
}

impl Control for FakeLoader {
    fn control(&self, code: IoctlCode, input: &Input, output: Output) -> Outcome {
        self.seen.borrow_mut().push((code.0, input.clone(), output));
        if code == IOCTL_LOADER_QUERY_STATUS {
            let mut q = self.statuses.borrow_mut();
            let st = if q.len() > 1 { q.pop_front().expect("non-empty") } else { q[0] };
            let bytes = fixtures::encode_status(&st);
            return Outcome { status: NtStatus::SUCCESS, bytes: bytes.len(), output: bytes };
        }
        self.outcomes.borrow_mut().pop_front().expect("an outcome for each request")
    }
}

fn ok_reply(active: u32, flags: u32) -> Outcome {
    let bytes = fixtures::encode_reply(NtStatus::SUCCESS, active, flags);
    Outcome { status: NtStatus::SUCCESS, bytes: 16, output: bytes }
}

fn failed(status: NtStatus) -> Outcome {
    Outcome { status, bytes: 0, output: Vec::new() }
}

fn run_with(
    fake: &FakeLoader,
    json: bool,
    progress: Option<ProgressSink>,
    f: impl FnOnce(&dyn Control, &mut Console<'_>) -> Result<Exit, Failure>,
) -> (Result<Exit, Failure>, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let clock = crate::timefmt::tests::clock(60, crate::timefmt::Shown::Local);
    let r = f(fake, &mut Console { out: &mut out, err: &mut err, clock, json, progress });
    (r, String::from_utf8(out).expect("utf-8"), String::from_utf8(err).expect("utf-8"))
}

fn run(
    fake: &FakeLoader,
    f: impl FnOnce(&dyn Control, &mut Console<'_>) -> Result<Exit, Failure>,
) -> (Result<Exit, Failure>, String, String) {
    run_with(fake, false, None, f)
}

/// A Filter Manager that knows nothing (a host build's).
struct NoFilterManager;
impl FilterManager for NoFilterManager {
    fn instances(&self, _: &[SlotFilter]) -> Result<(Source, Vec<Row>), String> {
        Err("no Filter Manager here".to_owned())
    }
    fn snapshot(&self) -> Option<sim::Snapshot> {
        None
    }
    fn default_instance(&self, _: &str) -> Option<(String, String)> {
        None
    }
    fn loaded_drivers(&self) -> Option<Vec<String>> {
        None
    }
    fn image_of(&self, _: &str) -> Option<String> {
        None
    }
}

/// The test Filter Manager with slot A attached to both volumes, a file on
/// the Mup volume holding a stream context, and (optionally) a loaded-driver
/// list that still has slot A's image.
struct SimFilterManager {
    snapshot: sim::Snapshot,
    loaded: Option<Vec<String>>,
}
impl SimFilterManager {
    fn new() -> Self {
        let mut snapshot = crate::instances::tests::snapshot_a_on_both_volumes();
        snapshot.file_count = 1;
        snapshot.files[0].id = 1;
        snapshot.files[0].volume = sim::VOLUME_MUP;
        snapshot.files[0].contexts = 1;
        snapshot.files[0].name = sim::utf16("\\TSCLIENT\\SCARD\\2");
        SimFilterManager { snapshot, loaded: None }
    }
}
impl FilterManager for SimFilterManager {
    fn instances(&self, filters: &[SlotFilter]) -> Result<(Source, Vec<Row>), String> {
        Ok((Source::TestFilterManager, crate::instances::from_snapshot(&self.snapshot, filters)))
    }
    fn snapshot(&self) -> Option<sim::Snapshot> {
        Some(self.snapshot)
    }
    fn default_instance(&self, service: &str) -> Option<(String, String)> {
        let altitude = if service.ends_with('A') { "370030" } else { "370031" };
        Some((format!("{service} Instance"), altitude.to_owned()))
    }
    fn loaded_drivers(&self) -> Option<Vec<String>> {
        self.loaded.clone()
    }
    fn image_of(&self, service: &str) -> Option<String> {
        Some(if service.ends_with('A') { "payload_a.sys" } else { "payload_b.sys" }.to_owned())
    }
}

#[test]
fn status_round_trips_through_the_wire_decoder() {
    let st = fixtures::stuck_old_slot();
    assert_eq!(wire::decode_status(&fixtures::encode_status(&st)), Ok(st));
}

#[test]
fn status_prints_the_table_and_json() {
    let fake = FakeLoader::new(vec![fixtures::after_failed_upgrade()], vec![]);
    let (r, out, _) = run(&fake, cmd_status);
    assert_eq!(r, Ok(Exit::Success));
    assert!(out.starts_with("Slot  Service"), "{out}");
    assert!(out.contains("2026-11-21 06:00:00 +01:00"), "local time with its offset: {out}");
    let (r, out, _) = run_with(&fake, true, None, cmd_status);
    assert_eq!(r, Ok(Exit::Success));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["active_slot"]["name"], "A");
    assert_eq!(v["schema_version"], crate::json::SCHEMA_VERSION);
    // The status query carries a well-formed request with no slot.
    let seen = fake.seen.borrow();
    assert_eq!(seen[0].0, IOCTL_LOADER_QUERY_STATUS.0);
    assert_eq!(seen[0].2, Output::Len(STATUS_BYTES));
    let Input::Bytes(b) = &seen[0].1 else { panic!("bytes") };
    assert_eq!(&b[8..12], &SLOT_NONE.to_le_bytes());
}

#[test]
fn upgrade_prints_progress_and_the_new_active_slot() {
    let mut before = fixtures::healthy_b();
    before.active_slot = 0;
    before.slots.swap(0, 1);
    before.slots[0].service = shared_abi::payload::utf16_name("CounterFilterA");
    before.slots[1].service = shared_abi::payload::utf16_name("CounterFilterB");
    let after = fixtures::healthy_b();
    let fake = FakeLoader::new(vec![before, after], vec![ok_reply(1, 0)]);
    let (r, out, err) = run(&fake, |c, con| cmd_change(c, Change::Upgrade, None, con));
    assert_eq!(r, Ok(Exit::Success));
    assert_eq!(
        out,
        "upgrade: currently active: slot A (CounterFilterA: CounterFilter v2)\n\
         upgrade: asking the loader to load slot B (CounterFilterB), register it, then retire slot A ...\n\
         upgrade: the loader answered STATUS_SUCCESS (0x00000000)\n\
         upgrade: now active: slot B (CounterFilterB: CounterFilter v2)\n"
    );
    assert_eq!(err, "");
    let seen = fake.seen.borrow();
    assert_eq!(seen[1].0, IOCTL_LOADER_UPGRADE.0);
    assert_eq!(seen[1].2, Output::Len(16));
}

#[test]
fn upgrade_with_slot_sends_it() {
    let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![ok_reply(0, 0)]);
    let (r, _, _) = run(&fake, |c, con| cmd_change(c, Change::Upgrade, Some(Slot::A), con));
    assert_eq!(r, Ok(Exit::Success));
    let Input::Bytes(b) = &fake.seen.borrow()[1].1 else { panic!("bytes") };
    assert_eq!(&b[8..12], &0u32.to_le_bytes());
}

#[test]
fn upgrading_into_the_active_slot_is_a_usage_answer_and_sends_nothing() {
    let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![]);
    let (r, _, _) = run(&fake, |c, con| cmd_change(c, Change::Upgrade, Some(Slot::B), con));
    let f = r.expect_err("usage");
    assert_eq!(f.exit, Exit::Usage);
    assert!(f.message.starts_with("slot B is already active"), "{}", f.message);
    assert_eq!(fake.seen.borrow().len(), 1, "only the status query was sent");
}

#[test]
fn refused_upgrade_names_the_status_and_keeps_the_old_slot() {
    let st = fixtures::after_failed_upgrade();
    let fake = FakeLoader::new(vec![st], vec![failed(NtStatus::PROCEDURE_NOT_FOUND)]);
    let (r, out, _) = run(&fake, |c, con| cmd_change(c, Change::Upgrade, None, con));
    let f = r.expect_err("refused");
    assert_eq!(f.exit.code(), 5);
    assert_eq!(
        f.message,
        "upgrade refused: STATUS_PROCEDURE_NOT_FOUND (0xC000007A): the payload image lacks the required export"
    );
    assert!(out.ends_with("upgrade: still active: slot A (CounterFilterA: CounterFilter v1)\n"), "{out}");
}

#[test]
fn each_failure_class_reaches_the_exit_code() {
    for (status, code) in [
        (NtStatus::ACCESS_DENIED, 4),
        (NtStatus::INVALID_IMAGE_FORMAT, 5),
        (NtStatus::REVISION_MISMATCH, 5),
        (NtStatus::UNSUCCESSFUL, 6),
        (NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION, 6),
        (NtStatus::DEVICE_BUSY, 7),
        (NtStatus::IMAGE_ALREADY_LOADED, 7),
        (NtStatus::IO_TIMEOUT, 8),
        (NtStatus::INVALID_PARAMETER, 9),
    ] {
        let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![failed(status)]);
        let (r, _, _) = run(&fake, |c, con| cmd_change(c, Change::Load, None, con));
        assert_eq!(r.expect_err("fails").exit.code(), code, "{status}");
    }
}

#[test]
fn stuck_old_slot_is_a_warning_with_exit_8() {
    let mut before = fixtures::stuck_old_slot();
    before.active_slot = 0;
    before.slots[0].state = shared_abi::control::SlotState::ACTIVE.0;
    let fake = FakeLoader::new(vec![before, fixtures::stuck_old_slot()], vec![ok_reply(1, REPLY_OLD_SLOT_STUCK)]);
    let (r, out, err) = run(&fake, |c, con| cmd_change(c, Change::Upgrade, None, con));
    assert_eq!(r, Ok(Exit::TeardownStuck));
    assert!(out.contains("upgrade: now active: slot B (CounterFilterB: CounterFilter v2)\n"), "{out}");
    assert_eq!(
        err,
        "warning: the new payload is active, but slot A (CounterFilterA: CounterFilter v1) has not finished unloading; run `loaderctl diagnose` to see why\n"
    );
}

#[test]
fn malformed_reply_is_class_9() {
    let short = Outcome { status: NtStatus::SUCCESS, bytes: 4, output: vec![16, 0, 0, 0] };
    let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![short]);
    let (r, _, _) = run(&fake, |c, con| cmd_change(c, Change::Rollback, None, con));
    let f = r.expect_err("malformed");
    assert_eq!(f.exit.code(), 9);
    assert!(f.message.starts_with("rollback failed: the loader's reply is malformed: STATUS_"), "{}", f.message);
}

#[test]
fn unload_and_rollback_describe_their_targets() {
    let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![ok_reply(SLOT_NONE, 0)]);
    let (_, out, _) = run(&fake, |c, con| cmd_change(c, Change::Unload, None, con));
    assert!(
        out.contains("unload: asking the loader to retire slot B (CounterFilterB: CounterFilter v2) ...\n"),
        "{out}"
    );
    let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![ok_reply(0, 0)]);
    let (_, out, _) = run(&fake, |c, con| cmd_change(c, Change::Rollback, None, con));
    assert!(
        out.contains("rollback: asking the loader to switch back from slot B to slot A (CounterFilterA) ...\n"),
        "{out}"
    );
}

#[test]
fn diagnose_uses_the_snapshot() {
    let fake = FakeLoader::new(vec![fixtures::stuck_old_slot()], vec![]);
    let (r, out, _) = run(&fake, |c, con| cmd_diagnose(c, &NoFilterManager, con));
    assert_eq!(r, Ok(Exit::TeardownStuck));
    assert!(out.contains("is STUCK"));
    assert!(!out.contains("What it still holds"), "{out}");
}

#[test]
fn diagnose_names_the_file_from_the_filter_manager_and_says_so_in_json() {
    let fake = FakeLoader::new(vec![fixtures::stuck_old_slot()], vec![]);
    let fm = SimFilterManager::new();
    let (r, out, _) = run(&fake, |c, con| cmd_diagnose(c, &fm, con));
    assert_eq!(r, Ok(Exit::TeardownStuck));
    assert!(out.contains("\\Device\\Mup\\TSCLIENT\\SCARD\\2: open, 1 stream context(s)"), "{out}");
    let (r, out, _) = run_with(&fake, true, None, |c, con| cmd_diagnose(c, &fm, con));
    assert_eq!(r, Ok(Exit::TeardownStuck));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["command"], "diagnose");
    assert_eq!(v["healthy"], false);
    assert_eq!(v["exit_code"], 8);
    assert_eq!(v["held"][0]["volume"], "\\Device\\Mup");
    assert_eq!(v["held"][0]["file"], "\\TSCLIENT\\SCARD\\2");
    assert_eq!(v["refusing"][0]["state"], "tearing-down");
}

#[test]
fn diagnose_checks_the_loaded_driver_list_for_an_image_that_should_be_gone() {
    let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![]);
    let mut fm = SimFilterManager::new();
    fm.loaded = Some(vec!["ntoskrnl.exe".into(), "PAYLOAD_A.SYS".into()]);
    let (r, out, _) = run(&fake, |c, con| cmd_diagnose(c, &fm, con));
    assert_eq!(r, Ok(Exit::TeardownStuck), "{out}");
    assert!(out.starts_with("Slot A (CounterFilterA) is empty, but its image payload_a.sys is still loaded"), "{out}");
    fm.loaded = Some(vec!["ntoskrnl.exe".into()]);
    let (r, _, _) = run(&fake, |c, con| cmd_diagnose(c, &fm, con));
    assert_eq!(r, Ok(Exit::Success));
}

#[test]
fn instances_lists_each_slot_with_volume_altitude_and_attached() {
    let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![]);
    let fm = SimFilterManager::new();
    let (r, out, _) = run(&fake, |c, con| cmd_instances(c, &fm, con));
    assert_eq!(r, Ok(Exit::Success));
    assert!(
        out.contains("A     CounterFilterA  \\Device\\Mup              370030    CounterFilterA Instance  detaching\n"),
        "{out}"
    );
    assert!(
        out.contains("B     CounterFilterB  -                        370031    CounterFilterB Instance  no\n"),
        "{out}"
    );
    let (r, out, _) = run_with(&fake, true, None, |c, con| cmd_instances(c, &fm, con));
    assert_eq!(r, Ok(Exit::Success));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["source"], "test-filter-manager");
    assert_eq!(v["instances"][0]["attached"], true);
    assert_eq!(v["instances"][2]["state"], "not-attached");
    let (r, _, _) = run(&fake, |c, con| cmd_instances(c, &NoFilterManager, con));
    assert_eq!(r.expect_err("no source").exit, Exit::Internal);
}

#[test]
fn a_change_with_json_prints_one_document_even_when_refused() {
    let fake = FakeLoader::new(vec![fixtures::after_failed_upgrade()], vec![failed(NtStatus::PROCEDURE_NOT_FOUND)]);
    let (r, out, err) = run_with(&fake, true, None, |c, con| cmd_change(c, Change::Upgrade, None, con));
    assert_eq!(r, Ok(Exit::ImageRejected));
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document on stdout");
    assert_eq!(v["command"], "upgrade");
    assert_eq!(v["exit_code"], 5);
    assert_eq!(v["status"]["name"], "STATUS_PROCEDURE_NOT_FOUND");
    assert_eq!(v["active_before"]["name"], "A");
    assert_eq!(v["active_after"]["name"], "A");
    assert!(v["message"].as_str().unwrap().starts_with("upgrade refused: STATUS_PROCEDURE_NOT_FOUND"));
    assert!(err.starts_with("error: upgrade refused"), "{err}");
    let fake =
        FakeLoader::new(vec![fixtures::healthy_b(), fixtures::healthy_b()], vec![ok_reply(0, REPLY_OLD_SLOT_STUCK)]);
    let (r, out, _) = run_with(&fake, true, None, |c, con| cmd_change(c, Change::Rollback, None, con));
    assert_eq!(r, Ok(Exit::TeardownStuck));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!((v["old_slot_stuck"].as_bool(), v["message"].is_null()), (Some(true), true));
}

/// A loader whose upgrade takes a while: the request blocks until the
/// second handle has seen every state; that handle walks through them.
struct SlowLoader {
    states: std::sync::Mutex<std::collections::VecDeque<LoaderStatus>>,
    drained: std::sync::Arc<std::sync::atomic::AtomicBool>,
}
impl Control for SlowLoader {
    fn control(&self, code: IoctlCode, _: &Input, _: Output) -> Outcome {
        assert_eq!(code, IOCTL_LOADER_QUERY_STATUS, "the second handle only polls");
        let mut q = self.states.lock().unwrap();
        let st = if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            self.drained.store(true, std::sync::atomic::Ordering::SeqCst);
            q[0]
        };
        let bytes = fixtures::encode_status(&st);
        Outcome { status: NtStatus::SUCCESS, bytes: bytes.len(), output: bytes }
    }
}

/// The first handle: its upgrade returns once the poller saw the end.
struct Blocking<'a>(&'a FakeLoader, std::sync::Arc<std::sync::atomic::AtomicBool>);
impl Control for Blocking<'_> {
    fn control(&self, code: IoctlCode, input: &Input, output: Output) -> Outcome {
        if code != IOCTL_LOADER_QUERY_STATUS {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !self.1.load(std::sync::atomic::Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        self.0.control(code, input, output)
    }
}

#[test]
fn a_long_upgrade_shows_its_phases_polled_on_a_second_handle() {
    let states = crate::progress::tests::upgrade_states();
    let drained = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let second = SlowLoader { states: std::sync::Mutex::new(states.clone().into()), drained: drained.clone() };
    let printed = crate::progress::tests::Shared::default();
    let sink = ProgressSink {
        second: Box::new(second),
        out: Box::new(printed.clone()),
        timing: crate::progress::Timing {
            grace: std::time::Duration::ZERO,
            poll: std::time::Duration::from_millis(2),
            quiet: std::time::Duration::from_secs(45),
        },
    };
    let first = FakeLoader::new(vec![states[0], states[6]], vec![ok_reply(1, 0)]);
    let blocking = Blocking(&first, drained);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let clock = crate::timefmt::tests::clock(0, crate::timefmt::Shown::Local);
    let mut con = Console { out: &mut out, err: &mut err, clock, json: false, progress: Some(sink) };
    let r = cmd_change(&blocking, Change::Upgrade, None, &mut con);
    assert_eq!(r, Ok(Exit::Success));
    let progress = printed.text();
    let phases: Vec<&str> = progress.lines().map(|l| l.split_once(" s  ").map_or(l, |(_, t)| t)).collect();
    assert_eq!(
        phases,
        [
            "loading slot B (CounterFilterB): ZwLoadDriver runs its DriverEntry",
            "DriverEntry returned; the loader calls the payload's registration",
            "registered: slot B filters",
            "switched: slot B is the active slot",
            "retiring the old payload in slot A (teardown, then ZwUnloadDriver)",
            "slot A is unloaded",
            "persisted: Parameters\\ActiveSlot = B",
        ],
        "{progress}"
    );
}

#[test]
fn raw_prints_status_and_bytes() {
    let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![failed(NtStatus::INVALID_BUFFER_SIZE)]);
    let req = RawRequest {
        code: 0x0022_6004,
        input: Input::Null { len: 0 },
        output: Output::Null { len: 16 },
        show_output: false,
    };
    let (r, out, _) = run(&fake, |c, con| cmd_raw(c, &req, con));
    assert_eq!(r, Ok(Exit::Success));
    assert_eq!(out, "status=STATUS_INVALID_BUFFER_SIZE bytes=0\n");
    let req = RawRequest {
        code: IOCTL_LOADER_QUERY_STATUS.0,
        input: Input::Bytes(garbage(3)),
        output: Output::Len(512),
        show_output: true,
    };
    let (_, out, _) = run(&fake, |c, con| cmd_raw(c, &req, con));
    let size = STATUS_BYTES.to_le_bytes().iter().fold(String::new(), |mut t, b| {
        let _ = write!(t, "{b:02x}");
        t
    });
    assert!(out.starts_with(&format!("status=STATUS_SUCCESS bytes={STATUS_BYTES}\noutput={size}")), "{out}");
    assert_eq!(fake.seen.borrow()[1].1, Input::Bytes(garbage(3)));
}

#[test]
fn garbage_is_deterministic_and_not_constant() {
    let g = garbage(64);
    assert_eq!(g.len(), 64);
    assert_eq!(g, garbage(64));
    assert!(g.iter().any(|&b| b != g[0]));
}

/// Answers every request with one fixed outcome.
struct Fixed(Outcome);

impl Control for Fixed {
    fn control(&self, _: IoctlCode, _: &Input, _: Output) -> Outcome {
        self.0.clone()
    }
}

#[test]
fn status_from_a_newer_minor_loader_is_accepted_when_truncated() {
    let bytes = fixtures::encode_status(&fixtures::healthy_b());
    let ctl = Fixed(Outcome { status: NtStatus::BUFFER_OVERFLOW, bytes: STATUS_BYTES as usize, output: bytes });
    assert_eq!(query_status(&ctl, "status"), Ok(fixtures::healthy_b()));
    let ctl = Fixed(Outcome { status: NtStatus::BUFFER_OVERFLOW, bytes: 100, output: vec![0; 100] });
    assert_eq!(query_status(&ctl, "status").expect_err("short").exit, Exit::Internal);
}

#[test]
fn status_reply_problems_are_class_9_and_named() {
    let mut other_major = fixtures::healthy_b();
    other_major.abi_major = 2;
    let ctl = Fixed(Outcome { status: NtStatus::SUCCESS, bytes: 512, output: fixtures::encode_status(&other_major) });
    let f = query_status(&ctl, "status").expect_err("other ABI");
    assert_eq!(f.exit.code(), 9);
    assert!(
        f.message
            .starts_with("status failed: STATUS_REVISION_MISMATCH (0xC0000059): the loader speaks another ABI version"),
        "{}",
        f.message
    );
    let ctl = Fixed(Outcome { status: NtStatus::SUCCESS, bytes: 8, output: vec![0; 8] });
    let f = query_status(&ctl, "status").expect_err("short");
    assert_eq!(f.exit.code(), 9);
    assert!(
        f.message.starts_with("status failed: the loader's reply is malformed: STATUS_INFO_LENGTH_MISMATCH"),
        "{}",
        f.message
    );
    let ctl = Fixed(Outcome { status: NtStatus::REVISION_MISMATCH, bytes: 0, output: vec![] });
    let f = query_status(&ctl, "status").expect_err("loader refused our ABI");
    assert_eq!(f.exit.code(), 9);
    assert!(f.message.contains("the loader speaks another ABI version"), "{}", f.message);
    let ctl = Fixed(Outcome { status: NtStatus::INFO_LENGTH_MISMATCH, bytes: 0, output: vec![] });
    assert_eq!(query_status(&ctl, "status").expect_err("bad request").exit.code(), 9);
    let ctl = Fixed(Outcome { status: NtStatus::ACCESS_DENIED, bytes: 0, output: vec![] });
    assert_eq!(query_status(&ctl, "status").expect_err("denied").exit.code(), 4);
}

#[test]
fn every_request_the_verbs_send_passes_the_loaders_own_checks() {
    let cases: [(Change, Option<Slot>); 5] = [
        (Change::Upgrade, None),
        (Change::Upgrade, Some(Slot::A)),
        (Change::Rollback, None),
        (Change::Load, None),
        (Change::Unload, None),
    ];
    for (change, slot) in cases {
        let fake = FakeLoader::new(vec![fixtures::healthy_b()], vec![ok_reply(1, 0)]);
        let (r, _, _) = run(&fake, |c, con| cmd_change(c, change, slot, con));
        assert_eq!(r, Ok(Exit::Success));
        let seen = fake.seen.borrow();
        assert_eq!(seen.len(), 3, "status, {change:?}, status");
        for (code, input, output) in seen.iter() {
            let (Input::Bytes(bytes), Output::Len(len)) = (input, output) else { panic!("plain buffers") };
            let decoded = loader_parsers::control::decode_request(*code, bytes, *len as usize);
            assert!(decoded.is_ok(), "{change:?} {slot:?}: 0x{code:08X} refused: {decoded:?}");
        }
    }
}
