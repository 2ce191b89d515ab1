//! Registry keys by kernel path. `PASSIVE_LEVEL`.
use crate::imports::{ZwClose, ZwCreateKey, ZwFlushKey, ZwOpenKey, ZwQueryValueKey, ZwSetValueKey};
use crate::types::{
    KeyValuePartialInformation, HANDLE, KEY_CREATE_SUB_KEY, KEY_QUERY_VALUE, KEY_SET_VALUE, OBJECT_ATTRIBUTES,
    REG_BINARY, REG_DWORD, UNICODE_STRING,
};
use crate::wrap::ustr::WideBuf;

/// Largest value data read (service names are short).
pub const VALUE_MAX: usize = 256;

/// An open key; closed on drop.
pub struct RegKey {
    handle: HANDLE,
}

/// A value's type and data.
pub struct RegValue {
    pub kind: u32,
    data: [u8; VALUE_MAX],
    len: usize,
}

impl RegValue {
    #[must_use]
    pub fn data(&self) -> &[u8] {
        self.data.get(..self.len).unwrap_or(&[])
    }
}

impl RegKey {
    /// Opens `path` (e.g. the `RegistryPath` given to `DriverEntry` plus `\Parameters`).
    pub fn open(path: &UNICODE_STRING, write: bool) -> Result<RegKey, i32> {
        let attrs = OBJECT_ATTRIBUTES::kernel_handle(path);
        let access = if write { KEY_QUERY_VALUE | KEY_SET_VALUE } else { KEY_QUERY_VALUE };
        let mut handle: HANDLE = core::ptr::null_mut();
        // SAFETY: attributes and the name they point to outlive the call.
        let status = unsafe { ZwOpenKey(&raw mut handle, access, &raw const attrs) };
        if status >= 0 {
            Ok(RegKey { handle })
        } else {
            Err(status)
        }
    }

    /// Opens `path` for reading and writing, creating it (not its parents)
    /// if it does not exist. A non-volatile key.
    pub fn create(path: &UNICODE_STRING) -> Result<RegKey, i32> {
        let attrs = OBJECT_ATTRIBUTES::kernel_handle(path);
        let mut handle: HANDLE = core::ptr::null_mut();
        let mut disposition = 0u32;
        // SAFETY: attributes and the name they point to outlive the call;
        // out-pointers valid; no class; REG_OPTION_NON_VOLATILE (0).
        let status = unsafe {
            ZwCreateKey(
                &raw mut handle,
                KEY_QUERY_VALUE | KEY_SET_VALUE | KEY_CREATE_SUB_KEY,
                &raw const attrs,
                0,
                core::ptr::null(),
                0,
                &raw mut disposition,
            )
        };
        if status >= 0 {
            Ok(RegKey { handle })
        } else {
            Err(status)
        }
    }

    /// Writes a `REG_BINARY` value.
    pub fn set_binary(&self, name: &str, data: &[u8]) -> Result<(), i32> {
        let wide: WideBuf<64> = WideBuf::from_ascii(name).ok_or(crate::STATUS_INVALID_PARAMETER)?;
        let uname = wide.as_unicode();
        let len = u32::try_from(data.len()).map_err(|_| crate::STATUS_INVALID_PARAMETER)?;
        // SAFETY: name and data outlive the call; `len` is the data's size.
        let status = unsafe { ZwSetValueKey(self.handle, &raw const uname, 0, REG_BINARY, data.as_ptr().cast(), len) };
        if status >= 0 {
            Ok(())
        } else {
            Err(status)
        }
    }

    /// Reads a value of any size into `out` (header and data, with room for
    /// the 12-byte header; 4-byte aligned, as pool memory is): the data's
    /// type and its bytes, a view into `out`.
    pub fn query_into<'a>(&self, name: &str, out: &'a mut [u8]) -> Result<(u32, &'a [u8]), i32> {
        if out.as_ptr().align_offset(4) != 0 {
            return Err(crate::STATUS_INVALID_PARAMETER);
        }
        let wide: WideBuf<64> = WideBuf::from_ascii(name).ok_or(crate::STATUS_INVALID_PARAMETER)?;
        let uname = wide.as_unicode();
        let mut got = 0u32;
        let cap = u32::try_from(core::mem::size_of_val(out)).map_err(|_| crate::STATUS_INVALID_PARAMETER)?;
        // SAFETY: `out` is writable for `cap` bytes; `uname` views `wide`.
        let status = unsafe {
            ZwQueryValueKey(
                self.handle,
                &raw const uname,
                KeyValuePartialInformation,
                out.as_mut_ptr().cast(),
                cap,
                &raw mut got,
            )
        };
        if status < 0 {
            return Err(status);
        }
        let bytes: &'a [u8] = out;
        let word = |at: usize| bytes.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_le_bytes);
        let kind = word(4).unwrap_or(0);
        let len = word(8).unwrap_or(0) as usize;
        let data = bytes.get(12..12usize.saturating_add(len)).ok_or(crate::STATUS_INVALID_PARAMETER)?;
        Ok((kind, data))
    }

    /// Reads a value; data longer than [`VALUE_MAX`] fails with the kernel's status.
    pub fn query(&self, name: &str) -> Result<RegValue, i32> {
        let wide: WideBuf<64> = WideBuf::from_ascii(name).ok_or(crate::STATUS_INVALID_PARAMETER)?;
        let uname = wide.as_unicode();
        // KEY_VALUE_PARTIAL_INFORMATION header (12 bytes) + data, 8-aligned.
        let mut raw = [0u64; (12 + VALUE_MAX).div_ceil(8)];
        let mut got = 0u32;
        let cap = u32::try_from(core::mem::size_of_val(&raw)).unwrap_or(0);
        // SAFETY: `raw` is writable for `cap` bytes; `uname` views `wide`, alive here.
        let status = unsafe {
            ZwQueryValueKey(
                self.handle,
                &raw const uname,
                KeyValuePartialInformation,
                raw.as_mut_ptr().cast(),
                cap,
                &raw mut got,
            )
        };
        if status < 0 {
            return Err(status);
        }
        let bytes: [u8; (12 + VALUE_MAX).div_ceil(8) * 8] = bytes_of(&raw);
        let kind = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let len = len.min(VALUE_MAX);
        let mut value = RegValue { kind, data: [0; VALUE_MAX], len };
        if let (Some(dst), Some(src)) = (value.data.get_mut(..len), bytes.get(12..12 + len)) {
            dst.copy_from_slice(src);
        }
        Ok(value)
    }

    /// Writes a `REG_DWORD`.
    pub fn set_dword(&self, name: &str, value: u32) -> Result<(), i32> {
        let wide: WideBuf<64> = WideBuf::from_ascii(name).ok_or(crate::STATUS_INVALID_PARAMETER)?;
        let uname = wide.as_unicode();
        let data = value.to_le_bytes();
        // SAFETY: name and data outlive the call; size matches `data`.
        let status = unsafe { ZwSetValueKey(self.handle, &raw const uname, 0, REG_DWORD, data.as_ptr().cast(), 4) };
        if status >= 0 {
            Ok(())
        } else {
            Err(status)
        }
    }

    /// Writes a `REG_SZ` (NUL-terminated here).
    pub fn set_sz(&self, name: &str, value: &[u16]) -> Result<(), i32> {
        let wide: WideBuf<64> = WideBuf::from_ascii(name).ok_or(crate::STATUS_INVALID_PARAMETER)?;
        let uname = wide.as_unicode();
        let mut data: WideBuf<64> = WideBuf::from_units(value).ok_or(crate::STATUS_INVALID_PARAMETER)?;
        data.push_units(&[0]).ok_or(crate::STATUS_INVALID_PARAMETER)?;
        let units = data.units();
        let bytes = u32::try_from(core::mem::size_of_val(units)).map_err(|_| crate::STATUS_INVALID_PARAMETER)?;
        // SAFETY: name and data outlive the call; `bytes` is the data's size.
        let status = unsafe {
            ZwSetValueKey(self.handle, &raw const uname, 0, crate::types::REG_SZ, units.as_ptr().cast(), bytes)
        };
        if status >= 0 {
            Ok(())
        } else {
            Err(status)
        }
    }

    /// Forces the key to disk (so a value survives a crash or power loss).
    pub fn flush(&self) -> Result<(), i32> {
        // SAFETY: valid handle owned by self.
        let status = unsafe { ZwFlushKey(self.handle) };
        if status >= 0 {
            Ok(())
        } else {
            Err(status)
        }
    }
}

fn bytes_of<const W: usize, const B: usize>(words: &[u64; W]) -> [u8; B] {
    let mut out = [0u8; B];
    for (chunk, w) in out.chunks_exact_mut(8).zip(words.iter()) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

impl Drop for RegKey {
    fn drop(&mut self) {
        // SAFETY: closes the handle this value owns, exactly once.
        unsafe { ZwClose(self.handle) };
    }
}
