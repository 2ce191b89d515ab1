//! The resident loader driver (`loader.sys`).
//!
//! It loads a payload minifilter with `ZwLoadDriver`, calls the payload's
//! exported registration entry once DriverEntry has returned, and lends it
//! the "registration settled" event its teardown waits on. Load,
//! registration, upgrade and unload are ordered by `loader_protocol`, the
//! model-checked code; this crate only plugs kernel calls into it.
//!
//! Reading order: `driver.rs` (DriverEntry/unload) → `control.rs` (control
//! device, IOCTLs) → `platform.rs` (the protocol's kernel primitives) →
//! `image.rs` (payload image and exports) → `services.rs` (what the
//! payload may call back).
#![no_std]

mod control;
mod driver;
mod image;
mod platform;
mod services;

core::arch::global_asm!(".section .rdata,\"dr\"", ".globl _fltused", "_fltused:", ".long 0");

/// Reaching this is a bug: kernel code is written not to panic.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Writes one line to the kernel debugger log, prefixed `loader: `.
macro_rules! log {
    ($($arg:tt)*) => {
        kernel_sys::wrap::log::print("loader: ", format_args!($($arg)*))
    };
}
pub(crate) use log;
