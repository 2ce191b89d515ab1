//! System threads of the driver's own: created in the System process with a
//! kernel handle, whatever thread asks for them. `PASSIVE_LEVEL`.
use crate::imports::{PsCreateSystemThread, PsTerminateSystemThread, ZwClose, ZwWaitForSingleObject};
use crate::types::{HANDLE, OBJECT_ATTRIBUTES, THREAD_ALL_ACCESS};
use core::ffi::c_void;

/// A system thread's handle; closing it does not stop the thread.
pub struct SystemThread {
    handle: HANDLE,
}

// SAFETY: an OBJ_KERNEL_HANDLE is valid in every process context, so the
// handle may be waited on and closed from any thread.
unsafe impl Send for SystemThread {}

/// Starts `start(context)` on a new system thread in the System process.
///
/// `OBJ_KERNEL_HANDLE` puts the handle in the kernel's table rather than in
/// the table of whatever process the caller runs in (an IOCTL's caller, for
/// one): the documentation requires it outside the System process, and a
/// handle in a user process's table dies with that process.
pub fn spawn(start: extern "system" fn(*mut c_void), context: usize) -> Result<SystemThread, i32> {
    let mut attributes = OBJECT_ATTRIBUTES::kernel_handle(core::ptr::null());
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: out-pointer and attributes valid for the call; a NULL process
    // handle asks for a thread of the System process; `start` is a function
    // of this image, which stays loaded until the thread is joined (the
    // caller's contract).
    let status = unsafe {
        PsCreateSystemThread(
            &raw mut handle,
            THREAD_ALL_ACCESS,
            &raw mut attributes,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            start as unsafe extern "system" fn(*mut c_void),
            context as *mut c_void,
        )
    };
    if status >= 0 {
        Ok(SystemThread { handle })
    } else {
        Err(status)
    }
}

impl SystemThread {
    /// Waits until the thread has exited, then closes the handle. A failed
    /// wait (the handle is bad) is returned, not taken for an exit.
    pub fn join(self) -> Result<(), i32> {
        // SAFETY: a valid thread handle owned by `self`; NULL timeout = forever.
        let status = unsafe { ZwWaitForSingleObject(self.handle, 0, core::ptr::null()) };
        crate::types::wait_completed(status)
    }
}

impl Drop for SystemThread {
    fn drop(&mut self) {
        // SAFETY: closes the handle this value owns, exactly once.
        unsafe { ZwClose(self.handle) };
    }
}

/// Ends the calling system thread. Call only from a thread made by [`spawn`].
pub fn exit(status: i32) -> ! {
    // SAFETY: called on a system thread at PASSIVE_LEVEL; it never returns.
    unsafe { PsTerminateSystemThread(status) };
    #[allow(clippy::empty_loop)]
    loop {}
}
