//! `KEVENT` in a static. Initialise once at `PASSIVE_LEVEL` before first use;
//! never move it afterwards (its dispatcher header links to itself).
use crate::imports::{KeClearEvent, KeInitializeEvent, KeSetEvent, KeWaitForSingleObject};
use crate::types::{Executive, KernelMode, NotificationEvent, SynchronizationEvent, KEVENT};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A kernel event meant to live in a `static`.
pub struct Event {
    raw: UnsafeCell<KEVENT>,
    ready: AtomicBool,
}

// SAFETY: a KEVENT is designed for concurrent use from any thread; all access
// goes through the Ke* routines, which synchronise internally.
unsafe impl Sync for Event {}

impl Event {
    /// An event that still needs [`Event::init`].
    #[must_use]
    pub const fn new() -> Self {
        Event { raw: UnsafeCell::new(KEVENT { Header: [0; 3] }), ready: AtomicBool::new(false) }
    }

    /// Initialises the event in place. `PASSIVE_LEVEL`; call once, before any
    /// other thread can see the event.
    pub fn init(&'static self, notification: bool, signaled: bool) {
        let kind = if notification { NotificationEvent } else { SynchronizationEvent };
        // SAFETY: the event is 'static (never moves) and, per this method's
        // contract, not yet used by any other thread.
        unsafe { KeInitializeEvent(self.raw.get(), kind, u8::from(signaled)) };
        self.ready.store(true, Ordering::Release);
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Signals the event. `<= DISPATCH_LEVEL`.
    pub fn set(&self) {
        if self.ready() {
            // SAFETY: initialised (checked) and 'static by construction of `init`.
            unsafe { KeSetEvent(self.raw.get(), 0, 0) };
        }
    }

    /// Clears the event. `<= DISPATCH_LEVEL`.
    pub fn reset(&self) {
        if self.ready() {
            // SAFETY: as in `set`.
            unsafe { KeClearEvent(self.raw.get()) };
        }
    }

    /// Waits without a bound. `PASSIVE_LEVEL` only, no spin lock held.
    pub fn wait(&self) {
        if self.ready() {
            // SAFETY: initialised; a NULL timeout means wait forever.
            unsafe { KeWaitForSingleObject(self.raw.get().cast(), Executive, KernelMode, 0, core::ptr::null()) };
        }
    }

    /// Waits at most `ms` milliseconds; true if the event was signalled.
    /// `PASSIVE_LEVEL` only, no spin lock held.
    pub fn wait_ms(&self, ms: u32) -> bool {
        if !self.ready() {
            return false;
        }
        // Negative: relative time in 100 ns units.
        let timeout: i64 = -(i64::from(ms) * 10_000);
        // SAFETY: initialised; `timeout` outlives the call.
        let status = unsafe { KeWaitForSingleObject(self.raw.get().cast(), Executive, KernelMode, 0, &timeout) };
        status == 0
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}
