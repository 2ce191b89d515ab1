//! `BenchFilter`: one operation callback for the test world.
//!
//! - `bench_bare.sys`: the callback in a bare minifilter image
//!   (`DriverEntry` registers and starts; `FilterUnloadCallback` unregisters).
//! - `bench_wrapped.sys` (feature `wrapped`): the same callback behind the
//!   payload wrapper. The benchmark compares the two per operation.
//! - `slow_payload.sys` (feature `slow`): behind the wrapper, its pre-read
//!   callback blocks for a while (the storm retires it with callbacks in
//!   flight), and it keeps a stream context on each file it sees opened on
//!   the Mup volume (`\TSCLIENT\SCARD\2`), found by its file name, until the
//!   file closes: an open file keeps its instance teardown draining.
#![no_std]

mod callbacks;

#[cfg(not(feature = "wrapped"))]
mod bare;
#[cfg(feature = "wrapped")]
mod wrapped;

/// Writes one line to the debugger log.
macro_rules! log {
    ($($arg:tt)*) => {
        kernel_sys::wrap::log::print("bench-filter: ", format_args!($($arg)*))
    };
}
pub(crate) use log;
