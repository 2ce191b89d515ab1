//! Filter altitudes as the loader places a new payload during a handover
//! (`loader_protocol::handover`): directly below the one it replaces.
//!
//! An altitude is a decimal string (`Instances\<name>\Altitude`, `REG_SZ`),
//! compared as a number of unlimited precision; the loader writes six
//! fractional digits, which the Filter Manager and the test world's read
//! alike. [`below`] is one millionth below its input: no filter of another
//! vendor can sit between the two (fractions of an altitude belong to its
//! owner), and about a million upgrades fit into one integer altitude.
use shared_abi::NtStatus;

/// Longest altitude text handled (`"389999.999999"` is 13).
pub const ALTITUDE_CHARS: usize = 16;
/// Fractional digits the loader writes.
pub const FRACTION_DIGITS: u32 = 6;
const SCALE: u64 = 1_000_000;

/// An altitude in millionths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Altitude(u64);

impl Altitude {
    /// Parses `"370030"` or `"370030.5"` (UTF-16, as in the registry; a
    /// trailing NUL is ignored). More than six fractional digits, a sign,
    /// or anything but digits and one dot is `STATUS_INVALID_PARAMETER`.
    pub fn parse(units: &[u16]) -> Result<Altitude, NtStatus> {
        let bad = NtStatus::INVALID_PARAMETER;
        let units = units.split(|u| *u == 0).next().unwrap_or(&[]);
        if units.is_empty() || units.len() > ALTITUDE_CHARS {
            return Err(bad);
        }
        let (mut whole, mut fraction, mut digits, mut in_fraction) = (0u64, 0u64, 0u32, false);
        if !units.first().is_some_and(|u| (u16::from(b'0')..=u16::from(b'9')).contains(u)) {
            return Err(bad);
        }
        for &u in units {
            match u8::try_from(u).map_err(|_| bad)? {
                b'.' if !in_fraction => in_fraction = true,
                d @ b'0'..=b'9' => {
                    let d = u64::from(d.wrapping_sub(b'0'));
                    if in_fraction {
                        if digits == FRACTION_DIGITS {
                            return Err(bad);
                        }
                        fraction = fraction.checked_mul(10).and_then(|f| f.checked_add(d)).ok_or(bad)?;
                        digits = digits.checked_add(1).ok_or(bad)?;
                    } else {
                        whole = whole.checked_mul(10).and_then(|w| w.checked_add(d)).ok_or(bad)?;
                    }
                }
                _ => return Err(bad),
            }
        }
        let scale = 10u64.checked_pow(FRACTION_DIGITS.checked_sub(digits).ok_or(bad)?).ok_or(bad)?;
        let millionths = whole
            .checked_mul(SCALE)
            .and_then(|w| fraction.checked_mul(scale).and_then(|f| w.checked_add(f)))
            .ok_or(bad)?;
        Ok(Altitude(millionths))
    }

    /// One millionth below; `STATUS_FLT_INSTANCE_ALTITUDE_COLLISION` at zero.
    pub fn below(self) -> Result<Altitude, NtStatus> {
        self.0.checked_sub(1).filter(|v| *v > 0).map(Altitude).ok_or(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION)
    }

    /// The registry text: the integer part, a dot and six digits
    /// (`"370030.499999"`), UTF-16, and its length.
    #[must_use]
    pub fn to_units(self) -> ([u16; ALTITUDE_CHARS], usize) {
        let mut text = [0u8; ALTITUDE_CHARS];
        let mut len = 0usize;
        let mut push = |b: u8| {
            if let Some(slot) = text.get_mut(len) {
                *slot = b;
                len = len.saturating_add(1);
            }
        };
        let (whole, fraction) = (self.0 / SCALE, self.0 % SCALE);
        let mut digits = [0u8; 20];
        let mut n = 0usize;
        let mut w = whole;
        loop {
            if let Some(slot) = digits.get_mut(n) {
                *slot = b'0'.wrapping_add(u8::try_from(w % 10).unwrap_or(0));
            }
            n = n.saturating_add(1);
            w /= 10;
            if w == 0 {
                break;
            }
        }
        for i in (0..n).rev() {
            push(digits.get(i).copied().unwrap_or(b'0'));
        }
        push(b'.');
        let mut divisor = SCALE / 10;
        while divisor > 0 {
            push(b'0'.wrapping_add(u8::try_from(fraction.checked_div(divisor).unwrap_or(0) % 10).unwrap_or(0)));
            divisor /= 10;
        }
        let mut out = [0u16; ALTITUDE_CHARS];
        for (o, b) in out.iter_mut().zip(text) {
            *o = u16::from(b);
        }
        (out, len)
    }
}

/// The altitude directly below `old` (registry text in, registry text out).
pub fn below(old: &[u16]) -> Result<([u16; ALTITUDE_CHARS], usize), NtStatus> {
    Ok(Altitude::parse(old)?.below()?.to_units())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn units(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }
    fn text((u, n): ([u16; ALTITUDE_CHARS], usize)) -> String {
        String::from_utf16(&u[..n]).unwrap()
    }

    #[test]
    fn below_is_one_millionth_lower_and_round_trips() {
        assert_eq!(text(below(&units("370030.9")).unwrap()), "370030.899999");
        assert_eq!(text(below(&units("370030")).unwrap()), "370029.999999");
        assert_eq!(text(below(&units("370030.000001\0")).unwrap()), "370030.000000");
        let a = Altitude::parse(&units("370030.899999")).unwrap();
        assert!(a < Altitude::parse(&units("370030.9")).unwrap());
        assert_eq!(Altitude::parse(&a.to_units().0).unwrap(), a);
    }

    #[test]
    fn malformed_altitudes_are_refused() {
        for bad in ["", ".", "-1", "37003a", "1.2.3", "370030.1234567", "99999999999999999"] {
            assert_eq!(Altitude::parse(&units(bad)).map(|_| ()), Err(NtStatus::INVALID_PARAMETER), "{bad:?}");
        }
        assert_eq!(below(&units("0.000001")).map(|_| ()), Err(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION));
    }
}
