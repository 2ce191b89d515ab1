//! The verbs against a fake loader.

use super::*;
use crate::fixtures;
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

fn run(
    fake: &FakeLoader,
    f: impl FnOnce(&dyn Control, &mut Console<'_>) -> Result<Exit, Failure>,
) -> (Result<Exit, Failure>, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = f(fake, &mut Console { out: &mut out, err: &mut err, ticker: false });
    (r, String::from_utf8(out).expect("utf-8"), String::from_utf8(err).expect("utf-8"))
}

#[test]
fn status_round_trips_through_the_wire_decoder() {
    let st = fixtures::stuck_old_slot();
    assert_eq!(wire::decode_status(&fixtures::encode_status(&st)), Ok(st));
}

#[test]
fn status_prints_the_table_and_json() {
    let fake = FakeLoader::new(vec![fixtures::after_failed_upgrade()], vec![]);
    let (r, out, _) = run(&fake, |c, con| cmd_status(c, false, con));
    assert_eq!(r, Ok(Exit::Success));
    assert!(out.starts_with("Slot  Service"), "{out}");
    let (r, out, _) = run(&fake, |c, con| cmd_status(c, true, con));
    assert_eq!(r, Ok(Exit::Success));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["active_slot"]["name"], "A");
    // The status query carries a well-formed request with no slot.
    let seen = fake.seen.borrow();
    assert_eq!(seen[0].0, IOCTL_LOADER_QUERY_STATUS.0);
    assert_eq!(seen[0].2, Output::Len(512));
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
    let (r, out, _) = run(&fake, cmd_diagnose);
    assert_eq!(r, Ok(Exit::TeardownStuck));
    assert!(out.contains("is STUCK"));
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
    assert!(out.starts_with("status=STATUS_SUCCESS bytes=512\noutput=00020000"), "{out}");
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
    let ctl = Fixed(Outcome { status: NtStatus::BUFFER_OVERFLOW, bytes: 512, output: bytes });
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
