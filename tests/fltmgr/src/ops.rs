//! One operation through the instances attached to a volume, as Windows'
//! Filter Manager delivers it: pre-operation callbacks from the highest
//! altitude down, post-operation callbacks back up for the filters that
//! asked for one, the pre-operation status honoured
//! (`SUCCESS_WITH_CALLBACK`/`SYNCHRONIZE`: post callback owed;
//! `SUCCESS_NO_CALLBACK`: none; `COMPLETE`: lower filters and the "file
//! system" do not see it).
//!
//! The stack is walked as it is at each step (an instance attached below an
//! operation in flight is met by it), which the payloads' exactly-once
//! handover relies on (`loader_protocol::handover`).
//!
//! An instance's in-flight count covers a pre callback while it runs and a
//! post callback while it is owed, so `FltUnregisterFilter` can wait for
//! them. The verifier checks each call before it is made. Runs at
//! `PASSIVE_LEVEL` on the calling thread (an injector, or the control
//! device's caller for files opened and closed on request).
use crate::state::{
    filter_handle, instance_handle, instance_index, volume_handle, Sim, UnloadCallback, INSTANCE_DRAINED, MAX_FILTERS,
    STATE,
};
use crate::verifier::op_finished;
use core::ffi::c_void;
use fltsim_abi as abi;
use kernel_sys::flt::{
    FLTFL_CALLBACK_DATA_IRP_OPERATION, FLTFL_CALLBACK_DATA_POST_OPERATION, FLT_CALLBACK_DATA, FLT_CREATE_PARAMETERS,
    FLT_IO_PARAMETER_BLOCK, FLT_OTHER_PARAMETERS, FLT_PARAMETERS, FLT_POSTOP_MORE_PROCESSING_REQUIRED,
    FLT_PREOP_COMPLETE, FLT_PREOP_DISALLOW_FASTIO, FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_PREOP_SUCCESS_WITH_CALLBACK,
    FLT_PREOP_SYNCHRONIZE, FLT_READ_WRITE_PARAMETERS, FLT_RELATED_OBJECTS, IO_SECURITY_CONTEXT,
    PFLT_POST_OPERATION_CALLBACK, PFLT_PRE_OPERATION_CALLBACK,
};
use kernel_sys::wrap::event::Event;
use kernel_sys::{UserMode, FILE_OBJECT, IO_STATUS_BLOCK};
use shared_abi::NtStatus;

/// Bytes of a read or write backed by a buffer.
const BUFFER_BYTES: usize = 512;
/// `IRP_*_OPERATION` flags per kind (create, read, write, cleanup, close).
const IRP_FLAGS: [u32; abi::OP_KINDS] = [0x80, 0x100, 0x200, 0x400, 0x400];
/// `FILE_OPEN_IF << 24 | FILE_NON_DIRECTORY_FILE`.
const CREATE_OPTIONS: u32 = (3 << 24) | 0x40;
/// `FILE_GENERIC_READ | FILE_GENERIC_WRITE`.
const DESIRED_ACCESS: u32 = 0x0012_019F;
/// `FILE_OPENED`, the `Information` of a successful create.
const FILE_OPENED: usize = 1;

/// An instance an operation goes through.
#[derive(Clone, Copy)]
struct Target {
    filter: usize,
    filter_generation: u32,
    instance: usize,
    instance_generation: u32,
    altitude: u64,
}

/// A post-operation callback owed.
#[derive(Clone, Copy)]
struct Owed {
    target: Target,
    post: PFLT_POST_OPERATION_CALLBACK,
    completion: *mut c_void,
    objects: FLT_RELATED_OBJECTS,
}

/// Whether a callback of filter `idx` at `addr` may be called; a callback
/// into an unloaded image is a violation and is not made.
pub fn callable(idx: usize, addr: usize) -> bool {
    STATE.with(|s| {
        if s.in_unloaded_image(addr) {
            s.violation(abi::VIOLATION_UNLOADED_IMAGE, None, Some(idx));
            false
        } else {
            true
        }
    })
}

/// The next instance an operation meets on `volume`: the attached one with
/// the highest altitude below `above` (`None`: the top of the stack). The
/// stack is walked as it is at each step, as Windows' Filter Manager walks
/// its list of callback nodes: an instance attached below an operation in
/// flight is met by it; one detached meanwhile is not.
fn next_below(s: &Sim, volume: usize, above: Option<u64>) -> Option<Target> {
    let (targets, n) = stack(s, volume);
    targets.into_iter().take(n).flatten().find(|t| above.is_none_or(|a| t.altitude < a))
}

/// The instances attached to `volume`, highest altitude first.
fn stack(s: &Sim, volume: usize) -> ([Option<Target>; MAX_FILTERS], usize) {
    let mut out = [None; MAX_FILTERS];
    let mut n = 0;
    for (filter, f) in s.filters.iter().enumerate() {
        let i = instance_index(filter, volume);
        let Some(inst) = s.instances.get(i) else { continue };
        if !f.live() || inst.state != abi::INSTANCE_ATTACHED || inst.draining || inst.filter_generation != f.generation
        {
            continue;
        }
        let t = Target {
            filter,
            filter_generation: f.generation,
            instance: i,
            instance_generation: inst.generation,
            altitude: f.altitude,
        };
        if let Some(slot) = out.get_mut(n) {
            *slot = Some(t);
            n += 1;
        }
    }
    if let Some(attached) = out.get_mut(..n) {
        attached.sort_unstable_by_key(|t| core::cmp::Reverse(t.map_or(0, |t| t.altitude)));
    }
    (out, n)
}

/// What the verifier let through for one filter.
struct Entered {
    pre: PFLT_PRE_OPERATION_CALLBACK,
    post: PFLT_POST_OPERATION_CALLBACK,
    payload: bool,
}

/// Admits a call into `t` for `kind`: counts it in flight, or says why not.
fn enter(s: &mut Sim, t: &Target, kind: usize) -> Option<Entered> {
    let f = s.filters.get(t.filter)?;
    if f.generation != t.filter_generation || !f.live() {
        return None; // unregistration began: no new callbacks
    }
    let inst = s.instances.get(t.instance)?;
    if inst.generation != t.instance_generation || inst.state != abi::INSTANCE_ATTACHED || inst.draining {
        return None;
    }
    let pre = f.callbacks.pre.get(kind).copied().flatten();
    let post = f.callbacks.post.get(kind).copied().flatten();
    if pre.is_none() && post.is_none() {
        return None;
    }
    let payload = f.is_payload;
    if f.unload_callback == UnloadCallback::Done {
        s.violation(abi::VIOLATION_AFTER_UNLOAD_CALLBACK, Some(kind), Some(t.filter));
        return None;
    }
    let addrs = [pre.map_or(0, |p| p as usize), post.map_or(0, |p| p as usize)];
    if addrs.iter().any(|&a| a != 0 && s.in_unloaded_image(a)) {
        s.violation(abi::VIOLATION_UNLOADED_IMAGE, Some(kind), Some(t.filter));
        return None;
    }
    if let Some(inst) = s.instances.get_mut(t.instance) {
        inst.in_flight += 1;
    }
    if let (Some(f), true) = (s.filters.get_mut(t.filter), pre.is_some()) {
        if let Some(c) = f.pre.get_mut(kind) {
            *c += 1;
        }
    }
    Some(Entered { pre, post, payload })
}

/// Ends a call into `t`: one fewer in flight. Returns the drain event to set
/// when the instance drains and this was its last one.
fn leave(s: &mut Sim, t: &Target) -> Option<&'static Event> {
    let returned = s.filter(t.filter, t.filter_generation).is_some_and(|f| f.unregister_returned);
    if returned {
        s.violation(abi::VIOLATION_RUNNING_AFTER_UNREGISTER, None, Some(t.filter));
    }
    let inst = s.instances.get_mut(t.instance)?;
    if inst.generation != t.instance_generation {
        return None;
    }
    inst.in_flight = inst.in_flight.saturating_sub(1);
    if inst.draining && inst.in_flight == 0 {
        INSTANCE_DRAINED.get(t.instance)
    } else {
        None
    }
}

fn leave_and_signal(t: &Target) {
    if let Some(e) = STATE.with(|s| leave(s, t)) {
        e.set();
    }
}

/// The parameters of a simulated operation of `kind`.
fn parameters(
    kind: usize,
    length: u32,
    offset: u64,
    security: *mut IO_SECURITY_CONTEXT,
    buffer: *mut c_void,
) -> FLT_PARAMETERS {
    match kind {
        k if k == abi::OP_CREATE as usize => FLT_PARAMETERS {
            Create: FLT_CREATE_PARAMETERS {
                SecurityContext: security,
                Options: CREATE_OPTIONS,
                #[cfg(not(target_arch = "x86"))]
                Pad0: 0,
                FileAttributes: 0x80, // FILE_ATTRIBUTE_NORMAL
                ShareAccess: 3,
                #[cfg(not(target_arch = "x86"))]
                Pad1: 0,
                EaLength: 0,
                #[cfg(not(target_arch = "x86"))]
                Pad2: 0,
                EaBuffer: core::ptr::null_mut(),
                AllocationSize: 0,
            },
        },
        k if k == abi::OP_READ as usize || k == abi::OP_WRITE as usize => FLT_PARAMETERS {
            Read: FLT_READ_WRITE_PARAMETERS {
                Length: length,
                #[cfg(not(target_arch = "x86"))]
                Pad0: 0,
                Key: 0,
                #[cfg(not(target_arch = "x86"))]
                Pad1: 0,
                ByteOffset: i64::try_from(offset).unwrap_or(i64::MAX),
                Buffer: buffer,
                MdlAddress: core::ptr::null_mut(),
            },
        },
        _ => FLT_PARAMETERS { Others: FLT_OTHER_PARAMETERS::ZERO },
    }
}

/// What the pre-operation pass left to do.
struct PrePass {
    owed: [Option<Owed>; MAX_FILTERS],
    owed_n: usize,
    /// Distinct payload generations that processed the operation.
    processed_by: usize,
    completed: bool,
}

/// Calls the pre-operation callbacks, highest altitude first, each instance
/// found when the operation reaches its altitude.
fn pre_pass(
    kind: usize,
    volume: usize,
    file: *mut FILE_OBJECT,
    data: &mut FLT_CALLBACK_DATA,
    iopb: &mut FLT_IO_PARAMETER_BLOCK,
) -> PrePass {
    let mut pass = PrePass { owed: [None; MAX_FILTERS], owed_n: 0, processed_by: 0, completed: false };
    let mut payload_generations = [0u32; MAX_FILTERS];
    let mut above = None;
    while let Some(target) = STATE.with(|s| next_below(s, volume, above)) {
        above = Some(target.altitude);
        let t = &target;
        let Some(e) = STATE.with(|s| enter(s, t, kind)) else { continue };
        let objects = FLT_RELATED_OBJECTS {
            Size: u16::try_from(core::mem::size_of::<FLT_RELATED_OBJECTS>()).unwrap_or(0),
            TransactionContext: 0,
            Filter: filter_handle(t.filter, t.filter_generation),
            Volume: volume_handle(volume),
            Instance: instance_handle(t.instance, t.instance_generation),
            FileObject: file,
            Transaction: core::ptr::null_mut(),
        };
        iopb.TargetInstance = objects.Instance;
        let mut completion: *mut c_void = core::ptr::null_mut();
        let status = match e.pre {
            // SAFETY: the filter's pre-operation callback, registered with
            // this signature; the callback data, related objects and
            // completion slot outlive the call; the filter is registered and
            // its image mapped (checked by `enter`).
            Some(pre) => unsafe { pre((&raw mut *data).cast(), (&raw const objects).cast(), &raw mut completion) },
            None => FLT_PREOP_SUCCESS_WITH_CALLBACK,
        };
        let (processed, keep) = match status {
            FLT_PREOP_SUCCESS_WITH_CALLBACK | FLT_PREOP_SYNCHRONIZE => (true, e.post.is_some()),
            FLT_PREOP_COMPLETE => (true, false),
            FLT_PREOP_SUCCESS_NO_CALLBACK | FLT_PREOP_DISALLOW_FASTIO => (false, false),
            _ => {
                STATE.with(|s| s.violation(abi::VIOLATION_UNSUPPORTED_STATUS, Some(kind), Some(t.filter)));
                (false, false)
            }
        };
        if processed {
            STATE.with(|s| {
                if let Some(f) = s.filter_mut(t.filter, t.filter_generation) {
                    f.processed += 1;
                }
            });
            let seen = payload_generations.iter().take(pass.processed_by).any(|&g| g == t.filter_generation);
            if e.payload && !seen {
                if let Some(slot) = payload_generations.get_mut(pass.processed_by) {
                    *slot = t.filter_generation;
                    pass.processed_by += 1;
                }
            }
        }
        if keep {
            if let Some(slot) = pass.owed.get_mut(pass.owed_n) {
                *slot = Some(Owed { target: *t, post: e.post, completion, objects });
                pass.owed_n += 1;
            }
        } else {
            leave_and_signal(t);
        }
        if status == FLT_PREOP_COMPLETE {
            pass.completed = true;
            break;
        }
    }
    pass
}

/// Delivers one operation of `kind` (`abi::OP_*`) on `volume` to the file
/// object `file`, and accounts it. Returns its final status.
pub fn deliver(kind: usize, volume: usize, file: *mut FILE_OBJECT, length: u32, offset: u64) -> NtStatus {
    let mut buffer = [0u8; BUFFER_BYTES];
    let mut security = IO_SECURITY_CONTEXT {
        SecurityQos: core::ptr::null_mut(),
        AccessState: core::ptr::null_mut(),
        DesiredAccess: DESIRED_ACCESS,
        FullCreateOptions: 0,
    };
    let mut iopb = FLT_IO_PARAMETER_BLOCK {
        IrpFlags: IRP_FLAGS.get(kind).copied().unwrap_or(0),
        MajorFunction: abi::OP_MAJOR.get(kind).copied().unwrap_or(0),
        MinorFunction: 0,
        OperationFlags: 0,
        Reserved: 0,
        TargetFileObject: file,
        TargetInstance: core::ptr::null_mut(),
        Parameters: parameters(kind, length, offset, &raw mut security, buffer.as_mut_ptr().cast()),
    };
    let mut data = FLT_CALLBACK_DATA {
        Flags: FLTFL_CALLBACK_DATA_IRP_OPERATION,
        Thread: core::ptr::null_mut(),
        Iopb: &raw mut iopb,
        IoStatus: IO_STATUS_BLOCK { Status: 0, Information: 0 },
        TagData: core::ptr::null_mut(),
        FilterContext: [core::ptr::null_mut(); 4],
        RequestorMode: UserMode,
    };
    let pass = pre_pass(kind, volume, file, &mut data, &mut iopb);
    if !pass.completed {
        // The file system: every simulated operation succeeds.
        let information = match kind {
            k if k == abi::OP_CREATE as usize => FILE_OPENED,
            k if k == abi::OP_READ as usize || k == abi::OP_WRITE as usize => length as usize,
            _ => 0,
        };
        data.IoStatus = IO_STATUS_BLOCK { Status: NtStatus::SUCCESS.0, Information: information };
    }
    data.Flags |= FLTFL_CALLBACK_DATA_POST_OPERATION;
    for o in pass.owed.iter().take(pass.owed_n).rev().flatten() {
        call_post(o, kind, &mut data, &mut iopb);
        leave_and_signal(&o.target);
    }
    op_finished(kind, u32::try_from(pass.processed_by).unwrap_or(u32::MAX));
    NtStatus(data.IoStatus.Status)
}

/// Calls one owed post-operation callback, if the verifier lets it.
fn call_post(o: &Owed, kind: usize, data: &mut FLT_CALLBACK_DATA, iopb: &mut FLT_IO_PARAMETER_BLOCK) {
    let Some(post) = o.post else { return };
    let t = o.target;
    let allowed = STATE.with(|s| {
        let returned = s.filter(t.filter, t.filter_generation).is_none_or(|f| f.unregister_returned);
        if returned {
            s.violation(abi::VIOLATION_AFTER_UNREGISTER, Some(kind), Some(t.filter));
            return false;
        }
        if s.in_unloaded_image(post as usize) {
            s.violation(abi::VIOLATION_UNLOADED_IMAGE, Some(kind), Some(t.filter));
            return false;
        }
        if let Some(c) = s.filter_mut(t.filter, t.filter_generation).and_then(|f| f.post.get_mut(kind)) {
            *c += 1;
        }
        true
    });
    if !allowed {
        return;
    }
    iopb.TargetInstance = o.objects.Instance;
    // SAFETY: the filter's post-operation callback, owed because its pre
    // callback asked for it; the instance's in-flight count is still held,
    // so FltUnregisterFilter waits for this call; data, objects and the
    // filter's completion context are the ones of its pre call.
    let status = unsafe { post((&raw mut *data).cast(), (&raw const o.objects).cast(), o.completion, 0) };
    if status == FLT_POSTOP_MORE_PROCESSING_REQUIRED {
        STATE.with(|s| s.violation(abi::VIOLATION_UNSUPPORTED_STATUS, Some(kind), Some(t.filter)));
    }
}
