//! Guest builds: find (or install) a Rust toolchain that can build wasm32-unknown-unknown,
//! build every operation crate, and turn each core module into a component with wit-component.
//!
//! Which guests there are: `operations/*` (built-in, shipped in `target/opshost/operations/`),
//! `examples/*` (third-party examples: `target/opshost-components/`, and with the test guests
//! so the tests can hot-load them) and `tests/guests/*` (test-only). A guest whose Cargo.toml
//! says `[package.metadata.opshost] target = "wasm32-wasip1"` is built for WASI preview 1 in its
//! own target folder and componentized with the wasi_snapshot_preview1 reactor adapter, so it
//! can use std's clock and stdout (it imports WASI, and must be granted `wasi`).

use crate::paths;
use anyhow::{bail, Context, Result};

// JavaScript operations (componentize-js); a child module so it shares `Kind` and the
// destination folders.
// The part both share.
#[path = "componentize.rs"]
mod componentize;
#[path = "js.rs"]
pub mod js;
// Python operations (componentize-py), the same way.
#[path = "py.rs"]
pub mod py;

/// Where JavaScript operations live: `operations/js/` and `examples/js/` (excluded from the cargo
/// workspace, whose `*` member globs would otherwise take them for crates) and `tests/guests-js/`
/// (beside `tests/guests/`: cargo ignores `exclude` below the `tests` member).
const JS_PLACES: [(&str, Kind); 3] = [("operations/js", Kind::Builtin), ("examples/js", Kind::Example), ("tests/guests-js", Kind::TestOnly)];
/// Where Python operations live, likewise.
const PY_PLACES: [(&str, Kind); 3] = [("operations/py", Kind::Builtin), ("examples/py", Kind::Example), ("tests/guests-py", Kind::TestOnly)];
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";
/// The target of guests that use WASI through std (`SystemTime::now`, `println!`).
const WASIP1: &str = "wasm32-wasip1";
/// Debian's `wasi-libc` (libc.a, crt objects) for wasm32-wasip1 with build-std.
const WASI_LIBC: &str = "/usr/lib/wasm32-wasi";

/// How guests are built on this machine.
pub enum Toolchain {
    /// rustup with the wasm32 target installed (a normal developer laptop).
    Rustup,
    /// Debian's rustc-web + rust-web-src: std is built from source (`-Zbuild-std`).
    DebianBuildStd,
}

impl Toolchain {
    pub fn detect_or_install() -> Result<Self> {
        if let Some(t) = Self::detect() {
            return Ok(t);
        }
        if crate::apt_install(&["rustc-web", "cargo-web", "rust-web-src", "lld-22"]) {
            if let Some(t) = Self::detect() {
                return Ok(t);
            }
        }
        bail!(
            "no Rust toolchain that can build wasm32-unknown-unknown was found.\n\
             Install one of:\n  rustup target add {TARGET}\n  \
             apt-get install rustc-web cargo-web rust-web-src lld-22   (Debian 12)"
        )
    }

    fn detect() -> Option<Self> {
        let installed = Command::new("rustup").args(["target", "list", "--installed"]).output().ok();
        if installed.is_some_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET)) {
            return Some(Toolchain::Rustup);
        }
        debian_toolchain_present().then_some(Toolchain::DebianBuildStd)
    }

    fn cargo(&self) -> Command {
        let mut cmd;
        match self {
            Toolchain::Rustup => {
                cmd = Command::new("cargo");
            }
            Toolchain::DebianBuildStd => {
                // rustup's cargo comes first in PATH; the Debian toolchain must be named explicitly.
                cmd = Command::new("/usr/bin/cargo");
                cmd.env("RUSTC", "/usr/bin/rustc").env("RUSTC_BOOTSTRAP", "1");
                cmd.env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO");
            }
        }
        cmd.env_remove("RUSTFLAGS").env_remove("CARGO_ENCODED_RUSTFLAGS");
        cmd
    }
}

/// A guest crate: its package (also the component's file name), where its component goes,
/// and which target it is built for.
struct Guest {
    package: String,
    kind: Kind,
    wasip1: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `operations/*`: shipped in `target/opshost/operations/`.
    Builtin,
    /// `examples/*`: third-party components, to copy into `componentsRoot`.
    Example,
    /// `tests/guests/*`: only for the end-to-end tests.
    TestOnly,
}

fn discover(with_test_guests: bool) -> Result<Vec<Guest>> {
    let mut out = Vec::new();
    let mut scan = |dir: PathBuf, kind: Kind| -> Result<()> {
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
        for entry in entries {
            let path = entry?.path();
            let manifest = path.join("Cargo.toml");
            if manifest.exists() {
                let package = path.file_name().and_then(|n| n.to_str()).context("crate folder name")?.to_string();
                let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
                out.push(Guest { package, kind, wasip1: wants_wasip1(&text) });
            }
        }
        Ok(())
    };
    scan(paths::root().join("operations"), Kind::Builtin)?;
    if with_test_guests {
        scan(paths::root().join("examples"), Kind::Example)?;
        scan(paths::root().join("tests").join("guests"), Kind::TestOnly)?;
    }
    out.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(out)
}

/// `[package.metadata.opshost]` with `target = "wasm32-wasip1"` in a guest's Cargo.toml.
fn wants_wasip1(manifest: &str) -> bool {
    let mut in_section = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[package.metadata.opshost]";
        } else if in_section {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "target" && value.split('#').next().map(str::trim) == Some(&format!("\"{WASIP1}\"")) {
                    return true;
                }
            }
        }
    }
    false
}

/// Builds every guest (one cargo call per target; cargo skips unchanged crates) and
/// componentizes the modules whose bytes changed.
pub fn build_all(toolchain: &Toolchain, with_test_guests: bool) -> Result<()> {
    build(toolchain, discover(with_test_guests)?)?;
    js::build(js::discover(with_test_guests)?)?;
    py::build(py::discover(with_test_guests)?)
}

/// `cargo xtask build-guests [NAME...]`: every guest, or only the named crates (quicker while
/// writing one operation: `cargo xtask build-guests my_op`).
pub fn build_named(toolchain: &Toolchain, names: &[String]) -> Result<()> {
    let all = discover(true)?;
    let all_js = js::discover(true)?;
    let all_py = py::discover(true)?;
    if names.is_empty() {
        build(toolchain, all)?;
        js::build(all_js)?;
        return py::build(all_py);
    }
    let known = |n: &String| all.iter().any(|g| &g.package == n) || all_js.iter().any(|g| &g.name == n) || all_py.iter().any(|g| &g.name == n);
    if let Some(missing) = names.iter().find(|n| !known(n)) {
        bail!("no guest crate named '{missing}' in operations/, examples/ or tests/guests/ (nor a JavaScript or Python operation in their js/ or py/ folders)");
    }
    build(toolchain, all.into_iter().filter(|g| names.contains(&g.package)).collect())?;
    js::build(all_js.into_iter().filter(|g| names.contains(&g.name)).collect())?;
    py::build(all_py.into_iter().filter(|g| names.contains(&g.name)).collect())
}

fn build(toolchain: &Toolchain, guests: Vec<Guest>) -> Result<()> {
    let (wasip1, plain): (Vec<&Guest>, Vec<&Guest>) = guests.iter().partition(|g| g.wasip1);

    if !plain.is_empty() {
        let mut cmd = toolchain.cargo();
        cmd.current_dir(paths::root())
            .env("CARGO_TARGET_DIR", paths::guest_target())
            .args(["build", "--profile", "guest", "--target", TARGET]);
        if let Toolchain::DebianBuildStd = toolchain {
            cmd.arg("-Zbuild-std=std,panic_abort");
        }
        for g in &plain {
            cmd.args(["--package", &g.package]);
        }
        run(&mut cmd).context("building the operation crates for wasm")?;
        let out_dir = paths::guest_target().join(TARGET).join("guest");
        for g in &plain {
            place(g, &out_dir.join(format!("{}.wasm", g.package)), None)?;
        }
    }

    if !wasip1.is_empty() {
        let mut cmd = wasip1_cargo()?;
        cmd.current_dir(paths::root())
            .env("CARGO_TARGET_DIR", paths::guest_target_wasip1())
            .args(["build", "--profile", "guest", "--target", WASIP1]);
        for g in &wasip1 {
            cmd.args(["--package", &g.package]);
        }
        run(&mut cmd).context("building the WASI guest crates (wasm32-wasip1)")?;
        let out_dir = paths::guest_target_wasip1().join(WASIP1).join("guest");
        let adapter = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
        for g in &wasip1 {
            place(g, &out_dir.join(format!("{}.wasm", g.package)), Some(adapter))?;
        }
    }
    Ok(())
}

/// Componentizes one built guest into the folders its kind goes to.
fn place(g: &Guest, core: &Path, adapter: Option<&[u8]>) -> Result<()> {
    for dir in dest_dirs(g.kind) {
        std::fs::create_dir_all(&dir)?;
        componentize(core, &dir.join(format!("{}.wasm", g.package)), adapter)
            .with_context(|| format!("componentizing {}", g.package))?;
    }
    Ok(())
}

/// The folders a guest's component goes to.
fn dest_dirs(kind: Kind) -> Vec<PathBuf> {
    match kind {
        Kind::Builtin => vec![paths::dist().join("operations")],
        Kind::Example => vec![paths::components(), paths::test_guests()],
        Kind::TestOnly => vec![paths::test_guests()],
    }
}

/// Cargo for wasm32-wasip1 guests. With rustup's `wasm32-wasip1` target installed, that
/// target as is (its wasi-libc is self-contained). Otherwise Debian's toolchain with
/// build-std, linked against Debian's `wasi-libc` (installed when missing, as root on Debian).
fn wasip1_cargo() -> Result<Command> {
    // The initial memory matches the other guests' (.cargo/config.toml sets it for
    // wasm32-unknown-unknown only; this variable would replace it anyway).
    let memory = ["-C", "link-arg=--initial-memory=4194304"];
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output().ok();
    if installed.is_some_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == WASIP1)) {
        let mut cmd = Toolchain::Rustup.cargo();
        cmd.env("CARGO_ENCODED_RUSTFLAGS", memory.join("\u{1f}"));
        return Ok(cmd);
    }
    let toolchain_ready = debian_toolchain_present()
        || (crate::apt_install(&["rustc-web", "cargo-web", "rust-web-src", "lld-22", "wasi-libc"]) && debian_toolchain_present());
    if !toolchain_ready {
        bail!(
            "building the WASI test guests needs a wasm32-wasip1 standard library. Install one of:\n  \
             rustup target add {WASIP1}\n  \
             apt-get install rustc-web cargo-web rust-web-src lld-22 wasi-libc   (Debian 12)"
        );
    }
    let libc = Path::new(WASI_LIBC).join("libc.a");
    let libc_ready = libc.exists() || (crate::apt_install(&["wasi-libc"]) && libc.exists());
    if !libc_ready {
        bail!("building the WASI test guests needs Debian's wasi-libc ({} is missing): apt-get install wasi-libc", libc.display());
    }
    let mut cmd = Toolchain::DebianBuildStd.cargo();
    cmd.arg("-Zbuild-std=std,panic_abort");
    // wasi-libc (libc.a, the allocator std uses there) comes from Debian, not from a
    // self-contained rustup target.
    let libc_dir = format!("native={WASI_LIBC}");
    let flags = [&["-C", "link-self-contained=no", "-L", &libc_dir][..], &memory].concat();
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags.join("\u{1f}"));
    Ok(cmd)
}

fn debian_toolchain_present() -> bool {
    Path::new("/usr/bin/rustc").exists()
        && Path::new("/usr/bin/cargo").exists()
        && Path::new("/usr/lib/rustlib/src/rust/library").exists()
        && (Path::new("/usr/bin/rust-lld").exists() || Path::new("/usr/bin/lld-22").exists())
}

/// Core module -> component, written only when the result differs from what is there.
/// With `adapter`, the module's `wasi_snapshot_preview1` imports are adapted to WASI preview 2.
fn componentize(core: &Path, dest: &Path, adapter: Option<&[u8]>) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let stamps = paths::guest_target().join("stamps");
    std::fs::create_dir_all(&stamps)?;
    // One stamp per destination file (the same guest may go to two folders).
    let dest_dir = dest.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or("out");
    let stamp = stamps.join(format!("{dest_dir}--{}", dest.file_name().and_then(|n| n.to_str()).context("component file name")?));
    let digest = format!("{:x}-{:x}", fxhash(&module), adapter.map(fxhash).unwrap_or(0));
    if dest.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(());
    }
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder.module(&module)?;
    if let Some(adapter) = adapter {
        encoder.adapter(wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)?;
    }
    encoder.validate(true);
    let component = encoder.encode()?;
    // Unchanged bytes are not rewritten: the server watches these folders.
    if std::fs::read(dest).ok().as_deref() != Some(&component[..]) {
        let tmp = dest.with_extension("wasm.tmp");
        std::fs::write(&tmp, &component)?;
        std::fs::rename(&tmp, dest)?;
    }
    std::fs::write(&stamp, digest)?;
    Ok(())
}

/// A cheap content fingerprint for the rebuild check (not a security boundary: the host
/// keys its compile cache with SHA-256).
fn fxhash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed with {status}", cmd.get_program());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasip1_is_asked_for_in_the_package_metadata() {
        let yes = "[package]\nname = \"t\"\n\n[package.metadata.opshost]\ntarget = \"wasm32-wasip1\"  # WASI\n\n[dependencies]\n";
        assert!(wants_wasip1(yes));
        assert!(!wants_wasip1("[package]\nname = \"t\"\n[dependencies]\ntarget = \"wasm32-wasip1\"\n"));
        assert!(!wants_wasip1("[package.metadata.opshost]\ntarget = \"wasm32-unknown-unknown\"\n"));
        assert!(!wants_wasip1("[package]\nname = \"t\"\n"));
    }
}
