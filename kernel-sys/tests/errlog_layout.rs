//! The hand-written `IO_ERROR_LOG_PACKET` (kernel-sys `types.rs`, packed by
//! `errlog.rs`) against Microsoft's generated binding in windows-sys.
use core::mem::{align_of, offset_of, size_of};
use kernel_sys::IO_ERROR_LOG_PACKET as Ours;
use windows_sys::Wdk::System::SystemServices::IO_ERROR_LOG_PACKET as Theirs;

#[test]
fn io_error_log_packet_matches_windows_sys() {
    assert_eq!(size_of::<Ours>(), size_of::<Theirs>());
    assert_eq!(align_of::<Ours>(), align_of::<Theirs>());
    assert_eq!(offset_of!(Ours, DumpDataSize), offset_of!(Theirs, DumpDataSize));
    assert_eq!(offset_of!(Ours, NumberOfStrings), offset_of!(Theirs, NumberOfStrings));
    assert_eq!(offset_of!(Ours, StringOffset), offset_of!(Theirs, StringOffset));
    assert_eq!(offset_of!(Ours, EventCategory), offset_of!(Theirs, EventCategory));
    assert_eq!(offset_of!(Ours, ErrorCode), offset_of!(Theirs, ErrorCode));
    assert_eq!(offset_of!(Ours, UniqueErrorValue), offset_of!(Theirs, UniqueErrorValue));
    assert_eq!(offset_of!(Ours, FinalStatus), offset_of!(Theirs, FinalStatus));
    assert_eq!(offset_of!(Ours, SequenceNumber), offset_of!(Theirs, SequenceNumber));
    assert_eq!(offset_of!(Ours, IoControlCode), offset_of!(Theirs, IoControlCode));
    assert_eq!(offset_of!(Ours, DeviceOffset), offset_of!(Theirs, DeviceOffset));
    assert_eq!(offset_of!(Ours, DumpData), offset_of!(Theirs, DumpData));
    assert_eq!(kernel_sys::errlog::STRING_OFFSET, size_of::<Theirs>());
}
