//! Safe wrappers over the raw bindings: the only other place with `unsafe`.
//!
//! Each wrapper owns its kernel object in a private field and states, on
//! each method, the IRQL it may be called at. Driver crates above this
//! module contain no `unsafe` block of their own.
pub mod device;
pub mod driver;
pub mod event;
pub mod eventlog;
pub mod filter;
pub mod image;
pub mod irp;
pub mod lock;
pub mod log;
pub mod opwrap;
pub mod pool;
pub mod process;
pub mod registry;
pub mod services;
pub mod thread;
pub mod time;
pub mod ustr;
pub mod version;
