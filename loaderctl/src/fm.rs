//! The Filter Manager this machine has, for `instances` and `diagnose`.
//!
//! On Windows: fltlib (instances), the registry (configured instances,
//! image paths) and the loaded-driver list. Under Wine, whose fltlib
//! routines are stubs that would end the process if called and whose
//! loaded-driver list is a fixed fake: the test world's Filter Manager
//! (`tests/fltmgr`) through its query device `\\.\FltSim`, when it runs.
//! Safe code; the system calls are `os.rs`'s.
use crate::instances::{Row, SlotFilter, Source};
use crate::ops::FilterManager;
use fltsim_abi as sim;

/// This machine's Filter Manager.
pub struct SystemFilterManager;

#[cfg(windows)]
mod imp {
    use super::SystemFilterManager;
    use crate::instances::{self, instances_key, Row, SlotFilter, Source, State};
    use crate::os;
    use crate::transport::{Input, Output};
    use fltsim_abi as sim;

    /// The test Filter Manager's query device.
    const FLTSIM_PATH: &str = sim::WIN32_DEVICE_PATH;

    impl SystemFilterManager {
        pub(super) fn query_sim() -> Option<sim::Snapshot> {
            let dev = crate::device::Device::open(FLTSIM_PATH).ok()?;
            let len = u32::try_from(core::mem::size_of::<sim::Snapshot>()).ok()?;
            let out = crate::transport::Control::control(
                &dev,
                sim::IOCTL_SIM_QUERY,
                &Input::Bytes(Vec::new()),
                Output::Len(len),
            );
            if !out.status.is_success() {
                return None;
            }
            crate::plain::snapshot(&out.output)
        }

        pub(super) fn instances_impl(filters: &[SlotFilter]) -> Result<(Source, Vec<Row>), String> {
            if os::under_wine() {
                return match Self::query_sim() {
                    Some(snap) => Ok((Source::TestFilterManager, instances::from_snapshot(&snap, filters))),
                    None => Err("this is Wine, whose fltlib cannot enumerate filter instances, and the test Filter Manager (\\\\.\\FltSim) is not running".to_owned()),
                };
            }
            let mut rows = Vec::new();
            for f in filters {
                let found = os::filter_instances(&f.service).map_err(|hr| {
                    format!(
                        "fltlib could not enumerate the instances of {}: HRESULT 0x{:08X}",
                        f.service,
                        hr.cast_unsigned()
                    )
                })?;
                rows.extend(found.into_iter().map(|i| Row {
                    slot: Some(f.slot),
                    filter: f.service.clone(),
                    volume: Some(i.volume),
                    volume_dos: i.dos_name,
                    altitude: i.altitude,
                    instance: i.instance,
                    state: State::Attached,
                }));
            }
            Ok((Source::Fltlib, rows))
        }

        pub(super) fn default_instance_impl(service: &str) -> Option<(String, String)> {
            let key = instances_key(service);
            let name = os::registry_string(&key, "DefaultInstance")?;
            let altitude = os::registry_string(&format!("{key}\\{name}"), "Altitude").unwrap_or_else(|| "-".to_owned());
            Some((name, altitude))
        }

        pub(super) fn loaded_drivers_impl() -> Option<Vec<String>> {
            if os::under_wine() {
                return None;
            }
            os::loaded_driver_names()
        }

        pub(super) fn image_of_impl(service: &str) -> Option<String> {
            let path = os::registry_string(&format!("SYSTEM\\CurrentControlSet\\Services\\{service}"), "ImagePath")?;
            path.rsplit(['\\', '/']).next().map(str::to_owned).filter(|s| !s.is_empty())
        }
    }
}

impl FilterManager for SystemFilterManager {
    fn instances(&self, filters: &[SlotFilter]) -> Result<(Source, Vec<Row>), String> {
        #[cfg(windows)]
        {
            Self::instances_impl(filters)
        }
        #[cfg(not(windows))]
        {
            let _ = filters;
            Err("the Filter Manager can only be asked on Windows (or under Wine)".to_owned())
        }
    }

    fn snapshot(&self) -> Option<sim::Snapshot> {
        #[cfg(windows)]
        {
            if crate::os::under_wine() {
                return Self::query_sim();
            }
        }
        None
    }

    fn default_instance(&self, service: &str) -> Option<(String, String)> {
        #[cfg(windows)]
        {
            Self::default_instance_impl(service)
        }
        #[cfg(not(windows))]
        {
            let _ = service;
            None
        }
    }

    fn loaded_drivers(&self) -> Option<Vec<String>> {
        #[cfg(windows)]
        {
            Self::loaded_drivers_impl()
        }
        #[cfg(not(windows))]
        {
            None
        }
    }

    fn image_of(&self, service: &str) -> Option<String> {
        #[cfg(windows)]
        {
            Self::image_of_impl(service)
        }
        #[cfg(not(windows))]
        {
            let _ = service;
            None
        }
    }
}
