//! Progress of a long operation, the way `sc` shows `START_PENDING`: while
//! the request waits on the first handle, a second handle polls the
//! loader's status and the phases are printed as they are seen (loading,
//! DriverEntry returned, registered, switching, retiring the old payload,
//! persisted).
//!
//! Only when it takes longer than a moment ([`Timing::grace`]): a quick
//! operation prints nothing extra. The caller decides whether to watch at
//! all (never for `--json`, nor when standard output is not a console).
//! The phases are read from status snapshots, so a phase that passed
//! between two polls is printed when the next one shows it was passed
//! (they come in a fixed order).
use crate::ops::{query_status, Change};
use crate::render::{describe_slot, slot_label};
use crate::transport::Control;
use shared_abi::control::{LoaderStatus, SlotState, SLOT_NONE};
use shared_abi::Slot;
use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// What shows that a phase was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// The slot is in this state.
    State(Slot, SlotState),
    /// The slot's payload is registered (active, with a registration time).
    Registered(Slot),
    /// The slot is the active one.
    Active(Slot),
    /// The slot is being retired, or stuck in its retirement.
    Retiring(Slot),
    /// The slot is empty again while `other` is active (or nothing is).
    Gone { slot: Slot, active: u32 },
    /// `Parameters\ActiveSlot` says this slot word.
    Persisted(u32),
}

impl Check {
    fn holds(self, st: &LoaderStatus) -> bool {
        let state = |s: Slot| SlotState(st.slots[s.index()].state);
        match self {
            Check::State(s, want) => state(s) == want,
            Check::Registered(s) => state(s) == SlotState::ACTIVE && st.slots[s.index()].registered_since != 0,
            Check::Active(s) => st.active_slot == s.word(),
            Check::Retiring(s) => matches!(state(s), SlotState::RETIRING | SlotState::STUCK),
            Check::Gone { slot, active } => state(slot) == SlotState::EMPTY && st.active_slot == active,
            Check::Persisted(word) => st.persisted_slot == word,
        }
    }
}

/// The phases of one operation, in order.
#[derive(Clone, Debug)]
pub struct Plan {
    phases: Vec<(Check, String)>,
}

impl Plan {
    /// The phases `change` goes through from `before` (`requested`: the
    /// slot named with `upgrade --slot`).
    #[must_use]
    pub fn new(change: Change, before: &LoaderStatus, requested: Option<Slot>) -> Plan {
        let active = Slot::from_word(before.active_slot);
        let target = match change {
            Change::Upgrade => requested.or(active.map(Slot::other)),
            Change::Rollback => active.map(Slot::other),
            Change::Load => Slot::from_word(before.persisted_slot).or(Some(Slot::A)),
            Change::Unload => None,
        };
        let mut phases = Vec::new();
        if let Some(t) = target {
            let what = describe_slot(t, &before.slots[t.index()]);
            phases.push((
                Check::State(t, SlotState::LOADING),
                format!("loading {what}: ZwLoadDriver runs its DriverEntry"),
            ));
            phases.push((
                Check::State(t, SlotState::REGISTERING),
                "DriverEntry returned; the loader calls the payload's registration".to_owned(),
            ));
            phases.push((Check::Registered(t), format!("registered: slot {t} filters")));
            if change != Change::Load {
                phases.push((Check::Active(t), format!("switched: slot {t} is the active slot")));
            }
        }
        let old = match change {
            Change::Unload => active,
            Change::Load => None,
            _ => active.filter(|&a| Some(a) != target),
        };
        if let Some(o) = old {
            let now_active = target.map_or(SLOT_NONE, Slot::word);
            let retire = if change == Change::Unload { "retiring the payload" } else { "retiring the old payload" };
            phases.push((Check::Retiring(o), format!("{retire} in slot {o} (teardown, then ZwUnloadDriver)")));
            phases.push((Check::Gone { slot: o, active: now_active }, format!("slot {o} is unloaded")));
        }
        let persist = match change {
            Change::Load => None,
            Change::Unload => Some(SLOT_NONE),
            _ => target.map(Slot::word),
        };
        if let Some(word) = persist.filter(|&w| w != before.persisted_slot) {
            let what =
                if word == SLOT_NONE { "none (no payload at the next start)".to_owned() } else { slot_label(word) };
            phases.push((Check::Persisted(word), format!("persisted: Parameters\\ActiveSlot = {what}")));
        }
        Plan { phases }
    }

    /// The phase texts, in order.
    #[cfg(test)]
    #[must_use]
    pub fn texts(&self) -> Vec<&str> {
        self.phases.iter().map(|(_, t)| t.as_str()).collect()
    }

    /// How many phases `st` shows were reached: the last one whose check
    /// holds, and every one before it.
    fn reached(&self, st: &LoaderStatus) -> usize {
        self.phases.iter().rposition(|(c, _)| c.holds(st)).map_or(0, |i| i + 1)
    }
}

/// When to start printing, and how often to look.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Nothing is printed for an operation that ends sooner than this.
    pub grace: Duration,
    pub poll: Duration,
    /// A "still waiting" line after this long without a new phase.
    pub quiet: Duration,
}

/// The defaults: half a second of grace, a poll every 100 ms.
pub const TIMING: Timing =
    Timing { grace: Duration::from_millis(500), poll: Duration::from_millis(100), quiet: Duration::from_secs(5) };

/// The watcher's state: what was seen and printed.
pub struct Watcher {
    plan: Plan,
    /// Phases seen so far, with the time first seen (since the request).
    seen: Vec<Duration>,
    printed: usize,
    printing: bool,
    last_change: Duration,
    started: Instant,
    /// The latest snapshot (how a phase ended).
    last: Option<LoaderStatus>,
    out: Box<dyn Write + Send>,
}

impl Watcher {
    #[must_use]
    pub fn new(plan: Plan, out: Box<dyn Write + Send>) -> Watcher {
        Watcher {
            plan,
            seen: Vec::new(),
            printed: 0,
            printing: false,
            last_change: Duration::ZERO,
            started: Instant::now(),
            last: None,
            out,
        }
    }

    fn line(&mut self, at: Duration, text: &str) {
        let _ = writeln!(self.out, "  {:>6.1} s  {text}", at.as_secs_f64());
        let _ = self.out.flush();
    }

    /// Takes in one snapshot; prints what is new once the grace is over.
    fn observe(&mut self, st: &LoaderStatus, timing: Timing) {
        self.last = Some(*st);
        let now = self.started.elapsed();
        let reached = self.plan.reached(st);
        if reached > self.seen.len() {
            self.seen.resize(reached, now);
            self.last_change = now;
        }
        if !self.printing && now >= timing.grace {
            self.printing = true;
        }
        if self.printing {
            self.flush_seen();
            if now.saturating_sub(self.last_change) >= timing.quiet {
                let waiting = self.plan.phases.get(self.seen.len().saturating_sub(1)).map(|(_, t)| t.clone());
                let text = match waiting {
                    Some(t) => format!("... still waiting after: {t}"),
                    None => "... still waiting for the loader".to_owned(),
                };
                self.line(now, &text);
                self.last_change = now;
            }
        }
    }

    fn flush_seen(&mut self) {
        while self.printed < self.seen.len() {
            let at = self.seen[self.printed];
            let (check, text) = self.plan.phases[self.printed].clone();
            // A retirement that outlasted the bound: the loader went on (it
            // switched and persisted) while the old slot stays stuck.
            let text = match (check, &self.last) {
                (Check::Gone { slot, .. }, Some(st)) if SlotState(st.slots[slot.index()].state) == SlotState::STUCK => {
                    format!("slot {slot} did not finish unloading within the loader's bound: it is stuck (`loaderctl diagnose` tells why)")
                }
                _ => text,
            };
            self.line(at, &text);
            self.printed += 1;
        }
    }

    /// After the request ended: if progress was shown, shows the phases the
    /// final status proves were passed since the last poll.
    pub fn finish(mut self, after: &LoaderStatus) {
        if !self.printing {
            return;
        }
        self.last = Some(*after);
        let now = self.started.elapsed();
        let reached = self.plan.reached(after);
        if reached > self.seen.len() {
            self.seen.resize(reached, now);
        }
        self.flush_seen();
    }
}

/// Runs `request` (on this thread, on the first handle) while a second
/// thread polls `second` and feeds `watcher`. Returns the request's result
/// and the watcher, for [`Watcher::finish`].
pub fn watch<T>(
    second: Box<dyn Control + Send>,
    mut watcher: Watcher,
    timing: Timing,
    request: impl FnOnce() -> T,
) -> (T, Watcher) {
    let (done, wait) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let poller = s.spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(timing.poll) {
                if let Ok(st) = query_status(second.as_ref(), "progress") {
                    watcher.observe(&st, timing);
                }
            }
            watcher
        });
        let result = request();
        drop(done);
        let watcher = poller.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (result, watcher)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures;
    use std::sync::{Arc, Mutex};

    /// Output both threads write to.
    #[derive(Clone, Default)]
    pub(crate) struct Shared(pub Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Shared {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The states an upgrade A -> B goes through, as status snapshots.
    pub(crate) fn upgrade_states() -> Vec<LoaderStatus> {
        let before = fixtures::after_failed_upgrade();
        let mut st = before;
        st.slots[1].state = SlotState::EMPTY.0;
        let mut out = vec![st];
        st.slots[1].state = SlotState::LOADING.0;
        out.push(st);
        st.slots[1].state = SlotState::REGISTERING.0;
        out.push(st);
        st.slots[1].state = SlotState::ACTIVE.0;
        st.slots[1].registered_since = fixtures::at_0500_plus(30, 0);
        st.slots[1].payload_version = 2;
        out.push(st);
        st.active_slot = 1;
        st.slots[0].state = SlotState::RETIRING.0;
        out.push(st);
        st.slots[0].state = SlotState::EMPTY.0;
        out.push(st);
        st.persisted_slot = 1;
        out.push(st);
        out
    }

    #[test]
    fn an_upgrade_has_its_phases_in_order() {
        let states = upgrade_states();
        let plan = Plan::new(Change::Upgrade, &states[0], None);
        assert_eq!(
            plan.texts(),
            [
                "loading slot B (CounterFilterB): ZwLoadDriver runs its DriverEntry",
                "DriverEntry returned; the loader calls the payload's registration",
                "registered: slot B filters",
                "switched: slot B is the active slot",
                "retiring the old payload in slot A (teardown, then ZwUnloadDriver)",
                "slot A is unloaded",
                "persisted: Parameters\\ActiveSlot = B",
            ]
        );
        let reached: Vec<usize> = states.iter().map(|s| plan.reached(s)).collect();
        assert_eq!(reached, [0, 1, 2, 3, 5, 6, 7]);
    }

    #[test]
    fn unload_and_load_have_their_own_phases() {
        let st = fixtures::healthy_b();
        let unload = Plan::new(Change::Unload, &st, None);
        assert_eq!(
            unload.texts(),
            [
                "retiring the payload in slot B (teardown, then ZwUnloadDriver)",
                "slot B is unloaded",
                "persisted: Parameters\\ActiveSlot = none (no payload at the next start)",
            ]
        );
        let mut idle = fixtures::empty_loader();
        idle.persisted_slot = 0;
        let load = Plan::new(Change::Load, &idle, None);
        assert_eq!(load.texts().len(), 3, "{:?}", load.texts());
        assert!(load.texts()[2].starts_with("registered: slot A"));
    }

    #[test]
    fn a_slow_operation_shows_every_phase_and_a_quick_one_nothing() {
        let states = upgrade_states();
        let plan = Plan::new(Change::Upgrade, &states[0], None);
        let timing = Timing { grace: Duration::ZERO, poll: Duration::from_millis(1), quiet: Duration::from_secs(45) };
        let out = Shared::default();
        let mut w = Watcher::new(plan.clone(), Box::new(out.clone()));
        // Polls that miss some states: LOADING, then RETIRING, then done.
        for i in [1, 4] {
            w.observe(&states[i], timing);
        }
        w.finish(&states[6]);
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert!(lines[0].ends_with("s  loading slot B (CounterFilterB): ZwLoadDriver runs its DriverEntry"), "{text}");
        assert!(lines[6].ends_with("s  persisted: Parameters\\ActiveSlot = B"), "{text}");

        // A retirement that outlasts the bound: switched and persisted, the old slot stuck.
        let mut stuck = states[6];
        stuck.slots[0].state = SlotState::STUCK.0;
        let out2 = Shared::default();
        let mut w = Watcher::new(plan.clone(), Box::new(out2.clone()));
        w.observe(&states[4], timing);
        w.finish(&stuck);
        let text = out2.text();
        assert!(text.contains("s  slot A did not finish unloading within the loader's bound: it is stuck"), "{text}");
        assert!(!text.contains("slot A is unloaded"), "{text}");

        let quiet = Shared::default();
        let slow = Timing { grace: Duration::from_secs(45), ..timing };
        let mut w = Watcher::new(plan, Box::new(quiet.clone()));
        w.observe(&states[3], slow);
        w.finish(&states[6]);
        assert_eq!(quiet.text(), "", "a quick operation printed progress");
    }
}
