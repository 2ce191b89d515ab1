//! Randomized stress simulator: the model of the Windows 7 I/O manager on
//! std threads with random delays, running load/unload/upgrade races in a
//! loop against the protocol, and the seed's naive minifilter in the same
//! run for comparison.
//!
//! Prints the race count, the rate, the protocol's violations (must be 0:
//! the process exits 1 otherwise) and the naive designs' violation rates.
//! A benchmark prints figures; only a protocol violation fails it.
//!
//! Usage: `stress [--races N] [--naive-races N] [--threads N] [--seed S]`
use loader_tests::scenario::{self, Adversary, Race};
use loader_tests::world::{Config, Design, Landing, Timeouts, Violation};
use shared_abi::Slot;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Options {
    races: usize,
    naive_races: usize,
    threads: usize,
    seed: u64,
}

fn options() -> Options {
    let mut o = Options { races: 100_000, naive_races: 20_000, threads: 2, seed: 0x5EED_0003 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < args.len() {
        let value = args[i + 1].parse::<u64>().unwrap_or_else(|_| panic!("{}: not a number", args[i + 1]));
        let value_usize = usize::try_from(value).unwrap_or(usize::MAX);
        match args[i].as_str() {
            "--races" => o.races = value_usize,
            "--naive-races" => o.naive_races = value_usize,
            "--threads" => o.threads = value_usize.max(1),
            "--seed" => o.seed = value,
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

/// The protocol races, drawn at random.
fn protocol_race(rng: &mut fastrand::Rng) -> (Race, Config) {
    let mut config = Config::protocol();
    if rng.bool() {
        config.timeouts = Timeouts::AnyMoment;
    }
    let race = match rng.u8(..14) {
        0 => Race::Load(Adversary::Stop(Slot::A)),
        1 => Race::Load(Adversary::FltmcThenStop(Slot::A)),
        2 => Race::Load(Adversary::ControlUnload),
        3 => Race::Upgrade(Adversary::Stop(Slot::A)),
        4 => Race::UpgradeOldDraining,
        5 => {
            config.register_fails[Slot::B] = true;
            Race::Upgrade(Adversary::Stop(Slot::B))
        }
        6 => {
            config.bad_descriptor[Slot::B] = true;
            Race::Upgrade(Adversary::FltmcThenStop(Slot::B))
        }
        7 => {
            config.device_open[Slot::A] = true;
            Race::UpgradeRollbackDeviceOpen
        }
        8 => Race::StopAgainst(Adversary::FltmcThenStop(Slot::A)),
        9 => Race::StopAgainst(Adversary::Shutdown),
        10 => Race::Upgrade(Adversary::Shutdown),
        11 => Race::ForeignStopThenLoaderStop,
        12 => Race::RetireTimeoutThenReuse,
        _ => Race::Upgrade(Adversary::Stop(Slot::B)),
    };
    (race, config)
}

#[derive(Default)]
struct Tally {
    races: AtomicUsize,
    bad_races: AtomicUsize,
    by_kind: [AtomicUsize; Violation::ALL.len()],
    landings: [AtomicUsize; Landing::ALL.len()],
}

impl Tally {
    fn add(&self, f: &scenario::Findings) {
        for l in &f.landings {
            if let Some(i) = Landing::ALL.iter().position(|x| x == l) {
                self.landings[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let found = &f.violations;
        self.races.fetch_add(1, Ordering::Relaxed);
        if !found.is_empty() {
            self.bad_races.fetch_add(1, Ordering::Relaxed);
        }
        for (v, _) in found {
            if let Some(i) = Violation::ALL.iter().position(|x| x == v) {
                self.by_kind[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    fn landed(&self) -> String {
        let parts: Vec<String> = Landing::ALL
            .iter()
            .zip(self.landings.iter())
            .map(|(l, n)| (l, n.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .map(|(l, n)| format!("{}={n}", l.name()))
            .collect();
        parts.join(" ")
    }
    fn kinds(&self) -> String {
        let parts: Vec<String> = Violation::ALL
            .iter()
            .zip(self.by_kind.iter())
            .map(|(v, n)| (v, n.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .map(|(v, n)| format!("{}={n}", v.name()))
            .collect();
        parts.join(" ")
    }
    fn total(&self) -> usize {
        self.by_kind.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

/// Runs `count` races split over `threads` runner threads.
fn run_all(count: usize, threads: usize, seed: u64, tally: &Tally, pick: fn(&mut fastrand::Rng) -> (Race, Config)) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let share = count / threads + usize::from(t < count % threads);
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                fastrand::seed(rng.u64(..));
                for _ in 0..share {
                    let (race, config) = pick(&mut rng);
                    tally.add(&scenario::run_with_landings(race, config));
                }
            });
        }
    });
}

#[allow(clippy::cast_precision_loss)] // figures for a person
fn rate(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

#[allow(clippy::cast_precision_loss)] // figures for a person
fn main() {
    let o = options();
    println!(
        "stress: {} protocol races, {} naive races, {} runner threads, seed {:#x}",
        o.races, o.naive_races, o.threads, o.seed
    );

    let protocol = Tally::default();
    let started = Instant::now();
    run_all(o.races, o.threads, o.seed, &protocol, protocol_race);
    let elapsed = started.elapsed().as_secs_f64();
    let races = protocol.races.load(Ordering::Relaxed);
    println!(
        "stress protocol: races={races} time={elapsed:.1}s rate={:.0}/s violations={} [{}]",
        races as f64 / elapsed.max(1e-9),
        protocol.total(),
        protocol.kinds()
    );
    println!("stress protocol: unload requests landed: {}", protocol.landed());

    for (name, design) in [("naive-seed", Design::NaiveSeed), ("naive-register-last", Design::NaiveRegisterLast)] {
        let naive = Tally::default();
        let started = Instant::now();
        let pick: fn(&mut fastrand::Rng) -> (Race, Config) = match design {
            Design::NaiveSeed => |_| (Race::Load(Adversary::Stop(Slot::A)), Config::naive(Design::NaiveSeed)),
            _ => |_| (Race::Load(Adversary::Stop(Slot::A)), Config::naive(Design::NaiveRegisterLast)),
        };
        run_all(o.naive_races, o.threads, o.seed.rotate_left(17), &naive, pick);
        let races = naive.races.load(Ordering::Relaxed);
        let bad = naive.bad_races.load(Ordering::Relaxed);
        println!(
            "stress {name}: races={races} time={:.1}s crashing-races={bad} violation-rate={:.2}% violations={} [{}]",
            started.elapsed().as_secs_f64(),
            rate(bad, races),
            naive.total(),
            naive.kinds()
        );
        println!("stress {name}: unload requests landed: {}", naive.landed());
    }

    if protocol.total() > 0 {
        println!("stress: FAILED: the protocol violated its properties");
        std::process::exit(1);
    }
    println!("stress: protocol violations=0");
}
