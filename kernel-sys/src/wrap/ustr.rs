//! Fixed-capacity UTF-16 strings that can lend a `UNICODE_STRING`.
use crate::types::UNICODE_STRING;

/// Up to `N` UTF-16 units, no heap.
#[derive(Clone, Copy)]
pub struct WideBuf<const N: usize> {
    buf: [u16; N],
    len: usize,
}

impl<const N: usize> WideBuf<N> {
    #[must_use]
    pub const fn new() -> Self {
        WideBuf { buf: [0; N], len: 0 }
    }

    /// From ASCII text; `None` if it does not fit.
    #[must_use]
    pub fn from_ascii(s: &str) -> Option<Self> {
        let mut w = Self::new();
        w.push_ascii(s)?;
        Some(w)
    }

    /// From UTF-16 units; `None` if they do not fit.
    #[must_use]
    pub fn from_units(units: &[u16]) -> Option<Self> {
        let mut w = Self::new();
        w.push_units(units)?;
        Some(w)
    }

    pub fn push_ascii(&mut self, s: &str) -> Option<()> {
        for b in s.bytes() {
            *self.buf.get_mut(self.len)? = u16::from(b);
            self.len += 1;
        }
        Some(())
    }

    pub fn push_units(&mut self, units: &[u16]) -> Option<()> {
        let end = self.len.checked_add(units.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(units);
        self.len = end;
        Some(())
    }

    #[must_use]
    pub fn units(&self) -> &[u16] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// A `UNICODE_STRING` viewing this buffer; valid while `self` is not
    /// moved or changed.
    #[must_use]
    pub fn as_unicode(&self) -> UNICODE_STRING {
        let bytes = u16::try_from(self.len * 2).unwrap_or(u16::MAX);
        UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: self.buf.as_ptr().cast_mut() }
    }
}

impl<const N: usize> Default for WideBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Display for WideBuf<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for c in char::decode_utf16(self.units().iter().copied()) {
            f.write_fmt(format_args!("{}", c.unwrap_or('?')))?;
        }
        Ok(())
    }
}
