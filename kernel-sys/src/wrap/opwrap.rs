//! The payload wrapper's operation trampolines (the exactly-once handover,
//! `loader_protocol::handover`).
//!
//! The wrapper registers these instead of the filter's own pre- and
//! post-operation callbacks: the pre trampoline asks the [`Gate`] whether
//! this generation processes the operation; if so it calls the filter's
//! own pre callback and asks `FltMgr` for a post callback whatever the
//! filter answers (the operation is counted in flight until then); if not
//! it lets the operation through untouched. The post trampoline calls the
//! filter's own post callback only if the filter asked for one, then ends
//! the count.
//!
//! One table of the filter's callbacks per image, filled once at
//! registration; read-only afterwards. Any IRQL the callbacks run at
//! (pre: `<= APC_LEVEL`; post: `<= DISPATCH_LEVEL`).
use crate::flt::{
    FLT_OPERATION_REGISTRATION, FLT_POSTOP_FINISHED_PROCESSING, FLT_PREOP_COMPLETE, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_PREOP_SYNCHRONIZE, FLT_REGISTRATION, IRP_MJ_OPERATION_END,
    PFLT_POST_OPERATION_CALLBACK, PFLT_PRE_OPERATION_CALLBACK,
};
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// What the trampolines ask the payload wrapper.
pub struct Gate {
    /// Whether this generation processes the operation whose callback data
    /// is at the given address. `true` means it was counted in flight.
    /// One load of the owner word; may wait briefly (the old generation
    /// waiting for room for a mark), without loading it again.
    pub process: fn(op: usize) -> bool,
    /// The counted operation is over (its post callback ran, or the filter
    /// completed it in its pre callback).
    pub done: fn(),
}

/// Most operation registrations a filter may have.
pub const MAX_OPERATIONS: usize = 64;

struct Table {
    filled: AtomicBool,
    /// The registration handed to `FltMgr`: the filter's own entries with
    /// the trampolines in place, then the end marker.
    wrapped: UnsafeCell<[FLT_OPERATION_REGISTRATION; MAX_OPERATIONS + 1]>,
    /// The filter's own callbacks, by major function code.
    pre: UnsafeCell<[PFLT_PRE_OPERATION_CALLBACK; 256]>,
    post: UnsafeCell<[PFLT_POST_OPERATION_CALLBACK; 256]>,
}

// SAFETY: filled once, by the caller that won `filled`, before `FltMgr`
// sees the registration (so before any trampoline runs); read-only after.
unsafe impl Sync for Table {}

const END: FLT_OPERATION_REGISTRATION = FLT_OPERATION_REGISTRATION {
    MajorFunction: IRP_MJ_OPERATION_END,
    Flags: 0,
    PreOperation: None,
    PostOperation: None,
    Reserved1: core::ptr::null_mut(),
};

static TABLE: Table = Table {
    filled: AtomicBool::new(false),
    wrapped: UnsafeCell::new([END; MAX_OPERATIONS + 1]),
    pre: UnsafeCell::new([None; 256]),
    post: UnsafeCell::new([None; 256]),
};
static GATE: AtomicPtr<Gate> = AtomicPtr::new(core::ptr::null_mut());

/// A completion context no filter can produce: the filter's pre callback
/// did not ask for a post callback (the trampoline did).
static NO_FILTER_POST: u8 = 0;

fn no_filter_post() -> *mut c_void {
    core::ptr::from_ref(&NO_FILTER_POST).cast_mut().cast()
}

/// Wraps `registration`'s operation callbacks behind the trampolines and
/// `gate`, once per image; returns the array to register instead. Its
/// `OperationRegistration` must be what `FltRegisterFilter` requires: null
/// or a static array terminated by `IRP_MJ_OPERATION_END` (the filter's own,
/// which `FltRegisterFilter` would read the same way). `None` (register the
/// filter's own unchanged) for a null array, more than [`MAX_OPERATIONS`]
/// entries, or a second call.
#[must_use]
pub fn wrap(registration: &FLT_REGISTRATION, gate: &'static Gate) -> Option<*const FLT_OPERATION_REGISTRATION> {
    let ops = registration.OperationRegistration;
    if ops.is_null() || TABLE.filled.swap(true, Ordering::AcqRel) {
        return None;
    }
    GATE.store(core::ptr::from_ref(gate).cast_mut(), Ordering::Release);
    // SAFETY: we won `filled`: the only writer, before FltMgr has the
    // registration (no trampoline runs yet).
    let wrapped = unsafe { &mut *TABLE.wrapped.get() };
    // SAFETY: as above.
    let pre = unsafe { &mut *TABLE.pre.get() };
    // SAFETY: as above.
    let post = unsafe { &mut *TABLE.post.get() };
    for (i, out) in wrapped.iter_mut().enumerate() {
        // SAFETY: the filter's array, terminated by IRP_MJ_OPERATION_END,
        // static for the life of the image (the registration's contract);
        // read up to the terminator, as FltRegisterFilter would.
        let at = unsafe { ops.add(i) };
        // SAFETY: as above.
        let entry = unsafe { &*at };
        if entry.MajorFunction == IRP_MJ_OPERATION_END {
            *out = END;
            return Some(wrapped.as_ptr());
        }
        if i == MAX_OPERATIONS {
            break;
        }
        let major = usize::from(entry.MajorFunction);
        if let (Some(p), Some(q)) = (pre.get_mut(major), post.get_mut(major)) {
            *p = entry.PreOperation;
            *q = entry.PostOperation;
        }
        *out = FLT_OPERATION_REGISTRATION {
            MajorFunction: entry.MajorFunction,
            Flags: entry.Flags,
            PreOperation: Some(pre_trampoline),
            PostOperation: Some(post_trampoline),
            Reserved1: core::ptr::null_mut(),
        };
    }
    None
}

fn gate() -> Option<&'static Gate> {
    // SAFETY: only ever set from a `&'static Gate`.
    unsafe { GATE.load(Ordering::Acquire).as_ref() }
}

/// `FLT_CALLBACK_DATA.Iopb->MajorFunction`.
fn major_of(data: *mut c_void) -> usize {
    let data = data.cast::<crate::flt::FLT_CALLBACK_DATA>();
    // SAFETY: FltMgr passes a valid callback data with its parameter block.
    let iopb = unsafe { (*data).Iopb };
    if iopb.is_null() {
        return 0;
    }
    // SAFETY: as above.
    usize::from(unsafe { (*iopb).MajorFunction })
}

unsafe extern "system" fn pre_trampoline(
    data: *mut c_void,
    objects: *const c_void,
    completion_context: *mut *mut c_void,
) -> i32 {
    let Some(g) = gate() else { return FLT_PREOP_SUCCESS_NO_CALLBACK };
    if !(g.process)(data as usize) {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // SAFETY: filled before registration, read-only since.
    let own = unsafe { (*TABLE.pre.get()).get(major_of(data)).copied().flatten() };
    let status = match own {
        // SAFETY: the filter's own pre callback, with FltMgr's arguments.
        Some(f) => unsafe { f(data, objects, completion_context) },
        None => FLT_PREOP_SUCCESS_WITH_CALLBACK,
    };
    match status {
        FLT_PREOP_SUCCESS_WITH_CALLBACK | FLT_PREOP_SYNCHRONIZE => status,
        FLT_PREOP_COMPLETE => {
            // Completed here: no post callback will come.
            (g.done)();
            status
        }
        // NO_CALLBACK, DISALLOW_FASTIO and the rest: the filter wants no
        // post callback; the trampoline asks for one to end the count when
        // the operation is over. (A pended operation is not tracked: the
        // count ends now.)
        _ if status == FLT_PREOP_SUCCESS_NO_CALLBACK => {
            // SAFETY: FltMgr's completion-context slot for this call.
            unsafe { *completion_context = no_filter_post() };
            FLT_PREOP_SUCCESS_WITH_CALLBACK
        }
        _ => {
            (g.done)();
            status
        }
    }
}

unsafe extern "system" fn post_trampoline(
    data: *mut c_void,
    objects: *const c_void,
    completion_context: *mut c_void,
    flags: u32,
) -> i32 {
    let result = if completion_context == no_filter_post() {
        FLT_POSTOP_FINISHED_PROCESSING
    } else {
        // SAFETY: filled before registration, read-only since.
        match unsafe { (*TABLE.post.get()).get(major_of(data)).copied().flatten() } {
            // SAFETY: the filter's own post callback, which its pre callback
            // asked for, with FltMgr's arguments.
            Some(f) => unsafe { f(data, objects, completion_context, flags) },
            None => FLT_POSTOP_FINISHED_PROCESSING,
        }
    };
    if let Some(g) = gate() {
        (g.done)();
    }
    result
}
