//! Installing the package into a session's prefix the way an administrator
//! does: `rundll32 setupapi.dll,InstallHinfSection DefaultInstall 132
//! <inf>` on `payload.inf`, then on `loader.inf`; and uninstalling with the
//! INFs' `DefaultUninstall` sections in the reverse order.
//!
//! Wine 8's setupapi (`dlls/setupapi/install.c`) processes everything these
//! INFs say except two things, which this module restates, and only them
//! (`tests/inf.rs` ties both lists to the INFs):
//! - `Dependencies` of a service-install section (a FIXME in `add_service`):
//!   written as the `DependOnService` value it would become;
//! - every `DelService` line of a section after the first (the loop of
//!   `SetupInstallServicesFromInfSectionW` looks for the next `AddService`
//!   line instead): those services are stopped and deleted with `sc`.
//!
//! Every command is bounded and writes to files, as all of the harness's.
use super::{WineSession, LOADER_SERVICE, SLOT_SERVICES};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// `Dependencies` lines Wine's setupapi skips: (service, dependency), in
/// install order (payload.inf, then loader.inf).
pub const RESTATED_DEPENDENCIES: [(&str, &str); 3] =
    [("CounterFilterA", "FltMgr"), ("CounterFilterB", "FltMgr"), ("SerialLoader", "FltMgr")];
/// `DelService` lines Wine's setupapi skips (all but the first of a section).
pub const RESTATED_DELETES: [&str; 1] = ["CounterFilterB"];
/// The INFs in install order.
pub const INFS: [&str; 2] = ["payload.inf", "loader.inf"];
/// The services key.
const SERVICES_KEY: &str = "HKLM\\System\\CurrentControlSet\\Services";
/// How long an uninstalled service may take to disappear (its stop retires
/// payloads first: up to the unload bound of the scenario, plus slack).
const GONE_BOUND: Duration = Duration::from_secs(90);

/// What an installation can change: the registry below `Services` (the
/// services, their `Parameters` and `Instances`, the event source) and the
/// drivers folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallState {
    /// Every key of `HKLM\System\CurrentControlSet\Services` with its
    /// values as `reg export` writes them, except Wine's own host-process
    /// services (`Winedevice*`), which come and go with driver groups.
    pub registry: BTreeMap<String, Vec<String>>,
    /// `system32\drivers`: file name → (size, content hash).
    pub drivers: BTreeMap<String, (u64, u64)>,
}

impl InstallState {
    /// The differences to `other`, one line each (empty when equal).
    #[must_use]
    pub fn diff(&self, other: &InstallState) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.registry {
            match other.registry.get(k) {
                None => out.push(format!("registry key {k} only before")),
                Some(w) if w != v => out.push(format!("registry key {k}: {v:?} before, {w:?} after")),
                Some(_) => {}
            }
        }
        for k in other.registry.keys().filter(|k| !self.registry.contains_key(*k)) {
            out.push(format!("registry key {k} only after"));
        }
        for (f, v) in &self.drivers {
            match other.drivers.get(f) {
                None => out.push(format!("drivers\\{f} only before")),
                Some(w) if w != v => out.push(format!("drivers\\{f} changed: {v:?} -> {w:?}")),
                Some(_) => {}
            }
        }
        for f in other.drivers.keys().filter(|f| !self.drivers.contains_key(*f)) {
            out.push(format!("drivers\\{f} only after"));
        }
        out
    }
}

/// The Windows path of a file of the host (Wine maps `Z:` to `/`).
fn windows_path(p: &Path) -> String {
    format!("Z:{}", p.to_string_lossy().replace('/', "\\"))
}

fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Parses a `reg export` file (UTF-16LE with a BOM, or UTF-8) into keys and
/// their value lines.
fn parse_reg_export(bytes: &[u8]) -> BTreeMap<String, Vec<String>> {
    let text = if bytes.starts_with(&[0xFF, 0xFE]) {
        let units: Vec<u16> = bytes[2..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        // Long binary values continue on the next line after a backslash.
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont.trim_start());
            continue;
        }
        let line = if pending.is_empty() { line.to_owned() } else { std::mem::take(&mut pending) + line.trim_start() };
        if let Some(key) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(key.to_owned());
            out.entry(key.to_owned()).or_default();
        } else if let Some(key) = &current {
            if !line.trim().is_empty() {
                out.entry(key.clone()).or_default().push(line);
            }
        }
    }
    out.retain(|k, _| !k.to_ascii_lowercase().contains("\\winedevice"));
    out
}

impl WineSession {
    /// `rundll32 setupapi.dll,InstallHinfSection <section> 132 <inf>` on an
    /// INF of the package, as an administrator runs it.
    pub fn install_hinf_section(&self, section: &str, inf: &str) -> Result<(), String> {
        let path = windows_path(&self.package.join(inf));
        let r = self.wine(&["rundll32", "setupapi.dll,InstallHinfSection", section, "132", &path]);
        if r.code == 0 {
            Ok(())
        } else {
            Err(format!("InstallHinfSection {section} {inf} exited with {}: {}", r.code, r.all()))
        }
    }

    /// Whether `HKLM\...\Services\<name>` exists.
    #[must_use]
    ///
    /// Only `reg`'s own answer "Unable to find the specified registry key"
    /// means no: a `reg query` that ended any other way (killed by its
    /// bound on a busy machine, say) gave no answer and is asked again,
    /// a bounded number of times, saying so.
    pub fn service_key_exists(&self, name: &str) -> bool {
        let key = format!("{SERVICES_KEY}\\{name}");
        for attempt in 1..=3 {
            let r = self.wine(&["reg", "query", &key]);
            if r.code == 0 {
                return true;
            }
            if r.all().contains("Unable to find the specified registry key") {
                return false;
            }
            eprintln!(
                "harness: `reg query {key}` gave no answer (attempt {attempt}, exit {}): {}",
                r.code,
                r.all().trim()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }

    /// Installs the package from its INFs (payload.inf, then loader.inf),
    /// then restates what Wine's setupapi skipped ([`RESTATED_DEPENDENCIES`]).
    /// Nothing is started: the loader is `SERVICE_SYSTEM_START`, so it
    /// starts at the next boot, or with `sc start`.
    pub fn install_from_infs(&self) -> Result<(), String> {
        for inf in INFS {
            self.install_hinf_section("DefaultInstall", inf)?;
        }
        for (service, dependency) in RESTATED_DEPENDENCIES {
            let key = format!("{SERVICES_KEY}\\{service}");
            self.reg_add(&key, "DependOnService", "REG_MULTI_SZ", dependency)?;
        }
        for service in [LOADER_SERVICE, SLOT_SERVICES[0], SLOT_SERVICES[1]] {
            if !self.service_key_exists(service) {
                return Err(format!("the INFs did not create service {service}"));
            }
        }
        Ok(())
    }

    /// Uninstalls with the INFs' `DefaultUninstall` (loader.inf first: its
    /// stop retires the payload; then payload.inf), restates the
    /// `DelService` lines Wine skipped ([`RESTATED_DELETES`]), and waits
    /// (bounded) until the services are gone: a service marked for deletion
    /// disappears once it has stopped.
    pub fn uninstall_from_infs(&self) -> Result<(), String> {
        // As the INF's header says: stop the loader first (its stop retires
        // the payload), so the images are no longer in use and go now, not
        // at the next reboot (`DELFLG_IN_USE`, which Wine ignores).
        if self.service_key_exists(LOADER_SERVICE) {
            let _ = self.sc(&["stop", LOADER_SERVICE]);
            let deadline = Instant::now() + GONE_BOUND;
            loop {
                match self.service_state(LOADER_SERVICE) {
                    None => break,
                    Some(state) if state == "STOPPED" => break,
                    Some(state) if Instant::now() >= deadline => {
                        return Err(format!(
                            "{LOADER_SERVICE} is still {state} {} s after sc stop",
                            GONE_BOUND.as_secs()
                        ))
                    }
                    Some(_) => std::thread::sleep(Duration::from_millis(250)),
                }
            }
        }
        for inf in INFS.iter().rev() {
            self.install_hinf_section("DefaultUninstall", inf)?;
        }
        for service in RESTATED_DELETES {
            let _ = self.sc(&["stop", service]);
            let (ok, out) = self.sc(&["delete", service]);
            if !ok && self.service_key_exists(service) {
                return Err(format!("sc delete {service}: {out}"));
            }
        }
        let deadline = Instant::now() + GONE_BOUND;
        loop {
            let left: Vec<&str> = [LOADER_SERVICE, SLOT_SERVICES[0], SLOT_SERVICES[1]]
                .into_iter()
                .filter(|s| self.service_key_exists(s))
                .collect();
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "after the uninstall, services {left:?} still exist after {} s",
                    GONE_BOUND.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Removes an installation (services or files) a previous session left
    /// in the prefix.
    pub fn uninstall_leftovers(&self) -> Result<(), String> {
        let files = ["loader.sys", super::SLOT_IMAGES[0], super::SLOT_IMAGES[1]];
        if [LOADER_SERVICE, SLOT_SERVICES[0], SLOT_SERVICES[1]].iter().any(|s| self.service_key_exists(s))
            || files.iter().any(|f| self.drivers_dir().join(f).exists())
        {
            self.uninstall_from_infs()?;
        }
        Ok(())
    }

    /// The registry below `Services` and the drivers folder, now.
    pub fn install_state(&self) -> Result<InstallState, String> {
        let file = self.scratch.join("services.reg");
        let _ = std::fs::remove_file(&file);
        let r = self.wine(&["reg", "export", SERVICES_KEY, &windows_path(&file), "/y"]);
        if r.code != 0 {
            return Err(format!("reg export {SERVICES_KEY} failed: {}", r.all()));
        }
        let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let registry = parse_reg_export(&bytes);
        if registry.is_empty() {
            return Err("reg export wrote no keys".into());
        }
        let mut drivers = BTreeMap::new();
        let dir = self.drivers_dir();
        for e in std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?.flatten() {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            drivers.insert(e.file_name().to_string_lossy().into_owned(), (bytes.len() as u64, content_hash(&bytes)));
        }
        Ok(InstallState { registry, drivers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reg_export_is_read_into_keys_and_values() {
        let text = "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\S\\A]\r\n\"x\"=dword:00000001\r\n\"b\"=hex:01,\\\r\n  02\r\n\r\n[HKEY_LOCAL_MACHINE\\S\\Winedevice1]\r\n\"y\"=\"z\"\r\n";
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let keys = parse_reg_export(&bytes);
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys["HKEY_LOCAL_MACHINE\\S\\A"], ["\"x\"=dword:00000001", "\"b\"=hex:01,02"]);
        let a = InstallState { registry: keys.clone(), drivers: BTreeMap::new() };
        let mut b = a.clone();
        b.drivers.insert("loader.sys".into(), (1, 2));
        assert_eq!(a.diff(&b), ["drivers\\loader.sys only after"]);
        assert!(a.diff(&a).is_empty());
        assert_eq!(windows_path(Path::new("/work/x/loader.inf")), "Z:\\work\\x\\loader.inf");
    }
}
