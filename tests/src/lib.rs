//! A model of the Windows 7 I/O manager and Filter Manager, used as the
//! adversary of the serialization protocol (`loader_protocol`), plus the
//! scenarios, checks and runners the `model_*` tests and the stress
//! simulator share.
//!
//! Built over loom primitives with `--cfg loom` (every interleaving, bounded
//! preemptions) and over std primitives otherwise (random delays). The model
//! implements both platform traits, so the protocol code under test is the
//! code the drivers ship.
//!
//! The model records violations instead of crashing; it must never hide one
//! (every check counts) and never block a thread except where Windows would.
#![allow(clippy::missing_panics_doc)] // a poisoned model lock is a test failure

pub mod arch;
pub mod c_dropin;
pub mod explore;
pub mod handover_model;
pub mod image_tools;
pub mod imports;
pub mod iomgr;
pub mod naive;
pub mod platforms;
pub mod scenario;
pub mod sync;
pub mod world;

/// The Wine session the end-to-end suite, the benchmark and the demo share
/// (not built under `--cfg loom`).
#[cfg(not(loom))]
pub mod wine;

/// The test world's Filter Manager in that session (not built under `--cfg loom`).
#[cfg(not(loom))]
pub mod fltsim;

/// The end-to-end suites' shared helpers (not built under `--cfg loom`).
#[cfg(not(loom))]
pub mod e2e;
