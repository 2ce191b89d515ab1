//! The same callback behind the payload wrapper; with feature `slow`, the
//! stream contexts it keeps on files opened on the Mup volume.
use crate::callbacks::{CONTEXTS, INSTANCES, POST, PRE, REGISTRATION};
use core::sync::atomic::Ordering;
use payload_driver::shared_abi::payload::PayloadReport;
use payload_driver::Minifilter;
use shared_abi::NtStatus;

#[allow(clippy::unnecessary_wraps)] // the wrapper's `setup` signature
fn setup() -> Result<(), NtStatus> {
    crate::log!("{NAME}: set up");
    Ok(())
}

fn cleanup() {}

fn report(r: &mut PayloadReport) {
    r.instances = INSTANCES.load(Ordering::Relaxed);
    r.open_contexts = CONTEXTS.load(Ordering::Relaxed);
    r.creates = PRE.load(Ordering::Relaxed);
    r.reads = POST.load(Ordering::Relaxed);
}

fn shutdown() {}

static BENCH: Minifilter = Minifilter {
    registration: payload_driver::wrap_registration(REGISTRATION),
    setup,
    cleanup,
    report,
    shutdown,
    state: None,
    handover: !cfg!(feature = "no-handover"),
};

const NAME: &str = if cfg!(feature = "slow") {
    "SlowFilter"
} else if cfg!(feature = "no-handover") {
    "BenchFilter (wrapped, 1.1)"
} else {
    "BenchFilter (wrapped)"
};

const fn make_descriptor() -> payload_driver::shared_abi::payload::PayloadDescriptor {
    #[allow(unused_mut)]
    let mut d = payload_driver::descriptor(NAME, 1);
    #[cfg(feature = "no-handover")]
    {
        // As a 1.1 payload: the wrapper without the owner word.
        d.quiesce = None;
        d.abi_minor = 1;
    }
    d
}

payload_driver::export_descriptor!(make_descriptor());
payload_driver::export_register_entry!();
payload_driver::export_driver_entry!(BENCH);

/// Post-create on the Mup volume: the file's name (the seed's
/// `\TSCLIENT\SCARD\2`), and a stream context kept until the file closes.
#[cfg(feature = "slow")]
pub fn keep_context(data: *mut core::ffi::c_void, objects: *const core::ffi::c_void, flags: u32) {
    use kernel_sys::flt::{
        FLTFL_POST_OPERATION_DRAINING, FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_FILE_NAME_NORMALIZED,
        FLT_FILE_NAME_QUERY_DEFAULT, FLT_RELATED_OBJECTS, FLT_SET_CONTEXT_KEEP_IF_EXISTS, FLT_STREAM_CONTEXT,
    };
    use kernel_sys::{
        FltAllocateContext, FltGetFileNameInformation, FltGetVolumeName, FltParseFileNameInformation,
        FltReleaseContext, FltReleaseFileNameInformation, FltSetStreamContext, UNICODE_STRING,
    };
    if flags & FLTFL_POST_OPERATION_DRAINING != 0 {
        return;
    }
    let data = data.cast::<FLT_CALLBACK_DATA>();
    // SAFETY: the Filter Manager's callback data for this call.
    let iopb = unsafe { (*data).Iopb };
    // SAFETY: its parameter block, alive as long.
    if unsafe { (*iopb).MajorFunction } != 0 {
        return; // creates only
    }
    // SAFETY: the Filter Manager's related objects for this call.
    let objects = unsafe { &*objects.cast::<FLT_RELATED_OBJECTS>() };
    let mut volume = [0u16; 64];
    let mut vname = UNICODE_STRING { Length: 0, MaximumLength: 128, Buffer: volume.as_mut_ptr() };
    let mut needed = 0u32;
    // SAFETY: the volume of this call; `vname` views `volume` (128 bytes).
    let got = unsafe { FltGetVolumeName(objects.Volume, &raw mut vname, &raw mut needed) };
    let on_mup = got >= 0 && volume.get(..usize::from(vname.Length / 2)).is_some_and(|v| v.ends_with(&MUP));
    if !on_mup {
        return;
    }
    let mut name: *mut FLT_FILE_NAME_INFORMATION = core::ptr::null_mut();
    // SAFETY: inside a post-create callback, with its callback data.
    let status = unsafe {
        FltGetFileNameInformation(data, FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT, &raw mut name)
    };
    if status < 0 || name.is_null() {
        return;
    }
    // SAFETY: the name just returned, referenced by us.
    unsafe { FltParseFileNameInformation(name) };
    // SAFETY: as above; parsed.
    let final_component = unsafe { (*name).FinalComponent };
    crate::log!("keeping a stream context on a Mup file (final component of {} unit(s))", final_component.Length / 2);
    // SAFETY: our reference, released once.
    unsafe { FltReleaseFileNameInformation(name) };
    let mut context: *mut core::ffi::c_void = core::ptr::null_mut();
    // SAFETY: our filter; a registered context type and size; out-pointer.
    let status = unsafe { FltAllocateContext(objects.Filter, FLT_STREAM_CONTEXT, 16, 0, &raw mut context) };
    if status < 0 {
        return;
    }
    CONTEXTS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: our instance and this call's file object; a context we hold.
    unsafe {
        FltSetStreamContext(
            objects.Instance,
            objects.FileObject,
            FLT_SET_CONTEXT_KEEP_IF_EXISTS,
            context,
            core::ptr::null_mut(),
        )
    };
    // SAFETY: our allocation reference (the stream keeps its own).
    unsafe { FltReleaseContext(context) };
    payload_driver::publish();
}

/// `"Mup"` in UTF-16.
#[cfg(feature = "slow")]
const MUP: [u16; 3] = [b'M' as u16, b'u' as u16, b'p' as u16];
