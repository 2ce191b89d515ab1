//! On a Windows host with the WDK installed (`cargo test -p kernel-sys`):
//! the hand-written x64 layouts in `kernel-sys` against the ones `wdk-sys`
//! generates from the WDK headers. Compiled out everywhere else, because
//! `wdk-sys` refuses to build on other hosts.
#![cfg(windows)]
use core::mem::{offset_of, size_of};

#[test]
fn flat_structures_match_the_wdk_headers() {
    assert_eq!(size_of::<kernel_sys::UNICODE_STRING>(), size_of::<wdk_sys::UNICODE_STRING>());
    assert_eq!(size_of::<kernel_sys::OBJECT_ATTRIBUTES>(), size_of::<wdk_sys::OBJECT_ATTRIBUTES>());
    assert_eq!(size_of::<kernel_sys::KEVENT>(), size_of::<wdk_sys::KEVENT>());
    assert_eq!(size_of::<kernel_sys::IO_STATUS_BLOCK>(), size_of::<wdk_sys::IO_STATUS_BLOCK>());
    assert_eq!(size_of::<kernel_sys::IO_STACK_LOCATION>(), size_of::<wdk_sys::IO_STACK_LOCATION>());
    assert_eq!(size_of::<kernel_sys::DEVICE_OBJECT>(), size_of::<wdk_sys::DEVICE_OBJECT>());
    assert_eq!(offset_of!(kernel_sys::DEVICE_OBJECT, Flags), offset_of!(wdk_sys::DEVICE_OBJECT, Flags));
}

#[test]
fn driver_object_matches_the_wdk_headers() {
    assert_eq!(size_of::<kernel_sys::DRIVER_OBJECT>(), size_of::<wdk_sys::DRIVER_OBJECT>());
    assert_eq!(offset_of!(kernel_sys::DRIVER_OBJECT, DriverStart), offset_of!(wdk_sys::DRIVER_OBJECT, DriverStart));
    assert_eq!(offset_of!(kernel_sys::DRIVER_OBJECT, DriverSize), offset_of!(wdk_sys::DRIVER_OBJECT, DriverSize));
    assert_eq!(offset_of!(kernel_sys::DRIVER_OBJECT, DriverName), offset_of!(wdk_sys::DRIVER_OBJECT, DriverName));
    assert_eq!(offset_of!(kernel_sys::DRIVER_OBJECT, DriverUnload), offset_of!(wdk_sys::DRIVER_OBJECT, DriverUnload));
    assert_eq!(offset_of!(kernel_sys::DRIVER_OBJECT, MajorFunction), offset_of!(wdk_sys::DRIVER_OBJECT, MajorFunction));
}
