//! The armed Windows 7 race: "when the filter's `FltRegisterFilter`
//! returns, call its `FilterUnloadCallback` (mandatory) from another system
//! thread while its `DriverEntry` (or registration) still runs" — what
//! Windows 7 may do for a `sc stop` that arrives during `DriverEntry`, and
//! Wine never does by itself. Only the callback: the driver unload that
//! would follow is the test's to request once the filter's code is idle
//! (Wine frees an image as soon as its `DriverUnload` returns).
use crate::jobs::join;
use crate::log;
use crate::state::{eq_ignore_case, Name, STATE};
use crate::unload::call_unload_callback;
use core::sync::atomic::{AtomicBool, Ordering};
use fltsim_abi as abi;
use kernel_sys::flt::FLTFL_FILTER_UNLOAD_MANDATORY;
use kernel_sys::wrap::event::Event;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::thread::{self, SystemThread};
use kernel_sys::wrap::ustr::WideBuf;
use shared_abi::NtStatus;

static RACE_THREAD: SpinLock<Option<SystemThread>> = SpinLock::new(None);
static RACE_TARGET: SpinLock<(usize, u32)> = SpinLock::new((0, 0));
/// A race thread waits for `FltRegisterFilter` to hand over.
static RACE_PENDING: AtomicBool = AtomicBool::new(false);
/// Set when the raced filter's handle is written (`FltRegisterFilter` is returning).
static RACE_REGISTERED: Event = Event::notification(true);
/// Set by the race thread just before it calls `FilterUnloadCallback`.
static RACE_CALLING: Event = Event::notification(true);

/// Arms the race for `name` (or disarms it).
pub fn arm(name: &[u16], disarm: bool) -> NtStatus {
    join(&RACE_THREAD);
    let Some(target) = WideBuf::from_units(name) else { return NtStatus::INVALID_PARAMETER };
    STATE.with(|s| {
        s.race.target = target;
        s.race.status.state = if disarm { abi::RACE_IDLE } else { abi::RACE_ARMED };
        s.race.status.callback_status = 0;
        s.race.status.before_start = 0;
        s.race.status.still_registered = 0;
    });
    if !disarm {
        log!("race armed for {target}");
    }
    NtStatus::SUCCESS
}

/// Called by `FltRegisterFilter` on success: fires the race if it is armed
/// for this filter. The callback runs on a thread of its own as soon as
/// `FltRegisterFilter` has returned to the filter ([`race_registered`]).
pub fn after_register(idx: usize, generation: u32, service: &Name) {
    let fire = STATE.with(|s| {
        let armed = s.race.status.state == abi::RACE_ARMED && eq_ignore_case(s.race.target.units(), service.units());
        if armed {
            s.race.status.state = abi::RACE_FIRED;
            s.race.status.fired += 1;
        }
        armed
    });
    if !fire {
        return;
    }
    RACE_REGISTERED.reset();
    RACE_CALLING.reset();
    RACE_TARGET.with(|t| *t = (idx, generation));
    RACE_PENDING.store(true, Ordering::Release);
    match thread::spawn(race_thread, 0) {
        Ok(t) => {
            if let Some(old) = RACE_THREAD.with(|slot| slot.replace(t)) {
                let _ = old.join();
            }
            log!(
                "race: FltRegisterFilter of {service} returns; its FilterUnloadCallback runs now, from another thread"
            );
        }
        Err(e) => {
            RACE_PENDING.store(false, Ordering::Release);
            STATE.with(|s| s.race.status.state = abi::RACE_DONE);
            log!("race: no thread ({})", NtStatus(e));
        }
    }
}

/// `FltRegisterFilter` has written the filter's handle and returns to it.
/// If the race fired, the race thread's `FilterUnloadCallback` begins now:
/// this returns once the thread is calling it (bounded), so the callback
/// runs while the filter goes on with what follows its registration.
pub fn registered() {
    if RACE_PENDING.swap(false, Ordering::AcqRel) {
        RACE_REGISTERED.set();
        let _ = RACE_CALLING.wait_ms(5_000);
    }
}

extern "system" fn race_thread(_context: *mut core::ffi::c_void) {
    // Bounded: FltRegisterFilter sets it on its way out.
    let _ = RACE_REGISTERED.wait_ms(10_000);
    let (idx, generation) = RACE_TARGET.with(|t| *t);
    let before_start = STATE.with(|s| s.filter(idx, generation).is_some_and(|f| !f.started));
    RACE_CALLING.set();
    let status = call_unload_callback(idx, generation, FLTFL_FILTER_UNLOAD_MANDATORY).unwrap_or(NtStatus::SUCCESS);
    STATE.with(|s| {
        let still = s.filter(idx, generation).is_some_and(crate::state::FilterRec::live);
        s.race.status.callback_status = status.0;
        s.race.status.before_start = u32::from(before_start);
        s.race.status.still_registered = u32::from(still);
        s.race.status.state = abi::RACE_DONE;
    });
    log!(
        "race: FilterUnloadCallback returned {status}{}",
        if before_start { " (it began before FltStartFiltering)" } else { "" }
    );
    thread::exit(0);
}
