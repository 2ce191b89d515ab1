//! `loaderctl cycle --count N`: N live upgrades back to back, for the soak
//! test and the benchmark. Between two upgrades it waits (by polling the
//! loader's status) until the previous one has fully settled, so each
//! measured latency is one upgrade request alone. Safe code only.

use crate::exitcode::{status_label, Exit, Failure};
use crate::ops::{describe_active, judge_reply, query_status, say, Change, Console, REPLY_BYTES};
use crate::transport::{Control, Input, Output};
use crate::wire;
use shared_abi::control::{LoaderStatus, SlotState};
use shared_abi::NtStatus;
use std::time::{Duration, Instant};

/// How often to look again while the loader is still settling.
const POLL: Duration = Duration::from_millis(5);
/// Slack over the loader's own unload bound before giving up on settling.
const SETTLE_SLACK: Duration = Duration::from_secs(10);

/// Whether nothing is in flight: no operation running, no slot half-way.
fn settled(st: &LoaderStatus) -> bool {
    st.busy == 0
        && st
            .slots
            .iter()
            .all(|s| matches!(SlotState(s.state), SlotState::EMPTY | SlotState::ACTIVE | SlotState::FAILED))
}

/// Polls until the loader has settled; a stuck slot ends the run.
fn wait_settled(ctl: &dyn Control, done: u32) -> Result<LoaderStatus, Failure> {
    let start = Instant::now();
    loop {
        let st = query_status(ctl, "cycle")?;
        if let Some(i) = st.slots.iter().position(|s| SlotState(s.state) == SlotState::STUCK) {
            return Err(Failure {
                exit: Exit::TeardownStuck,
                message: format!(
                    "cycle stopped after {done} upgrade(s): {}: slot {} did not finish unloading (run `loaderctl diagnose`)",
                    status_label(NtStatus::IO_TIMEOUT),
                    crate::render::slot_label(u32::try_from(i).unwrap_or(u32::MAX))
                ),
            });
        }
        if settled(&st) {
            return Ok(st);
        }
        let bound = Duration::from_millis(u64::from(st.unload_timeout_ms)) + SETTLE_SLACK;
        if start.elapsed() > bound {
            return Err(Failure {
                exit: Exit::Busy,
                message: format!(
                    "cycle stopped after {done} upgrade(s): {}: the loader stayed busy for more than {} s",
                    status_label(NtStatus::DEVICE_BUSY),
                    bound.as_secs()
                ),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Median, 99th percentile and maximum of `samples` (sorted in place).
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    }
    // Nearest-rank: the smallest sample with at least p% at or below it.
    let rank = |p: usize| (n * p).div_ceil(100).clamp(1, n) - 1;
    (samples[rank(50)], samples[rank(99)], samples[n - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `cycle --count N`.
pub fn cmd_cycle(ctl: &dyn Control, count: u32, con: &mut Console<'_>) -> Result<Exit, Failure> {
    let first = wait_settled(ctl, 0)?;
    say(con, &format!("cycle: {count} upgrades back to back, starting from {}", describe_active(&first)))?;
    let input = Input::Bytes(wire::encode_request(&wire::request(None)).to_vec());
    let mut latencies = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let run_start = Instant::now();
    for i in 1..=count {
        if i > 1 {
            wait_settled(ctl, i - 1)?;
        }
        let started = Instant::now();
        let outcome = ctl.control(Change::Upgrade.code(), &input, Output::Len(REPLY_BYTES));
        latencies.push(started.elapsed());
        let verb = format!("upgrade {i} of {count}");
        let exit = judge_reply(&verb, Change::Upgrade.kind(), &outcome).map_err(|(f, _)| f)?.exit;
        if exit == Exit::TeardownStuck {
            return Err(Failure {
                exit,
                message: format!(
                    "{verb} left the old payload unloading: the new payload is active, but the old one has not finished unloading (run `loaderctl diagnose`)"
                ),
            });
        }
        if i % 100 == 0 && i != count {
            say(con, &format!("cycle: {i}/{count} upgrades done"))?;
        }
    }
    let last = wait_settled(ctl, count)?;
    let total = run_start.elapsed();
    let (median, p99, max) = percentiles(&mut latencies);
    say(
        con,
        &format!(
            "cycle: {count} upgrades in {:.1} s; upgrade latency median {}, p99 {}, max {}",
            total.as_secs_f64(),
            ms(median),
            ms(p99),
            ms(max)
        ),
    )?;
    say(
        con,
        &format!(
            "cycle: count={count} median_us={} p99_us={} max_us={} total_ms={}",
            median.as_micros(),
            p99.as_micros(),
            max.as_micros(),
            total.as_millis()
        ),
    )?;
    say(con, &format!("cycle: now active: {}", describe_active(&last)))?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::transport::Outcome;
    use shared_abi::control::{IoctlCode, IOCTL_LOADER_QUERY_STATUS, IOCTL_LOADER_UPGRADE, REPLY_OLD_SLOT_STUCK};
    use std::cell::{Cell, RefCell};

    /// A loader that flips the active slot on every upgrade, shows the old
    /// slot retiring for `retiring_polls` status queries, and fails the
    /// upgrade number `fail_at` with `fail_status`.
    struct Flipper {
        st: RefCell<LoaderStatus>,
        upgrades: Cell<u32>,
        retiring_polls: u32,
        polls_left: Cell<u32>,
        fail_at: u32,
        fail_status: NtStatus,
        flags: u32,
    }

    impl Flipper {
        fn new(retiring_polls: u32, fail_at: u32, fail_status: NtStatus, flags: u32) -> Self {
            Flipper {
                st: RefCell::new(fixtures::healthy_b()),
                upgrades: Cell::new(0),
                retiring_polls,
                polls_left: Cell::new(0),
                fail_at,
                fail_status,
                flags,
            }
        }
    }

    impl Control for Flipper {
        fn control(&self, code: IoctlCode, _: &Input, _: Output) -> Outcome {
            let mut st = self.st.borrow_mut();
            if code == IOCTL_LOADER_QUERY_STATUS {
                let old = 1 - st.active_slot as usize;
                if self.polls_left.get() > 0 {
                    self.polls_left.set(self.polls_left.get() - 1);
                    st.slots[old].state = SlotState::RETIRING.0;
                } else {
                    st.slots[old].state = SlotState::EMPTY.0;
                }
                let bytes = fixtures::encode_status(&st);
                return Outcome { status: NtStatus::SUCCESS, bytes: bytes.len(), output: bytes };
            }
            assert_eq!(code, IOCTL_LOADER_UPGRADE);
            assert_eq!(st.slots[1 - st.active_slot as usize].state, SlotState::EMPTY.0, "upgrade before settling");
            let n = self.upgrades.get() + 1;
            self.upgrades.set(n);
            if n == self.fail_at {
                return Outcome { status: self.fail_status, bytes: 0, output: Vec::new() };
            }
            let new = 1 - st.active_slot;
            st.slots[new as usize] = st.slots[st.active_slot as usize];
            st.active_slot = new;
            self.polls_left.set(self.retiring_polls);
            let bytes = fixtures::encode_reply(NtStatus::SUCCESS, new, self.flags);
            Outcome { status: NtStatus::SUCCESS, bytes: 16, output: bytes }
        }
    }

    fn run(ctl: &Flipper, count: u32) -> (Result<Exit, Failure>, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let clock = crate::timefmt::tests::clock(0, crate::timefmt::Shown::Local);
        let r =
            cmd_cycle(ctl, count, &mut Console { out: &mut out, err: &mut err, clock, json: false, progress: None });
        (r, String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn cycles_wait_for_each_retirement_and_report_latency() {
        let ctl = Flipper::new(1, 0, NtStatus::SUCCESS, 0);
        let (r, out) = run(&ctl, 201);
        assert_eq!(r, Ok(Exit::Success), "{out}");
        assert_eq!(ctl.upgrades.get(), 201);
        assert!(out.starts_with("cycle: 201 upgrades back to back, starting from slot B"), "{out}");
        assert!(out.contains("cycle: 100/201 upgrades done\ncycle: 200/201 upgrades done\n"), "{out}");
        assert!(out.contains("cycle: 201 upgrades in "), "{out}");
        assert!(out.contains("cycle: count=201 median_us="), "{out}");
        // An odd number of flips from B ends on A.
        assert!(out.ends_with("cycle: now active: slot A (CounterFilterB: CounterFilter v2)\n"), "{out}");
    }

    #[test]
    fn a_refused_upgrade_stops_the_run_with_its_class() {
        let ctl = Flipper::new(0, 7, NtStatus::IMAGE_ALREADY_LOADED, 0);
        let (r, _) = run(&ctl, 20);
        let f = r.expect_err("stops");
        assert_eq!(f.exit.code(), 7);
        assert!(f.message.starts_with("upgrade 7 of 20 refused: STATUS_IMAGE_ALREADY_LOADED"), "{}", f.message);
        assert_eq!(ctl.upgrades.get(), 7);
    }

    #[test]
    fn a_stuck_old_slot_stops_the_run_with_8() {
        let ctl = Flipper::new(0, 0, NtStatus::SUCCESS, REPLY_OLD_SLOT_STUCK);
        let (r, _) = run(&ctl, 5);
        assert_eq!(r.expect_err("stuck").exit.code(), 8);
        assert_eq!(ctl.upgrades.get(), 1);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(
            percentiles(&mut v),
            (Duration::from_millis(50), Duration::from_millis(99), Duration::from_millis(100))
        );
        let mut one = vec![Duration::from_millis(3)];
        assert_eq!(percentiles(&mut one).1, Duration::from_millis(3));
        assert_eq!(percentiles(&mut []).0, Duration::ZERO);
    }
}
