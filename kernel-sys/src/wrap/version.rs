//! The running kernel's version. Any IRQL <= `APC_LEVEL`.
use crate::imports::RtlGetVersion;
use crate::types::RTL_OSVERSIONINFOW;

/// (major, minor, build); (0, 0, 0) if the query fails.
#[must_use]
pub fn get() -> (u32, u32, u32) {
    let mut info = RTL_OSVERSIONINFOW {
        dwOSVersionInfoSize: u32::try_from(core::mem::size_of::<RTL_OSVERSIONINFOW>()).unwrap_or(0),
        dwMajorVersion: 0,
        dwMinorVersion: 0,
        dwBuildNumber: 0,
        dwPlatformId: 0,
        szCSDVersion: [0; 128],
    };
    // SAFETY: `info` is a correctly sized RTL_OSVERSIONINFOW that outlives the call.
    let status = unsafe { RtlGetVersion(&raw mut info) };
    if status >= 0 {
        (info.dwMajorVersion, info.dwMinorVersion, info.dwBuildNumber)
    } else {
        (0, 0, 0)
    }
}

/// Major version: 5 = XP/2003, 6 = Vista/7/8, 10 = 10/11.
#[must_use]
pub fn major() -> u32 {
    get().0
}
