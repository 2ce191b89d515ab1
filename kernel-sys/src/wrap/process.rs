//! Where the calling thread runs: evidence for the log and the tests that
//! payload code runs in the System process, not in a caller's. Any IRQL.
use crate::imports::{IoGetCurrentProcess, PsGetCurrentProcessId, PsGetCurrentThreadId, PsInitialSystemProcess};

/// The current process's id.
#[must_use]
pub fn current_process_id() -> usize {
    // SAFETY: no arguments; returns the id as a HANDLE-sized number.
    unsafe { PsGetCurrentProcessId() as usize }
}

/// The current thread's id.
#[must_use]
pub fn current_thread_id() -> usize {
    // SAFETY: as above.
    unsafe { PsGetCurrentThreadId() as usize }
}

/// Whether the calling thread runs in the System process (a system thread,
/// `DriverEntry`, `DriverUnload`), rather than in a user process that called
/// into the driver.
#[must_use]
pub fn in_system_process() -> bool {
    // SAFETY: reading the imported variable yields the kernel's PEPROCESS
    // of the System process (see the rule in `imports.rs`).
    let system = unsafe { PsInitialSystemProcess };
    // SAFETY: no arguments; returns the current PEPROCESS.
    let current = unsafe { IoGetCurrentProcess() };
    !system.is_null() && system == current
}

/// The current IRQL (x64: `CR8`, which is what the WDK's inline
/// `KeGetCurrentIrql` reads there). Any IRQL.
#[must_use]
#[cfg(target_arch = "x86_64")]
pub fn current_irql() -> u8 {
    let irql: u64;
    // SAFETY: reading CR8 in kernel mode has no side effect.
    unsafe { core::arch::asm!("mov {}, cr8", out(reg) irql, options(nomem, nostack, preserves_flags)) };
    u8::try_from(irql & 0xF).unwrap_or(u8::MAX)
}

/// The current IRQL (x86: hal's `KeGetCurrentIrql` export, which is what
/// the WDK calls there). Any IRQL.
#[must_use]
#[cfg(target_arch = "x86")]
pub fn current_irql() -> u8 {
    // SAFETY: no arguments; any IRQL.
    unsafe { crate::imports::KeGetCurrentIrql() }
}

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
