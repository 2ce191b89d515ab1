//! The test Filter Manager's snapshot (`fltsim_abi::Snapshot`) from the
//! bytes its device returns. The one `unsafe` operation: an unaligned read
//! of a `#[repr(C)]` struct made only of integers and integer arrays, for
//! which every bit pattern is a valid value, from a buffer whose length is
//! checked to be the struct's size.
use fltsim_abi::{Snapshot, SIM_ABI_VERSION};

/// The snapshot, if `bytes` is one of this layout (size and version).
#[cfg_attr(not(windows), allow(dead_code))]
#[must_use]
pub fn snapshot(bytes: &[u8]) -> Option<Snapshot> {
    if bytes.len() != std::mem::size_of::<Snapshot>() {
        return None;
    }
    // SAFETY: `bytes` holds exactly size_of::<Snapshot>() initialised bytes
    // (checked above); Snapshot is repr(C) and made only of integers, so
    // any bytes are a valid value; read_unaligned needs no alignment.
    let s: Snapshot = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Snapshot>()) };
    (s.size as usize == bytes.len() && s.version == SIM_ABI_VERSION).then_some(s)
}

/// A snapshot's bytes (for tests: the simulator's side of the wire).
#[cfg(test)]
pub fn bytes_of(s: &Snapshot) -> Vec<u8> {
    // SAFETY: `s` is a live, initialised repr(C) struct of integers (no
    // padding bytes are read uninitialised: the struct was built whole).
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(s).cast::<u8>(), std::mem::size_of::<Snapshot>()) }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_a_wrong_one_is_refused() {
        let mut s = Snapshot::empty();
        s.file_count = 1;
        s.files[0].id = 7;
        s.files[0].name = fltsim_abi::utf16("\\TSCLIENT\\SCARD\\2");
        let bytes = bytes_of(&s);
        let back = snapshot(&bytes).expect("decodes");
        assert_eq!(back.files[0].id, 7);
        assert_eq!(back.files[0].name, s.files[0].name);
        assert!(snapshot(&bytes[1..]).is_none(), "a short buffer");
        let mut other = s;
        other.version = SIM_ABI_VERSION + 1;
        assert!(snapshot(&bytes_of(&other)).is_none(), "another version");
    }
}
