//! A kernel event in a `static`, initialised on first use.
//!
//! A serialization primitive must not fail open: there is no way to use an
//! [`Event`] before `KeInitializeEvent` ran on it. The first use initialises
//! it (a compare-exchange elects one initialiser; others spin the few
//! instructions it takes), and `KeInitializeEvent` is callable at any IRQL.
//! The event never moves afterwards (its dispatcher header links to itself).
use crate::imports::{KeClearEvent, KeInitializeEvent, KeSetEvent, KeWaitForSingleObject};
use crate::types::{Executive, KernelMode, NotificationEvent, SynchronizationEvent, KEVENT};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

const UNINIT: u8 = 0;
const INITIALISING: u8 = 1;
const READY: u8 = 2;

/// A kernel event meant to live in a `static`.
pub struct Event {
    raw: UnsafeCell<KEVENT>,
    state: AtomicU8,
    notification: bool,
    signaled: bool,
}

// SAFETY: a KEVENT is designed for concurrent use from any thread; all access
// goes through the Ke* routines, which synchronise internally, and the
// one-time initialisation is elected by `state`.
unsafe impl Sync for Event {}

impl Event {
    /// A notification event (stays signalled until cleared), initially
    /// `signaled` or not.
    #[must_use]
    pub const fn notification(signaled: bool) -> Self {
        Event { raw: UnsafeCell::new(KEVENT::zeroed()), state: AtomicU8::new(UNINIT), notification: true, signaled }
    }

    /// A synchronization event (auto-clears when a wait is satisfied).
    #[must_use]
    pub const fn synchronization(signaled: bool) -> Self {
        Event { raw: UnsafeCell::new(KEVENT::zeroed()), state: AtomicU8::new(UNINIT), notification: false, signaled }
    }

    /// The initialised `KEVENT`. Any IRQL.
    fn raw(&'static self) -> *mut KEVENT {
        loop {
            match self.state.compare_exchange(UNINIT, INITIALISING, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    let kind = if self.notification { NotificationEvent } else { SynchronizationEvent };
                    // SAFETY: we won the election, so no other thread touches
                    // the event until READY is published; it is 'static.
                    unsafe { KeInitializeEvent(self.raw.get(), kind, u8::from(self.signaled)) };
                    self.state.store(READY, Ordering::Release);
                    return self.raw.get();
                }
                Err(READY) => return self.raw.get(),
                Err(_) => core::hint::spin_loop(),
            }
        }
    }

    /// Signals the event. `<= DISPATCH_LEVEL`.
    pub fn set(&'static self) {
        let raw = self.raw();
        // SAFETY: an initialised, 'static event.
        unsafe { KeSetEvent(raw, 0, 0) };
    }

    /// Clears the event. `<= DISPATCH_LEVEL`.
    pub fn reset(&'static self) {
        let raw = self.raw();
        // SAFETY: as in `set`.
        unsafe { KeClearEvent(raw) };
    }

    /// Waits without a bound. `PASSIVE_LEVEL` only, no spin lock held.
    pub fn wait(&'static self) {
        let raw = self.raw();
        // SAFETY: initialised and 'static; a NULL timeout means wait forever.
        unsafe { KeWaitForSingleObject(raw.cast(), Executive, KernelMode, 0, core::ptr::null()) };
    }

    /// Waits at most `ms` milliseconds; true if the event was signalled.
    /// `PASSIVE_LEVEL` only, no spin lock held.
    pub fn wait_ms(&'static self, ms: u32) -> bool {
        let raw = self.raw();
        // Negative: relative time in 100 ns units.
        let timeout: i64 = -(i64::from(ms) * 10_000);
        // SAFETY: initialised and 'static; `timeout` outlives the call.
        let status = unsafe { KeWaitForSingleObject(raw.cast(), Executive, KernelMode, 0, &raw const timeout) };
        status == 0
    }
}
