//! Operations run on a system thread of the loader, one at a time.
//!
//! Every operation that calls into a payload (start, load, upgrade,
//! rollback, unload, and reaping a slot stopped from outside) runs here, in
//! the System process, whoever asked: never on the thread of the process
//! that sent the IOCTL. So the payload's set-up, `FltRegisterFilter` and its
//! instance callbacks always run with the System process current, kernel
//! handles land in the kernel's table, and boot and IOCTL loads behave the
//! same. An IOCTL's IRP is pended while its operation runs; if its caller
//! goes away (Ctrl+C, `CancelIoEx`) the IRP is cancelled at once and the
//! operation runs to its end; `status` shows it (`busy`, then the result).
use crate::log;
use crate::platform::loader;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel_sys::wrap::irp::PendingIrp;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::process::{current_irql, PASSIVE_LEVEL};
use kernel_sys::wrap::thread::{self, SystemThread};
use loader_parsers::control::{encode_reply, ControlCommand};
use loader_protocol::OpOutcome;
use shared_abi::{NtStatus, Slot};

/// What the operation thread runs.
pub enum Job {
    /// The loader's start: load the configured slot.
    Start(Option<Slot>),
    /// A control request, with its pended IRP (if it was not cancelled
    /// before it could be pended).
    Control(ControlCommand, Option<PendingIrp>),
    /// Reap slots stopped from outside.
    Reap,
}

/// An operation thread exists (set before it starts, cleared as its last act).
static RUNNING: AtomicBool = AtomicBool::new(false);
static JOB: SpinLock<Option<Job>> = SpinLock::new(None);
static THREAD: SpinLock<Option<SystemThread>> = SpinLock::new(None);

/// Starts `job` on the operation thread. `Err(job)` while another one runs
/// (the caller answers `STATUS_DEVICE_BUSY`; the protocol would too).
/// `PASSIVE_LEVEL`.
pub fn start(job: Job) -> Result<(), (Job, NtStatus)> {
    if RUNNING.swap(true, Ordering::AcqRel) {
        return Err((job, NtStatus::DEVICE_BUSY));
    }
    // The previous operation thread has finished its work; wait for it to
    // exit so its handle is closed and no code of it remains in flight.
    join();
    JOB.with(|j| *j = Some(job));
    match thread::spawn(op_thread, 0) {
        Ok(t) => {
            THREAD.with(|slot| *slot = Some(t));
            Ok(())
        }
        Err(e) => {
            RUNNING.store(false, Ordering::Release);
            let job = JOB.with(Option::take);
            Err((job.unwrap_or(Job::Reap), NtStatus(e)))
        }
    }
}

/// Waits for the last operation thread to exit (`DriverUnload`, after the
/// protocol's stop waited for the operation itself).
pub fn join() {
    let t = THREAD.with(Option::take);
    if let Some(t) = t {
        if let Err(e) = t.join() {
            log!("waiting for the operation thread failed: {}", NtStatus(e));
        }
    }
}

/// A payload reported it was torn down from outside: reap its slot on the
/// operation thread. If one runs, that operation reaps it before it ends;
/// above `PASSIVE_LEVEL` no thread can be started, and the next operation
/// (or the loader's stop) reaps it.
pub fn request_reap() {
    if current_irql() != PASSIVE_LEVEL {
        return;
    }
    if let Err((_, e)) = start(Job::Reap) {
        if e != NtStatus::DEVICE_BUSY {
            log!("cannot start the reap of a payload stopped from outside: {e}");
        }
    }
}

extern "system" fn op_thread(_context: *mut core::ffi::c_void) {
    match JOB.with(Option::take) {
        Some(job) => run(job),
        None => done(),
    }
    thread::exit(0);
}

/// The operation is over: the next one may start. (Its thread may still be
/// exiting; the next `start` joins it first.) Called before a control
/// request's IRP completes, so a caller that sends the next request as
/// soon as it has the reply never meets `STATUS_DEVICE_BUSY`.
fn done() {
    RUNNING.store(false, Ordering::Release);
}

fn run(job: Job) {
    match job {
        Job::Start(active) => {
            let out = loader().start(active);
            crate::events::after_start(active, &out);
            match active {
                Some(slot) => log!("initial load of slot {slot}: {}", out.status),
                None => log!("no payload to load at start (ActiveSlot says none)"),
            }
            done();
        }
        Job::Reap => {
            loader().reap();
            done();
        }
        Job::Control(command, irp) => {
            let before = crate::platform::status();
            let out = execute(command);
            done();
            if let Some(irp) = irp {
                let completed = irp.complete(out.status, |buf| encode_reply(&out.to_reply(), buf).unwrap_or(0));
                if !completed {
                    log!("the caller had gone; the operation finished with {}", out.status);
                }
            }
            crate::events::after_operation(command, &before, &out);
        }
    }
}

fn execute(command: ControlCommand) -> OpOutcome {
    let l = loader();
    match command {
        ControlCommand::Upgrade { slot } => l.upgrade(slot),
        ControlCommand::Rollback => l.rollback(),
        ControlCommand::Load => l.load(),
        ControlCommand::Unload => l.unload(),
        ControlCommand::QueryStatus => OpOutcome { status: NtStatus::INVALID_DEVICE_REQUEST, active: None, flags: 0 },
    }
}
