//! The kernel runtime every image of this project links (feature `runtime`):
//! the panic handler and `_fltused`.
//!
//! Kernel code is written not to panic; reaching the handler is a bug. It
//! must not spin: a panic inside a spin-lock closure leaves the processor at
//! `DISPATCH_LEVEL` with the lock held, other processors spin on that lock,
//! and Windows 7 has no DPC watchdog, so the machine would freeze with no
//! dump. It bug-checks instead, which `KeBugCheckEx` allows at any IRQL.
//!
//! Bug check [`BUGCHECK_PANIC`] (`0x534C4452`, "SLDR", distinct from every
//! code Windows uses, as the documentation asks):
//! - parameter 1: address of the source file name (UTF-8, in the image);
//! - parameter 2: the length of that name;
//! - parameter 3: the line;
//! - parameter 4: the column.
//!
//! `!analyze -v` shows the four values; `da <parameter 1> L<parameter 2>`
//! prints the file (it lives in the image that panicked).
use crate::imports::KeBugCheckEx;

/// The bug check code of a panic in an image of this project.
pub const BUGCHECK_PANIC: u32 = u32::from_be_bytes(*b"SLDR");

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line, column) = info.location().map_or(("?", 0, 0), |l| (l.file(), l.line(), l.column()));
    // SAFETY: KeBugCheckEx may be called at any IRQL and never returns; its
    // parameters are plain numbers for the dump.
    unsafe { KeBugCheckEx(BUGCHECK_PANIC, file.as_ptr() as usize, file.len(), line as usize, column as usize) }
}

// `_fltused` tells the linker no floating-point runtime is needed. A
// `#[no_mangle] static` would land in the export table; a symbol in .rdata
// does not.
// On x86 the C name `_fltused` is the symbol `__fltused` (C names take a
// leading underscore there).
#[cfg(not(target_arch = "x86"))]
core::arch::global_asm!(".section .rdata,\"dr\"", ".globl _fltused", "_fltused:", ".long 0");
#[cfg(target_arch = "x86")]
core::arch::global_asm!(".section .rdata,\"dr\"", ".globl __fltused", "__fltused:", ".long 0");
