//! What the loader does when a payload calls its services: the handlers
//! behind the tables `kernel_sys::wrap::services` lends each payload.
//!
//! `wait_settled` is `PASSIVE_LEVEL`; `log` and `report` are callable at
//! `<= DISPATCH_LEVEL` (the report is time-stamped from
//! `KUSER_SHARED_DATA`, and a reap it asks for starts only at
//! `PASSIVE_LEVEL`). None of them takes a lock that is held across a wait.
use crate::platform::loader;
use kernel_sys::wrap::log::{print_at, Level};
use kernel_sys::wrap::services::LoaderHandlers;
use shared_abi::payload::PayloadReport;
use shared_abi::Slot;

fn wait_settled(slot: Slot) {
    loader().wait_registration_settled(slot);
}

fn log(slot: Slot, level: Level, text: &str) {
    print_at(level, "loader: ", format_args!("payload[{slot}]: {text}"));
}

fn report(slot: Slot, report: &PayloadReport) {
    loader().on_report(slot, report);
}

/// The handlers, installed by `DriverEntry`.
pub static HANDLERS: LoaderHandlers = LoaderHandlers { wait_settled, log, report };
