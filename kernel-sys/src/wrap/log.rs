//! Debug log through `DbgPrint`, formatted on the stack (no heap).
//!
//! Lines longer than the buffer are cut. Callable at `<= DISPATCH_LEVEL`.
use crate::imports::DbgPrint;
use core::fmt::Write;

const LINE: usize = 320;

/// A fixed, zero-filled buffer that `core::fmt` writes into. It never
/// writes its last byte, so its text is always NUL-terminated.
struct LineBuf {
    buf: [u8; LINE],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            // Keep the last byte for the NUL; drop '%' so DbgPrint never sees a format.
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
    let mut line = LineBuf { buf: [0; LINE], len: 0 };
    let _ = line.write_str(prefix);
    let _ = line.write_fmt(args);
    let _ = line.write_str("\n");
    // SAFETY: "%s" with a NUL-terminated buffer (see LineBuf) that lives
    // across the call.
    unsafe { DbgPrint(b"%s\0".as_ptr(), line.buf.as_ptr()) };
}
