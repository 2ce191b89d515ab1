//! Sample [`LoaderStatus`] values for the unit tests.

use crate::timefmt::tests::ticks_from_unix;
use shared_abi::control::{
    ControlReply, ErrorRecord, LoaderStatus, OpKind, PoolCount, SlotState, SlotStatus, SLOT_NONE,
};
use shared_abi::payload::{utf16_name, PayloadPhase, PayloadReport};
use shared_abi::{NtStatus, POOL_TAG_LOADER};

/// 2026-11-21 05:00:00 UTC.
pub fn at_0500() -> u64 {
    ticks_from_unix(1_795_237_200)
}

/// `minutes` after 05:00:00.
pub fn at_0500_plus(minutes: u64, seconds: u64) -> u64 {
    at_0500() + (minutes * 60 + seconds) * 10_000_000
}

/// Loader started, nothing loaded.
pub fn empty_loader() -> LoaderStatus {
    LoaderStatus {
        size: crate::ops::STATUS_BYTES,
        abi_major: 1,
        abi_minor: 0,
        active_slot: SLOT_NONE,
        persisted_slot: SLOT_NONE,
        busy: 0,
        unload_timeout_ms: 5000,
        now: at_0500(),
        last_error: ErrorRecord { slot: SLOT_NONE, ..ErrorRecord::default() },
        loader_pool: PoolCount { tag: POOL_TAG_LOADER, ..PoolCount::default() },
        slots: [SlotStatus { state_since: at_0500(), ..SlotStatus::default() }; 2],
        handover: shared_abi::control::HandoverStatus::default(),
    }
}

fn filtering(version: u32, service: &str, since: u64) -> SlotStatus {
    SlotStatus {
        state: SlotState::ACTIVE.0,
        payload_version: version,
        service: utf16_name(service),
        name: utf16_name("CounterFilter"),
        registered_since: since,
        state_since: since,
        last_status: 0,
        last_op: OpKind::START.0,
        report_time: at_0500_plus(19, 55),
        report: PayloadReport {
            size: 48,
            phase: PayloadPhase::FILTERING.0,
            instances: 3,
            open_contexts: 2,
            creates: 120,
            reads: 40,
            writes: 7,
            pool_outstanding: 5,
        },
    }
}

/// A v1 in slot A; an upgrade to B failed for a missing export; now = 05:20.
pub fn after_failed_upgrade() -> LoaderStatus {
    let mut st = empty_loader();
    st.now = at_0500_plus(20, 0);
    st.active_slot = 0;
    st.persisted_slot = 0;
    st.last_error = ErrorRecord {
        status: NtStatus::PROCEDURE_NOT_FOUND.0,
        op: OpKind::UPGRADE.0,
        slot: 1,
        reserved: 0,
        time: at_0500_plus(10, 0),
    };
    st.loader_pool.allocs = 10;
    st.loader_pool.frees = 9;
    st.slots[0] = filtering(1, "CounterFilterA", at_0500());
    st.slots[1] = SlotStatus {
        state: SlotState::FAILED.0,
        service: utf16_name("CounterFilterB"),
        state_since: at_0500_plus(10, 0),
        last_status: NtStatus::PROCEDURE_NOT_FOUND.0,
        last_op: OpKind::UPGRADE.0,
        ..SlotStatus::default()
    };
    st
}

/// v2 active in B; v1 in A stuck in teardown with one open context; now = 05:20.
pub fn stuck_old_slot() -> LoaderStatus {
    let mut st = empty_loader();
    st.now = at_0500_plus(20, 0);
    st.active_slot = 1;
    st.persisted_slot = 1;
    st.slots[1] = filtering(2, "CounterFilterB", at_0500_plus(15, 0));
    let mut old = filtering(1, "CounterFilterA", at_0500());
    old.state = SlotState::STUCK.0;
    old.state_since = at_0500_plus(15, 0);
    old.last_op = OpKind::UPGRADE.0;
    old.last_status = NtStatus::IO_TIMEOUT.0;
    old.report_time = at_0500_plus(15, 3);
    old.report.phase = PayloadPhase::TEARING_DOWN.0;
    old.report.instances = 1;
    old.report.open_contexts = 1;
    st.slots[0] = old;
    st.last_error = ErrorRecord {
        status: NtStatus::IO_TIMEOUT.0,
        op: OpKind::UPGRADE.0,
        slot: 0,
        reserved: 0,
        time: at_0500_plus(15, 5),
    };
    st
}

/// v2 active in B, A empty; healthy.
pub fn healthy_b() -> LoaderStatus {
    let mut st = empty_loader();
    st.now = at_0500_plus(20, 0);
    st.active_slot = 1;
    st.persisted_slot = 1;
    st.slots[1] = filtering(2, "CounterFilterB", at_0500_plus(15, 0));
    st.slots[0].service = utf16_name("CounterFilterA");
    st
}

/// The bytes the loader writes for `st` (the loader's own encoder).
pub fn encode_status(st: &LoaderStatus) -> Vec<u8> {
    let mut out = vec![0u8; loader_parsers::control::STATUS_LEN];
    let n = loader_parsers::control::encode_status(st, &mut out).expect("fits");
    out.truncate(n);
    out
}

/// The bytes of a `ControlReply` (the loader's own encoder).
pub fn encode_reply(status: NtStatus, active_slot: u32, flags: u32) -> Vec<u8> {
    let reply = ControlReply { size: 16, status: status.0, active_slot, flags };
    let mut out = vec![0u8; loader_parsers::control::REPLY_LEN];
    let n = loader_parsers::control::encode_reply(&reply, &mut out).expect("fits");
    out.truncate(n);
    out
}
