//! Upgrades under an I/O storm (issue 10, scenario 3): injector threads
//! deliver creates, reads and writes without pause while the loader
//! upgrades N times (each one settled before the next, as `loaderctl
//! cycle` does); then the verifier's counts.
use crate::loader::Loader;
use crate::sim::Sim;
use fltsim_abi as abi;
use serde_json::json;
use std::time::{Duration, Instant};

/// Runs the storm and prints the `storm:` line and the counts as JSON.
pub fn run(upgrades: u32, threads: u32) -> Result<(), String> {
    let sim = Sim::open()?;
    let loader = Loader::open()?;
    let bound = Duration::from_mins(1);
    loader.wait_settled(bound)?;
    sim.reset()?;
    let req = abi::InjectRequest {
        size: abi::size32::<abi::InjectRequest>(),
        kind: abi::OP_MIX,
        threads,
        volume: abi::VOLUME_C,
        count: 0,
        length: 512,
        flags: 0,
        name: [0; abi::PATH_CHARS],
    };
    sim.inject(&req)?;
    let started = Instant::now();
    let mut done = 0u32;
    let mut failure = None;
    for _ in 0..upgrades {
        let status = loader.upgrade_when_free(None);
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
    let s = sim.query()?;
    let t = &s.totals;
    println!(
        "storm: upgrades={done} ops={} unfiltered={} double={} max-gap-ops={} max-gap-us={}",
        t.ops, t.unfiltered, t.double, t.max_gap_ops, t.max_gap_us
    );
    println!(
        "{}",
        json!({
            "upgrades": done,
            "threads": threads,
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
        })
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
