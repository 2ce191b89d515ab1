//! Raw kernel bindings.
#![no_std]
