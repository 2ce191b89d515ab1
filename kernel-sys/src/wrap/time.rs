//! System time at any IRQL.
//!
//! On x86 it is the `KeQuerySystemTime` export. On x64 `KeQuerySystemTime` is a macro, not an ntoskrnl export: it reads
//! `KUSER_SHARED_DATA.SystemTime`, which the kernel keeps current and which
//! is valid at any IRQL. This does the same: the `KSYSTEM_TIME` is read
//! field by field (`High1Time`, `LowPart`, `High2Time`) until the two high
//! parts agree, each with one plain 32-bit `mov`. (Written in `asm!` so the
//! compiler cannot fold a load into another instruction: Wine 8 emulates
//! only plain loads from that page inside `winedevice.exe`; a `cmp` with a
//! memory operand there is a page fault.)

/// One 32-bit load from `addr`, as a plain `mov`.
#[cfg(target_arch = "x86_64")]
fn load32(addr: usize) -> u32 {
    let value: u32;
    // SAFETY: `addr` is a field of KUSER_SHARED_DATA, mapped read-only into
    // every address space for the life of the system, 4-byte aligned.
    unsafe {
        core::arch::asm!(
            "mov {value:e}, dword ptr [{addr}]",
            addr = in(reg) addr,
            value = lateout(reg) value,
            options(nostack, preserves_flags, readonly),
        );
    }
    value
}

/// Current system time in 100 ns units since 1601 (UTC). Any IRQL.
#[must_use]
#[cfg(target_arch = "x86_64")]
pub fn system_time() -> u64 {
    use crate::types::{KI_USER_SHARED_DATA, USER_SHARED_SYSTEM_TIME};
    let low_at = KI_USER_SHARED_DATA + USER_SHARED_SYSTEM_TIME;
    loop {
        let high1 = load32(low_at + 4);
        let low = load32(low_at);
        let high2 = load32(low_at + 8);
        if high1 == high2 {
            return (u64::from(high1) << 32) | u64::from(low);
        }
        core::hint::spin_loop();
    }
}

/// Current system time in 100 ns units since 1601 (UTC). Any IRQL.
///
/// x86: `KeQuerySystemTime` is an ntoskrnl export there (documented for any
/// IRQL), so it is called rather than read inline.
#[must_use]
#[cfg(target_arch = "x86")]
pub fn system_time() -> u64 {
    let mut t: i64 = 0;
    // SAFETY: writes one LARGE_INTEGER to a local; any IRQL.
    unsafe { crate::imports::KeQuerySystemTime(&raw mut t) };
    u64::try_from(t).unwrap_or(0)
}

/// Sleeps the calling thread for about `ms` milliseconds (the clock tick
/// rounds it up). `<= APC_LEVEL`; not alertable.
pub fn sleep_ms(ms: u32) {
    let interval = -(i64::from(ms) * 10_000);
    // SAFETY: a relative interval that outlives the call; kernel mode, not
    // alertable, at PASSIVE/APC level (the caller's contract).
    unsafe { crate::imports::KeDelayExecutionThread(crate::types::KernelMode, 0, &raw const interval) };
}
