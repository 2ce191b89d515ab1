//! The simulator's control device, `\\.\FltSim`, as typed calls.
use crate::win::{from_bytes, to_bytes, Device};
use fltsim_abi as abi;
use shared_abi::NtStatus;
use std::time::{Duration, Instant};

/// The simulator.
pub struct Sim {
    device: Device,
}

/// How often the tool looks again while it waits.
pub const POLL: Duration = Duration::from_millis(5);

impl Sim {
    pub fn open() -> Result<Sim, String> {
        Ok(Sim { device: Device::open(abi::WIN32_DEVICE_PATH)? })
    }

    fn call(&self, code: abi::IoctlCode, input: &[u8]) -> Result<(), String> {
        let (status, _) = self.device.control(code.0, input, 0);
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("request 0x{:08X} failed: {status}", code.0))
        }
    }

    pub fn query(&self) -> Result<abi::Snapshot, String> {
        let (status, out) = self.device.control(abi::IOCTL_SIM_QUERY.0, &[], std::mem::size_of::<abi::Snapshot>());
        if !status.is_success() {
            return Err(format!("query failed: {status}"));
        }
        from_bytes(&out).ok_or_else(|| format!("short snapshot ({} bytes)", out.len()))
    }

    pub fn reset(&self) -> Result<(), String> {
        self.call(abi::IOCTL_SIM_RESET, &[])
    }

    pub fn inject(&self, r: &abi::InjectRequest) -> Result<(), String> {
        self.call(abi::IOCTL_SIM_INJECT, &to_bytes(r))
    }

    pub fn inject_stop(&self) -> Result<(), String> {
        self.call(abi::IOCTL_SIM_INJECT_STOP, &[])
    }

    fn filter_request(&self, code: abi::IoctlCode, name: &str, flags: u32, volume: u32) -> Result<(), String> {
        let r = abi::FilterRequest {
            size: abi::size32::<abi::FilterRequest>(),
            flags,
            volume,
            reserved: 0,
            name: abi::utf16(name),
        };
        self.call(code, &to_bytes(&r))
    }

    /// Arms (or disarms) the race for `name`.
    pub fn arm(&self, name: &str, disarm: bool) -> Result<(), String> {
        self.filter_request(abi::IOCTL_SIM_ARM_RACE, name, if disarm { abi::FLAG_DISARM } else { 0 }, 0)
    }

    /// Runs an unload or detach job to its end (bounded); its status.
    pub fn job(
        &self,
        code: abi::IoctlCode,
        name: &str,
        flags: u32,
        volume: u32,
        bound: Duration,
    ) -> Result<NtStatus, String> {
        let before = self.query()?.job.seq;
        self.filter_request(code, name, flags, volume)?;
        let deadline = Instant::now() + bound;
        loop {
            let st = self.query()?;
            if st.job.seq > before && st.job.state == abi::JOB_DONE {
                return Ok(NtStatus(st.job.status));
            }
            if Instant::now() > deadline {
                return Err(format!("the request did not finish within {} s", bound.as_secs()));
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn open_file(&self, volume: u32, name: &str) -> Result<abi::FileReply, String> {
        let r = abi::FileRequest {
            size: abi::size32::<abi::FileRequest>(),
            volume,
            id: 0,
            reserved: 0,
            name: abi::utf16(name),
        };
        let (status, out) =
            self.device.control(abi::IOCTL_SIM_OPEN.0, &to_bytes(&r), std::mem::size_of::<abi::FileReply>());
        if !status.is_success() {
            return Err(format!("open failed: {status}"));
        }
        from_bytes(&out).ok_or_else(|| "short reply".to_owned())
    }

    pub fn close_file(&self, id: u32) -> Result<(), String> {
        let r = abi::FileRequest {
            size: abi::size32::<abi::FileRequest>(),
            volume: 0,
            id,
            reserved: 0,
            name: [0; abi::PATH_CHARS],
        };
        self.call(abi::IOCTL_SIM_CLOSE, &to_bytes(&r))
    }

    /// Waits (bounded) until the injection is done; its last status.
    pub fn wait_injection(&self, bound: Duration) -> Result<abi::InjectStatus, String> {
        let deadline = Instant::now() + bound;
        loop {
            let st = self.query()?;
            if st.inject.state != abi::INJECT_RUNNING {
                return Ok(st.inject);
            }
            if Instant::now() > deadline {
                let _ = self.inject_stop();
                return Err(format!("the injection did not finish within {} s (stopped)", bound.as_secs()));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits (bounded) until the armed race has fired and its callback returned.
    pub fn wait_race(&self, fired_before: u64, bound: Duration) -> Result<abi::RaceStatus, String> {
        let deadline = Instant::now() + bound;
        loop {
            let st = self.query()?;
            if st.race.fired > fired_before && st.race.state == abi::RACE_DONE {
                return Ok(st.race);
            }
            if Instant::now() > deadline {
                return Err(format!("the armed race did not fire and end within {} s", bound.as_secs()));
            }
            std::thread::sleep(POLL);
        }
    }
}

/// A UTF-16 name field as text.
pub fn text(units: &[u16]) -> String {
    String::from_utf16_lossy(abi::units(units))
}
