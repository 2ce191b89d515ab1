//! The loader's `Parameters` values on arbitrary registry data.
//!
//! Input: `[type u8][split u8][data ...]`. The whole data is parsed as one
//! slot name and as a DWORD; split in two, it is parsed as both slots of a
//! configuration. Asserts that an accepted name stays inside the
//! `Services` key: only `[A-Za-z0-9_.-]`, at most 31 characters, never `.`
//! or `..`, and the paths built from it are prefix + name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader_parsers::config::{self, Config, DriverObjectKind, RawValue, ServiceName};
use shared_abi::Slot;

fn check_name(name: &ServiceName) {
    let chars = name.as_utf16();
    assert!((1..=config::MAX_SERVICE_CHARS).contains(&chars.len()));
    assert!(chars.iter().all(|c| u8::try_from(*c).is_ok_and(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))));
    assert!(chars != [u16::from(b'.')] && chars != [u16::from(b'.'); 2]);
    assert_eq!(ServiceName::from_utf16(chars).as_ref(), Ok(name));
    let mut path = [0u16; config::PATH_CHARS];
    let len = name.service_key_path(&mut path);
    let prefix: Vec<u16> = config::SERVICES_KEY_PREFIX.encode_utf16().collect();
    assert_eq!(len, prefix.len() + chars.len());
    assert_eq!(&path[..prefix.len()], &prefix[..]);
    assert_eq!(&path[prefix.len()..len], chars);
    assert!(path[len..].iter().all(|c| *c == 0));
    for kind in [DriverObjectKind::Driver, DriverObjectKind::FileSystem] {
        let len = name.driver_object_name(kind, &mut path);
        assert!(path[..len].ends_with(chars));
    }
    let abi = name.to_abi_name();
    assert_eq!(&abi[..chars.len()], chars);
    assert_eq!(abi[chars.len()], 0);
}

fuzz_target!(|data: &[u8]| {
    let Some((header, data)) = data.split_at_checked(2) else {
        return;
    };
    let reg_type = u32::from(header[0] % 8);
    if let Ok(name) = config::parse_service_name(reg_type, data) {
        assert_eq!(reg_type, config::REG_SZ);
        check_name(&name);
    }
    if let Ok(value) = config::parse_dword(reg_type, data) {
        assert_eq!(data, value.to_le_bytes());
    }
    let (a, b) = data.split_at(usize::from(header[1]).min(data.len()));
    let sz = |data| Some(RawValue { reg_type: config::REG_SZ, data });
    let dword = Some(RawValue { reg_type: config::REG_DWORD, data: b.get(..4).unwrap_or(b) });
    // ActiveSlot: absent, or the first bytes of `a` as a DWORD.
    let active = (header[1] & 1 == 1).then(|| RawValue { reg_type: config::REG_DWORD, data: a.get(..4).unwrap_or(a) });
    if let Ok(slot) = config::parse_active_slot(active) {
        // The one encoder writes back exactly what was read.
        match active {
            None => assert_eq!(slot, Some(Slot::A)),
            Some(v) => assert_eq!(v.data, config::encode_active_slot(slot).to_le_bytes()),
        }
    }
    if let Ok(c) = Config::from_values([sz(a), sz(b)], active, dword) {
        assert!(!c.slots[Slot::A].same_service(&c.slots[Slot::B]));
        assert!((config::MIN_UNLOAD_TIMEOUT_MS..=config::MAX_UNLOAD_TIMEOUT_MS).contains(&c.unload_timeout_ms));
        check_name(&c.slots[Slot::A]);
        check_name(&c.slots[Slot::B]);
    }
});
