//! The services table the loader lends each payload at registration, and
//! the routines behind it. One table per slot; `context` is the slot number.
//!
//! `wait_registration_settled` and `report` are `PASSIVE_LEVEL` only (the
//! report is time-stamped with `ZwQuerySystemInformation`); `log` is
//! callable at `<= DISPATCH_LEVEL`. None of them takes a lock that a control
//! operation holds across a wait.
use crate::platform;
use core::ffi::c_void;
use shared_abi::control::SLOT_COUNT;
use shared_abi::payload::{LoaderServices, PayloadReport};
use shared_abi::NtStatus;

/// The per-slot tables, in a static so they outlive every payload.
pub struct ServiceTables([LoaderServices; SLOT_COUNT]);
// SAFETY: the tables are immutable; `context` is a small integer, not a pointer.
unsafe impl Sync for ServiceTables {}

const fn table(slot: usize) -> LoaderServices {
    LoaderServices {
        size: core::mem::size_of::<LoaderServices>() as u32,
        abi_major: shared_abi::ABI_MAJOR,
        abi_minor: shared_abi::ABI_MINOR,
        slot: slot as u32,
        reserved: 0,
        context: core::ptr::without_provenance_mut(slot),
        wait_registration_settled,
        log,
        report,
    }
}

pub static SERVICES: ServiceTables = ServiceTables([table(0), table(1)]);

/// The table for `slot`.
pub fn for_slot(slot: usize) -> Option<&'static LoaderServices> {
    SERVICES.0.get(slot)
}

fn slot_of(context: *mut c_void) -> Option<usize> {
    let slot = context as usize;
    (slot < SLOT_COUNT).then_some(slot)
}

unsafe extern "system" fn wait_registration_settled(context: *mut c_void) -> i32 {
    match slot_of(context) {
        Some(slot) => {
            platform::wait_settled(slot);
            NtStatus::SUCCESS.0
        }
        None => NtStatus::INVALID_PARAMETER.0,
    }
}

unsafe extern "system" fn log(context: *mut c_void, _level: u32, text: *const u8, len: usize) {
    if text.is_null() {
        return;
    }
    let len = len.min(256);
    // SAFETY: the payload passes `len` readable bytes at `text` for the call.
    let bytes = unsafe { core::slice::from_raw_parts(text, len) };
    let text = core::str::from_utf8(bytes).unwrap_or("(not UTF-8)");
    let slot = slot_of(context).map_or('?', |s| if s == 0 { 'A' } else { 'B' });
    crate::log!("payload[{slot}]: {text}");
}

unsafe extern "system" fn report(context: *mut c_void, report: *const PayloadReport) {
    let Some(slot) = slot_of(context) else { return };
    // SAFETY: the payload passes a valid report for the duration of the call.
    let Some(r) = (unsafe { report.as_ref() }) else { return };
    if (r.size as usize) < core::mem::size_of::<PayloadReport>() {
        return;
    }
    platform::on_report(slot, *r);
}
