//! A Wine session for the end-to-end suite, the benchmark and the demo.
//!
//! It keeps one long-lived `wine cmd.exe` fed by an open pipe, so that
//! `services.exe` and `winedevice.exe` (which hosts the real `.sys` images)
//! stay up for the whole scenario. The drivers' `DbgPrint` output arrives on
//! that process's stderr (channel `warn+debugstr`) and is kept in a log file.
//! Services are created through the service manager (`sc create`) with the
//! values `inf/*.inf` describes; `tests/inf.rs` checks the INFs carry them.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The loader's service name (as in `inf/loader.inf`).
pub use loader_parsers::config::LOADER_SERVICE;
/// The payload slot services (as in `inf/payload.inf`).
pub const SLOT_SERVICES: [&str; 2] = ["CounterFilterA", "CounterFilterB"];
/// The slot image files under `system32\drivers`.
pub const SLOT_IMAGES: [&str; 2] = ["payload_a.sys", "payload_b.sys"];
/// Per-slot altitudes (distinct, so both slots can be registered during an upgrade).
pub const SLOT_ALTITUDES: [&str; 2] = ["370030", "370031"];

/// A running Wine session with the project's package installed.
pub struct WineSession {
    prefix: PathBuf,
    package: PathBuf,
    test_payloads: PathBuf,
    keeper: Option<Child>,
    log_path: PathBuf,
}

/// What `loaderctl` printed and how it exited.
#[derive(Debug)]
pub struct CtlResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CtlResult {
    /// stdout and stderr together, for messages.
    #[must_use]
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map_or(here.clone(), Path::to_path_buf)
}

impl WineSession {
    /// Starts a session on the project's prefix (`target/wine/prefix`, made
    /// by `cargo xtask setup`) with the package from `target/package`.
    pub fn start() -> Result<WineSession, String> {
        let root = workspace_root();
        let prefix = root.join("target/wine/prefix");
        if !prefix.join(".serial-loader-ready").exists() {
            return Err(format!("Wine prefix {} is not prepared; run `cargo xtask setup`", prefix.display()));
        }
        let package = root.join("target/package/x64");
        let test_payloads = root.join("target/package/test-payloads");
        for f in ["loader.sys", "payload.sys", "loaderctl.exe"] {
            if !package.join(f).exists() {
                return Err(format!("{} is missing; run `cargo xtask build`", package.join(f).display()));
            }
        }
        let log_path = root.join("target/wine/session.log");
        let mut s = WineSession { prefix, package, test_payloads, keeper: None, log_path };
        s.kill_server();
        s.copy_drivers()?;
        s.spawn_keeper()?;
        Ok(s)
    }

    /// Pulls the plug: ends every Wine process at once, with no unload of
    /// any driver, as a power loss would.
    pub fn power_loss(&mut self) {
        // SIGKILL the processes hosting the drivers first: `wineserver -k9`
        // alone lets them run on for a moment (aborted waits return, and a
        // retirement in flight could still write the registry).
        for pid in Self::pids_of("winedevice.exe").into_iter().chain(Self::pids_of("services.exe")) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
        }
        if let Some(mut k) = self.keeper.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
        let _ = self.base_cmd("wineserver").arg("-k9").output();
        let _ = self.base_cmd("wineserver").arg("-w").output();
    }

    /// Boots again after a power loss: the registry is what was on disk.
    pub fn reboot(&mut self) -> Result<(), String> {
        self.power_loss();
        self.spawn_keeper()
    }

    /// An orderly shutdown and boot: Wine writes the registry to disk.
    pub fn clean_reboot(&mut self) -> Result<(), String> {
        if let Some(mut k) = self.keeper.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
        self.kill_server();
        self.spawn_keeper()
    }

    fn drivers_dir(&self) -> PathBuf {
        self.prefix.join("drive_c/windows/system32/drivers")
    }

    fn base_cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("WINEPREFIX", &self.prefix)
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("WINEDEBUG", "-all")
            .stdin(Stdio::null());
        c
    }

    fn kill_server(&self) {
        let _ = self.base_cmd("wineserver").arg("-k").output();
        let _ = self.base_cmd("wineserver").arg("-w").output();
    }

    fn copy_drivers(&self) -> Result<(), String> {
        let dir = self.drivers_dir();
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::copy(self.package.join("loader.sys"), dir.join("loader.sys")).map_err(|e| e.to_string())?;
        for img in SLOT_IMAGES {
            std::fs::copy(self.package.join("payload.sys"), dir.join(img)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn spawn_keeper(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(&self.log_path).map_err(|e| format!("cannot create log: {e}"))?;
        let mut child = self
            .base_cmd("wine")
            .arg("cmd.exe")
            .env("WINEDEBUG", "-all,warn+debugstr")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start wine: {e}"))?;
        // The keeper must be the process that starts wineserver and
        // services.exe, so the drivers' debug output lands in our log: wait
        // until its cmd.exe answers before running anything else.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if line.contains("SERIAL-LOADER-READY") {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        if let Some(stdin) = child.stdin.as_mut() {
            stdin.write_all(b"echo SERIAL-LOADER-READY\r\n").map_err(|e| e.to_string())?;
            stdin.flush().map_err(|e| e.to_string())?;
        }
        self.keeper = Some(child);
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "the Wine session did not come up within 60 s".to_owned())?;
        Ok(())
    }

    /// Runs `wine <args>` in this session.
    pub fn wine(&self, args: &[&str]) -> Output {
        self.base_cmd("wine").args(args).output().unwrap_or_else(|e| Output {
            status: std::process::ExitStatus::default(),
            stdout: Vec::new(),
            stderr: e.to_string().into_bytes(),
        })
    }

    /// Runs `loaderctl.exe <args>` from the package.
    pub fn loaderctl(&self, args: &[&str]) -> CtlResult {
        let exe = self.package.join("loaderctl.exe");
        let exe = exe.to_string_lossy().into_owned();
        let mut all = vec![exe.as_str()];
        all.extend_from_slice(args);
        let out = self.wine(&all);
        CtlResult {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).replace('\r', ""),
            stderr: String::from_utf8_lossy(&out.stderr).replace('\r', ""),
        }
    }

    /// Starts `loaderctl.exe <args>` without waiting for it (its output is
    /// discarded), for scenarios that act while a request is in flight.
    pub fn spawn_loaderctl(&self, args: &[&str]) -> std::io::Result<Child> {
        self.base_cmd("wine")
            .arg(self.package.join("loaderctl.exe"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// Runs `sc <args>`; returns (success, output).
    pub fn sc(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["sc"];
        all.extend_from_slice(args);
        let out = self.wine(&all);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text.replace('\r', ""))
    }

    fn reg_add(&self, key: &str, name: &str, kind: &str, data: &str) -> Result<(), String> {
        let out = self.wine(&["reg", "add", key, "/v", name, "/t", kind, "/d", data, "/f"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("reg add {key} {name} failed: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Creates the loader and both slot services as the INFs describe, with
    /// `ActiveSlot` and `UnloadTimeoutMs` as given.
    pub fn install(&self, active_slot: u32, unload_timeout_ms: u32) -> Result<(), String> {
        for svc in [LOADER_SERVICE, SLOT_SERVICES[0], SLOT_SERVICES[1]] {
            let _ = self.sc(&["stop", svc]);
            let _ = self.sc(&["delete", svc]);
        }
        let (ok, out) = self.sc(&[
            "create",
            LOADER_SERVICE,
            "type=",
            "kernel",
            "start=",
            "demand",
            "error=",
            "normal",
            "binPath=",
            "C:\\windows\\system32\\drivers\\loader.sys",
        ]);
        if !ok {
            return Err(format!("sc create {LOADER_SERVICE}: {out}"));
        }
        let params = format!("HKLM\\System\\CurrentControlSet\\Services\\{LOADER_SERVICE}\\Parameters");
        self.reg_add(&params, "SlotA", "REG_SZ", SLOT_SERVICES[0])?;
        self.reg_add(&params, "SlotB", "REG_SZ", SLOT_SERVICES[1])?;
        self.reg_add(&params, "ActiveSlot", "REG_DWORD", &active_slot.to_string())?;
        self.reg_add(&params, "UnloadTimeoutMs", "REG_DWORD", &unload_timeout_ms.to_string())?;
        for (i, svc) in SLOT_SERVICES.iter().enumerate() {
            let bin = format!("C:\\windows\\system32\\drivers\\{}", SLOT_IMAGES[i]);
            let (ok, out) = self.sc(&[
                "create",
                svc,
                "type=",
                "filesys",
                "start=",
                "demand",
                "error=",
                "normal",
                "group=",
                "FSFilter Activity Monitor",
                "binPath=",
                &bin,
            ]);
            if !ok {
                return Err(format!("sc create {svc}: {out}"));
            }
            let key = format!("HKLM\\System\\CurrentControlSet\\Services\\{svc}\\Instances");
            let instance = format!("{svc} Instance");
            self.reg_add(&key, "DefaultInstance", "REG_SZ", &instance)?;
            let ikey = format!("{key}\\{instance}");
            self.reg_add(&ikey, "Altitude", "REG_SZ", SLOT_ALTITUDES[i])?;
            self.reg_add(&ikey, "Flags", "REG_DWORD", "0")?;
        }
        Ok(())
    }

    /// Puts `image` (a file of the package or of the test payloads) in
    /// `slot`'s image path, as an administrator installing a version would.
    pub fn set_slot_image(&self, slot: usize, image: &str) -> Result<(), String> {
        let from = [self.package.join(image), self.test_payloads.join(image)]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| format!("no payload image {image}"))?;
        let to = self.drivers_dir().join(SLOT_IMAGES.get(slot).ok_or("bad slot")?);
        std::fs::copy(&from, &to).map(|_| ()).map_err(|e| format!("cannot install {image}: {e}"))
    }

    /// Reads a DWORD from the loader's `Parameters`.
    pub fn parameter(&self, name: &str) -> Option<u32> {
        let key = format!("HKLM\\System\\CurrentControlSet\\Services\\{LOADER_SERVICE}\\Parameters");
        let out = self.wine(&["reg", "query", &key, "/v", name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.contains(name))?;
        let hex = line.split_whitespace().last()?;
        u32::from_str_radix(hex.trim_start_matches("0x"), 16).ok()
    }

    /// Everything the drivers logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The path of the session log.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Process ids whose command line names `image`.
    fn pids_of(image: &str) -> Vec<u32> {
        let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
        rd.flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                String::from_utf8_lossy(&cmdline).to_lowercase().contains(image).then_some(pid)
            })
            .collect()
    }

    /// Resident and virtual memory (kB) and open handles of winedevice.exe
    /// processes, from /proc (the soak's growth check).
    #[must_use]
    pub fn device_process_usage(&self) -> Option<(u64, u64, u64)> {
        let pids = Self::pids_of("winedevice.exe");
        if pids.is_empty() {
            return None;
        }
        let mut total = (0, 0, 0);
        for pid in pids {
            let proc_dir = PathBuf::from("/proc").join(pid.to_string());
            let status = std::fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
            let field = |k: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(k))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let fds = std::fs::read_dir(proc_dir.join("fd")).map(|d| d.count() as u64).unwrap_or(0);
            total = (total.0 + field("VmRSS:"), total.1 + field("VmSize:"), total.2 + fds);
        }
        Some(total)
    }

    /// Ends the session (and with it every driver).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut k) = self.keeper.take() {
            if let Some(mut stdin) = k.stdin.take() {
                let _ = stdin.write_all(b"exit\r\n");
            }
            let _ = k.kill();
            let _ = k.wait();
        }
        self.kill_server();
    }
}

impl Drop for WineSession {
    fn drop(&mut self) {
        self.shutdown();
    }
}
