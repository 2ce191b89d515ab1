//! The loader's configuration: the values under its own service key's
//! `Parameters`, which only administrators can write.
//!
//! | value             | type      | meaning                                   |
//! |-------------------|-----------|-------------------------------------------|
//! | `SlotA`, `SlotB`  | `REG_SZ`    | service name of each slot's payload       |
//! | `ActiveSlot`      | `REG_DWORD` | 0 = A, 1 = B, 0xFFFFFFFF = no payload; absent means A |
//! | `UnloadTimeoutMs` | `REG_DWORD` | teardown bound, default 5000, clamped to 100..=600000 |
//!
//! These are the *only* names the loader ever hands to `ZwLoadDriver`: a
//! control request selects a slot, never a name. The registry data is
//! outside bytes all the same (a damaged hive, a careless admin), so parsing
//! is checked and panic-free, and a service name is restricted to a charset
//! that cannot climb out of `...\Services\`.
use core::fmt;
use shared_abi::payload::NAME_CHARS;
use shared_abi::{NtStatus, PerSlot, Slot};

/// `REG_SZ`.
pub const REG_SZ: u32 = 1;
/// `REG_EXPAND_SZ`.
pub const REG_EXPAND_SZ: u32 = 2;
/// `REG_DWORD` (little-endian).
pub const REG_DWORD: u32 = 4;

/// Subkey of the loader's service key holding its values.
pub const PARAMETERS_KEY: &str = "Parameters";
/// Value names, slot A then slot B.
pub const VALUE_SLOTS: [&str; 2] = ["SlotA", "SlotB"];
/// Value name of the persisted active slot.
pub const VALUE_ACTIVE_SLOT: &str = "ActiveSlot";
/// Value name of the teardown bound.
pub const VALUE_UNLOAD_TIMEOUT_MS: &str = "UnloadTimeoutMs";

/// The loader's own service name; a slot may not name it.
pub const LOADER_SERVICE: &str = "SerialLoader";

/// Default teardown bound.
pub const DEFAULT_UNLOAD_TIMEOUT_MS: u32 = 5000;
/// Smallest teardown bound accepted (smaller values are raised to it).
pub const MIN_UNLOAD_TIMEOUT_MS: u32 = 100;
/// Largest teardown bound accepted (larger values are lowered to it).
pub const MAX_UNLOAD_TIMEOUT_MS: u32 = 600_000;

/// Longest service name, in characters.
pub const MAX_SERVICE_CHARS: usize = NAME_CHARS - 1;
/// Capacity of the kernel object path buffers.
pub const PATH_CHARS: usize = 128;

/// Prefix `ZwLoadDriver` wants before a service name.
pub const SERVICES_KEY_PREFIX: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\";

/// A checked service name: 1 to 31 characters of `[A-Za-z0-9_.-]`, not
/// `.` or `..`. It can be pasted into a registry or object path as is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceName {
    chars: [u16; NAME_CHARS],
    len: u8,
}

fn allowed(ch: u16) -> bool {
    u8::try_from(ch).is_ok_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl ServiceName {
    /// Checks UTF-16 characters (no terminator) against the name rules;
    /// any violation gives `STATUS_OBJECT_NAME_INVALID`.
    pub fn from_utf16(name: &[u16]) -> Result<Self, NtStatus> {
        if name.is_empty() || name.len() > MAX_SERVICE_CHARS || !name.iter().all(|c| allowed(*c)) {
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
        let dot = u16::from(b'.');
        if name.iter().all(|c| *c == dot) && name.len() <= 2 {
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
        let mut chars = [0u16; NAME_CHARS];
        for (dst, src) in chars.iter_mut().zip(name) {
            *dst = *src;
        }
        let len = u8::try_from(name.len()).map_err(|_| NtStatus::OBJECT_NAME_INVALID)?;
        Ok(ServiceName { chars, len })
    }

    /// [`ServiceName::from_utf16`] on a Rust string.
    pub fn new(name: &str) -> Result<Self, NtStatus> {
        let mut buf = [0u16; NAME_CHARS];
        let mut len = 0usize;
        for ch in name.encode_utf16() {
            *buf.get_mut(len).ok_or(NtStatus::OBJECT_NAME_INVALID)? = ch;
            len = len.checked_add(1).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
        }
        Self::from_utf16(buf.get(..len).ok_or(NtStatus::OBJECT_NAME_INVALID)?)
    }

    /// The name's characters, without terminator.
    #[must_use]
    pub fn as_utf16(&self) -> &[u16] {
        self.chars.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The name NUL-padded, as `SlotStatus::service` carries it.
    #[must_use]
    pub fn to_abi_name(&self) -> [u16; NAME_CHARS] {
        self.chars
    }

    /// Whether two names denote the same service (the registry ignores case).
    #[must_use]
    pub fn same_service(&self, other: &ServiceName) -> bool {
        let lower = |c: &u16| u8::try_from(*c).map_or(*c, |b| u16::from(b.to_ascii_lowercase()));
        self.as_utf16().iter().map(lower).eq(other.as_utf16().iter().map(lower))
    }

    /// Writes `\Registry\Machine\System\CurrentControlSet\Services\<name>`
    /// (no terminator) and returns its length in characters.
    pub fn service_key_path(&self, out: &mut [u16; PATH_CHARS]) -> usize {
        self.prefixed(SERVICES_KEY_PREFIX, out)
    }

    /// Writes the name of the service's driver object, `\Driver\<name>` or
    /// `\FileSystem\<name>`, and returns its length in characters.
    pub fn driver_object_name(&self, kind: DriverObjectKind, out: &mut [u16; PATH_CHARS]) -> usize {
        self.prefixed(kind.prefix(), out)
    }

    /// `prefix` then the name; the longest result is far below the buffer,
    /// but a result that would not fit is cut rather than overrun.
    fn prefixed(&self, prefix: &str, out: &mut [u16; PATH_CHARS]) -> usize {
        *out = [0; PATH_CHARS];
        let mut len = 0usize;
        for (dst, src) in out.iter_mut().zip(prefix.encode_utf16().chain(self.as_utf16().iter().copied())) {
            *dst = src;
            len = len.saturating_add(1);
        }
        len
    }
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceName(\"{self}\")")
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ch in char::decode_utf16(self.as_utf16().iter().copied()) {
            fmt::Write::write_char(f, ch.unwrap_or(char::REPLACEMENT_CHARACTER))?;
        }
        Ok(())
    }
}

/// Which object directory holds a loaded service's driver object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverObjectKind {
    /// `\Driver\` — kernel services (type 1), and every service under Wine.
    Driver,
    /// `\FileSystem\` — file-system services (type 2, minifilters) on Windows.
    FileSystem,
}

impl DriverObjectKind {
    fn prefix(self) -> &'static str {
        match self {
            DriverObjectKind::Driver => "\\Driver\\",
            DriverObjectKind::FileSystem => "\\FileSystem\\",
        }
    }
}

/// Reads a slot value: `REG_SZ` (else `STATUS_INVALID_PARAMETER`), UTF-16LE
/// with optional trailing NULs, holding a valid [`ServiceName`] (else
/// `STATUS_OBJECT_NAME_INVALID`, also for an odd byte count or a NUL inside).
pub fn parse_service_name(reg_type: u32, data: &[u8]) -> Result<ServiceName, NtStatus> {
    if reg_type != REG_SZ {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let pairs = data.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(NtStatus::OBJECT_NAME_INVALID);
    }
    let mut buf = [0u16; NAME_CHARS];
    let mut len = 0usize;
    let mut ended = false;
    for pair in pairs {
        let ch = u16::from_le_bytes([*pair.first().unwrap_or(&0), *pair.get(1).unwrap_or(&0)]);
        if ch == 0 {
            ended = true;
        } else if ended {
            return Err(NtStatus::OBJECT_NAME_INVALID); // text after the terminator
        } else {
            *buf.get_mut(len).ok_or(NtStatus::OBJECT_NAME_INVALID)? = ch;
            len = len.checked_add(1).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
        }
    }
    ServiceName::from_utf16(buf.get(..len).ok_or(NtStatus::OBJECT_NAME_INVALID)?)
}

/// Reads a `REG_DWORD` (else `STATUS_INVALID_PARAMETER`) of exactly four
/// bytes (else `STATUS_INFO_LENGTH_MISMATCH`).
pub fn parse_dword(reg_type: u32, data: &[u8]) -> Result<u32, NtStatus> {
    if reg_type != REG_DWORD {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let bytes = <[u8; 4]>::try_from(data).map_err(|_| NtStatus::INFO_LENGTH_MISMATCH)?;
    Ok(u32::from_le_bytes(bytes))
}

/// One registry value as `ZwQueryValueKey` returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawValue<'a> {
    pub reg_type: u32,
    pub data: &'a [u8],
}

/// `ActiveSlot` data meaning "no payload": the loader starts and serves
/// requests but loads nothing until `loaderctl load`. Written by
/// `loaderctl unload`. (An absent `ActiveSlot` means slot A, as the INF
/// installs it.)
pub const ACTIVE_SLOT_NONE: u32 = 0xFFFF_FFFF;

/// Reads `ActiveSlot`: absent means slot A; `REG_DWORD` 0 is A, 1 is B,
/// [`ACTIVE_SLOT_NONE`] is "no payload"; any other number gives
/// `STATUS_INVALID_PARAMETER`, a wrong type or size as [`parse_dword`].
pub fn parse_active_slot(value: Option<RawValue<'_>>) -> Result<Option<Slot>, NtStatus> {
    let Some(v) = value else { return Ok(Some(Slot::A)) };
    match parse_dword(v.reg_type, v.data)? {
        ACTIVE_SLOT_NONE => Ok(None),
        word => Slot::from_word(word).map(Some).ok_or(NtStatus::INVALID_PARAMETER),
    }
}

/// The `ActiveSlot` data that [`parse_active_slot`] reads back as `active`.
#[must_use]
pub const fn encode_active_slot(active: Option<Slot>) -> u32 {
    match active {
        Some(slot) => slot.word(),
        None => ACTIVE_SLOT_NONE,
    }
}

/// The checked configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Service name per slot.
    pub slots: PerSlot<ServiceName>,
    /// The slot to load at start, or none (`ActiveSlot` = [`ACTIVE_SLOT_NONE`]).
    pub active: Option<Slot>,
    /// The teardown bound, already clamped.
    pub unload_timeout_ms: u32,
}

impl Config {
    /// Builds the configuration from the four values as `ZwQueryValueKey`
    /// returned them (`None` = absent): a missing slot gives
    /// `STATUS_OBJECT_NAME_NOT_FOUND`; `ActiveSlot` is read by
    /// [`parse_active_slot`]; `UnloadTimeoutMs` defaults to 5000 and is
    /// clamped; the result is [`Config::validate`]d. This is the one reader
    /// of `Parameters`: the driver passes it the raw values.
    pub fn from_values(
        slots: [Option<RawValue<'_>>; 2],
        active: Option<RawValue<'_>>,
        unload_timeout_ms: Option<RawValue<'_>>,
    ) -> Result<Config, NtStatus> {
        let [a, b] = slots;
        let slot = |v: Option<RawValue<'_>>| {
            v.ok_or(NtStatus::OBJECT_NAME_NOT_FOUND).and_then(|v| parse_service_name(v.reg_type, v.data))
        };
        let active = parse_active_slot(active)?;
        let timeout = match unload_timeout_ms {
            None => None,
            Some(v) => Some(parse_dword(v.reg_type, v.data)?),
        };
        let config = Config {
            slots: PerSlot::new(slot(a)?, slot(b)?),
            active,
            unload_timeout_ms: clamp_unload_timeout(timeout),
        };
        config.validate()?;
        Ok(config)
    }

    /// Both slots name different services, neither the loader itself (else
    /// `STATUS_OBJECT_NAME_COLLISION`); the timeout is within bounds (else
    /// `STATUS_INVALID_PARAMETER`).
    pub fn validate(&self) -> Result<(), NtStatus> {
        let (a, b) = (&self.slots[Slot::A], &self.slots[Slot::B]);
        let loader = ServiceName::new(LOADER_SERVICE)?;
        if a.same_service(b) || a.same_service(&loader) || b.same_service(&loader) {
            return Err(NtStatus::OBJECT_NAME_COLLISION);
        }
        if !(MIN_UNLOAD_TIMEOUT_MS..=MAX_UNLOAD_TIMEOUT_MS).contains(&self.unload_timeout_ms) {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        Ok(())
    }

    /// The service of `slot`.
    #[must_use]
    pub fn service(&self, slot: Slot) -> &ServiceName {
        &self.slots[slot]
    }
}

/// `UnloadTimeoutMs` as the loader uses it: 5000 when absent, else clamped
/// to 100..=600000.
#[must_use]
pub fn clamp_unload_timeout(raw: Option<u32>) -> u32 {
    raw.map_or(DEFAULT_UNLOAD_TIMEOUT_MS, |v| v.clamp(MIN_UNLOAD_TIMEOUT_MS, MAX_UNLOAD_TIMEOUT_MS))
}

/// UTF-16LE bytes of `s`, NUL-terminated, as the registry stores a `REG_SZ`
/// (for tests and tools; returns the byte count written).
pub fn encode_reg_sz(s: &str, out: &mut [u8]) -> Result<usize, NtStatus> {
    let mut len = 0usize;
    for ch in s.encode_utf16().chain(core::iter::once(0)) {
        let end = len.checked_add(2).ok_or(NtStatus::BUFFER_TOO_SMALL)?;
        out.get_mut(len..end).ok_or(NtStatus::BUFFER_TOO_SMALL)?.copy_from_slice(&ch.to_le_bytes());
        len = end;
    }
    Ok(len)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn sz(s: &str) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let n = encode_reg_sz(s, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn utf16(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    fn text(chars: &[u16]) -> String {
        String::from_utf16(chars).unwrap()
    }

    #[test]
    fn valid_names_parse_with_or_without_terminators() {
        for name in ["CounterFilterA", "a", "x.y-z_9", "...", "A234567890123456789012345678901"] {
            let n = parse_service_name(REG_SZ, &sz(name)).unwrap();
            assert_eq!(text(n.as_utf16()), name);
            let mut bare = sz(name);
            bare.truncate(bare.len() - 2);
            assert_eq!(parse_service_name(REG_SZ, &bare), Ok(n));
            bare.extend_from_slice(&[0; 6]);
            assert_eq!(parse_service_name(REG_SZ, &bare), Ok(n));
            let abi = n.to_abi_name();
            assert_eq!(&abi[..name.len()], utf16(name).as_slice());
            assert!(abi[name.len()..].iter().all(|c| *c == 0));
            assert_eq!(std::format!("{n}"), name);
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let invalid = [
            "",
            ".",
            "..",
            "a\\b",
            "..\\Tcpip",
            "a/b",
            "C:x",
            "a b",
            "name\u{e9}",
            "\u{202e}x",
            "A2345678901234567890123456789012",
            "%SystemRoot%",
            "a*",
            "\\??\\C:\\evil.sys",
        ];
        for name in invalid {
            assert_eq!(parse_service_name(REG_SZ, &sz(name)), Err(NtStatus::OBJECT_NAME_INVALID), "{name:?}");
            assert!(ServiceName::new(name).is_err(), "{name:?}");
        }
        // Text after a NUL, odd byte counts, a lone surrogate.
        assert_eq!(parse_service_name(REG_SZ, b"a\0\0\0b\0"), Err(NtStatus::OBJECT_NAME_INVALID));
        assert_eq!(parse_service_name(REG_SZ, b"a\0b"), Err(NtStatus::OBJECT_NAME_INVALID));
        assert_eq!(parse_service_name(REG_SZ, &[0x00, 0xD8]), Err(NtStatus::OBJECT_NAME_INVALID));
        assert_eq!(parse_service_name(REG_SZ, &[0; 8]), Err(NtStatus::OBJECT_NAME_INVALID));
        assert_eq!(parse_service_name(REG_SZ, &[b'a'; 4096]), Err(NtStatus::OBJECT_NAME_INVALID));
        // Only REG_SZ.
        for t in [0, REG_EXPAND_SZ, 3, REG_DWORD, 7, u32::MAX] {
            assert_eq!(parse_service_name(t, &sz("CounterFilterA")), Err(NtStatus::INVALID_PARAMETER));
        }
    }

    #[test]
    fn dwords_are_exactly_four_bytes() {
        assert_eq!(parse_dword(REG_DWORD, &[1, 0, 0, 0]), Ok(1));
        assert_eq!(parse_dword(REG_DWORD, &0x0009_27C0u32.to_le_bytes()), Ok(600_000));
        assert_eq!(parse_dword(REG_DWORD, &[1, 0, 0]), Err(NtStatus::INFO_LENGTH_MISMATCH));
        assert_eq!(parse_dword(REG_DWORD, &[1, 0, 0, 0, 0]), Err(NtStatus::INFO_LENGTH_MISMATCH));
        assert_eq!(parse_dword(REG_DWORD, &[]), Err(NtStatus::INFO_LENGTH_MISMATCH));
        assert_eq!(parse_dword(5, &[0, 0, 0, 1]), Err(NtStatus::INVALID_PARAMETER)); // REG_DWORD_BIG_ENDIAN
        assert_eq!(parse_dword(REG_SZ, &[0x31, 0, 0, 0]), Err(NtStatus::INVALID_PARAMETER));
    }

    #[test]
    fn paths_are_built_without_overrun() {
        let n = ServiceName::new("CounterFilterA").unwrap();
        let mut out = [0xFFFFu16; PATH_CHARS];
        let len = n.service_key_path(&mut out);
        assert_eq!(text(&out[..len]), "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\CounterFilterA");
        assert!(out[len..].iter().all(|c| *c == 0));
        let len = n.driver_object_name(DriverObjectKind::FileSystem, &mut out);
        assert_eq!(text(&out[..len]), "\\FileSystem\\CounterFilterA");
        let len = n.driver_object_name(DriverObjectKind::Driver, &mut out);
        assert_eq!(text(&out[..len]), "\\Driver\\CounterFilterA");
        let longest = ServiceName::new(&"x".repeat(MAX_SERVICE_CHARS)).unwrap();
        let len = longest.service_key_path(&mut out);
        assert_eq!(len, SERVICES_KEY_PREFIX.len() + MAX_SERVICE_CHARS);
        assert!(len < PATH_CHARS, "a NUL still fits after the longest path");
    }

    #[allow(clippy::unnecessary_wraps)]
    fn value(reg_type: u32, data: &[u8]) -> Option<RawValue<'_>> {
        Some(RawValue { reg_type, data })
    }

    #[test]
    fn config_defaults_clamps_and_validates() {
        let a = sz("CounterFilterA");
        let b = sz("CounterFilterB");
        let c = Config::from_values([value(REG_SZ, &a), value(REG_SZ, &b)], None, None).unwrap();
        assert_eq!((c.active, c.unload_timeout_ms), (Some(Slot::A), DEFAULT_UNLOAD_TIMEOUT_MS));
        assert_eq!(text(c.service(Slot::B).as_utf16()), "CounterFilterB");
        let one = 1u32.to_le_bytes();
        let big = u32::MAX.to_le_bytes();
        let c =
            Config::from_values([value(REG_SZ, &a), value(REG_SZ, &b)], value(REG_DWORD, &one), value(REG_DWORD, &big))
                .unwrap();
        assert_eq!((c.active, c.unload_timeout_ms), (Some(Slot::B), MAX_UNLOAD_TIMEOUT_MS));
        let zero = 0u32.to_le_bytes();
        let c = Config::from_values([value(REG_SZ, &a), value(REG_SZ, &b)], None, value(REG_DWORD, &zero)).unwrap();
        assert_eq!(c.unload_timeout_ms, MIN_UNLOAD_TIMEOUT_MS);
        assert_eq!(clamp_unload_timeout(Some(7000)), 7000);

        let two = 2u32.to_le_bytes();
        assert_eq!(
            Config::from_values([value(REG_SZ, &a), value(REG_SZ, &b)], value(REG_DWORD, &two), None),
            Err(NtStatus::INVALID_PARAMETER)
        );
        assert_eq!(Config::from_values([value(REG_SZ, &a), None], None, None), Err(NtStatus::OBJECT_NAME_NOT_FOUND));
        assert_eq!(Config::from_values([None, value(REG_SZ, &b)], None, None), Err(NtStatus::OBJECT_NAME_NOT_FOUND));
        assert_eq!(
            Config::from_values([value(REG_SZ, &a), value(REG_SZ, &a)], None, None),
            Err(NtStatus::OBJECT_NAME_COLLISION)
        );
        let upper = sz("COUNTERFILTERA");
        assert_eq!(
            Config::from_values([value(REG_SZ, &a), value(REG_SZ, &upper)], None, None),
            Err(NtStatus::OBJECT_NAME_COLLISION)
        );
        let loader = sz("serialloader");
        assert_eq!(
            Config::from_values([value(REG_SZ, &loader), value(REG_SZ, &b)], None, None),
            Err(NtStatus::OBJECT_NAME_COLLISION)
        );
        assert_eq!(
            Config::from_values([value(REG_SZ, &a), value(REG_SZ, &b)], value(REG_SZ, &one), None),
            Err(NtStatus::INVALID_PARAMETER)
        );
        let mut c = Config::from_values([value(REG_SZ, &a), value(REG_SZ, &b)], None, None).unwrap();
        c.unload_timeout_ms = 99;
        assert_eq!(c.validate(), Err(NtStatus::INVALID_PARAMETER));
    }

    /// `loaderctl unload` persists "no payload"; the next start must read it
    /// back as exactly that (it was 0xFFFFFFFF, refused, before this fix).
    #[test]
    fn no_payload_round_trips_through_active_slot() {
        let a = sz("CounterFilterA");
        let b = sz("CounterFilterB");
        for active in [None, Some(Slot::A), Some(Slot::B)] {
            let data = encode_active_slot(active).to_le_bytes();
            let c = Config::from_values([value(REG_SZ, &a), value(REG_SZ, &b)], value(REG_DWORD, &data), None);
            assert_eq!(c.map(|c| c.active), Ok(active));
        }
        assert_eq!(encode_active_slot(None), ACTIVE_SLOT_NONE);
        assert_eq!(parse_active_slot(None), Ok(Some(Slot::A)));
        for bad in [2u32, 0xFFFF_FFFE, 0x100] {
            let data = bad.to_le_bytes();
            assert_eq!(parse_active_slot(value(REG_DWORD, &data)), Err(NtStatus::INVALID_PARAMETER), "{bad:#x}");
        }
    }

    #[test]
    fn reg_sz_encoding_checks_room() {
        let mut small = [0u8; 5];
        assert_eq!(encode_reg_sz("ab", &mut small), Err(NtStatus::BUFFER_TOO_SMALL));
        let mut ok = [0u8; 6];
        assert_eq!(encode_reg_sz("ab", &mut ok), Ok(6));
        assert_eq!(ok, *b"a\0b\0\0\0");
    }
}
