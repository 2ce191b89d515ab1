//! The architecture the end-to-end suites run on: `SERIAL_LOADER_ARCH`
//! (`x64`, the default, or `x86`), and where that architecture's package,
//! test payloads, test Filter Manager and Wine prefix live.
//!
//! | | x64 | x86 |
//! |---|---|---|
//! | package | `target/package/x64/` | `target/package/x86/` |
//! | test payloads | `target/package/test-payloads/` | `target/package/x86/test-payloads/` |
//! | test Filter Manager | `target/package/test-fltmgr/` | `target/package/x86/test-fltmgr/` |
//! | Wine directory | `target/wine/` (64-bit prefix) | `target/wine-x86/` (`WINEARCH=win32`) |
use std::path::{Path, PathBuf};

/// The environment variable that picks the architecture.
pub const ARCH_ENV: &str = "SERIAL_LOADER_ARCH";

/// `x64` or `x86`. Anything else is a harness error, said at once.
#[must_use]
pub fn arch() -> &'static str {
    match std::env::var(ARCH_ENV).as_deref() {
        Err(_) | Ok("" | "x64") => "x64",
        Ok("x86") => "x86",
        Ok(other) => panic!("{ARCH_ENV}={other}: expected x64 or x86"),
    }
}

/// Whether the suites run on x86.
#[must_use]
pub fn is_x86() -> bool {
    arch() == "x86"
}

fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map_or(here.clone(), Path::to_path_buf)
}

/// `target/package/<arch>/`.
#[must_use]
pub fn package_dir() -> PathBuf {
    root().join("target/package").join(arch())
}

/// The test payload images of the architecture.
#[must_use]
pub fn test_payload_dir() -> PathBuf {
    if is_x86() {
        package_dir().join("test-payloads")
    } else {
        root().join("target/package/test-payloads")
    }
}

/// The test world's Filter Manager and its tool, of the architecture.
#[must_use]
pub fn fltmgr_dir() -> PathBuf {
    if is_x86() {
        package_dir().join("test-fltmgr")
    } else {
        root().join("target/package/test-fltmgr")
    }
}

/// The default Wine directory (prefix, log, scratch) of the architecture.
#[must_use]
pub fn default_wine_dir() -> PathBuf {
    if is_x86() {
        root().join("target/wine-x86")
    } else {
        root().join("target/wine")
    }
}

/// The Wine loader of the architecture: `/usr/lib/wine/wine64` for the
/// 64-bit prefix, `/usr/lib/wine/wine` (32-bit) for the x86 one. Debian's
/// `wine` wrapper picks the 32-bit loader whenever `wine32` is installed,
/// whatever the prefix, so the x64 suite names its loader itself.
#[must_use]
pub fn wine_loader() -> &'static str {
    if is_x86() {
        "/usr/lib/wine/wine"
    } else {
        "/usr/lib/wine/wine64"
    }
}
