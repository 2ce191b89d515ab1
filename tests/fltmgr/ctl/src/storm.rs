//! Upgrades under an I/O storm (issue 10, scenario 3): injector threads
//! deliver creates, reads and writes without pause while the loader
//! upgrades N times (each one settled before the next, as `loaderctl
//! cycle` does); then the verifier's counts.
use crate::loader::Loader;
use crate::sim::Sim;
use fltsim_abi as abi;
use serde_json::json;
use std::time::{Duration, Instant};

/// Runs the storm and prints the `storm:` line, the `handover:` line and the
/// counts as JSON. With `rollbacks`, every second switch is a rollback.
///
/// The `handover:` line: state blobs carried (the loader's count since the
/// storm began), imports refused, and lost updates: operations the
/// simulator delivered that the active payload's counters, carried across
/// every switch, do not account for (its totals are published with each
/// operation and after each state import). For the counter filter every
/// operation counts; with `writes_only` (the change tracker) the writes do:
/// every thread writes one file, [`TRACKED_FILE`], write `n` to byte range
/// `n % 1000` (`INJECT_UNIQUE_OFFSETS`), and the tracker's count of writes
/// recorded is compared with the writes delivered. A `tracked:` line then
/// shows the tracker's set against the set written: one file and
/// `min(writes, 1000)` separate ranges, with no overflow.
/// The one file the writes of a `--writes` storm go to.
pub const TRACKED_FILE: &str = "\\fltsim\\tracked.dat";

pub fn run(upgrades: u32, threads: u32, rollbacks: bool, writes_only: bool) -> Result<(), String> {
    let sim = Sim::open()?;
    let loader = Loader::open()?;
    let bound = Duration::from_mins(1);
    let before = loader.wait_settled(bound)?;
    let counted_before = counted(&before, writes_only);
    sim.reset()?;
    let req = abi::InjectRequest {
        size: abi::size32::<abi::InjectRequest>(),
        kind: if writes_only { abi::OP_WRITE } else { abi::OP_MIX },
        threads,
        volume: abi::VOLUME_C,
        count: 0,
        length: 512,
        flags: if writes_only { abi::INJECT_UNIQUE_OFFSETS } else { 0 },
        name: if writes_only { abi::utf16(TRACKED_FILE) } else { [0; abi::PATH_CHARS] },
    };
    sim.inject(&req)?;
    let started = Instant::now();
    let mut done = 0u32;
    let mut failure = None;
    for i in 0..upgrades {
        let status = if rollbacks && i % 2 == 1 { loader.rollback_when_free() } else { loader.upgrade_when_free(None) };
        if !status.is_success() {
            failure = Some(format!("upgrade {done} failed: {status}"));
            break;
        }
        if let Err(e) = loader.wait_settled(bound) {
            failure = Some(e);
            break;
        }
        done += 1;
    }
    let took = started.elapsed();
    sim.inject_stop()?;
    // One more operation once every other one is over: its post callback
    // publishes the payload's totals after every increment. (Reports of
    // concurrent post callbacks reach the loader in any order, so the last
    // one of the storm may show a total a few operations old.)
    let final_op =
        abi::InjectRequest { count: 1, threads: 1, kind: if writes_only { abi::OP_WRITE } else { 0 }, ..req };
    sim.inject(&final_op)?;
    sim.wait_injection(bound)?;
    let s = sim.query()?;
    let t = &s.totals;
    let after = loader.wait_settled(bound)?;
    let counted = counted(&after, writes_only).saturating_sub(counted_before);
    let delivered = if writes_only { t.by_kind.get(abi::OP_WRITE as usize).copied().unwrap_or(0) } else { t.ops };
    let lost = i128::from(delivered) - i128::from(counted);
    let (h0, h1) = (before.handover, after.handover);
    println!(
        "storm: upgrades={done} ops={} unfiltered={} double={} max-gap-ops={} max-gap-us={}",
        t.ops, t.unfiltered, t.double, t.max_gap_ops, t.max_gap_us
    );
    println!(
        "handover: state-transfers={} lost-updates={} refused={}",
        h1.state_transfers.saturating_sub(h0.state_transfers),
        lost.unsigned_abs(),
        h1.refused.saturating_sub(h0.refused)
    );
    let report = crate::loader::active(&after).map(|slot| after.slots[slot.index()].report);
    let expected_ranges = delivered.min(abi::OFFSET_WINDOW);
    if writes_only {
        let r = report.unwrap_or_default();
        println!(
            "tracked: files={} ranges={} writes={} overflows={} written: files=1 ranges={expected_ranges} writes={delivered}",
            r.creates, r.reads, r.writes, r.open_contexts
        );
    }
    let mut summary = json!({
            "upgrades": done,
            "rollbacks": rollbacks,
            "threads": threads,
            "counted": counted,
            "lost_updates": lost,
            "state_transfers": h1.state_transfers.saturating_sub(h0.state_transfers),
            "refused": h1.refused.saturating_sub(h0.refused),
            "handover_mode": h1.mode,
            "exact_handovers": h1.exact_handovers.saturating_sub(h0.exact_handovers),
            // Each time the old generation met a full table of marks and
            // waited for room (the loader's count).
            "unmarked": h1.unmarked.saturating_sub(h0.unmarked),
            "seconds": took.as_secs_f64(),
            "ops": t.ops,
            "unfiltered": t.unfiltered,
            "double": t.double,
            "max_gap_ops": t.max_gap_ops,
            "max_gap_us": t.max_gap_us,
            "violations": t.violations,
            "instance_setups": t.instance_setups,
            "teardown_completes": t.teardown_completes,
            "unregister_waits": t.unregister_waits,
            "waited_callbacks": t.waited_callbacks,
    });
    // The change tracker's report fields mean files, ranges and overflows;
    // a counter filter's mean something else, so they are given only with
    // `--writes` (the tracker's storm).
    if let (true, Some(map)) = (writes_only, summary.as_object_mut()) {
        let r = report.unwrap_or_default();
        map.insert("tracked_files".into(), r.creates.into());
        map.insert("tracked_ranges".into(), r.reads.into());
        map.insert("tracked_overflows".into(), r.open_contexts.into());
        map.insert("written_ranges".into(), expected_ranges.into());
    }
    println!("{summary}");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What the active payload last reported it processed: creates, reads and
/// writes (the counter filter), or writes recorded (the change tracker).
fn counted(st: &shared_abi::control::LoaderStatus, writes_only: bool) -> u64 {
    crate::loader::active(st).map_or(0, |slot| {
        let r = &st.slots[slot.index()].report;
        if writes_only {
            r.writes
        } else {
            r.creates + r.reads + r.writes
        }
    })
}
