//! The primitives the model is built on: loom's under `--cfg loom`, std's
//! otherwise, plus the "critical section depth" every wait checks and the
//! random delay points of the std build.
//!
//! Must never be used by the protocol crate (it gets its primitives only
//! through the platform traits).
use core::cell::Cell;

#[cfg(loom)]
pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub use loom::thread;
#[cfg(not(loom))]
pub use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Threads of the std build: each new thread's random choices come from a
/// seed derived from the execution's seed, so a failing run's seed (printed
/// by the runners) replays the same delays and timeouts. (The OS scheduler
/// still varies: a replay reproduces the pressure, not the exact schedule.)
#[cfg(not(loom))]
pub mod thread {
    pub use std::thread::{current, yield_now, JoinHandle};

    /// `std::thread::spawn`, seeding the new thread's random choices.
    pub fn spawn<F, T>(f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let seed = super::next_thread_seed();
        std::thread::spawn(move || {
            fastrand::seed(seed);
            f()
        })
    }
}

#[cfg(not(loom))]
static EXECUTION_SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
#[cfg(not(loom))]
static THREADS_SPAWNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `SplitMix64`: spreads consecutive numbers over the seed space.
#[must_use]
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Starts execution `index` of a run seeded with `run_seed`: seeds the
/// calling thread and the threads the execution spawns (std build only).
pub fn seed_execution(run_seed: u64, index: u64) {
    #[cfg(not(loom))]
    {
        use std::sync::atomic::Ordering;
        let seed = mix(run_seed ^ mix(index));
        EXECUTION_SEED.store(seed, Ordering::Relaxed);
        THREADS_SPAWNED.store(0, Ordering::Relaxed);
        fastrand::seed(seed);
    }
    #[cfg(loom)]
    let _ = (run_seed, index);
}

#[cfg(not(loom))]
fn next_thread_seed() -> u64 {
    use std::sync::atomic::Ordering;
    let n = THREADS_SPAWNED.fetch_add(1, Ordering::Relaxed);
    mix(EXECUTION_SEED.load(Ordering::Relaxed) ^ mix(n.wrapping_add(1)))
}

#[cfg(loom)]
loom::thread_local! {
    static CRITICAL_DEPTH: Cell<u32> = Cell::new(0);
}
#[cfg(not(loom))]
std::thread_local! {
    static CRITICAL_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` counted as inside a platform critical section (`with_state`).
pub fn in_critical_section<R>(f: impl FnOnce() -> R) -> R {
    CRITICAL_DEPTH.with(|d| d.set(d.get() + 1));
    let r = f();
    CRITICAL_DEPTH.with(|d| d.set(d.get() - 1));
    r
}

/// Whether the calling thread is inside a platform critical section.
#[must_use]
pub fn holds_critical_section() -> bool {
    CRITICAL_DEPTH.with(Cell::get) > 0
}

/// A point where the std build may delay the thread (random yields and
/// spins widen race windows). Under loom every lock is already a
/// scheduling point, so this does nothing there.
pub fn pause() {
    #[cfg(not(loom))]
    {
        match fastrand::u8(..) {
            0..=63 => std::thread::yield_now(),
            64..=79 => {
                for _ in 0..fastrand::u32(..400) {
                    core::hint::spin_loop();
                }
            }
            _ => {}
        }
    }
}

/// A longer stretch of the std build's thread than [`pause`]: a call that
/// takes a while (under loom, a scheduling point like any other).
pub fn delay() {
    #[cfg(not(loom))]
    for _ in 0..64 {
        std::thread::yield_now();
    }
    #[cfg(loom)]
    pause();
}

/// A fair coin for the std build's random choices (always `true` under loom,
/// where choices come from interleavings instead).
#[must_use]
pub fn coin() -> bool {
    #[cfg(not(loom))]
    {
        fastrand::bool()
    }
    #[cfg(loom)]
    {
        true
    }
}

/// Locks a model mutex (a poisoned lock means a thread already failed).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("model lock poisoned")
}
