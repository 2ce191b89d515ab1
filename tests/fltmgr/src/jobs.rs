//! The control device's unload and detach requests, each run on a job
//! thread of the simulator (one at a time; the tool polls the snapshot).
//!
//! A mandatory unload is a driver unload of the filter's service
//! (`ZwUnloadDriver`, what `sc stop` does): the `DriverUnload` hook does the
//! rest. A non-mandatory one (`fltmc unload`) asks the filter first, which
//! may refuse. A detach (`fltmc detach`) asks `InstanceQueryTeardown`.
//! `PASSIVE_LEVEL`.
use crate::log;
use crate::state::{
    filter_handle, instance_handle, instance_index, volume_handle, Name, FILTER_SERIAL, INSTANCE_DRAINED, STATE,
    VOLUMES,
};
use crate::unload::{call_unload_callback, teardown_instance, unregister_if_left};
use fltsim_abi as abi;
use kernel_sys::flt::{FLTFL_INSTANCE_TEARDOWN_MANUAL, FLT_RELATED_OBJECTS};
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::thread::{self, SystemThread};
use kernel_sys::wrap::ustr::WideBuf;
use shared_abi::NtStatus;

#[derive(Clone, Copy)]
struct Job {
    kind: u32,
    name: Name,
    volume: usize,
}

static JOB: SpinLock<Option<Job>> = SpinLock::new(None);
static JOB_THREAD: SpinLock<Option<SystemThread>> = SpinLock::new(None);

/// Starts an unload (`abi::JOB_UNLOAD[_MANDATORY]`) or detach job.
pub fn start_job(kind: u32, name: &[u16], volume: usize) -> NtStatus {
    let Some(name) = WideBuf::from_units(name).filter(|n| !n.units().is_empty()) else {
        return NtStatus::INVALID_PARAMETER;
    };
    let busy = STATE.with(|s| {
        if s.job.state == abi::JOB_RUNNING {
            return true;
        }
        s.job = abi::JobStatus { kind, state: abi::JOB_RUNNING, status: 0, reserved: 0, seq: s.job.seq + 1 };
        false
    });
    if busy {
        return NtStatus::DEVICE_BUSY;
    }
    join(&JOB_THREAD);
    JOB.with(|j| *j = Some(Job { kind, name, volume }));
    match thread::spawn(job_thread, 0) {
        Ok(t) => {
            JOB_THREAD.with(|slot| *slot = Some(t));
            NtStatus::SUCCESS
        }
        Err(e) => {
            STATE.with(|s| {
                s.job.state = abi::JOB_DONE;
                s.job.status = e;
            });
            NtStatus(e)
        }
    }
}

pub(crate) fn join(slot: &SpinLock<Option<SystemThread>>) {
    if let Some(t) = slot.with(Option::take) {
        if let Err(e) = t.join() {
            log!("waiting for a thread of the simulator failed: {}", NtStatus(e));
        }
    }
}

extern "system" fn job_thread(_context: *mut core::ffi::c_void) {
    let status = match JOB.with(Option::take) {
        Some(job) if job.kind == abi::JOB_DETACH => detach(&job.name, job.volume),
        Some(job) => unload_request(&job.name, job.kind == abi::JOB_UNLOAD_MANDATORY),
        None => NtStatus::INVALID_PARAMETER,
    };
    STATE.with(|s| {
        s.job.state = abi::JOB_DONE;
        s.job.status = status.0;
    });
    thread::exit(0);
}

/// `ZwUnloadDriver` of `service` (what `sc stop` does).
fn unload_driver(service: &Name) -> NtStatus {
    let mut key: WideBuf<160> = WideBuf::new();
    let built = key
        .push_ascii("\\Registry\\Machine\\System\\CurrentControlSet\\Services\\")
        .and_then(|()| key.push_units(service.units()));
    if built.is_none() {
        return NtStatus::OBJECT_NAME_INVALID;
    }
    kernel_sys::wrap::image::unload_driver(key.units())
}

/// A mandatory unload is a driver unload of the filter's service: the hook
/// above does the rest. A non-mandatory one (`fltmc unload`) asks the
/// filter first (`FilterUnloadCallback` with flags 0), which may refuse with
/// `STATUS_FLT_DO_NOT_DETACH`; if it agrees, the driver is unloaded.
fn unload_request(name: &Name, mandatory: bool) -> NtStatus {
    if mandatory {
        log!("mandatory unload of {name} requested (ZwUnloadDriver, as sc stop)");
        return unload_driver(name);
    }
    let Some((idx, generation)) = STATE.with(|s| s.live_by_name(name.units())) else {
        return NtStatus::FLT_FILTER_NOT_FOUND;
    };
    log!("unload of {name} requested (not mandatory, as fltmc unload)");
    let status = call_unload_callback(idx, generation, 0).unwrap_or(NtStatus::FLT_DO_NOT_DETACH);
    if !status.is_success() {
        log!("{name} refused the unload: {status}");
        return status;
    }
    unregister_if_left(idx, generation);
    unload_driver(name)
}

/// `fltmc detach`: `InstanceQueryTeardown` (no callback: refused), then the
/// instance drains and is torn down.
fn detach(name: &Name, volume: usize) -> NtStatus {
    let Some((idx, generation)) = STATE.with(|s| s.live_by_name(name.units())) else {
        return NtStatus::FLT_FILTER_NOT_FOUND;
    };
    if volume >= VOLUMES {
        return NtStatus::FLT_VOLUME_NOT_FOUND;
    }
    let Some(serial) = FILTER_SERIAL.get(idx) else { return NtStatus::INVALID_PARAMETER };
    serial.wait();
    let status = detach_locked(idx, generation, volume);
    serial.set();
    log!("detach of {name} from volume {volume}: {status}");
    status
}

fn detach_locked(idx: usize, generation: u32, volume: usize) -> NtStatus {
    let i = instance_index(idx, volume);
    let found = STATE.with(|s| {
        let query = s.filter(idx, generation).filter(|f| f.live())?.callbacks.query_teardown;
        let inst = s.instances.get(i)?;
        (inst.filter_generation == generation && inst.state == abi::INSTANCE_ATTACHED)
            .then_some((query, inst.generation))
    });
    let Some((query, instance_generation)) = found else { return NtStatus::FLT_INSTANCE_NOT_FOUND };
    let objects = FLT_RELATED_OBJECTS {
        Size: u16::try_from(core::mem::size_of::<FLT_RELATED_OBJECTS>()).unwrap_or(0),
        TransactionContext: 0,
        Filter: filter_handle(idx, generation),
        Volume: volume_handle(volume),
        Instance: instance_handle(i, instance_generation),
        FileObject: core::ptr::null_mut(),
        Transaction: core::ptr::null_mut(),
    };
    let status = match query.filter(|cb| crate::ops::callable(idx, *cb as usize)) {
        // SAFETY: the filter's InstanceQueryTeardownCallback, registered with
        // this signature; `objects` outlives the call; the filter is
        // registered and its image mapped.
        Some(cb) => NtStatus(unsafe { cb((&raw const objects).cast(), 0) }),
        None => NtStatus::FLT_DO_NOT_DETACH,
    };
    let admitted = STATE.with(|s| {
        s.totals.detaches += 1;
        if !status.is_success() {
            s.totals.detaches_refused += 1;
            return false;
        }
        let Some(inst) = s.instances.get_mut(i) else { return false };
        inst.draining = true;
        if let Some(e) = INSTANCE_DRAINED.get(i) {
            if inst.in_flight > 0 {
                e.reset();
            } else {
                e.set();
            }
        }
        true
    });
    if !admitted {
        return status;
    }
    if let Some(e) = INSTANCE_DRAINED.get(i) {
        e.wait();
    }
    teardown_instance(idx, generation, volume, FLTFL_INSTANCE_TEARDOWN_MANUAL);
    NtStatus::SUCCESS
}
