//! Parsers of outside bytes, each checked and panic-free.
//!
//! Every input here comes from someone the loader must not trust: a control
//! request from user mode (`control`), the registry values of the loader's
//! configuration (`config`), a payload image on disk or mapped in memory
//! (`pe`, `payload`). The security descriptor of the control device is built
//! and checked here too (`security`), since it is bytes the kernel reads.
//!
//! The policy is structural: this crate's `Cargo.toml` forbids `unsafe` and
//! denies indexing, `unwrap`/`expect`, panics and unchecked arithmetic, so a
//! panic path is a build error. It holds no state and no protocol rules: the
//! state machine is `loader-protocol`, which calls into this crate.
#![no_std]

pub mod altitude;
pub mod config;
pub mod control;
pub mod payload;
pub mod pe;
pub mod security;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
