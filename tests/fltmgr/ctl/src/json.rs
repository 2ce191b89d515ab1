//! The simulator's snapshot as JSON (`fltsimctl counters`), and the
//! fltmc-like tables.
use crate::sim::text;
use fltsim_abi as abi;
use serde_json::{json, Value};
use shared_abi::NtStatus;
use std::fmt::Write;

fn ops(values: &[u64; abi::OP_KINDS]) -> Value {
    let mut m = serde_json::Map::new();
    for (name, v) in abi::OP_NAMES.iter().zip(values) {
        m.insert((*name).to_owned(), json!(v));
    }
    Value::Object(m)
}

fn name_of(names: &[&'static str], i: u32) -> &'static str {
    names.get(i as usize).copied().unwrap_or("?")
}

fn status(raw: i32) -> Value {
    json!({ "raw": raw, "name": NtStatus(raw).name().unwrap_or("?") })
}

/// The verifier's totals.
fn totals(t: &abi::Totals) -> Value {
    json!({
        "ops": t.ops,
        "unfiltered": t.unfiltered,
        "double": t.double,
        "max_gap_ops": t.max_gap_ops,
        "max_gap_us": t.max_gap_us,
        "violations": t.violations,
        "registrations": t.registrations,
        "registrations_refused": t.registrations_refused,
        "unregistrations": t.unregistrations,
        "instance_setups": t.instance_setups,
        "instance_setups_declined": t.instance_setups_declined,
        "teardown_starts": t.teardown_starts,
        "teardown_completes": t.teardown_completes,
        "unload_callbacks": t.unload_callbacks,
        "unload_refused": t.unload_refused,
        "unregister_waits": t.unregister_waits,
        "waited_callbacks": t.waited_callbacks,
        "hooked_unloads": t.hooked_unloads,
        "forced_unregisters": t.forced_unregisters,
        "contexts_allocated": t.contexts_allocated,
        "contexts_freed": t.contexts_freed,
        "names_allocated": t.names_allocated,
        "names_freed": t.names_freed,
        "detaches": t.detaches,
        "detaches_refused": t.detaches_refused,
    })
}

/// The whole snapshot.
pub fn snapshot(s: &abi::Snapshot) -> Value {
    let t = &s.totals;
    let filters: Vec<Value> = s
        .filters
        .iter()
        .take(s.filter_count as usize)
        .map(|f| {
            json!({
                "name": text(&f.name),
                "altitude": text(&f.altitude),
                "state": abi::FILTER_STATE_NAMES.get(f.state as usize).copied().unwrap_or("?"),
                "generation": f.generation,
                "is_payload": f.is_payload != 0,
                "version": f.version,
                "image_base": f.image_base,
                "image_size": f.image_size,
                "instances": f.instances,
                "in_flight": f.in_flight,
                "drained": f.drained,
                "unload_callback_done": f.unload_callback_done != 0,
                "pre": ops(&f.pre),
                "post": ops(&f.post),
                "processed": f.processed,
                "contexts": f.contexts,
            })
        })
        .collect();
    let instances: Vec<Value> = s
        .instances
        .iter()
        .take(s.instance_count as usize)
        .map(|i| {
            json!({
                "filter": text(&i.filter),
                "volume": abi::VOLUME_NAMES.get(i.volume as usize).copied().unwrap_or("?"),
                "state": abi::INSTANCE_STATE_NAMES.get(i.state as usize).copied().unwrap_or("?"),
                "generation": i.generation,
                "filter_generation": i.filter_generation,
                "in_flight": i.in_flight,
                "contexts": i.contexts,
            })
        })
        .collect();
    let violations: Vec<Value> = s
        .violations
        .iter()
        .take(s.violation_count as usize)
        .map(|v| {
            json!({
                "kind": abi::VIOLATION_NAMES.get(v.kind as usize).copied().unwrap_or("?"),
                "op": abi::OP_NAMES.get(v.op as usize).copied().unwrap_or("-"),
                "filter": text(&v.filter),
                "generation": v.generation,
            })
        })
        .collect();
    let files: Vec<Value> = s
        .files
        .iter()
        .take(s.file_count as usize)
        .map(|f| json!({ "id": f.id, "volume": f.volume, "contexts": f.contexts, "name": text(&f.name) }))
        .collect();
    json!({
        "totals": totals(t),
        "filters": filters,
        "instances": instances,
        "violations": violations,
        "files": files,
        "inject": {
            "state": name_of(&["idle", "running", "done"], s.inject.state),
            "threads": s.inject.threads,
            "requested": s.inject.requested,
            "done": s.inject.done,
            "elapsed_ns": s.inject.elapsed_ns,
        },
        "job": { "kind": s.job.kind, "state": s.job.state, "status": status(s.job.status), "seq": s.job.seq },
        "race": {
            "state": name_of(&["idle", "armed", "fired", "done"], s.race.state),
            "target": text(&s.race.target),
            "fired": s.race.fired,
            "callback_status": status(s.race.callback_status),
            "before_start": s.race.before_start != 0,
            "still_registered": s.race.still_registered != 0,
        },
    })
}

/// `fltmc filters`.
pub fn filters_table(s: &abi::Snapshot) -> String {
    let mut out = format!(
        "{:<24} {:>9} {:>10} {:>5} {:<14} {:>10}\n",
        "Filter Name", "Num Inst", "Altitude", "Gen", "State", "Processed"
    );
    let _ = writeln!(out, "{}", "-".repeat(77));
    for f in s.filters.iter().take(s.filter_count as usize) {
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>10} {:>5} {:<14} {:>10}",
            text(&f.name),
            f.instances,
            text(&f.altitude),
            f.generation,
            abi::FILTER_STATE_NAMES.get(f.state as usize).copied().unwrap_or("?"),
            f.processed
        );
    }
    out
}

/// `fltmc instances`.
pub fn instances_table(s: &abi::Snapshot) -> String {
    let mut out =
        format!("{:<24} {:<26} {:<13} {:>9} {:>8}\n", "Filter", "Volume Name", "State", "In flight", "Contexts");
    let _ = writeln!(out, "{}", "-".repeat(84));
    for i in s.instances.iter().take(s.instance_count as usize) {
        let _ = writeln!(
            out,
            "{:<24} {:<26} {:<13} {:>9} {:>8}",
            text(&i.filter),
            abi::VOLUME_NAMES.get(i.volume as usize).copied().unwrap_or("?"),
            abi::INSTANCE_STATE_NAMES.get(i.state as usize).copied().unwrap_or("?"),
            i.in_flight,
            i.contexts
        );
    }
    out
}
