//! Contexts: `FltAllocateContext`, `FltSetStreamContext`,
//! `FltGetStreamContext`, `FltReleaseContext`, `FltDeleteContext`.
//!
//! A context is a pool block: a header the simulator owns, then the body
//! the filter gets. It is reference counted; the last release calls the
//! registered `ContextCleanupCallback` and frees it. A stream context holds
//! one reference for the stream it is set on, dropped when that stream
//! closes (an injected operation's stream closes with the operation; a file
//! opened on request, when it is closed) or on `FltDeleteContext`. A context
//! set on a stream is tied to that instance: the instance's teardown waits
//! until it is freed. Only stream contexts can be set (the other types can
//! be allocated, and fail loudly when set: nothing here sets them).
//!
//! Any IRQL up to `APC_LEVEL` for the callers; the header is touched under
//! the state lock or through its atomic count.
use crate::state::{decode_filter, decode_instance, Link, Sim, INSTANCE_CONTEXTS_FREED, LINKS_PER_STREAM, STATE};
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, Ordering};
use fltsim_abi as abi;
use kernel_sys::flt::{
    FLT_SET_CONTEXT_KEEP_IF_EXISTS, FLT_SET_CONTEXT_REPLACE_IF_EXISTS, FLT_STREAM_CONTEXT, FLT_VARIABLE_SIZED_CONTEXTS,
    PFLT_CONTEXT, PFLT_CONTEXT_CLEANUP_CALLBACK, PFLT_FILTER, PFLT_INSTANCE,
};
use kernel_sys::{ExAllocatePoolWithTag, ExFreePoolWithTag, FILE_OBJECT, POOL_NON_PAGED};
use shared_abi::NtStatus;

const MAGIC: u32 = u32::from_le_bytes(*b"FSct");
const DEAD: u32 = u32::from_le_bytes(*b"fsct");
const DEFAULT_TAG: u32 = u32::from_le_bytes(*b"FSct");
const NONE: u32 = u32::MAX;

/// What precedes a context's body, aligned as pool blocks are
/// (`MEMORY_ALLOCATION_ALIGNMENT`: 16 bytes on x64, 8 on x86), so the body
/// is too.
#[cfg_attr(target_pointer_width = "64", repr(C, align(16)))]
#[cfg_attr(target_pointer_width = "32", repr(C, align(8)))]
struct Header {
    magic: u32,
    kind: u16,
    reserved: u16,
    refs: AtomicU32,
    filter: u32,
    filter_generation: u32,
    /// The instance it is tied to, or `NONE`.
    instance: u32,
    instance_generation: u32,
    /// The stream it is set on, or `NONE`.
    stream: u32,
    tag: u32,
    cleanup: PFLT_CONTEXT_CLEANUP_CALLBACK,
    size: usize,
}

const HEADER: usize = core::mem::size_of::<Header>();
/// `MEMORY_ALLOCATION_ALIGNMENT`: what pool blocks, and so context bodies,
/// are aligned to.
const ALIGN: usize = core::mem::align_of::<Header>();
#[cfg(target_pointer_width = "64")]
const _: () = assert!(HEADER == 64 && ALIGN == 16);
#[cfg(target_pointer_width = "32")]
const _: () = assert!(HEADER == 48 && ALIGN == 8);

/// The header of `context`, if it is a live context of the simulator.
///
/// A pointer the simulator never gave out is read `HEADER` bytes before it:
/// the filter's contract is to pass only contexts it got from here.
fn header(context: PFLT_CONTEXT) -> Option<*mut Header> {
    if context.is_null() || !context.addr().is_multiple_of(ALIGN) {
        return None;
    }
    let h = context.wrapping_byte_sub(HEADER).cast::<Header>();
    // SAFETY: per the contract above, `context` is the body of a block this
    // module allocated, so the header precedes it.
    let magic = unsafe { (*h).magic };
    (magic == MAGIC).then_some(h)
}

fn bad_object() -> NtStatus {
    STATE.with(|s| s.violation(abi::VIOLATION_BAD_OBJECT, None, None));
    NtStatus::INVALID_PARAMETER
}

/// `FltAllocateContext`.
pub fn allocate(filter: PFLT_FILTER, kind: u16, size: usize, out: *mut PFLT_CONTEXT) -> NtStatus {
    if out.is_null() {
        return NtStatus::INVALID_PARAMETER;
    }
    let Some((idx, generation)) = decode_filter(filter) else { return bad_object() };
    let registered = STATE.with(|s| {
        let f = s.filter(idx, generation)?;
        if !f.live() {
            return Some(Err(NtStatus::FLT_DELETING_OBJECT));
        }
        let reg = f
            .callbacks
            .contexts
            .iter()
            .find(|r| r.kind == kind && r.kind != 0 && (r.size == size || r.size == FLT_VARIABLE_SIZED_CONTEXTS));
        Some(reg.copied().ok_or(NtStatus::FLT_CONTEXT_ALLOCATION_NOT_FOUND))
    });
    let reg = match registered {
        None => return bad_object(),
        Some(Err(e)) => return e,
        Some(Ok(r)) => r,
    };
    let tag = if reg.tag == 0 { DEFAULT_TAG } else { reg.tag };
    let Some(bytes) = size.checked_add(HEADER) else { return NtStatus::INVALID_PARAMETER };
    // SAFETY: a plain non-paged allocation; the result is checked for NULL.
    let block = unsafe { ExAllocatePoolWithTag(POOL_NON_PAGED, bytes, tag) }.cast::<Header>();
    if block.is_null() {
        return NtStatus::INSUFFICIENT_RESOURCES;
    }
    let h = Header {
        magic: MAGIC,
        kind,
        reserved: 0,
        refs: AtomicU32::new(1),
        filter: u32::try_from(idx).unwrap_or(NONE),
        filter_generation: generation,
        instance: NONE,
        instance_generation: 0,
        stream: NONE,
        tag,
        cleanup: reg.cleanup,
        size,
    };
    // SAFETY: `block` is a fresh allocation of HEADER + size bytes, aligned
    // for Header (pool blocks are 16-byte aligned on x64, 8 on x86).
    unsafe { block.write(h) };
    let body = block.cast::<u8>().wrapping_add(HEADER);
    // SAFETY: the body: the `size` bytes after the header, in the same block.
    unsafe { body.write_bytes(0, size) };
    STATE.with(|s| {
        s.totals.contexts_allocated += 1;
        if let Some(f) = s.filter_mut(idx, generation) {
            f.contexts += 1;
        }
    });
    // SAFETY: `out` is the caller's out-pointer (checked non-null).
    unsafe { out.write(body.cast()) };
    NtStatus::SUCCESS
}

/// `FltReleaseContext`: the last reference frees it.
pub fn release(context: PFLT_CONTEXT) {
    let Some(h) = header(context) else {
        let _ = bad_object();
        return;
    };
    // SAFETY: a live header (magic checked); the count is atomic.
    let before = unsafe { (*h).refs.fetch_sub(1, Ordering::AcqRel) };
    if before == 0 {
        // SAFETY: as above: undo the underflow, the block stays.
        unsafe { (*h).refs.store(0, Ordering::Release) };
        let _ = bad_object();
        return;
    }
    if before == 1 {
        free(context, h);
    }
}

fn free(context: PFLT_CONTEXT, h: *mut Header) {
    // SAFETY: the last reference is gone: nobody else touches the header now.
    let r = unsafe { &*h };
    let (kind, tag, cleanup, filter, filter_generation, instance, instance_generation) =
        (r.kind, r.tag, r.cleanup, r.filter, r.filter_generation, r.instance, r.instance_generation);
    let filter = filter as usize;
    if let Some(cb) = cleanup.filter(|cb| crate::ops::callable(filter, *cb as usize)) {
        // SAFETY: the filter's ContextCleanupCallback, registered with this
        // signature, called once before the context is freed.
        unsafe { cb(context, kind) };
    }
    // SAFETY: the last reference is gone; marks the header dead before the free.
    unsafe { (*h).magic = DEAD };
    // SAFETY: our block (header + body), freed once, with its tag.
    unsafe { ExFreePoolWithTag(h.cast(), tag) };
    let drained = STATE.with(|s| {
        s.totals.contexts_freed += 1;
        if let Some(f) = s.filter_mut(filter, filter_generation) {
            f.contexts -= 1;
        }
        untie(s, instance, instance_generation)
    });
    if let Some(i) = drained {
        if let Some(e) = INSTANCE_CONTEXTS_FREED.get(i) {
            e.set();
        }
    }
}

/// One context of instance `instance` is gone; `Some(i)` if its teardown
/// waits and this was the last.
fn untie(s: &mut Sim, instance: u32, generation: u32) -> Option<usize> {
    if instance == NONE {
        return None;
    }
    let i = instance as usize;
    let inst = s.instances.get_mut(i)?;
    if inst.generation != generation {
        return None;
    }
    inst.contexts = inst.contexts.saturating_sub(1);
    (inst.state == abi::INSTANCE_TEARING_DOWN && inst.contexts == 0).then_some(i)
}

/// Adds a reference (the caller holds one already).
fn reference(h: *mut Header) {
    // SAFETY: a live header; the count is atomic.
    unsafe { (*h).refs.fetch_add(1, Ordering::AcqRel) };
}

/// `FltSetStreamContext`.
pub fn set_stream(
    instance: PFLT_INSTANCE,
    file: *mut FILE_OBJECT,
    operation: u32,
    new: PFLT_CONTEXT,
    old: *mut PFLT_CONTEXT,
) -> NtStatus {
    if !old.is_null() {
        // SAFETY: the caller's optional out-pointer.
        unsafe { old.write(core::ptr::null_mut()) };
    }
    let Some(h) = header(new) else { return bad_object() };
    // SAFETY: a live header; `kind` never changes after the allocation.
    let kind = unsafe { (*h).kind };
    if kind != FLT_STREAM_CONTEXT {
        return NtStatus::INVALID_PARAMETER;
    }
    if operation != FLT_SET_CONTEXT_REPLACE_IF_EXISTS && operation != FLT_SET_CONTEXT_KEEP_IF_EXISTS {
        return NtStatus::INVALID_PARAMETER;
    }
    let Some((i, generation)) = decode_instance(instance) else { return bad_object() };
    let Some(stream) = crate::inject::stream_of(file) else { return NtStatus::NOT_SUPPORTED };
    let outcome = STATE.with(|s| {
        let attached =
            s.instances.get(i).is_some_and(|x| x.generation == generation && x.state == abi::INSTANCE_ATTACHED);
        if !attached {
            return Err(NtStatus::FLT_DELETING_OBJECT);
        }
        // SAFETY: a live header; `stream` changes only under the state lock.
        if unsafe { (*h).stream } != NONE {
            return Err(NtStatus::FLT_CONTEXT_ALREADY_LINKED);
        }
        let links = &mut s.streams.get_mut(stream).ok_or(NtStatus::NOT_SUPPORTED)?.links;
        let existing =
            links.iter().position(|l| l.is_some_and(|l| l.instance == i && l.instance_generation == generation));
        let mut replaced = None;
        if let Some(at) = existing {
            let current = links.get(at).copied().flatten().map_or(0, |l| l.context);
            if operation == FLT_SET_CONTEXT_KEEP_IF_EXISTS {
                return Ok((Some(current), None, NtStatus::FLT_CONTEXT_ALREADY_DEFINED));
            }
            replaced = Some(current);
            if let Some(l) = links.get_mut(at) {
                *l = None;
            }
        }
        let free = links.iter().position(Option::is_none).ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
        if let Some(l) = links.get_mut(free) {
            *l = Some(Link { instance: i, instance_generation: generation, context: new.expose_provenance() });
        }
        // SAFETY: a live header; `stream`, `instance` and
        // `instance_generation` change only under the state lock.
        unsafe { (*h).stream = u32::try_from(stream).unwrap_or(NONE) };
        // SAFETY: as above.
        let first_tie = unsafe { (*h).instance } == NONE;
        if first_tie {
            // SAFETY: as above.
            unsafe { (*h).instance = u32::try_from(i).unwrap_or(NONE) };
            // SAFETY: as above.
            unsafe { (*h).instance_generation = generation };
        }
        if first_tie {
            if let Some(x) = s.instances.get_mut(i) {
                x.contexts += 1;
            }
        }
        if let Some(r) = replaced.and_then(|c| header(core::ptr::with_exposed_provenance_mut(c))) {
            // SAFETY: a live header, unlinked above under the lock.
            unsafe { (*r).stream = NONE };
        }
        Ok((None, replaced, NtStatus::SUCCESS))
    });
    let (kept, replaced, status) = match outcome {
        Ok(v) => v,
        Err(e) => return e,
    };
    if status.is_success() {
        reference(h); // the stream's reference
    }
    if let Some(current) = kept {
        if !old.is_null() {
            if let Some(ch) = header(core::ptr::with_exposed_provenance_mut(current)) {
                reference(ch);
                // SAFETY: the caller's optional out-pointer.
                unsafe { old.write(core::ptr::with_exposed_provenance_mut(current)) };
            }
        }
    }
    if let Some(r) = replaced {
        let ctx: PFLT_CONTEXT = core::ptr::with_exposed_provenance_mut(r);
        if old.is_null() {
            release(ctx); // the stream's reference, nobody takes it
        } else {
            // SAFETY: the caller's out-pointer: the stream's reference passes to it.
            unsafe { old.write(ctx) };
        }
    }
    status
}

/// `FltGetStreamContext`.
pub fn get_stream(instance: PFLT_INSTANCE, file: *mut FILE_OBJECT, out: *mut PFLT_CONTEXT) -> NtStatus {
    if out.is_null() {
        return NtStatus::INVALID_PARAMETER;
    }
    // SAFETY: the caller's out-pointer.
    unsafe { out.write(core::ptr::null_mut()) };
    let Some((i, generation)) = decode_instance(instance) else { return bad_object() };
    let Some(stream) = crate::inject::stream_of(file) else { return NtStatus::NOT_SUPPORTED };
    let found = STATE.with(|s| {
        let links = &s.streams.get(stream)?.links;
        let l = links.iter().flatten().find(|l| l.instance == i && l.instance_generation == generation)?;
        let h = header(core::ptr::with_exposed_provenance_mut(l.context))?;
        reference(h); // under the lock: the stream's reference keeps it alive meanwhile
        Some(l.context)
    });
    match found {
        Some(c) => {
            // SAFETY: the caller's out-pointer.
            unsafe { out.write(core::ptr::with_exposed_provenance_mut(c)) };
            NtStatus::SUCCESS
        }
        None => NtStatus::NOT_FOUND,
    }
}

/// `FltDeleteContext`: unsets it from its stream (dropping the stream's reference).
pub fn delete(context: PFLT_CONTEXT) {
    let Some(h) = header(context) else {
        let _ = bad_object();
        return;
    };
    let unlinked = STATE.with(|s| {
        // SAFETY: a live header; `stream` changes only under the state lock.
        let stream = unsafe { (*h).stream };
        if stream == NONE {
            return false;
        }
        let Some(st) = s.streams.get_mut(stream as usize) else { return false };
        let Some(slot) = st.links.iter_mut().find(|l| l.is_some_and(|l| l.context == context.expose_provenance()))
        else {
            return false;
        };
        *slot = None;
        // SAFETY: as above.
        unsafe { (*h).stream = NONE };
        true
    });
    if unlinked {
        release(context);
    }
}

/// The stream `stream` closed: its contexts lose the stream's reference.
pub fn release_stream(stream: usize) {
    let links = STATE.with(|s| {
        let mut taken = [None; LINKS_PER_STREAM];
        if let Some(st) = s.streams.get_mut(stream) {
            for (t, l) in taken.iter_mut().zip(st.links.iter_mut()) {
                *t = l.take();
            }
            for l in taken.iter().flatten() {
                if let Some(h) = header(core::ptr::with_exposed_provenance_mut(l.context)) {
                    // SAFETY: a live header; under the state lock.
                    unsafe { (*h).stream = NONE };
                }
            }
        }
        taken
    });
    for l in links.iter().flatten() {
        release(core::ptr::with_exposed_provenance_mut::<c_void>(l.context));
    }
}
