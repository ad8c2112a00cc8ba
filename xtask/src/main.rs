//! `cargo xtask`: the project's build tooling. `build` makes `target/opshost/` (the host binary
//! and one component per operation), `run` starts the server, `test` runs the whole suite,
//! `bench` prints the performance figures, `new-operation` scaffolds an operation crate.

mod bench;
mod guests;
mod paths;
mod scaffold;
mod services;
mod sign;

use anyhow::{bail, Context, Result};
use std::process::Command;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| "help".to_string());
    let rest: Vec<String> = args.collect();
    match command.as_str() {
        "build" => build(true).map(|_| ()),
        "build-guests" => guests::build_named(&guests::Toolchain::detect_or_install()?, &rest),
        "run" => run(&rest),
        "test" => test(&rest),
        "bench" => bench::run(&rest),
        "new-operation" => scaffold::new_operation(&rest),
        "sign" => sign::sign(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 build          build the host and every operation into target/opshost/\n\
                 build-guests [NAME...]\n\
                 \x20              build only the components (operations, examples, test guests), or the named ones\n\
                 run            build what is missing and start the server with its defaults\n\
                 test           build what is missing, start what the tests need, run the whole suite\n\
                 bench          print the performance figures (call overhead, throughput, start-up)\n\
                 sign --key KEY.pem [--grants a,b] COMPONENT.wasm\n\
                 \x20              sign a component for operationsApi.components.trustedKeys (writes COMPONENT.wasm.sig)\n\
                 new-operation NAME [--out operations|examples] [--lang rust|js|python]\n\
                 \x20              scaffold an operation crate (default: operations/NAME, a built-in)"
            );
            if command == "help" { Ok(()) } else { bail!("unknown command '{command}'") }
        }
    }
}

/// Builds the guests (operations, and the test guests when `with_test_guests`) and the host
/// into `target/opshost/`.
fn build(with_test_guests: bool) -> Result<()> {
    let toolchain = guests::Toolchain::detect_or_install()?;
    guests::build_all(&toolchain, with_test_guests)?;
    build_host()?;
    precompile_dist()?;
    Ok(())
}

/// Compiles the built-in operations into `target/opshost/precompiled/` (keyed and MAC-checked
/// like any compile cache), so the first start on a new root listens at once instead of
/// compiling every component.
fn precompile_dist() -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("opshost-dist-precompile-{}", std::process::id()));
    let status = Command::new(paths::dist().join("opshost"))
        .arg("precompile")
        .arg(paths::dist().join("operations"))
        .env("OPSHOST_COMPILE_CACHE", paths::dist().join("precompiled"))
        .env("ROOTPATH", &scratch)
        .env_remove("RUST_LOG")
        .status()
        .context("running opshost precompile")?;
    let _ = std::fs::remove_dir_all(&scratch);
    if !status.success() {
        bail!("precompiling the built-in operations failed");
    }
    Ok(())
}

/// The host in release mode, in the shared cache target folder, copied beside its operations.
fn build_host() -> Result<()> {
    ensure_libclang()?;
    ensure_make()?;
    let status = host_cargo()
        .args(["build", "--release", "--package", "opshost", "--bin", "opshost", "--example", "call_overhead", "--example", "cursor_walk"])
        .status()
        .context("running cargo for the host")?;
    if !status.success() {
        bail!("building the host failed");
    }
    let built = paths::host_target().join("release").join("opshost");
    let dest = paths::dist().join("opshost");
    std::fs::create_dir_all(paths::dist())?;
    ship_without_debug_info(&built, &dest)?;
    Ok(())
}

/// The shipped binary keeps its symbol table (backtraces name functions) and points with a
/// `.gnu_debuglink` at its DWARF in `.debug/opshost.debug` beside it (where std's backtraces and
/// gdb look for lines): 600 MB of mostly RocksDB C++ debug info leave the binary itself.
/// Without objcopy the binary is shipped whole.
fn ship_without_debug_info(built: &std::path::Path, dest: &std::path::Path) -> Result<()> {
    let debug_dir = paths::dist().join(".debug");
    let debug_file = debug_dir.join("opshost.debug");
    let stripped = paths::host_target().join("release").join("opshost.stripped");
    let stamp = paths::host_target().join("release").join("opshost.stripped.from");
    // objcopy over 600 MB takes seconds: only when the built binary changed.
    let built_stamp = format!("{:?}", std::fs::metadata(built)?.modified()?);
    let fresh = std::fs::read_to_string(&stamp).is_ok_and(|s| s == built_stamp) && stripped.exists() && debug_file.exists();
    if !fresh {
        std::fs::create_dir_all(&debug_dir)?;
        // Unique names, renamed into place: two builds at once must not write one file together.
        let debug_tmp = debug_dir.join(format!("opshost.debug.{}", std::process::id()));
        let stripped_tmp = stripped.with_extension(format!("stripped.{}", std::process::id()));
        let objcopy = |args: &[&std::ffi::OsStr]| Command::new("objcopy").args(args).status().map(|s| s.success()).unwrap_or(false);
        // The debuglink names the file `opshost.debug` (its CRC is of the same bytes).
        let split = objcopy(&["--only-keep-debug".as_ref(), built.as_os_str(), debug_tmp.as_os_str()])
            && std::fs::rename(&debug_tmp, &debug_file).is_ok()
            && objcopy(&[
                "--strip-debug".as_ref(),
                format!("--add-gnu-debuglink={}", debug_file.display()).as_ref(),
                built.as_os_str(),
                stripped_tmp.as_os_str(),
            ])
            && std::fs::rename(&stripped_tmp, &stripped).is_ok();
        let _ = std::fs::remove_file(&debug_tmp);
        let _ = std::fs::remove_file(&stripped_tmp);
        if !split {
            eprintln!("xtask: objcopy failed or is missing (binutils); shipping the binary with its debug info");
            copy_if_changed(built, dest)?;
            return Ok(());
        }
        std::fs::write(&stamp, built_stamp)?;
    }
    copy_if_changed(&stripped, dest)?;
    Ok(())
}

/// RocksDB's Rust bindings are generated with libclang at build time.
fn ensure_libclang() -> Result<()> {
    let found = std::fs::read_dir("/usr/lib")
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                let lib = e.path().join("lib");
                e.file_name().to_string_lossy().starts_with("llvm-")
                    && std::fs::read_dir(lib).map(|l| l.filter_map(Result::ok).any(|f| is_libclang(&f.file_name().to_string_lossy()))).unwrap_or(false)
            })
        })
        .unwrap_or(false);
    if found || std::env::var_os("LIBCLANG_PATH").is_some() {
        return Ok(());
    }
    if apt_install(&["libclang-dev"]) {
        return Ok(());
    }
    bail!("libclang is needed to build RocksDB's bindings: apt-get install libclang-dev (or set LIBCLANG_PATH)")
}

/// jemalloc (the C heap RocksDB allocates from, issue 16) is built from source by its crate's
/// build script, which runs `make`.
fn ensure_make() -> Result<()> {
    let found = Command::new("make").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if found || apt_install(&["make"]) {
        return Ok(());
    }
    bail!("make is needed to build jemalloc for the host: apt-get install make")
}

/// Installs Debian packages when running as root on Debian; `false` when it cannot (the
/// caller then says what to install). Every install step of the project goes through here.
pub fn apt_install(packages: &[&str]) -> bool {
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    if !is_root || !std::path::Path::new("/etc/debian_version").exists() {
        return false;
    }
    eprintln!("xtask: installing {} (Debian packages)", packages.join(" "));
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    apt(&["update"]) && apt(&[&["install", "-y"][..], packages].concat())
}

/// `libclang.so*` or `libclang-14.so*`, not `libclang-cpp` (which lld's packages bring).
fn is_libclang(name: &str) -> bool {
    name.starts_with("libclang.so") || (name.starts_with("libclang-") && !name.starts_with("libclang-cpp") && name.contains(".so"))
}

/// Cargo for native crates, with the target folder outside the clone so a fresh clone on the
/// same machine reuses the wasmtime build (TOOLCHAIN.md).
fn host_cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cmd.current_dir(paths::root()).env("CARGO_TARGET_DIR", paths::host_target());
    cmd
}

fn run(args: &[String]) -> Result<()> {
    build(false)?;
    let status = Command::new(paths::dist().join("opshost"))
        .arg("run")
        .args(args)
        .status()
        .context("starting opshost")?;
    if !status.success() {
        bail!("opshost exited with {status}");
    }
    Ok(())
}

fn test(args: &[String]) -> Result<()> {
    build(true)?;
    let started = services::start_for_tests()?;
    precompile_for_tests()?;
    // Native unit tests of the guest crates (their pure helpers), then the host and end-to-end tests.
    let mut cmd = host_cargo();
    cmd.args(["test", "--release", "--workspace", "--exclude", "xtask"])
        .env("OPSHOST_DIST", paths::dist())
        .env("OPSHOST_TEST_GUESTS", paths::test_guests())
        // Where the loopback S3 server is (OPSHOST_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _ROOT).
        .envs(started.env())
        .args(args);
    let status = cmd.status().context("running cargo test")?;
    if !status.success() {
        bail!("tests failed");
    }
    Ok(())
}

/// Fills the tests' shared compile cache once, before any test starts a server: otherwise the
/// first servers, started together, would each compile every component at the same time.
fn precompile_for_tests() -> Result<()> {
    let cache = paths::root().join("target").join("opshost-test-cache");
    let scratch = std::env::temp_dir().join(format!("opshost-precompile-{}", std::process::id()));
    let status = Command::new(paths::dist().join("opshost"))
        .arg("precompile")
        .arg(paths::dist().join("operations"))
        .arg(paths::test_guests())
        .env("OPSHOST_COMPILE_CACHE", &cache)
        .env("ROOTPATH", &scratch)
        .status()
        .context("running opshost precompile")?;
    let _ = std::fs::remove_dir_all(&scratch);
    if !status.success() {
        bail!("precompiling the components failed");
    }
    Ok(())
}

/// Copies `from` to `to` unless the bytes are already identical, so unchanged files keep
/// their modification time.
pub fn copy_if_changed(from: &std::path::Path, to: &std::path::Path) -> Result<bool> {
    let new = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() == Some(&new[..]) {
        return Ok(false);
    }
    let tmp = to.with_extension("tmp");
    std::fs::write(&tmp, &new)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(from)?.permissions().mode();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    }
    std::fs::rename(&tmp, to)?;
    Ok(true)
}
