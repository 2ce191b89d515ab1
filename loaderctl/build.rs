//! Links the Windows resources `cargo xtask build` compiled for
//! `loaderctl.exe` (its VERSIONINFO): the COFF object named by
//! `SERIAL_LOADER_RESOURCE`, for the MinGW linker. A plain `cargo build`
//! (and every host build) links no resources.
fn main() {
    println!("cargo:rerun-if-env-changed=SERIAL_LOADER_RESOURCE");
    if let Some(path) = std::env::var_os("SERIAL_LOADER_RESOURCE") {
        let path = std::path::PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        println!("cargo:rustc-link-arg-bins={}", path.display());
    }
}
