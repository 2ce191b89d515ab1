//! What loaderctl asks Windows itself (besides the loader's device, which
//! is `device.rs`): the time zone's conversion of a time, whether it runs
//! under Wine, the Filter Manager's instances (fltlib, as `fltmc instances`
//! lists them) and registry strings. Microsoft's bindings (`windows-sys`).
//!
//! Every `unsafe` block calls one documented Win32 routine with buffers
//! that live across the call and lengths that match them; nothing here
//! keeps a pointer past the call.
use crate::timefmt::{Civil, Zone, TICKS_PER_SECOND};
use windows_sys::Win32::Foundation::{FILETIME, HANDLE, SYSTEMTIME};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FilterGetDosName, FilterInstanceFindClose, FilterInstanceFindFirst, FilterInstanceFindNext,
    InstanceFullInformation, INSTANCE_FULL_INFORMATION,
};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::ProcessStatus::{EnumDeviceDrivers, GetDeviceDriverBaseNameW};
use windows_sys::Win32::System::Registry::{
    RegGetValueW, HKEY_LOCAL_MACHINE, RRF_NOEXPAND, RRF_RT_REG_EXPAND_SZ, RRF_RT_REG_SZ,
};
use windows_sys::Win32::System::Time::{FileTimeToSystemTime, SystemTimeToFileTime, SystemTimeToTzSpecificLocalTime};

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The machine's time zone, through the Windows API.
pub struct WindowsZone;

fn split_filetime(ticks: u64) -> FILETIME {
    FILETIME { dwLowDateTime: (ticks & 0xFFFF_FFFF) as u32, dwHighDateTime: (ticks >> 32) as u32 }
}

fn civil(st: &SYSTEMTIME, offset_minutes: i32) -> Option<Civil> {
    Some(Civil {
        year: st.wYear,
        month: u8::try_from(st.wMonth).ok()?,
        day: u8::try_from(st.wDay).ok()?,
        hour: u8::try_from(st.wHour).ok()?,
        minute: u8::try_from(st.wMinute).ok()?,
        second: u8::try_from(st.wSecond).ok()?,
        offset_minutes,
    })
}

fn utc_systemtime(ticks: u64) -> Option<SYSTEMTIME> {
    let ft = split_filetime(ticks);
    let mut st = SYSTEMTIME::default();
    // SAFETY: both pointers are to locals that live across the call.
    (unsafe { FileTimeToSystemTime(&raw const ft, &raw mut st) } != 0).then_some(st)
}

impl Zone for WindowsZone {
    fn utc(&self, ticks: u64) -> Option<Civil> {
        civil(&utc_systemtime(ticks)?, 0)
    }

    fn local(&self, ticks: u64) -> Option<Civil> {
        let utc = utc_systemtime(ticks)?;
        let mut local = SYSTEMTIME::default();
        // SAFETY: a null zone means "the current time zone" (documented);
        // the two SYSTEMTIMEs are locals that live across the call.
        if unsafe { SystemTimeToTzSpecificLocalTime(std::ptr::null(), &raw const utc, &raw mut local) } == 0 {
            return None;
        }
        let mut back = FILETIME { dwLowDateTime: 0, dwHighDateTime: 0 };
        // SAFETY: as above.
        if unsafe { SystemTimeToFileTime(&raw const local, &raw mut back) } == 0 {
            return None;
        }
        // The offset is what the zone added: local - UTC, in whole minutes
        // (a SYSTEMTIME keeps milliseconds, not the 100-ns ticks below them).
        let local_ticks = (u64::from(back.dwHighDateTime) << 32) | u64::from(back.dwLowDateTime);
        let diff = i128::from(local_ticks) - i128::from(ticks - ticks % 10_000);
        let offset = i32::try_from(diff / i128::from(60 * TICKS_PER_SECOND)).ok()?;
        civil(&local, offset)
    }
}

/// Whether this process runs under Wine (its ntdll exports `wine_get_version`).
#[must_use]
pub fn under_wine() -> bool {
    let ntdll = wide("ntdll.dll");
    // SAFETY: a NUL-terminated name that lives across the call.
    let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
    if module.is_null() {
        return false;
    }
    // SAFETY: a module handle just returned, and a NUL-terminated ASCII name.
    unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }.is_some()
}

/// One instance as the Filter Manager reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FltInstance {
    pub instance: String,
    pub altitude: String,
    pub volume: String,
    /// `C:` and the like, when the volume has a drive letter.
    pub dos_name: Option<String>,
}

/// `HRESULT_FROM_WIN32(ERROR_NO_MORE_ITEMS)`.
const HRESULT_NO_MORE_ITEMS: i32 = 0x8007_0103_u32.cast_signed();
/// `ERROR_FLT_FILTER_NOT_FOUND` as an HRESULT: the filter is not loaded.
const HRESULT_FILTER_NOT_FOUND: i32 = 0x801F_0013_u32.cast_signed();

/// A UTF-16 field of an `INSTANCE_FULL_INFORMATION` entry (offsets from
/// the entry's start, lengths in bytes).
fn field(entry: &[u8], offset: u16, length: u16) -> String {
    let (at, len) = (usize::from(offset), usize::from(length));
    let units: Vec<u16> = entry
        .get(at..at.saturating_add(len))
        .unwrap_or(&[])
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

fn parse_full_information(entry: &[u8]) -> Option<FltInstance> {
    let u16_at = |at: usize| entry.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    if entry.len() < std::mem::size_of::<INSTANCE_FULL_INFORMATION>() {
        return None;
    }
    Some(FltInstance {
        instance: field(entry, u16_at(6)?, u16_at(4)?),
        altitude: field(entry, u16_at(10)?, u16_at(8)?),
        volume: field(entry, u16_at(14)?, u16_at(12)?),
        dos_name: None,
    })
}

fn dos_name(volume: &str) -> Option<String> {
    let name = wide(volume);
    let mut out = [0u16; 64];
    // SAFETY: a NUL-terminated volume name and an output buffer of the
    // length passed, both alive across the call.
    let hr = unsafe { FilterGetDosName(name.as_ptr(), out.as_mut_ptr(), 64) };
    if hr < 0 {
        return None;
    }
    let end = out.iter().position(|&u| u == 0).unwrap_or(out.len());
    Some(String::from_utf16_lossy(&out[..end])).filter(|s| !s.is_empty())
}

/// Every instance of `filter` (its service name), as `fltmc instances
/// -f <filter>` lists them. `Ok(empty)` when the filter is not loaded;
/// `Err(HRESULT)` when the enumeration itself fails.
pub fn filter_instances(filter: &str) -> Result<Vec<FltInstance>, i32> {
    let name = wide(filter);
    let mut buffer = vec![0u8; 4096];
    let mut handle: HANDLE = std::ptr::null_mut();
    let mut returned = 0u32;
    let len = u32::try_from(buffer.len()).unwrap_or(0);
    // SAFETY: a NUL-terminated filter name, a buffer of `len` bytes, and
    // two out-parameters, all alive across the call.
    let mut hr = unsafe {
        FilterInstanceFindFirst(
            name.as_ptr(),
            InstanceFullInformation,
            buffer.as_mut_ptr().cast(),
            len,
            &raw mut returned,
            &raw mut handle,
        )
    };
    if hr == HRESULT_NO_MORE_ITEMS || hr == HRESULT_FILTER_NOT_FOUND {
        return Ok(Vec::new());
    }
    if hr < 0 {
        return Err(hr);
    }
    let mut out = Vec::new();
    loop {
        let used = usize::try_from(returned).unwrap_or(0).min(buffer.len());
        if let Some(mut i) = buffer.get(..used).and_then(parse_full_information) {
            i.dos_name = dos_name(&i.volume);
            out.push(i);
        }
        // SAFETY: the find handle FilterInstanceFindFirst returned, and the
        // same buffer and out-parameter as above.
        hr = unsafe {
            FilterInstanceFindNext(handle, InstanceFullInformation, buffer.as_mut_ptr().cast(), len, &raw mut returned)
        };
        if hr < 0 {
            break;
        }
    }
    // SAFETY: closes the find handle once; it is not used afterwards.
    unsafe { FilterInstanceFindClose(handle) };
    if hr == HRESULT_NO_MORE_ITEMS {
        Ok(out)
    } else {
        Err(hr)
    }
}

/// A `REG_SZ` (or, unexpanded, `REG_EXPAND_SZ`) value under
/// `HKLM\<subkey>`, if it exists.
#[must_use]
pub fn registry_string(subkey: &str, value: &str) -> Option<String> {
    let (key, name) = (wide(subkey), wide(value));
    let mut data = [0u16; 256];
    let mut bytes = u32::try_from(std::mem::size_of_val(&data)).unwrap_or(0);
    // SAFETY: NUL-terminated key and value names, a data buffer of `bytes`
    // bytes and its length, all alive across the call; no type out-pointer.
    let err = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            name.as_ptr(),
            RRF_RT_REG_SZ | RRF_RT_REG_EXPAND_SZ | RRF_NOEXPAND,
            std::ptr::null_mut(),
            data.as_mut_ptr().cast(),
            &raw mut bytes,
        )
    };
    if err != 0 {
        return None;
    }
    let units = usize::try_from(bytes / 2).unwrap_or(0).min(data.len());
    let end = data[..units].iter().position(|&u| u == 0).unwrap_or(units);
    Some(String::from_utf16_lossy(&data[..end]))
}

/// The base names of the kernel modules loaded now (`ntoskrnl.exe`,
/// `payload_a.sys`, ...), as `driverquery` sees them. `None` if the list
/// cannot be read.
#[must_use]
pub fn loaded_driver_names() -> Option<Vec<String>> {
    let mut bases: Vec<*mut core::ffi::c_void> = vec![std::ptr::null_mut(); 1024];
    let mut needed = 0u32;
    let bytes = u32::try_from(std::mem::size_of_val(bases.as_slice())).ok()?;
    // SAFETY: an array of `bytes` bytes and an out-parameter, alive across the call.
    if unsafe { EnumDeviceDrivers(bases.as_mut_ptr(), bytes, &raw mut needed) } == 0 {
        return None;
    }
    let count = usize::try_from(needed).ok()? / std::mem::size_of::<*mut core::ffi::c_void>();
    let mut names = Vec::new();
    for base in bases.iter().take(count) {
        let mut name = [0u16; 260];
        // SAFETY: a load address EnumDeviceDrivers returned (only compared
        // by the system, never dereferenced here) and a buffer of 260 units.
        let n = unsafe { GetDeviceDriverBaseNameW(*base, name.as_mut_ptr(), 260) };
        let n = usize::try_from(n).unwrap_or(0).min(name.len());
        if n > 0 {
            names.push(String::from_utf16_lossy(&name[..n]));
        }
    }
    Some(names)
}
