//! The loader/payload serialization protocol, free of any platform.
//!
//! Everything here is safe, `no_std`, allocation-free code. The drivers plug
//! real kernel primitives into it; the tests plug a model of the Windows 7
//! I/O manager into it. The code the model checks is the code that ships.
//!
//! Modules: `platform` (the traits a platform implements), `state` and
//! `payload_state` (the data), `loader` and `payload` (the rules). The
//! parsers of outside bytes are a crate of their own, `loader-parsers`.
#![no_std]
#![forbid(unsafe_code)]

pub mod handover;
pub mod loader;
#[cfg(feature = "mutations")]
pub mod mutation;
pub mod payload;
mod payload_state;
pub mod platform;
pub mod state;

pub use loader::Loader;
#[cfg(feature = "mutations")]
pub use mutation::Mutation;
pub use payload::PayloadState;
pub use platform::{LoaderEvent, LoaderPlatform, PayloadPlatform};
pub use shared_abi::Slot;
pub use state::{LoaderState, OpOutcome, SlotRecord};
