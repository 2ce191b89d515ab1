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
#[cfg(not(loom))]
pub use std::thread;

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

/// Locks a model mutex (a poisoned lock means a thread already failed).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("model lock poisoned")
}
