//! The control device's requests.
//!
//! Only `METHOD_BUFFERED` codes exist. Request bytes are decoded by
//! `loader_parsers::control` (panic-free, every length checked) before
//! anything acts on them, and output never exceeds the caller's buffer. A
//! status query is answered at once; every other request starts an
//! operation on the loader's thread (`ops.rs`) and its IRP waits pended.
use crate::log;
use crate::ops::{self, Job};
use crate::platform::{self, loader};
use kernel_sys::wrap::device::ControlHandlers;
use kernel_sys::wrap::irp::{Ioctl, IoctlOutcome};
use loader_parsers::control::{decode_request, encode_status, ControlCommand};
use shared_abi::control::OpKind;
use shared_abi::NtStatus;

/// What the control device does.
pub static HANDLERS: ControlHandlers = ControlHandlers { control, shutdown, cancelled };

fn control(mut ioctl: Ioctl<'_>) -> IoctlOutcome {
    let code = ioctl.code();
    let command = match decode_request(code, ioctl.input(), ioctl.output_len()) {
        Ok(c) => c,
        Err(e) => {
            log!("control request 0x{code:08X} refused: {e}");
            loader().record_error(e, OpKind::CONTROL, None);
            return IoctlOutcome::Complete { status: e, information: 0 };
        }
    };
    if command == ControlCommand::QueryStatus {
        let snapshot = platform::status();
        return match encode_status(&snapshot, ioctl.output()) {
            Ok(n) => IoctlOutcome::Complete { status: NtStatus::SUCCESS, information: n },
            Err(e) => IoctlOutcome::Complete { status: e, information: 0 },
        };
    }
    let (pended, irp) = ioctl.pend();
    if let Err((Job::Control(_, Some(irp)), status)) = ops::start(Job::Control(command, irp)) {
        irp.complete(status, |_| 0);
    }
    IoctlOutcome::Pended(pended)
}

/// `IRP_MJ_SHUTDOWN`: the payload's shutdown hook, while file systems are
/// still up (seed 004). Nothing is persisted here: the active slot is
/// persisted when it changes.
fn shutdown() {
    loader().shutdown();
}

fn cancelled() {
    log!("a control request was cancelled by its caller; its operation goes on");
}
