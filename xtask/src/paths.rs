//! Where things are: the repo, the output folder, and the build caches outside the clone.

use std::path::PathBuf;

/// The repository root (xtask lives one level below it).
/// Read at run time (`cargo xtask` runs it through cargo, which sets it): the compiled xtask may
/// come from the shared build cache, built in a clone at another path.
pub fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.parent().expect("xtask has a parent").to_path_buf()
}

/// `target/opshost/`: the self-contained server folder.
pub fn dist() -> PathBuf {
    root().join("target").join("opshost")
}

/// Built test-only guests (never shipped in `dist`).
pub fn test_guests() -> PathBuf {
    root().join("target").join("opshost-test-guests")
}

/// Built third-party example components (`examples/*`), ready to copy into `componentsRoot`.
pub fn components() -> PathBuf {
    root().join("target").join("opshost-components")
}

/// Build caches live outside the clone (`$OPSHOST_CACHE`, default `~/.cache/opshost`), so a
/// fresh clone on the same machine does not rebuild wasmtime or std for wasm.
pub fn cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPSHOST_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    home.join(".cache").join("opshost")
}

pub fn host_target() -> PathBuf {
    cache().join("target")
}

pub fn guest_target() -> PathBuf {
    cache().join("guest-target")
}

/// WASI (wasm32-wasip1) guests have their own target folder: their std is built with other
/// flags, and sharing one folder would rebuild one std or the other on every switch.
pub fn guest_target_wasip1() -> PathBuf {
    cache().join("guest-target-wasip1")
}
