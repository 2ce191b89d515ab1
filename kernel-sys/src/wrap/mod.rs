//! Safe wrappers over the raw bindings: the only other place with `unsafe`.
//!
//! Each wrapper owns its kernel object in a private field and states, on
//! each method, the IRQL it may be called at. Driver code above this module
//! is safe Rust apart from its `extern "system"` entry points.
pub mod event;
pub mod lock;
pub mod log;
pub mod pool;
pub mod registry;
pub mod thread;
pub mod time;
pub mod ustr;
pub mod version;
