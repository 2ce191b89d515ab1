//! Runs a race in every interleaving (loom, bounded preemptions) or many
//! times with random delays (std), counts interleavings and violations, and
//! prints the `interleavings=N violations=N` lines the suite is judged on.
//!
//! Owns the verdicts: the protocol must show zero violations of any kind;
//! a twin (naive design or mutant) must show at least one of its property.
//! Must never hide a failure: a panic in a protocol run fails the test.
use crate::scenario::{self, Race};
use crate::world::{Config, Landing, Violation};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex as StdMutex;

/// What a run must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No violation of any kind, in any interleaving.
    Clean,
    /// At least one violation of the property (the checker can fail).
    Caught,
}

/// One run's figures.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Executions explored.
    pub interleavings: usize,
    /// Executions that had at least one violation.
    pub bad_executions: usize,
    /// Violations per [`Violation::ALL`] index.
    pub by_kind: [usize; Violation::ALL.len()],
}

impl Summary {
    /// Violations of one property.
    #[must_use]
    pub fn of(&self, v: Violation) -> usize {
        let i = Violation::ALL.iter().position(|&x| x == v).unwrap_or(0);
        self.by_kind[i]
    }
    /// Violations of every property.
    #[must_use]
    pub fn total(&self) -> usize {
        self.by_kind.iter().sum()
    }
}

static RUN_LOCK: StdMutex<()> = StdMutex::new(());
static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
static BAD: AtomicUsize = AtomicUsize::new(0);
static COUNTS: [AtomicUsize; Violation::ALL.len()] = [const { AtomicUsize::new(0) }; Violation::ALL.len()];
static LANDINGS: [AtomicUsize; Landing::ALL.len()] = [const { AtomicUsize::new(0) }; Landing::ALL.len()];

fn run_and_record(race: Race, config: Config) -> Vec<(Violation, &'static str)> {
    let f = scenario::run_with_landings(race, config);
    for l in &f.landings {
        if let Some(i) = Landing::ALL.iter().position(|x| x == l) {
            LANDINGS[i].fetch_add(1, Ordering::Relaxed);
        }
    }
    record(&f.violations);
    f.violations
}

/// `name=count` for every landing seen since the last reset.
fn landings() -> String {
    let parts: Vec<String> = Landing::ALL
        .iter()
        .zip(LANDINGS.iter())
        .map(|(l, n)| (l, n.load(Ordering::Relaxed)))
        .filter(|&(_, n)| n > 0)
        .map(|(l, n)| format!("{}={n}", l.name()))
        .collect();
    if parts.is_empty() {
        "none (no foreign unload in this race)".to_string()
    } else {
        parts.join(" ")
    }
}

fn record(found: &[(Violation, &'static str)]) {
    EXECUTIONS.fetch_add(1, Ordering::Relaxed);
    if !found.is_empty() {
        BAD.fetch_add(1, Ordering::Relaxed);
    }
    for (v, _) in found {
        if let Some(i) = Violation::ALL.iter().position(|x| x == v) {
            COUNTS[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn reset() {
    EXECUTIONS.store(0, Ordering::Relaxed);
    BAD.store(0, Ordering::Relaxed);
    for c in COUNTS.iter().chain(LANDINGS.iter()) {
        c.store(0, Ordering::Relaxed);
    }
}

fn collect() -> Summary {
    let mut s = Summary {
        interleavings: EXECUTIONS.load(Ordering::Relaxed),
        bad_executions: BAD.load(Ordering::Relaxed),
        ..Summary::default()
    };
    for (out, c) in s.by_kind.iter_mut().zip(COUNTS.iter()) {
        *out = c.load(Ordering::Relaxed);
    }
    s
}

/// The negative control of the no-deadlock property. loom reports a
/// deadlock by aborting the process, so under loom the exploration runs in
/// a child process (this test binary, filtered to `test_fn`), and the
/// verdict is that the child died reporting a deadlock. Without loom the
/// model's waits give up and count a deadlock, as in [`check`].
pub fn check_deadlock_twin(name: &str, test_fn: &str, race: Race, config: Config) {
    #[cfg(loom)]
    {
        if std::env::var_os(CHILD_ENV).is_some() {
            let _serial = RUN_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            reset();
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                eprintln!("child: interleavings={}", EXECUTIONS.load(Ordering::Relaxed) + 1);
                hook(info);
            }));
            explore_all(race, config);
            println!("child: no deadlock in interleavings={}", EXECUTIONS.load(Ordering::Relaxed));
            return;
        }
        let started = std::time::Instant::now();
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([test_fn, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .output()
            .expect("child test process");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let found = text.contains("deadlock; threads");
        let interleavings = text
            .split("child: interleavings=")
            .nth(1)
            .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or("?");
        println!(
            "model {name}: mode={} interleavings={interleavings} violations={} property=deadlock deadlock={} [{}] (child process, stopped at the first deadlock) in {:.1}s",
            mode(race, &config),
            usize::from(found),
            usize::from(found),
            if found { "deadlock=1" } else { "" },
            started.elapsed().as_secs_f64(),
        );
        assert!(found, "{name}: the checker no longer catches the deadlock; child output:\n{text}");
    }
    #[cfg(not(loom))]
    {
        let _ = test_fn;
        check(name, Violation::Deadlock, race, config, Expect::Caught);
    }
}

#[cfg(loom)]
const CHILD_ENV: &str = "LOADER_MODEL_DEADLOCK_CHILD";

#[cfg(loom)]
fn explore_all(race: Race, config: Config) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemption_bound(race, &config));
    builder.max_branches = 100_000;
    builder.check(move || {
        run_and_record(race, config);
    });
}

/// Explores `race` under `config`, prints the figures, and asserts the
/// verdict: `Clean` → zero violations; `Caught` → `property` found.
pub fn check(name: &str, property: Violation, race: Race, config: Config, expect: Expect) -> Summary {
    let _serial = RUN_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    reset();
    let started = std::time::Instant::now();
    let stopped_early = explore(race, config, expect, property);
    let summary = collect();
    let kinds: Vec<String> = Violation::ALL
        .iter()
        .zip(summary.by_kind.iter())
        .filter(|(_, &n)| n > 0)
        .map(|(v, n)| format!("{}={n}", v.name()))
        .collect();
    println!(
        "model {name}: mode={} interleavings={} violations={} property={} {}={} [{}]{} in {:.1}s",
        mode(race, &config),
        summary.interleavings,
        summary.total(),
        property.name(),
        property.name(),
        summary.of(property),
        kinds.join(" "),
        if stopped_early { " (stopped at the first failing interleaving)" } else { "" },
        started.elapsed().as_secs_f64(),
    );
    println!("model {name}: unload requests landed: {}", landings());
    match expect {
        Expect::Clean => assert_eq!(summary.total(), 0, "{name}: the protocol violated {kinds:?}"),
        Expect::Caught => {
            assert!(summary.of(property) > 0, "{name}: the checker no longer catches {}", property.name());
        }
    }
    summary
}

fn mode(race: Race, config: &Config) -> String {
    if cfg!(loom) {
        format!("loom(preemption-bound={})", preemption_bound(race, config))
    } else {
        "std-random".to_string()
    }
}

/// The preemption bound of a loom run: `MODEL_PREEMPTIONS` if set, else the
/// scenario's own ([`Config::preemption_bound`]), else 3 (the whole suite
/// then explores about 14 million interleavings in about 21 minutes on 2
/// cores; 4 is out of reach for the upgrade races).
#[must_use]
pub fn preemption_bound(race: Race, config: &Config) -> usize {
    let _ = race;
    std::env::var("MODEL_PREEMPTIONS").ok().and_then(|v| v.parse().ok()).or(config.preemption_bound).unwrap_or(3)
}

#[cfg(loom)]
fn explore(race: Race, config: Config, expect: Expect, property: Violation) -> bool {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemption_bound(race, &config));
    builder.max_branches = 100_000;
    let body = move || {
        let found = run_and_record(race, config);
        if !found.is_empty() {
            assert!(expect != Expect::Clean, "violations: {found:?}");
        }
        // A twin stops at the first interleaving that shows its property.
        assert!(!found.iter().any(|(v, _)| *v == property), "{TWIN_CAUGHT}");
    };
    if expect == Expect::Clean {
        builder.check(body);
        return false;
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.check(body)));
    std::panic::set_hook(hook);
    match result {
        Ok(()) => false,
        Err(payload) => {
            let text = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(ToString::to_string))
                .unwrap_or_default();
            if !text.contains(TWIN_CAUGHT) {
                // loom found every thread blocked (or another failure).
                EXECUTIONS.fetch_add(1, Ordering::Relaxed);
                BAD.fetch_add(1, Ordering::Relaxed);
                COUNTS[Violation::ALL.iter().position(|v| *v == Violation::Deadlock).unwrap_or(0)]
                    .fetch_add(1, Ordering::Relaxed);
            }
            true
        }
    }
}

#[cfg(loom)]
const TWIN_CAUGHT: &str = "twin: violation caught";

/// The seed of a std-build run: `MODEL_SEED` to replay one, else the clock.
#[cfg(not(loom))]
#[must_use]
pub fn run_seed() -> u64 {
    std::env::var("MODEL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(1))
    })
}

/// Iterations of the std build (`MODEL_ITERATIONS`, default 300), each
/// seeded from the run's seed (printed; `MODEL_SEED=<n>` replays it).
/// A twin stops at its first failing execution (its waits give up after
/// 100 ms instead of 3 s).
#[cfg(not(loom))]
fn explore(race: Race, config: Config, expect: Expect, property: Violation) -> bool {
    use crate::world::STD_WAIT_LIMIT_MS;
    let n = std::env::var("MODEL_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    // Random schedules hit a narrow window rarely: a twin may run 100 times
    // longer, and stops at its first catch anyway.
    let n = if expect == Expect::Caught { n * 100 } else { n };
    let seed = run_seed();
    println!("model seed: MODEL_SEED={seed} (replays this run's random choices)");
    let limit = STD_WAIT_LIMIT_MS.swap(if expect == Expect::Caught { 100 } else { 3_000 }, Ordering::Relaxed);
    let mut stopped_early = false;
    for i in 0..n {
        crate::sync::seed_execution(seed, i);
        let found = run_and_record(race, config);
        if expect == Expect::Clean && !found.is_empty() {
            println!("model: execution {i} of MODEL_SEED={seed} found {found:?}");
        }
        if expect == Expect::Caught && found.iter().any(|(v, _)| *v == property) {
            stopped_early = true;
            break;
        }
    }
    STD_WAIT_LIMIT_MS.store(limit, Ordering::Relaxed);
    stopped_early
}
