//! Host tests of the pieces of the thread and registry wrappers that decide
//! correctness on Windows 7 but that Wine never checks (it ignores
//! `OBJ_KERNEL_HANDLE` and handle tables per process).
use kernel_sys::{wait_completed, OBJECT_ATTRIBUTES, OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE, UNICODE_STRING};

/// Defect 4 of the Windows 7 correctness pass: the retire workers were
/// created with NULL object attributes from the IOCTL's thread, so their
/// handles landed in `loaderctl.exe`'s handle table.
#[test]
fn thread_and_key_handles_are_kernel_handles() {
    let unnamed = OBJECT_ATTRIBUTES::kernel_handle(core::ptr::null());
    assert_eq!(unnamed.Length, 0x30);
    assert_eq!(unnamed.Attributes, OBJ_KERNEL_HANDLE);
    assert!(unnamed.RootDirectory.is_null() && unnamed.SecurityDescriptor.is_null());
    let name = UNICODE_STRING { Length: 0, MaximumLength: 0, Buffer: core::ptr::null_mut() };
    let named = OBJECT_ATTRIBUTES::kernel_handle(&raw const name);
    assert_eq!(named.Attributes, OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE);
    assert_eq!(named.ObjectName, &raw const name);
}

/// Defect 4: `join` ignored the wait's status, so a failed wait (a bad
/// handle) was taken for "the thread has exited".
#[test]
fn only_a_signalled_wait_counts_as_completed() {
    assert_eq!(wait_completed(0), Ok(()));
    for status in [
        0x0000_0102,                                      /* STATUS_TIMEOUT */
        0x0000_0101,                                      /* STATUS_ALERTED */
        i32::from_ne_bytes(0xC000_0008u32.to_ne_bytes()), /* STATUS_INVALID_HANDLE */
    ] {
        assert_eq!(wait_completed(status), Err(status));
    }
}
