//! The simulator's control device, `\\.\FltSim`: what `fltsimctl.exe`
//! asks. Every request is answered at once (long work runs on the
//! simulator's threads and is polled through the snapshot), so no request
//! ever holds `winedevice.exe`'s one dispatch thread.
use crate::pod;
use crate::state::STATE;
use fltsim_abi as abi;
use kernel_sys::wrap::device::ControlHandlers;
use kernel_sys::wrap::irp::{Ioctl, IoctlOutcome};
use shared_abi::NtStatus;

/// What the control device does.
pub static HANDLERS: ControlHandlers = ControlHandlers { control, shutdown, cancelled };

fn done(status: NtStatus) -> IoctlOutcome {
    IoctlOutcome::Complete { status, information: 0 }
}

fn control(mut ioctl: Ioctl<'_>) -> IoctlOutcome {
    let code = abi::IoctlCode(ioctl.code());
    match code {
        abi::IOCTL_SIM_QUERY => {
            let mut snapshot = abi::Snapshot::empty();
            STATE.with(|s| s.snapshot(&mut snapshot));
            match pod::write(&snapshot, ioctl.output()) {
                Some(n) => IoctlOutcome::Complete { status: NtStatus::SUCCESS, information: n },
                None => done(NtStatus::BUFFER_TOO_SMALL),
            }
        }
        abi::IOCTL_SIM_RESET => {
            STATE.with(crate::state::Sim::reset_counts);
            done(NtStatus::SUCCESS)
        }
        abi::IOCTL_SIM_INJECT => match pod::read::<abi::InjectRequest>(ioctl.input()) {
            Some(r) => done(crate::inject::start(&r)),
            None => done(NtStatus::INFO_LENGTH_MISMATCH),
        },
        abi::IOCTL_SIM_INJECT_STOP => done(crate::inject::stop()),
        abi::IOCTL_SIM_UNLOAD | abi::IOCTL_SIM_DETACH | abi::IOCTL_SIM_ARM_RACE => {
            let Some(r) = pod::read::<abi::FilterRequest>(ioctl.input()) else {
                return done(NtStatus::INFO_LENGTH_MISMATCH);
            };
            let name = abi::units(&r.name);
            done(match code {
                abi::IOCTL_SIM_ARM_RACE => crate::race::arm(name, r.flags & abi::FLAG_DISARM != 0),
                abi::IOCTL_SIM_DETACH => crate::jobs::start_job(abi::JOB_DETACH, name, r.volume as usize),
                _ if r.flags & abi::FLAG_MANDATORY != 0 => crate::jobs::start_job(abi::JOB_UNLOAD_MANDATORY, name, 0),
                _ => crate::jobs::start_job(abi::JOB_UNLOAD, name, 0),
            })
        }
        abi::IOCTL_SIM_OPEN => {
            let Some(r) = pod::read::<abi::FileRequest>(ioctl.input()) else {
                return done(NtStatus::INFO_LENGTH_MISMATCH);
            };
            let reply = match crate::inject::open(r.volume as usize, abi::units(&r.name)) {
                Ok((id, status)) => {
                    abi::FileReply { size: abi::size32::<abi::FileReply>(), status: status.0, id, reserved: 0 }
                }
                Err(e) => return done(e),
            };
            match pod::write(&reply, ioctl.output()) {
                Some(n) => IoctlOutcome::Complete { status: NtStatus::SUCCESS, information: n },
                None => done(NtStatus::BUFFER_TOO_SMALL),
            }
        }
        abi::IOCTL_SIM_CLOSE => match pod::read::<abi::FileRequest>(ioctl.input()) {
            Some(r) => done(crate::inject::close(r.id)),
            None => done(NtStatus::INFO_LENGTH_MISMATCH),
        },
        _ => done(NtStatus::INVALID_DEVICE_REQUEST),
    }
}

/// System shutdown: nothing to flush.
fn shutdown() {}

/// No request is ever pended.
fn cancelled() {}
