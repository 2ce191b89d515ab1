//! A Wine session for the end-to-end suite, the benchmark and the demo.
//!
//! It keeps one long-lived `wine cmd.exe` fed by an open pipe, so that
//! `services.exe` and `winedevice.exe` (which hosts the real `.sys` images)
//! stay up for the whole scenario. The drivers' `DbgPrintEx` output arrives
//! on that process's stderr (channel `warn+debugstr`) and is kept in a log
//! file.
//!
//! Rules that keep the harness from hanging or leaking:
//! - no Wine child ever writes to a pipe the harness reads: every command's
//!   stdout and stderr go to files (a `services.exe` started by a
//!   short-lived `wine sc ...` inherits that command's output, and a pipe
//!   would then never see end-of-file);
//! - every Wine command runs in its own process group with a time bound,
//!   and the whole group is killed when the bound expires;
//! - the session's processes are found by this prefix (`WINEPREFIX` in
//!   their environment), never by name across the machine, and the session
//!   ends with none of them left (`wineserver -k`, then a kill of anything
//!   of the prefix that survived, checked).
use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "install.rs"]
mod install;
pub use install::{InstallState, INFS, RESTATED_DELETES, RESTATED_DEPENDENCIES};

/// The loader's service name (as in `inf/loader.inf`).
pub use loader_parsers::config::LOADER_SERVICE;
/// The payload slot services (as in `inf/payload.inf`).
pub const SLOT_SERVICES: [&str; 2] = ["CounterFilterA", "CounterFilterB"];
/// The slot image files under `system32\drivers`.
pub const SLOT_IMAGES: [&str; 2] = ["payload_a.sys", "payload_b.sys"];
/// Per-slot altitudes (distinct, so both slots can be registered during an upgrade).
pub const SLOT_ALTITUDES: [&str; 2] = ["370030", "370031"];

/// The bound on one ordinary Wine command (`sc`, `reg`, `loaderctl status`).
pub const COMMAND_BOUND: Duration = Duration::from_mins(1);
/// The bound on the session coming up.
pub const START_BOUND: Duration = Duration::from_mins(2);

/// A running Wine session with the project's package installed.
pub struct WineSession {
    prefix: PathBuf,
    package: PathBuf,
    test_payloads: PathBuf,
    keeper: Option<Child>,
    log_path: PathBuf,
    scratch: PathBuf,
}

/// What a command printed and how it exited.
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

static COMMANDS: AtomicU64 = AtomicU64::new(0);
/// What Wine's `start.exe /exec` prints when the program it was handed
/// could not be started at all.
const NEVER_STARTED: &str = "ShellExecuteEx failed";
/// What Wine prints, and then exits with code 1, when address-space
/// layout randomisation put something where it must map the shared user
/// data (`0x7ffe0000`): no Windows code of the program ran. Seen here once
/// in about 1,600 starts of two start loops side by side.
const SHARED_DATA_NOT_MAPPED: &str = "failed to map the shared user data";
/// Wine's debug channels for every command: nothing but the errors of its
/// virtual memory code, where [`SHARED_DATA_NOT_MAPPED`] is reported.
const WINEDEBUG: &str = "-all,err+virtual";
/// How many times a program that never started is started.
const NEVER_STARTED_TRIES: u32 = 3;

/// Why a failed run of `program` is Wine's failure to start it, not the
/// program's answer (`None`: the answer stands). `started`: fltsimctl's
/// start marker exists.
fn never_started(program: &str, r: &CtlResult, started: bool) -> Option<String> {
    if r.code == 0 {
        None
    } else if r.all().contains(NEVER_STARTED) {
        Some(NEVER_STARTED.to_owned())
    } else if r.stderr.contains(SHARED_DATA_NOT_MAPPED) {
        Some(SHARED_DATA_NOT_MAPPED.to_owned())
    } else if program.ends_with("loaderctl.exe") && r.code == 1 && r.all().trim().is_empty() {
        Some("exit 1, no output: not loaderctl's answer".to_owned())
    } else if program.ends_with("fltsimctl.exe") && !started && r.code != -2 {
        // -2: killed on its bound, which a retry would only double.
        Some(format!("exit {}, and fltsimctl never created its start marker", r.code))
    } else {
        None
    }
}

/// Waits for `child` at most `bound`; on expiry kills its process group.
/// `None` if it had to be killed.
fn wait_bounded(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + bound;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill").args(["-9", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
}

impl WineSession {
    /// Starts a session on the project's prefix for the architecture under
    /// test (`target/wine/prefix`, or `target/wine-x86/prefix` for x86, made
    /// by `cargo xtask setup`) with that architecture's package
    /// (`crate::arch`).
    pub fn start() -> Result<WineSession, String> {
        // `SERIAL_LOADER_WINE_DIR` gives a session a Wine directory of its
        // own (prefix, log, scratch), so two runs on one machine never share
        // (and never kill) each other's wineserver.
        let wine_dir =
            std::env::var_os("SERIAL_LOADER_WINE_DIR").map_or_else(crate::arch::default_wine_dir, PathBuf::from);
        let prefix = wine_dir.join("prefix");
        if !prefix.join(".serial-loader-ready").exists() {
            return Err(format!("Wine prefix {} is not prepared; run `cargo xtask setup`", prefix.display()));
        }
        let package = crate::arch::package_dir();
        let test_payloads = crate::arch::test_payload_dir();
        for f in ["loader.sys", "payload.sys", "loaderctl.exe"] {
            if !package.join(f).exists() {
                return Err(format!("{} is missing; run `cargo xtask build`", package.join(f).display()));
            }
        }
        let sim = crate::fltsim::sim_image();
        if !sim.exists() {
            return Err(format!("{} is missing; run `cargo xtask build`", sim.display()));
        }
        let log_path = wine_dir.join("session.log");
        let scratch = wine_dir.join("out");
        std::fs::create_dir_all(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
        let mut s = WineSession { prefix, package, test_payloads, keeper: None, log_path, scratch };
        s.end_all();
        s.copy_drivers()?;
        s.spawn_keeper()?;
        Ok(s)
    }

    /// The prefix this session runs in.
    #[must_use]
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Pulls the plug: ends every Wine process at once, with no unload of
    /// any driver, as a power loss would.
    pub fn power_loss(&mut self) {
        // SIGKILL the processes hosting the drivers first: `wineserver -k9`
        // alone lets them run on for a moment (aborted waits return, and a
        // retirement in flight could still write the registry).
        for pid in self.pids_of("winedevice.exe").into_iter().chain(self.pids_of("services.exe")) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        self.end_keeper();
        self.server(&["-k9"]);
        self.server(&["-w"]);
        self.reap_leftovers();
    }

    /// Boots again after a power loss: the registry is what was on disk.
    pub fn reboot(&mut self) -> Result<(), String> {
        self.power_loss();
        self.spawn_keeper()
    }

    /// An orderly shutdown and boot: Wine writes the registry to disk.
    pub fn clean_reboot(&mut self) -> Result<(), String> {
        self.end_all();
        self.spawn_keeper()
    }

    fn drivers_dir(&self) -> PathBuf {
        self.prefix.join("drive_c/windows/system32/drivers")
    }

    /// `program` in this session's prefix. `wine` is the loader of the
    /// architecture under test (`crate::arch::wine_loader`), never Debian's
    /// `wine` wrapper: with `wine32` installed the wrapper always starts the
    /// 32-bit loader, which in a 64-bit prefix runs the 32-bit `sc.exe`, and
    /// a driver service a 32-bit `sc` created in a 64-bit prefix gets the 32-bit
    /// `winedevice.exe`, which cannot load an x64 driver.
    fn base_cmd(&self, program: &str) -> Command {
        let mut c = if program == "wine" {
            let loader = crate::arch::wine_loader();
            let mut c = Command::new(loader);
            c.env("WINELOADER", loader);
            c
        } else {
            Command::new(program)
        };
        c.env("WINEPREFIX", &self.prefix)
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("WINEDEBUG", WINEDEBUG)
            .stdin(Stdio::null())
            .process_group(0);
        c
    }

    /// `wineserver <args>`, bounded.
    fn server(&self, args: &[&str]) {
        let mut c = self.base_cmd("wineserver");
        c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        if let Ok(mut child) = c.spawn() {
            let _ = wait_bounded(&mut child, Duration::from_secs(30));
        }
    }

    fn end_keeper(&mut self) {
        if let Some(mut k) = self.keeper.take() {
            if let Some(mut stdin) = k.stdin.take() {
                let _ = stdin.write_all(b"exit\r\n");
            }
            let _ = k.kill();
            let _ = k.wait();
        }
    }

    /// Ends the session's every process: the keeper, the server and what it
    /// started; anything of the prefix still alive afterwards is killed.
    fn end_all(&mut self) {
        self.end_keeper();
        self.server(&["-k"]);
        self.server(&["-w"]);
        self.reap_leftovers();
    }

    /// Kills every process whose environment names this prefix.
    fn reap_leftovers(&self) {
        for _ in 0..3 {
            let pids = self.prefix_pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).stderr(Stdio::null()).status();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn copy_drivers(&self) -> Result<(), String> {
        let dir = self.drivers_dir();
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // loader.sys and the slot images are installed by the INFs (`install`).
        // The test world's Filter Manager, over Wine's builtin placeholder.
        std::fs::copy(crate::fltsim::sim_image(), dir.join("fltmgr.sys")).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn spawn_keeper(&mut self) -> Result<(), String> {
        self.spawn_keeper_try(1)
    }

    fn spawn_keeper_try(&mut self, attempt: u32) -> Result<(), String> {
        let log = std::fs::File::create(&self.log_path).map_err(|e| format!("cannot create log: {e}"))?;
        let out_path = self.scratch.join("keeper.out");
        let out = std::fs::File::create(&out_path).map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
        let mut child = self
            .base_cmd("wine")
            .arg("cmd.exe")
            .env("WINEDEBUG", format!("{WINEDEBUG},warn+debugstr"))
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start wine: {e}"))?;
        // The keeper must be the process that starts wineserver and
        // services.exe, so the drivers' debug output lands in our log: wait
        // until its cmd.exe answers before running anything else.
        if let Some(stdin) = child.stdin.as_mut() {
            stdin.write_all(b"echo SERIAL-LOADER-READY\r\n").map_err(|e| e.to_string())?;
            stdin.flush().map_err(|e| e.to_string())?;
        }
        self.keeper = Some(child);
        let deadline = Instant::now() + START_BOUND;
        while Instant::now() < deadline {
            if std::fs::read_to_string(&out_path).unwrap_or_default().contains("SERIAL-LOADER-READY") {
                return crate::fltsim::start_filter_manager(self);
            }
            if let Some(k) = self.keeper.as_mut() {
                if let Ok(Some(status)) = k.try_wait() {
                    let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
                    if log.contains(SHARED_DATA_NOT_MAPPED) && attempt < NEVER_STARTED_TRIES {
                        eprintln!("harness: the session's first process never started ({SHARED_DATA_NOT_MAPPED}); starting it again");
                        return self.spawn_keeper_try(attempt + 1);
                    }
                    return Err(format!("the Wine session ended at start ({status}); see {}", self.log_path.display()));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("the Wine session did not come up within {} s", START_BOUND.as_secs()))
    }

    /// Runs `wine <args>` in this session, output to files, at most `bound`.
    #[must_use]
    pub fn wine_bounded(&self, args: &[&str], bound: Duration) -> CtlResult {
        self.wine_bounded_env(&[], args, bound)
    }

    /// [`Self::wine_bounded`] with extra environment variables (for
    /// example `TZ`, which Wine's time-zone code reads from the Unix side).
    #[must_use]
    pub fn wine_bounded_env(&self, env: &[(&str, &str)], args: &[&str], bound: Duration) -> CtlResult {
        // Wine 8 now and then fails to map a program it is asked to start
        // (on a busy machine, seen once in a few hundred `reg add`s): its
        // fallback, `start.exe /exec`, then prints "ShellExecuteEx failed"
        // and the program never ran. Running it again is the same command,
        // not a second one, so that case alone is retried, a bounded number
        // of times; every other failure is the program's own answer.
        //
        // The same holds, silently, for loaderctl.exe ending with exit code
        // 1 and not one byte of output: loaderctl prints on every path and
        // never exits with 1 (its codes are 0 and 2-9, `loaderctl --help`),
        // so that answer is Wine's, from a process that never ran the tool.
        //
        // One cause is known: Wine could not map the shared user data at
        // its fixed address (address-space randomisation put something
        // there) and exits with code 1 before any Windows code runs. Its
        // message is an error of the `virtual` channel, the only one the
        // harness lets through, so that case is retried for any program.
        //
        // fltsimctl.exe (test only) says so itself: the harness names a
        // marker file in `FLTSIMCTL_STARTED`, which the tool creates before
        // anything else. A failed run without the marker never reached the
        // tool's `main` (seen in CI: exit code 1, no output, on a
        // `race-naive`), so starting it again cannot run any request twice.
        // A failed run with the marker is the tool's answer, and stands.
        let is_fltsimctl = args.first().is_some_and(|a| a.ends_with("fltsimctl.exe"));
        let mut tries = 0;
        loop {
            let n = COMMANDS.fetch_add(1, Ordering::Relaxed);
            let marker = self.scratch.join(format!("cmd{n}.started"));
            let marker_env = format!("Z:{}", marker.to_string_lossy().replace('/', "\\"));
            let mut all_env: Vec<(&str, &str)> = env.to_vec();
            if is_fltsimctl {
                all_env.push(("FLTSIMCTL_STARTED", &marker_env));
            }
            let r = self.wine_bounded_env_once(n, &all_env, args, bound);
            let started = marker.exists();
            let _ = std::fs::remove_file(&marker);
            tries += 1;
            // The marker must work, or the retry below could never tell.
            assert!(
                !(is_fltsimctl && r.code == 0 && !started),
                "fltsimctl succeeded without creating its start marker {marker_env}: {}",
                r.all()
            );
            let why = never_started(args.first().copied().unwrap_or(""), &r, started);
            let Some(why) = why else { return r };
            if tries == NEVER_STARTED_TRIES {
                return r;
            }
            eprintln!("harness: `wine {}` never started ({why}); starting it again", args.join(" "));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wine_bounded_env_once(&self, n: u64, env: &[(&str, &str)], args: &[&str], bound: Duration) -> CtlResult {
        let (out_path, err_path) = (self.scratch.join(format!("cmd{n}.out")), self.scratch.join(format!("cmd{n}.err")));
        let files = std::fs::File::create(&out_path).and_then(|o| std::fs::File::create(&err_path).map(|e| (o, e)));
        let (out, err) = match files {
            Ok(f) => f,
            Err(e) => return CtlResult { code: -1, stdout: String::new(), stderr: e.to_string() },
        };
        let mut c = self.base_cmd("wine");
        c.envs(env.iter().copied()).args(args).stdout(Stdio::from(out)).stderr(Stdio::from(err));
        let status = match c.spawn() {
            Ok(mut child) => wait_bounded(&mut child, bound),
            Err(e) => return CtlResult { code: -1, stdout: String::new(), stderr: e.to_string() },
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default().replace('\r', "");
        let (stdout, mut stderr) = (read(&out_path), read(&err_path));
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        let code = if let Some(s) = status {
            s.code().unwrap_or(-1)
        } else {
            let _ = write!(stderr, "\n(killed: `wine {}` ran longer than {} s)\n", args.join(" "), bound.as_secs());
            -2
        };
        CtlResult { code, stdout, stderr }
    }

    /// Runs `wine <args>` with the ordinary bound.
    #[must_use]
    pub fn wine(&self, args: &[&str]) -> CtlResult {
        self.wine_bounded(args, COMMAND_BOUND)
    }

    fn loaderctl_args<'a>(exe: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec![exe];
        all.extend_from_slice(args);
        all
    }

    /// Runs `loaderctl.exe <args>` from the package.
    #[must_use]
    pub fn loaderctl(&self, args: &[&str]) -> CtlResult {
        self.loaderctl_bounded(args, COMMAND_BOUND)
    }

    /// Runs `loaderctl.exe <args>` with a bound of its own (long cycles).
    #[must_use]
    pub fn loaderctl_bounded(&self, args: &[&str], bound: Duration) -> CtlResult {
        let exe = self.package.join("loaderctl.exe").to_string_lossy().into_owned();
        self.wine_bounded(&Self::loaderctl_args(&exe, args), bound)
    }

    /// Runs `loaderctl.exe <args>` with extra environment variables.
    #[must_use]
    pub fn loaderctl_env(&self, env: &[(&str, &str)], args: &[&str]) -> CtlResult {
        let exe = self.package.join("loaderctl.exe").to_string_lossy().into_owned();
        self.wine_bounded_env(env, &Self::loaderctl_args(&exe, args), COMMAND_BOUND)
    }

    /// Starts `loaderctl.exe <args>` without waiting for it (its output is
    /// discarded), for scenarios that act while a request is in flight. The
    /// caller ends it (`kill` / `wait`); the session's end reaps it anyway.
    pub fn spawn_loaderctl(&self, args: &[&str]) -> std::io::Result<Child> {
        self.base_cmd("wine")
            .arg(self.package.join("loaderctl.exe"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// Runs `sc <args>`; returns (success, output).
    #[must_use]
    pub fn sc(&self, args: &[&str]) -> (bool, String) {
        let mut all = vec!["sc"];
        all.extend_from_slice(args);
        let r = self.wine(&all);
        (r.code == 0, r.all())
    }

    /// `reg add ... /f`: idempotent (it sets the value, whatever was
    /// there), so a failed one is asked again, at most 3 times, and logged.
    /// Seen once: Wine's 64-bit loader reported success, then died at exit
    /// in glibc (`dl-fini.c: Assertion ... failed`), with a non-zero code.
    pub fn reg_add(&self, key: &str, name: &str, kind: &str, data: &str) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=3 {
            let r = self.wine(&["reg", "add", key, "/v", name, "/t", kind, "/d", data, "/f"]);
            if r.code == 0 {
                return Ok(());
            }
            last = r.all();
            eprintln!("harness: reg add {key} {name} failed (attempt {attempt}, exit {}): {}", r.code, last.trim());
        }
        Err(format!("reg add {key} {name} failed: {last}"))
    }

    /// Installs the package from its INFs as an administrator does
    /// (`install.rs`: `InstallHinfSection DefaultInstall` on payload.inf and
    /// loader.inf, plus what Wine's setupapi skips), after
    /// removing what an earlier session left; then sets the scenario's
    /// `ActiveSlot` and `UnloadTimeoutMs` in `Parameters` (as an
    /// administrator edits them) and makes the loader demand-start, so the
    /// scenario decides when it starts: the INF's `SERVICE_SYSTEM_START`
    /// would start it at every later boot of the prefix, before a scenario
    /// has set up its slot images. (`e2e_operator.rs` boots an installation
    /// as shipped and checks the loader comes up by itself.)
    pub fn install(&self, active_slot: u32, unload_timeout_ms: u32) -> Result<(), String> {
        self.uninstall_leftovers()?;
        // What payloads keep of their own (the change tracker's persisted
        // set) goes too: every test starts from a machine that never ran one.
        // (`reg delete` of a key that is not there fails; that is fine.)
        let _ = self.wine(&["reg", "delete", "HKLM\\Software\\SerialLoader", "/f"]);
        self.install_from_infs()?;
        let params = format!("HKLM\\System\\CurrentControlSet\\Services\\{LOADER_SERVICE}\\Parameters");
        self.reg_add(&params, "ActiveSlot", "REG_DWORD", &active_slot.to_string())?;
        self.reg_add(&params, "UnloadTimeoutMs", "REG_DWORD", &unload_timeout_ms.to_string())?;
        let service = format!("HKLM\\System\\CurrentControlSet\\Services\\{LOADER_SERVICE}");
        self.reg_add(&service, "Start", "REG_DWORD", "3")
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

    /// Puts `bytes` in `slot`'s image path (a file that may not be an image).
    pub fn set_slot_bytes(&self, slot: usize, bytes: &[u8]) -> Result<(), String> {
        let to = self.drivers_dir().join(SLOT_IMAGES.get(slot).ok_or("bad slot")?);
        std::fs::write(&to, bytes).map_err(|e| format!("cannot write {}: {e}", to.display()))
    }

    /// The state `sc query <service>` shows (`RUNNING`, `STOPPED`, ...).
    #[must_use]
    pub fn service_state(&self, service: &str) -> Option<String> {
        let (_, out) = self.sc(&["query", service]);
        let line = out.lines().find(|l| l.trim_start().starts_with("STATE"))?.to_owned();
        line.split_whitespace().last().map(str::to_owned)
    }

    /// Waits (bounded) until the service manager answers: `sc query` of
    /// `PlugPlay` (a service of every Wine prefix) shows its state.
    pub fn wait_service_manager(&self, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        loop {
            let (_, out) = self.sc(&["query", "PlugPlay"]);
            if out.lines().any(|l| l.trim_start().starts_with("STATE")) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("the service manager did not answer within {} s: {}", bound.as_secs(), out.trim()));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits (bounded) until `sc query <service>` shows `state`.
    pub fn wait_service_state(&self, service: &str, state: &str, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        loop {
            let now = self.service_state(service);
            if now.as_deref() == Some(state) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{service} is {now:?}, not {state}, after {} s", bound.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits (bounded) until the drivers' log contains `needle`.
    pub fn wait_log(&self, needle: &str, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("the drivers never logged {needle:?} within {} s", bound.as_secs()))
    }

    /// Reads a DWORD from the loader's `Parameters`.
    #[must_use]
    pub fn parameter(&self, name: &str) -> Option<u32> {
        let key = format!("HKLM\\System\\CurrentControlSet\\Services\\{LOADER_SERVICE}\\Parameters");
        let r = self.wine(&["reg", "query", &key, "/v", name]);
        let line = r.stdout.lines().find(|l| l.contains(name))?.to_owned();
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

    /// Whether `/proc/<pid>` is a process of this prefix.
    fn of_prefix(&self, pid: u32) -> bool {
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
        let want = format!("WINEPREFIX={}", self.prefix.display());
        env.split(|b| *b == 0).any(|kv| kv == want.as_bytes())
    }

    /// Every process of this prefix.
    fn prefix_pids(&self) -> Vec<u32> {
        let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
        let me = std::process::id();
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && self.of_prefix(pid))
            .collect()
    }

    /// Processes of this prefix whose command line names `image`.
    fn pids_of(&self, image: &str) -> Vec<u32> {
        self.prefix_pids()
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).to_lowercase().contains(image))
            })
            .collect()
    }

    /// The `winedevice.exe` of this session that hosts `loader.sys`.
    #[must_use]
    pub fn loader_host(&self) -> Option<u32> {
        self.pids_of("winedevice.exe")
            .into_iter()
            .find(|pid| std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains("loader.sys")))
    }

    /// Resident and virtual memory (kB), open handles (fds) and threads of
    /// one process, from /proc.
    #[must_use]
    pub fn process_usage(pid: u32) -> Option<ProcessUsage> {
        let dir = PathBuf::from("/proc").join(pid.to_string());
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        let field = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let count = |sub: &str| std::fs::read_dir(dir.join(sub)).map_or(0, |d| d.count() as u64);
        Some(ProcessUsage {
            rss_kb: field("VmRSS:"),
            vm_kb: field("VmSize:"),
            fds: count("fd"),
            threads: count("task"),
        })
    }

    /// Every process of this prefix still running (for the no-leftover check).
    #[must_use]
    pub fn live_processes(&self) -> Vec<String> {
        self.prefix_pids()
            .into_iter()
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                format!("{pid} {}", String::from_utf8_lossy(&cmd).replace('\0', " ").trim())
            })
            .collect()
    }

    /// Ends the session (and with it every driver); returns the processes of
    /// the prefix that had to be killed after `wineserver -k` (empty when
    /// the session ended cleanly).
    #[allow(clippy::must_use_candidate)] // the survivors are already reaped; most callers need not look
    pub fn stop(mut self) -> Vec<String> {
        self.end_keeper();
        self.server(&["-k"]);
        self.server(&["-w"]);
        let survivors = self.live_processes();
        self.reap_leftovers();
        survivors
    }
}

/// One process's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessUsage {
    pub rss_kb: u64,
    pub vm_kb: u64,
    pub fds: u64,
    pub threads: u64,
}

impl Drop for WineSession {
    fn drop(&mut self) {
        self.end_all();
    }
}

#[cfg(test)]
mod tests {
    use super::{never_started, CtlResult, NEVER_STARTED, SHARED_DATA_NOT_MAPPED};

    fn r(code: i32, stdout: &str, stderr: &str) -> CtlResult {
        CtlResult { code, stdout: stdout.to_owned(), stderr: stderr.to_owned() }
    }

    const FLT: &str = "Z:\\t\\fltsimctl.exe";
    const CTL: &str = "/t/loaderctl.exe";

    #[test]
    fn only_runs_that_never_reached_the_program_are_started_again() {
        // Success stands, marker or not.
        assert_eq!(never_started(FLT, &r(0, "ok\n", ""), true), None);
        // Wine's start.exe fallback, for any program.
        assert!(never_started("reg", &r(1, "", &format!("{NEVER_STARTED}\n")), false).is_some());
        // Wine could not map the shared user data: nothing of the program ran.
        let unmapped = format!("err:virtual:virtual_alloc_first_teb wine: {SHARED_DATA_NOT_MAPPED}: c0000018\n");
        assert!(never_started("sc", &r(1, "", &unmapped), false).is_some());
        assert!(never_started(FLT, &r(1, "", &unmapped), true).is_some());
        assert_eq!(never_started("sc", &r(1, &unmapped, ""), false), None, "only Wine's stderr says so");
        // fltsimctl: the marker decides, whatever the code and output.
        assert!(never_started(FLT, &r(1, "", ""), false).is_some());
        assert!(never_started(FLT, &r(5, "", "noise"), false).is_some());
        assert_eq!(never_started(FLT, &r(1, "", ""), true), None, "a run that started is the tool's answer");
        assert_eq!(never_started(FLT, &r(1, "", "fltsimctl race-naive: refused\n"), true), None);
        assert_eq!(never_started(FLT, &r(-2, "", "(killed)"), false), None, "a run killed on its bound is not retried");
        // loaderctl: exit 1 with no output is never its answer.
        assert!(never_started(CTL, &r(1, "", " \n"), false).is_some());
        assert_eq!(never_started(CTL, &r(1, "", "loaderctl: x\n"), false), None);
        assert_eq!(never_started(CTL, &r(3, "", ""), false), None);
        // Other programs' failures stand.
        assert_eq!(never_started("sc", &r(1, "", ""), false), None);
    }
}
