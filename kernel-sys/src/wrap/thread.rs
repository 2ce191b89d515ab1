//! System threads. `PASSIVE_LEVEL`.
use crate::imports::{PsCreateSystemThread, PsTerminateSystemThread, ZwClose, ZwWaitForSingleObject};
use crate::types::{HANDLE, THREAD_ALL_ACCESS};
use core::ffi::c_void;

/// A system thread's handle; closing it does not stop the thread.
pub struct SystemThread {
    handle: HANDLE,
}

// SAFETY: a kernel handle (OBJ_KERNEL_HANDLE semantics for system threads) is
// usable from any thread.
unsafe impl Send for SystemThread {}

/// Starts `start(context)` on a new system thread.
pub fn spawn(start: unsafe extern "system" fn(*mut c_void), context: usize) -> Result<SystemThread, i32> {
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: out-pointer valid; NULL attributes/process/client id request a
    // system thread; `start` is a function of this image, which stays loaded
    // until the thread is waited for (the caller's contract).
    let status = unsafe {
        PsCreateSystemThread(
            &mut handle,
            THREAD_ALL_ACCESS,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            start,
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
    /// Waits until the thread has exited.
    pub fn join(self) {
        // SAFETY: a valid thread handle owned by `self`; NULL timeout = forever.
        unsafe { ZwWaitForSingleObject(self.handle, 0, core::ptr::null()) };
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
