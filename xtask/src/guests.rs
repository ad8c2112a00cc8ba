//! Guest builds: find (or install) a Rust toolchain that can build wasm32-unknown-unknown,
//! build every operation crate, and turn each core module into a component with wit-component.

use crate::paths;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

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
        let debian = Path::new("/usr/bin/rustc").exists()
            && Path::new("/usr/bin/cargo").exists()
            && Path::new("/usr/lib/rustlib/src/rust/library").exists()
            && (Path::new("/usr/bin/rust-lld").exists() || Path::new("/usr/bin/lld-22").exists());
        debian.then_some(Toolchain::DebianBuildStd)
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

/// A guest crate: its folder and the component file name it produces.
struct Guest {
    package: String,
    test_only: bool,
}

fn discover(with_test_guests: bool) -> Result<Vec<Guest>> {
    let mut out = Vec::new();
    let mut scan = |dir: PathBuf, test_only: bool| -> Result<()> {
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
        for entry in entries {
            let path = entry?.path();
            if path.join("Cargo.toml").exists() {
                let package = path.file_name().and_then(|n| n.to_str()).context("crate folder name")?.to_string();
                out.push(Guest { package, test_only });
            }
        }
        Ok(())
    };
    scan(paths::root().join("operations"), false)?;
    if with_test_guests {
        scan(paths::root().join("tests").join("guests"), true)?;
    }
    out.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(out)
}

/// Builds every guest in one cargo call (cargo skips unchanged crates) and componentizes
/// the modules whose bytes changed.
pub fn build_all(toolchain: &Toolchain, with_test_guests: bool) -> Result<()> {
    let guests = discover(with_test_guests)?;
    let mut cmd = toolchain.cargo();
    cmd.current_dir(paths::root())
        .env("CARGO_TARGET_DIR", paths::guest_target())
        .args(["build", "--profile", "guest", "--target", TARGET]);
    if let Toolchain::DebianBuildStd = toolchain {
        cmd.arg("-Zbuild-std=std,panic_abort");
    }
    for g in &guests {
        cmd.args(["--package", &g.package]);
    }
    run(&mut cmd).context("building the operation crates for wasm")?;

    let out_dir = paths::guest_target().join(TARGET).join("guest");
    std::fs::create_dir_all(paths::dist().join("operations"))?;
    std::fs::create_dir_all(paths::test_guests())?;
    for g in &guests {
        let core = out_dir.join(format!("{}.wasm", g.package));
        let dest_dir = if g.test_only { paths::test_guests() } else { paths::dist().join("operations") };
        componentize(&core, &dest_dir.join(format!("{}.wasm", g.package)))
            .with_context(|| format!("componentizing {}", g.package))?;
    }
    Ok(())
}

/// Core module -> component, written only when the result differs from what is there.
fn componentize(core: &Path, dest: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let stamps = paths::guest_target().join("stamps");
    std::fs::create_dir_all(&stamps)?;
    let stamp = stamps.join(dest.file_name().context("component file name")?);
    let digest = format!("{:x}", fxhash(&module));
    if dest.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(());
    }
    let mut encoder = wit_component::ComponentEncoder::default();
    encoder.module(&module)?;
    encoder.validate(true);
    let component = encoder.encode()?;
    let tmp = dest.with_extension("wasm.tmp");
    std::fs::write(&tmp, &component)?;
    std::fs::rename(&tmp, dest)?;
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
