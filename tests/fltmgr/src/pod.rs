//! Copies between the control device's byte buffers and the `fltsim-abi`
//! structures.
//!
//! Every type [`Pod`] is implemented for is `#[repr(C)]` and made of
//! integers and integer arrays only (asserted by `fltsim-abi`), so any
//! bytes are a valid value and a value's bytes may be copied out whole.
use fltsim_abi as abi;

/// A `#[repr(C)]` type of integers only: any bit pattern is a valid value.
///
/// # Safety
/// Implement it only for such types.
pub unsafe trait Pod: Copy {}

// SAFETY: `#[repr(C)]` structs of u16/u32/u64 fields and arrays of them.
unsafe impl Pod for abi::InjectRequest {}
// SAFETY: as above.
unsafe impl Pod for abi::FilterRequest {}
// SAFETY: as above.
unsafe impl Pod for abi::FileRequest {}
// SAFETY: as above.
unsafe impl Pod for abi::FileReply {}
// SAFETY: as above (nested structs of the same kind).
unsafe impl Pod for abi::Snapshot {}

/// A `T` from the first `size_of::<T>()` bytes of `bytes`; `None` if too short.
pub fn read<T: Pod>(bytes: &[u8]) -> Option<T> {
    let bytes = bytes.get(..core::mem::size_of::<T>())?;
    // SAFETY: `bytes` holds size_of::<T>() readable bytes; any bit pattern is
    // a valid T (Pod); read_unaligned has no alignment requirement.
    Some(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// Writes `value` at the start of `out`; the bytes written, or `None` if
/// `out` is too short.
pub fn write<T: Pod>(value: &T, out: &mut [u8]) -> Option<usize> {
    let n = core::mem::size_of::<T>();
    let dst = out.get_mut(..n)?;
    // SAFETY: `dst` holds `n` writable bytes, `value` is `n` readable bytes
    // with no padding (Pod); the two do not overlap.
    unsafe { core::ptr::copy_nonoverlapping((&raw const *value).cast::<u8>(), dst.as_mut_ptr(), n) };
    Some(n)
}
