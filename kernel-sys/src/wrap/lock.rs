//! A spin lock guarding a value, used through a closure.
//!
//! The closure runs at `DISPATCH_LEVEL`: it must not wait, touch pageable
//! memory, or call anything that needs `PASSIVE_LEVEL`. Because the lock is
//! closure-scoped, it can never be held across a wait.
use crate::imports::{KeAcquireSpinLockRaiseToDpc, KeReleaseSpinLock};
use crate::types::KSPIN_LOCK;
use core::cell::UnsafeCell;

/// `T` behind a `KSPIN_LOCK`.
pub struct SpinLock<T> {
    lock: UnsafeCell<KSPIN_LOCK>,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached inside `with`, under the spin lock,
// which gives exclusive access across processors.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A lock around `value`; usable in a `static`.
    pub const fn new(value: T) -> Self {
        SpinLock { lock: UnsafeCell::new(0), value: UnsafeCell::new(value) }
    }

    /// Runs `f` with exclusive access. Callable at `<= DISPATCH_LEVEL`.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the KSPIN_LOCK lives as long as `self` and is only used here.
        let irql = unsafe { KeAcquireSpinLockRaiseToDpc(self.lock.get()) };
        // SAFETY: the spin lock is held, so no other reference to the value exists.
        let result = f(unsafe { &mut *self.value.get() });
        // SAFETY: releases the lock acquired above, restoring the caller's IRQL.
        unsafe { KeReleaseSpinLock(self.lock.get(), irql) };
        result
    }
}
