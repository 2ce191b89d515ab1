//! The loader's control device, `\\.\SerialLoader`, for the loops that
//! upgrade many times inside one process (the race under the loader, the
//! storm). Requests and replies go through `loader_parsers::control`, the
//! loader's own encoders and decoders.
use crate::win::Device;
use loader_parsers::control::{decode_reply, decode_status, encode_request, REPLY_LEN, STATUS_LEN};
use shared_abi::control::{
    ControlRequest, LoaderStatus, SlotState, IOCTL_LOADER_QUERY_STATUS, IOCTL_LOADER_ROLLBACK, IOCTL_LOADER_UPGRADE,
    WIN32_DEVICE_PATH,
};
use shared_abi::{NtStatus, Slot, ABI_MAJOR, ABI_MINOR};
use std::time::{Duration, Instant};

pub struct Loader {
    device: Device,
}

impl Loader {
    pub fn open() -> Result<Loader, String> {
        Ok(Loader { device: Device::open(WIN32_DEVICE_PATH)? })
    }

    pub fn status(&self) -> Result<LoaderStatus, String> {
        let (status, out) = self.device.control(IOCTL_LOADER_QUERY_STATUS.0, &[], STATUS_LEN);
        if !status.is_success() {
            return Err(format!("loader status: {status}"));
        }
        decode_status(&out).map_err(|e| format!("loader status: {e}"))
    }

    /// `upgrade`, asked again while the loader answers
    /// `STATUS_DEVICE_BUSY` (bounded): its status can show it idle a moment
    /// before its operation thread has let go, and a client retries then.
    pub fn upgrade_when_free(&self, slot: Option<Slot>) -> NtStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.upgrade(slot);
            if status != NtStatus::DEVICE_BUSY || Instant::now() > deadline {
                return status;
            }
            std::thread::sleep(crate::sim::POLL);
        }
    }

    /// `rollback`, asked again while the loader answers `STATUS_DEVICE_BUSY`
    /// (bounded), as [`Loader::upgrade_when_free`].
    pub fn rollback_when_free(&self) -> NtStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.request(IOCTL_LOADER_ROLLBACK.0, None);
            if status != NtStatus::DEVICE_BUSY || Instant::now() > deadline {
                return status;
            }
            std::thread::sleep(crate::sim::POLL);
        }
    }

    /// `upgrade` into `slot` (or the inactive one); the loader's answer.
    pub fn upgrade(&self, slot: Option<Slot>) -> NtStatus {
        self.request(IOCTL_LOADER_UPGRADE.0, slot)
    }

    fn request(&self, code: u32, slot: Option<Slot>) -> NtStatus {
        let req = ControlRequest {
            size: fltsim_abi::size32::<ControlRequest>(),
            abi_major: ABI_MAJOR,
            abi_minor: ABI_MINOR,
            slot: Slot::word_of(slot),
            flags: 0,
        };
        let (status, out) = self.device.control(code, &encode_request(&req), REPLY_LEN);
        match decode_reply(&out) {
            Ok(reply) if status.is_success() => NtStatus(reply.status),
            _ => status,
        }
    }

    /// Waits (bounded) until no operation runs and no slot is half-way
    /// (what `loaderctl cycle` waits for between two upgrades).
    pub fn wait_settled(&self, bound: Duration) -> Result<LoaderStatus, String> {
        self.wait_until(bound, |s| {
            matches!(SlotState(s), SlotState::EMPTY | SlotState::ACTIVE | SlotState::FAILED | SlotState::STOPPED)
        })
    }

    /// Waits (bounded) until no operation runs and no slot is loading,
    /// registering or retiring (a slot may be `stuck`: a driver stopped from
    /// outside that is still loaded).
    pub fn wait_idle(&self, bound: Duration) -> Result<LoaderStatus, String> {
        self.wait_until(bound, |s| {
            !matches!(SlotState(s), SlotState::LOADING | SlotState::REGISTERING | SlotState::RETIRING)
        })
    }

    fn wait_until(&self, bound: Duration, slot_ok: impl Fn(u32) -> bool) -> Result<LoaderStatus, String> {
        let deadline = Instant::now() + bound;
        loop {
            let st = self.status()?;
            let settled = st.busy == 0 && st.slots.iter().all(|s| slot_ok(s.state));
            if settled {
                return Ok(st);
            }
            if Instant::now() > deadline {
                return Err(format!("the loader did not settle within {} s", bound.as_secs()));
            }
            std::thread::sleep(crate::sim::POLL);
        }
    }
}

/// The active slot of a status.
pub fn active(st: &LoaderStatus) -> Option<Slot> {
    Slot::from_word(st.active_slot)
}
