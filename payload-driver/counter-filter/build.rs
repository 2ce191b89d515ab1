//! Links the Windows resources `cargo xtask build` compiled for this image
//! (VERSIONINFO, and the event message table for loader.sys): the `.res`
//! named by `SERIAL_LOADER_RESOURCE`, which lld-link converts itself. A
//! plain `cargo build` without it links no resources.
fn main() {
    println!("cargo:rerun-if-env-changed=SERIAL_LOADER_RESOURCE");
    if let Some(path) = std::env::var_os("SERIAL_LOADER_RESOURCE") {
        let path = std::path::PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        println!("cargo:rustc-link-arg-cdylib={}", path.display());
    }
}
