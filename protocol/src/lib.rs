//! The loader/payload serialization protocol, free of any platform.
//!
//! Everything here is safe, `no_std`, allocation-free code. The drivers plug
//! real kernel primitives into it; the tests plug a model of the Windows 7
//! I/O manager into it. The code the model checks is the code that ships.
#![no_std]
#![forbid(unsafe_code)]

// Parsers of outside bytes (owned by the hardening work; panic-free).
pub mod config;
pub mod control;
pub mod pe;
pub mod security;

// The protocol (issue 3): the code the drivers ship and the model checks.
pub mod descriptor;
pub mod loader;
mod loader_status;
pub mod payload;
pub mod platform;

pub use loader::{Loader, LoaderState, OpOutcome};
pub use loader_status::SlotRecord;
pub use payload::PayloadState;
pub use platform::{LoaderPlatform, Mutation, PayloadPlatform, Slot};
