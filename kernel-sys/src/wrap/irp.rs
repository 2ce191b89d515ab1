//! A `METHOD_BUFFERED` device-control IRP, seen safely, and pending it.
//!
//! The dispatch trampoline (`device.rs`) builds an [`Ioctl`] over the IRP's
//! system buffer; the handler answers at once ([`IoctlOutcome::Complete`])
//! or pends it ([`Ioctl::pend`]) and completes it later from another thread
//! ([`PendingIrp::complete`]). A pended IRP can be cancelled (the caller's
//! thread exits, Ctrl+C, `CancelIoEx`): it is then completed with
//! `STATUS_CANCELLED` at once, and the work it started goes on.
//!
//! Who completes a pended IRP is decided without touching a freed IRP:
//! the IRP sits in one slot; the completer and the cancel routine each take
//! it out of the slot, and only the one that got it completes it. The
//! completer clears the cancel routine under the cancel spin lock, which
//! `IoCancelIrp` holds until the cancel routine has released it: so once the
//! completer holds that lock, a cancel routine in progress no longer reads
//! the IRP. One IRP may be pending per image.
use crate::imports::{IoAcquireCancelSpinLock, IoReleaseCancelSpinLock, IofCompleteRequest};
use crate::types::{DEVICE_OBJECT, IO_NO_INCREMENT, IRP, PDRIVER_CANCEL, SL_PENDING_RETURNED};
use core::sync::atomic::{AtomicPtr, Ordering};
use shared_abi::NtStatus;

/// The one pended IRP of this image.
static PENDING: AtomicPtr<IRP> = AtomicPtr::new(core::ptr::null_mut());

/// A device-control request: its code and the system buffer.
pub struct Ioctl<'a> {
    irp: *mut IRP,
    code: u32,
    input_len: usize,
    output_len: usize,
    buf: &'a mut [u8],
}

/// What a handler did with an [`Ioctl`].
pub enum IoctlOutcome {
    /// Complete now with this status and this many output bytes.
    Complete { status: NtStatus, information: usize },
    /// The IRP was pended (the trampoline returns `STATUS_PENDING`).
    Pended(Pended),
}

/// Proof that [`Ioctl::pend`] was called: only it can build this.
pub struct Pended(());

/// A pended IRP, to be completed from any thread at `<= DISPATCH_LEVEL`.
pub struct PendingIrp {
    irp: *mut IRP,
    output_len: usize,
}

// SAFETY: the IRP is owned by this driver until completion; ownership is
// settled through `PENDING`, so the handle may move to the completing thread.
unsafe impl Send for PendingIrp {}

impl<'a> Ioctl<'a> {
    /// # Safety
    /// `irp` is an `IRP_MJ_DEVICE_CONTROL` IRP the I/O manager passed to this
    /// driver's dispatch routine, during that call.
    pub(crate) unsafe fn from_irp(irp: *mut IRP) -> Ioctl<'a> {
        // SAFETY: a dispatched IRP, ours during this call (contract).
        let irp_ref = unsafe { &*irp };
        // SAFETY: a dispatched IRP has a current stack location.
        let stack = unsafe { &*irp_ref.CurrentStackLocation };
        let buffer = irp_ref.SystemBuffer;
        let (code, input_len, output_len) =
            (stack.IoControlCode, stack.InputBufferLength as usize, stack.OutputBufferLength as usize);
        // METHOD_BUFFERED: one system buffer of max(in, out) bytes, or NULL.
        // For any other method SystemBuffer is not that buffer: no view of
        // it is formed (the request looks empty, and the decoder refuses its
        // code by method before it reads a byte).
        let buffered = code & 3 == shared_abi::control::METHOD_BUFFERED;
        let capacity = input_len.max(output_len);
        let buf: &mut [u8] = if !buffered || buffer.is_null() || capacity == 0 {
            &mut []
        } else {
            // SAFETY: the I/O manager allocated `capacity` bytes at
            // SystemBuffer for this IRP; the driver owns them until completion.
            unsafe { core::slice::from_raw_parts_mut(buffer.cast::<u8>(), capacity) }
        };
        Ioctl { irp, code, input_len, output_len, buf }
    }

    /// The control code.
    #[must_use]
    pub fn code(&self) -> u32 {
        self.code
    }

    /// The input bytes.
    #[must_use]
    pub fn input(&self) -> &[u8] {
        self.buf.get(..self.input_len).unwrap_or(&[])
    }

    /// The output length the caller asked for.
    #[must_use]
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// The output bytes (the same buffer as the input: read first).
    pub fn output(&mut self) -> &mut [u8] {
        let n = self.output_len.min(self.buf.len());
        self.buf.get_mut(..n).unwrap_or(&mut [])
    }

    /// Marks the IRP pending with a cancel routine. `None` if it needs no
    /// more work: another IRP is pending already (it was completed with
    /// `STATUS_DEVICE_BUSY`), or it was cancelled before the routine was set
    /// (completed with `STATUS_CANCELLED`). Either way the dispatch routine
    /// returns `STATUS_PENDING`, as it must once an IRP is marked pending.
    pub fn pend(self) -> (Pended, Option<PendingIrp>) {
        let irp = self.irp;
        // SAFETY: the IRP is ours during dispatch.
        let stack = unsafe { (*irp).CurrentStackLocation };
        // SAFETY: its current stack location; IoMarkIrpPending sets
        // SL_PENDING_RETURNED there.
        unsafe { (*stack).Control |= SL_PENDING_RETURNED };
        if PENDING.compare_exchange(core::ptr::null_mut(), irp, Ordering::AcqRel, Ordering::Acquire).is_err() {
            complete_now(irp, NtStatus::DEVICE_BUSY, 0);
            return (Pended(()), None);
        }
        let mut irql = 0;
        // SAFETY: out-pointer for the IRQL to restore.
        unsafe { IoAcquireCancelSpinLock(&raw mut irql) };
        // SAFETY: the IRP is alive (ours); `Cancel` is read under the cancel lock.
        let cancel = unsafe { &raw const (*irp).Cancel };
        // SAFETY: as above.
        let cancelled = unsafe { core::ptr::read_volatile(cancel) } != 0;
        if !cancelled {
            set_cancel_routine(irp, Some(cancel_routine));
        }
        // SAFETY: releases the lock acquired above.
        unsafe { IoReleaseCancelSpinLock(irql) };
        if cancelled
            && PENDING.compare_exchange(irp, core::ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            complete_now(irp, NtStatus::CANCELLED, 0);
            return (Pended(()), None);
        }
        (Pended(()), Some(PendingIrp { irp, output_len: self.output_len }))
    }
}

impl PendingIrp {
    /// Completes the IRP with `status`, after `write` filled its output
    /// (it returns the bytes written), unless it was cancelled meanwhile
    /// (then the cancel routine completed it). `true` if this completed it.
    pub fn complete(self, status: NtStatus, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        if PENDING.compare_exchange(self.irp, core::ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        let mut irql = 0;
        // SAFETY: out-pointer for the IRQL to restore.
        unsafe { IoAcquireCancelSpinLock(&raw mut irql) };
        // A cancel routine already in progress gets nothing from PENDING now;
        // holding the lock we know it no longer reads this IRP.
        set_cancel_routine(self.irp, None);
        // SAFETY: releases the lock acquired above.
        unsafe { IoReleaseCancelSpinLock(irql) };
        // SAFETY: the IRP is ours (taken from PENDING); METHOD_BUFFERED, so
        // SystemBuffer holds at least `output_len` bytes (or is NULL).
        let buffer = unsafe { (*self.irp).SystemBuffer };
        let out: &mut [u8] = if buffer.is_null() || self.output_len == 0 {
            &mut []
        } else {
            // SAFETY: as above.
            unsafe { core::slice::from_raw_parts_mut(buffer.cast::<u8>(), self.output_len) }
        };
        let information = if status.is_success() { write(out) } else { 0 };
        complete_now(self.irp, status, information);
        true
    }
}

/// `IoSetCancelRoutine`: an interlocked exchange on `Irp->CancelRoutine`.
fn set_cancel_routine(irp: *mut IRP, routine: PDRIVER_CANCEL) {
    let new = routine.map_or(core::ptr::null_mut(), |f| f as *mut core::ffi::c_void);
    // SAFETY: `CancelRoutine` is a pointer-sized, pointer-aligned field of a
    // live IRP; the kernel also accesses it only with interlocked exchanges.
    let raw = unsafe { &raw mut (*irp).CancelRoutine };
    // SAFETY: as above; AtomicPtr has the layout of a pointer.
    let field = unsafe { &*raw.cast::<AtomicPtr<core::ffi::c_void>>() };
    field.swap(new, Ordering::AcqRel);
}

/// Fills the IRP's I/O status and completes it. The IRP must be ours.
pub(crate) fn complete_now(irp: *mut IRP, status: NtStatus, information: usize) -> i32 {
    // SAFETY: the caller owns the IRP until this call returns.
    let io_status = unsafe { &mut (*irp).IoStatus };
    io_status.Status = status.0;
    io_status.Information = information;
    // SAFETY: completes the IRP exactly once (the caller owned it).
    unsafe { IofCompleteRequest(irp, IO_NO_INCREMENT) };
    status.0
}

/// Called by `IoCancelIrp` with the cancel spin lock held.
unsafe extern "system" fn cancel_routine(_device: *mut DEVICE_OBJECT, irp: *mut IRP) {
    // SAFETY: IoCancelIrp passes a live IRP and holds the cancel lock at
    // CancelIrql, which the routine must release.
    let irql = unsafe { (*irp).CancelIrql };
    // SAFETY: releases the cancel lock IoCancelIrp acquired, at its IRQL.
    unsafe { IoReleaseCancelSpinLock(irql) };
    if PENDING.compare_exchange(irp, core::ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
        complete_now(irp, NtStatus::CANCELLED, 0);
        crate::wrap::device::notify_cancelled();
    }
}
