//! Debug log through `DbgPrintEx(DPFLTR_IHVDRIVER_ID, level, ...)`,
//! formatted on the stack (no heap).
//!
//! Plain `DbgPrint` output is dropped by default from Vista on; `DbgPrintEx`
//! under the IHV driver component shows errors by default and the other
//! levels once `HKLM\...\Session Manager\Debug Print Filter\IHVDRIVER` (a
//! DWORD mask) admits them. Lines longer than the buffer are cut. Callable
//! at `<= DISPATCH_LEVEL`.
use crate::imports::DbgPrintEx;
use crate::types::{DPFLTR_ERROR_LEVEL, DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, DPFLTR_WARNING_LEVEL};
use core::fmt::Write;

const LINE: usize = 320;

/// How much a line matters (the `DbgPrintEx` level it is printed at).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    /// `DPFLTR_ERROR_LEVEL` (0): shown by default.
    Error,
    /// `DPFLTR_WARNING_LEVEL` (1).
    Warn,
    /// `DPFLTR_INFO_LEVEL` (3).
    Info,
}

impl Level {
    fn dpfltr(self) -> u32 {
        match self {
            Level::Error => DPFLTR_ERROR_LEVEL,
            Level::Warn => DPFLTR_WARNING_LEVEL,
            Level::Info => DPFLTR_INFO_LEVEL,
        }
    }
}

/// A fixed, zero-filled buffer that `core::fmt` writes into. It never
/// writes its last byte, so its text is always NUL-terminated.
struct LineBuf {
    buf: [u8; LINE],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            // Keep the last byte for the NUL; drop '%' so DbgPrintEx never sees a format.
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

/// Prints `prefix` + the formatted text + newline at `level`.
pub fn print_at(level: Level, prefix: &str, args: core::fmt::Arguments<'_>) {
    let mut line = LineBuf { buf: [0; LINE], len: 0 };
    let _ = line.write_str(prefix);
    let _ = line.write_fmt(args);
    let _ = line.write_str("\n");
    // SAFETY: "%s" with a NUL-terminated buffer (see LineBuf) that lives
    // across the call; the component id and level are plain numbers.
    unsafe { DbgPrintEx(DPFLTR_IHVDRIVER_ID, level.dpfltr(), c"%s".as_ptr().cast(), line.buf.as_ptr()) };
}

/// Prints an informational line (`DPFLTR_INFO_LEVEL`).
pub fn print(prefix: &str, args: core::fmt::Arguments<'_>) {
    print_at(Level::Info, prefix, args);
}
