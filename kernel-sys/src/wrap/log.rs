//! Debug log through `DbgPrint`, formatted on the stack (no heap).
//!
//! Lines longer than the buffer are cut. Callable at `<= DISPATCH_LEVEL`.
use crate::imports::DbgPrint;
use core::fmt::Write;

const LINE: usize = 320;

/// A fixed buffer that `core::fmt` writes into.
pub struct LineBuf {
    buf: [u8; LINE],
    len: usize,
}

impl LineBuf {
    #[must_use]
    pub const fn new() -> Self {
        LineBuf { buf: [0; LINE], len: 0 }
    }

    /// The text so far.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            // Keep one byte for the NUL; drop '%' so DbgPrint never sees a format.
            if self.len + 1 >= LINE {
                break;
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = if b == b'%' || b == 0 { b'?' } else { b };
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Prints `prefix` + the formatted text + newline.
pub fn print(prefix: &str, args: core::fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_str(prefix);
    let _ = line.write_fmt(args);
    let _ = line.write_str("\n");
    print_bytes(line.as_bytes());
}

/// Prints raw text (no format processing).
pub fn print_bytes(text: &[u8]) {
    let mut line = [0u8; LINE];
    let n = text.len().min(LINE - 1);
    if let (Some(dst), Some(src)) = (line.get_mut(..n), text.get(..n)) {
        dst.copy_from_slice(src);
    }
    // SAFETY: "%s" with a NUL-terminated buffer that lives across the call.
    unsafe { DbgPrint(b"%s\0".as_ptr(), line.as_ptr()) };
}
