//! System time without `KeQuerySystemTime` (a macro, not an export, on x64).
use crate::imports::ZwQuerySystemInformation;
use crate::types::{SystemTimeOfDayInformation, SYSTEM_TIMEOFDAY_INFORMATION};

/// Current system time in 100 ns units since 1601 (UTC); 0 if unavailable.
/// `PASSIVE_LEVEL`.
#[must_use]
pub fn system_time() -> u64 {
    let mut info = SYSTEM_TIMEOFDAY_INFORMATION {
        BootTime: 0,
        CurrentTime: 0,
        TimeZoneBias: 0,
        TimeZoneId: 0,
        Reserved: 0,
        BootTimeBias: 0,
        SleepTimeBias: 0,
    };
    let mut got = 0u32;
    let size = u32::try_from(core::mem::size_of::<SYSTEM_TIMEOFDAY_INFORMATION>()).unwrap_or(0);
    // SAFETY: `info` is writable for `size` bytes and outlives the call.
    let status =
        unsafe { ZwQuerySystemInformation(SystemTimeOfDayInformation, (&raw mut info).cast(), size, &mut got) };
    if status >= 0 {
        u64::try_from(info.CurrentTime).unwrap_or(0)
    } else {
        0
    }
}
