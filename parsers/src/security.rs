//! The control device's security descriptor, and an independent check of it.
//!
//! `IoCreateDeviceSecure` lives in the static library `wdmsec.lib`, not in
//! any kernel export, so the loader builds the descriptor itself: a
//! self-relative `SECURITY_DESCRIPTOR` whose protected DACL allows
//! `FILE_ALL_ACCESS` to SYSTEM and to Administrators and to nobody else
//! (`D:P(A;;GA;;;SY)(A;;GA;;;BA)` with `GA` already mapped through the I/O
//! generic mapping). The driver applies it to the device object with
//! exported routines available on Windows 7 (e.g. `ObOpenObjectByPointer` +
//! `ZwSetSecurityObject(DACL_SECURITY_INFORMATION)`), before it creates the
//! symbolic link. Nothing here allocates or depends on the platform.
use shared_abi::NtStatus;

/// The intended descriptor in SDDL, for documentation and `loaderctl`.
pub const CONTROL_DEVICE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";

/// `FILE_ALL_ACCESS`: `GENERIC_ALL` mapped by the I/O manager's generic mapping.
pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
/// `SECURITY_DESCRIPTOR_CONTROL` bits used here.
pub const SE_DACL_PRESENT: u16 = 0x0004;
pub const SE_DACL_PROTECTED: u16 = 0x1000;
pub const SE_SELF_RELATIVE: u16 = 0x8000;
/// `SECURITY_DESCRIPTOR_REVISION`.
pub const SECURITY_DESCRIPTOR_REVISION: u8 = 1;
/// `ACL_REVISION` and `ACL_REVISION_DS`.
pub const ACL_REVISION: u8 = 2;
pub const ACL_REVISION_DS: u8 = 4;
/// `ACCESS_ALLOWED_ACE_TYPE` and `ACCESS_DENIED_ACE_TYPE`.
pub const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
pub const ACCESS_DENIED_ACE_TYPE: u8 = 1;

/// `S-1-5-18`, `NT AUTHORITY\SYSTEM`, in binary form.
pub const SID_SYSTEM: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
/// `S-1-5-32-544`, `BUILTIN\Administrators`, in binary form.
pub const SID_ADMINISTRATORS: [u8; 16] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0];

const HEADER_LEN: usize = 20;
const ACL_HEADER_LEN: usize = 8;
const ACE_HEADER_LEN: usize = 8; // header + mask, before the SID
const OWNER_AT: usize = HEADER_LEN;
const GROUP_AT: usize = OWNER_AT + SID_ADMINISTRATORS.len();
const DACL_AT: usize = GROUP_AT + SID_SYSTEM.len();
const ACE_SYSTEM_LEN: usize = ACE_HEADER_LEN + SID_SYSTEM.len();
const ACE_ADMINS_LEN: usize = ACE_HEADER_LEN + SID_ADMINISTRATORS.len();
const DACL_LEN: usize = ACL_HEADER_LEN + ACE_SYSTEM_LEN + ACE_ADMINS_LEN;

/// Bytes of [`control_device_sd`].
pub const CONTROL_DEVICE_SD_LEN: usize = DACL_AT + DACL_LEN;

/// Copies `src` into `dst` at `at`. Only ever evaluated at compile time
/// (see [`CONTROL_DEVICE_SD`]): an out-of-range write fails the build, it
/// cannot panic at run time.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn put(mut dst: [u8; CONTROL_DEVICE_SD_LEN], at: usize, src: &[u8]) -> [u8; CONTROL_DEVICE_SD_LEN] {
    let mut i = 0;
    while i < src.len() {
        dst[at + i] = src[i];
        i += 1;
    }
    dst
}

// Evaluated only at compile time, like `put`; every length is a small constant.
#[allow(clippy::cast_possible_truncation, clippy::arithmetic_side_effects)]
const fn build_control_device_sd() -> [u8; CONTROL_DEVICE_SD_LEN] {
    let mut sd = [0u8; CONTROL_DEVICE_SD_LEN];
    let control = SE_DACL_PRESENT | SE_DACL_PROTECTED | SE_SELF_RELATIVE;
    sd = put(sd, 0, &[SECURITY_DESCRIPTOR_REVISION, 0]);
    sd = put(sd, 2, &control.to_le_bytes());
    sd = put(sd, 4, &(OWNER_AT as u32).to_le_bytes());
    sd = put(sd, 8, &(GROUP_AT as u32).to_le_bytes());
    sd = put(sd, 12, &0u32.to_le_bytes()); // no SACL
    sd = put(sd, 16, &(DACL_AT as u32).to_le_bytes());
    sd = put(sd, OWNER_AT, &SID_ADMINISTRATORS);
    sd = put(sd, GROUP_AT, &SID_SYSTEM);
    // ACL header: revision, Sbz1, AclSize, AceCount, Sbz2.
    sd = put(sd, DACL_AT, &[ACL_REVISION, 0]);
    sd = put(sd, DACL_AT + 2, &(DACL_LEN as u16).to_le_bytes());
    sd = put(sd, DACL_AT + 4, &2u16.to_le_bytes());
    let ace = DACL_AT + ACL_HEADER_LEN;
    sd = put(sd, ace, &[ACCESS_ALLOWED_ACE_TYPE, 0]);
    sd = put(sd, ace + 2, &(ACE_SYSTEM_LEN as u16).to_le_bytes());
    sd = put(sd, ace + 4, &FILE_ALL_ACCESS.to_le_bytes());
    sd = put(sd, ace + 8, &SID_SYSTEM);
    let ace = ace + ACE_SYSTEM_LEN;
    sd = put(sd, ace, &[ACCESS_ALLOWED_ACE_TYPE, 0]);
    sd = put(sd, ace + 2, &(ACE_ADMINS_LEN as u16).to_le_bytes());
    sd = put(sd, ace + 4, &FILE_ALL_ACCESS.to_le_bytes());
    sd = put(sd, ace + 8, &SID_ADMINISTRATORS);
    sd
}

/// The descriptor, computed at compile time.
pub const CONTROL_DEVICE_SD: [u8; CONTROL_DEVICE_SD_LEN] = build_control_device_sd();

/// The control device's self-relative security descriptor: owner
/// Administrators, group SYSTEM, no SACL, a protected DACL of two
/// `ACCESS_ALLOWED_ACE`s granting `FILE_ALL_ACCESS` to SYSTEM and to
/// Administrators.
#[must_use]
pub fn control_device_sd() -> [u8; CONTROL_DEVICE_SD_LEN] {
    CONTROL_DEVICE_SD
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, NtStatus> {
    let end = at.checked_add(2).ok_or(NtStatus::INVALID_PARAMETER)?;
    let bytes = b.get(at..end).ok_or(NtStatus::INVALID_PARAMETER)?;
    Ok(u16::from_le_bytes(<[u8; 2]>::try_from(bytes).map_err(|_| NtStatus::INVALID_PARAMETER)?))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, NtStatus> {
    let end = at.checked_add(4).ok_or(NtStatus::INVALID_PARAMETER)?;
    let bytes = b.get(at..end).ok_or(NtStatus::INVALID_PARAMETER)?;
    Ok(u32::from_le_bytes(<[u8; 4]>::try_from(bytes).map_err(|_| NtStatus::INVALID_PARAMETER)?))
}

/// The SID starting at `at` in `b`, bounds-checked (8 bytes + 4 per
/// sub-authority).
fn sid_at(b: &[u8], at: usize) -> Result<&[u8], NtStatus> {
    let count = *b.get(at.checked_add(1).ok_or(NtStatus::INVALID_PARAMETER)?).ok_or(NtStatus::INVALID_PARAMETER)?;
    if *b.get(at).ok_or(NtStatus::INVALID_PARAMETER)? != 1 || count > 15 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let len = usize::from(count).checked_mul(4).and_then(|n| n.checked_add(8)).ok_or(NtStatus::INVALID_PARAMETER)?;
    b.get(at..at.checked_add(len).ok_or(NtStatus::INVALID_PARAMETER)?).ok_or(NtStatus::INVALID_PARAMETER)
}

fn is_system_or_admins(sid: &[u8]) -> bool {
    sid == SID_SYSTEM || sid == SID_ADMINISTRATORS
}

/// Reads a self-relative descriptor written by anyone and answers whether
/// only SYSTEM and Administrators can gain access through it:
/// - `false` for a NULL DACL (absent, or `SE_DACL_PRESENT` clear), which
///   admits everyone;
/// - `false` if an owner other than SYSTEM/Administrators is set (an owner
///   can always rewrite the DACL);
/// - `false` if any ACE that can grant access (every type but
///   `ACCESS_DENIED_ACE`) names another SID or has another type;
/// - `Err(STATUS_INVALID_PARAMETER)` if the bytes are not a well-formed
///   self-relative descriptor (bad revision, offsets or sizes outside it).
pub fn dacl_admits_only_system_and_admins(sd: &[u8]) -> Result<bool, NtStatus> {
    let bad = NtStatus::INVALID_PARAMETER;
    if sd.len() < HEADER_LEN || sd.first() != Some(&SECURITY_DESCRIPTOR_REVISION) {
        return Err(bad);
    }
    let control = u16_at(sd, 2)?;
    if control & SE_SELF_RELATIVE == 0 {
        return Err(bad);
    }
    let owner = usize::try_from(u32_at(sd, 4)?).map_err(|_| bad)?;
    if owner != 0 && !is_system_or_admins(sid_at(sd, owner)?) {
        return Ok(false);
    }
    let dacl = usize::try_from(u32_at(sd, 16)?).map_err(|_| bad)?;
    if control & SE_DACL_PRESENT == 0 || dacl == 0 {
        return Ok(false);
    }
    let revision = *sd.get(dacl).ok_or(bad)?;
    if revision != ACL_REVISION && revision != ACL_REVISION_DS {
        return Err(bad);
    }
    let acl_bytes = usize::from(u16_at(sd, dacl.checked_add(2).ok_or(bad)?)?);
    let acl = sd.get(dacl..dacl.checked_add(acl_bytes).ok_or(bad)?).ok_or(bad)?;
    let ace_count = u16_at(acl, 4)?;
    let mut at = ACL_HEADER_LEN;
    let mut admits_only_ours = true;
    for _ in 0..ace_count {
        let ace_type = *acl.get(at).ok_or(bad)?;
        let ace_len = usize::from(u16_at(acl, at.checked_add(2).ok_or(bad)?)?);
        if ace_len < ACE_HEADER_LEN || ace_len % 4 != 0 {
            return Err(bad);
        }
        let ace = acl.get(at..at.checked_add(ace_len).ok_or(bad)?).ok_or(bad)?;
        match ace_type {
            ACCESS_DENIED_ACE_TYPE => {}
            ACCESS_ALLOWED_ACE_TYPE => {
                let sid = sid_at(ace, ACE_HEADER_LEN)?;
                if !is_system_or_admins(sid) {
                    admits_only_ours = false;
                }
            }
            // Object, callback and compound ACEs: not ours, assume they admit.
            _ => admits_only_ours = false,
        }
        at = at.checked_add(ace_len).ok_or(bad)?;
    }
    Ok(admits_only_ours)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects, clippy::panic)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn descriptor_has_the_documented_shape() {
        let sd = control_device_sd();
        assert_eq!(sd.len(), 100);
        assert_eq!(sd[0], 1);
        assert_eq!(u16_at(&sd, 2), Ok(0x9004));
        assert_eq!(&sd[20..36], &SID_ADMINISTRATORS, "owner");
        assert_eq!(&sd[36..48], &SID_SYSTEM, "group");
        assert_eq!(u32_at(&sd, 12), Ok(0), "no SACL");
        assert_eq!(u32_at(&sd, 16), Ok(48));
        // DACL: revision 2, size 52, two ACEs.
        assert_eq!(&sd[48..56], &[2, 0, 52, 0, 2, 0, 0, 0]);
        // ACE 1: allowed, no flags, 20 bytes, FILE_ALL_ACCESS, S-1-5-18.
        assert_eq!(&sd[56..64], &[0, 0, 20, 0, 0xFF, 0x01, 0x1F, 0x00]);
        assert_eq!(&sd[64..76], &[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]);
        // ACE 2: allowed, 24 bytes, FILE_ALL_ACCESS, S-1-5-32-544.
        assert_eq!(&sd[76..84], &[0, 0, 24, 0, 0xFF, 0x01, 0x1F, 0x00]);
        assert_eq!(&sd[84..100], &[1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0]);
        assert_eq!(dacl_admits_only_system_and_admins(&sd), Ok(true));
    }

    #[test]
    fn sddl_constant_matches_the_binary_form() {
        // Parse the SDDL string independently: protected DACL of allow ACEs.
        let dacl = CONTROL_DEVICE_SDDL.strip_prefix("D:P").unwrap();
        let aces: Vec<&str> = dacl.trim_matches(|c| c == '(' || c == ')').split(")(").collect();
        let sd = control_device_sd();
        assert_eq!(u16_at(&sd, 52), Ok(u16::try_from(aces.len()).unwrap()));
        let mut at = 56;
        for ace in aces {
            let f: Vec<&str> = ace.split(';').collect();
            assert_eq!((f[0], f[1], f[2]), ("A", "", "GA"));
            let sid: &[u8] = match f[5] {
                "SY" => &SID_SYSTEM,
                "BA" => &SID_ADMINISTRATORS,
                other => panic!("unexpected trustee {other}"),
            };
            let len = usize::from(u16_at(&sd, at + 2).unwrap());
            assert_eq!(sd[at], ACCESS_ALLOWED_ACE_TYPE);
            assert_eq!(u32_at(&sd, at + 4), Ok(FILE_ALL_ACCESS));
            assert_eq!(&sd[at + 8..at + len], sid);
            at += len;
        }
        assert_eq!(at, sd.len());
    }

    /// S-1-1-0, Everyone.
    const SID_EVERYONE: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];

    #[test]
    fn the_checker_catches_each_widening() {
        let sd = control_device_sd();
        // Administrators → Users (S-1-5-32-545) in the second ACE.
        let mut users = sd;
        users[96] = 0x21;
        assert_eq!(dacl_admits_only_system_and_admins(&users), Ok(false));
        // SYSTEM → Everyone in the first ACE.
        let mut everyone = sd;
        everyone[64..76].copy_from_slice(&SID_EVERYONE);
        assert_eq!(dacl_admits_only_system_and_admins(&everyone), Ok(false));
        // NULL DACL: the present bit cleared, or no DACL offset.
        let mut null = sd;
        null[2] &= !0x04;
        assert_eq!(dacl_admits_only_system_and_admins(&null), Ok(false));
        let mut null = sd;
        null[16..20].copy_from_slice(&[0; 4]);
        assert_eq!(dacl_admits_only_system_and_admins(&null), Ok(false));
        // Owner Everyone: could rewrite the DACL.
        let mut owner: Vec<u8> = sd.to_vec();
        owner.extend_from_slice(&SID_EVERYONE);
        owner[4..8].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(dacl_admits_only_system_and_admins(&owner), Ok(false));
        // An allowed-object ACE (type 5) for SYSTEM is still not accepted.
        let mut object = sd;
        object[56] = 5;
        assert_eq!(dacl_admits_only_system_and_admins(&object), Ok(false));
        // A deny ACE for Everyone admits nobody more.
        let mut deny = sd;
        deny[56] = ACCESS_DENIED_ACE_TYPE;
        deny[64..76].copy_from_slice(&SID_EVERYONE);
        assert_eq!(dacl_admits_only_system_and_admins(&deny), Ok(true));
        // A third ACE for Everyone appended to the DACL.
        let mut third: Vec<u8> = sd.to_vec();
        third.extend_from_slice(&[0, 0, 20, 0, 0xFF, 0x01, 0x1F, 0x00]);
        third.extend_from_slice(&SID_EVERYONE);
        third[50..52].copy_from_slice(&72u16.to_le_bytes());
        third[52..54].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(dacl_admits_only_system_and_admins(&third), Ok(false));
    }

    #[test]
    fn malformed_descriptors_are_errors_not_panics() {
        let sd = control_device_sd();
        for len in 0..sd.len() {
            let r = dacl_admits_only_system_and_admins(&sd[..len]);
            assert!(r.is_err() || r == Ok(false), "truncated to {len}: {r:?}");
        }
        let cases: [(usize, &[u8]); 8] = [
            (0, &[2]),                 // descriptor revision
            (2, &[0x04, 0x10]),        // not self-relative
            (16, &[0xFF, 0xFF, 0, 0]), // DACL offset outside
            (48, &[9]),                // ACL revision
            (50, &[0xFF, 0xFF]),       // AclSize past the end
            (52, &[0xFF, 0xFF]),       // AceCount past the ACL
            (58, &[0, 0]),             // AceSize 0: would loop forever
            (65, &[200]),              // SubAuthorityCount past the ACE
        ];
        for (at, bytes) in cases {
            let mut bad = sd;
            bad[at..at + bytes.len()].copy_from_slice(bytes);
            assert_eq!(dacl_admits_only_system_and_admins(&bad), Err(NtStatus::INVALID_PARAMETER), "patch at {at}");
        }
    }
}
