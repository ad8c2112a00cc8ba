//! What the tests need beyond the build, set up by `cargo xtask test`: the `openssl` and `curl`
//! commands (certificates made by an independent tool, a real TLS client) and `npm` (a real
//! `npm install` for `install_node_modules`; Debian's package brings Node.js with it) and
//! `chromium` with `chromium-driver` (the Studio's browser tests),
//! installed from Debian's packages when missing, and a real S3 server on loopback for
//! `export_to_s3` (s3s-fs, which checks SigV4 signatures), and a 3-server NATS JetStream cluster
//! (Debian's `nats-server`) for the cluster tests. Started services stop when the guard drops.

use anyhow::{bail, Context, Result};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// s3s-fs: the newest release whose `rust-version` (1.92) the stable toolchain meets; 0.15
/// and later need Rust 1.96.
const S3S_FS_VERSION: &str = "0.14.1";
/// Fixed credentials of the test S3 server (loopback only, thrown away after the run).
const S3_ACCESS_KEY: &str = "opshost-test-access";
const S3_SECRET_KEY: &str = "opshost-test-secret-3kV9";

/// Keeps the started services alive for the duration of the test run, and tells the tests
/// where they are (`env`).
pub struct Services {
    children: Vec<Child>,
    temp_dirs: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Services {
    /// Environment variables for the test process.
    pub fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in &self.temp_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn start_for_tests() -> Result<Services> {
    ensure_commands(&[("openssl", "openssl"), ("curl", "curl"), ("npm", "npm")])?;
    let mut services = Services { children: Vec::new(), temp_dirs: Vec::new(), env: Vec::new() };
    start_s3(&mut services)?;
    start_nats(&mut services)?;
    services.env.extend(ensure_chromium()?);
    Ok(services)
}

/// Debian's `chromium` and `chromium-driver` for the Studio's browser tests (installed only when
/// missing); the tests start their own chromedriver from `OPSHOST_TEST_CHROMEDRIVER` and point it
/// at `OPSHOST_TEST_CHROMIUM`.
fn ensure_chromium() -> Result<Vec<(String, String)>> {
    let browser = Path::new("/usr/bin/chromium");
    let driver = Path::new("/usr/bin/chromedriver");
    if !(browser.is_file() && driver.is_file()) && !crate::apt_install(&["chromium", "chromium-driver"]) {
        bail!("the Studio tests need a browser: apt-get install chromium chromium-driver");
    }
    Ok(vec![
        ("OPSHOST_TEST_CHROMIUM".to_string(), browser.display().to_string()),
        ("OPSHOST_TEST_CHROMEDRIVER".to_string(), driver.display().to_string()),
    ])
}

/// Installs the Debian package of each missing command (idempotent: present ones are skipped).
fn ensure_commands(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(cmd, _)| Command::new(cmd).arg("--version").output().is_err())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !crate::apt_install(&missing) {
        bail!("the tests need {}: apt-get install {}", missing.join(", "), missing.join(" "));
    }
    Ok(())
}

/// `~/.cache/opshost/tools/bin/s3s-fs`, installed from crates.io on first use (a few minutes;
/// skipped once the binary is there).
fn ensure_s3s_fs() -> Result<PathBuf> {
    let tools = crate::paths::cache().join("tools");
    let bin = tools.join("bin").join("s3s-fs");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!("xtask: installing s3s-fs {S3S_FS_VERSION} (a real S3 server for the tests) into {}", tools.display());
    std::fs::create_dir_all(&tools)?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
        .args(["install", "s3s-fs", "--features", "binary", "--locked", "--version", S3S_FS_VERSION, "--root"])
        .arg(&tools)
        // Outside the workspace, so its config and target folder stay out of it.
        .current_dir(&tools)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("running cargo install s3s-fs")?;
    if !status.success() || !bin.is_file() {
        bail!("installing s3s-fs failed: cargo install s3s-fs --features binary --locked --version {S3S_FS_VERSION} --root {}", tools.display());
    }
    Ok(bin)
}

/// Starts s3s-fs on a free loopback port over a fresh folder (a bucket is a folder in it, an
/// object `<bucket>/<key>` a file) and exports `OPSHOST_TEST_S3_*` to the tests.
fn start_s3(services: &mut Services) -> Result<()> {
    let bin = ensure_s3s_fs()?;
    let base = std::env::temp_dir().join(format!("opshost-test-s3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("data");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    services.temp_dirs.push(base.clone());
    let log_path = base.join("s3s-fs.log");
    let log = std::fs::File::create(&log_path)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    services.children.push(child);
    let child = services.children.last_mut().expect("just pushed");
    wait_listening(child, port, &log_path)?;
    let env = [
        ("OPSHOST_TEST_S3_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("OPSHOST_TEST_S3_ACCESS_KEY", S3_ACCESS_KEY.to_string()),
        ("OPSHOST_TEST_S3_SECRET_KEY", S3_SECRET_KEY.to_string()),
        ("OPSHOST_TEST_S3_ROOT", root.display().to_string()),
    ];
    services.env.extend(env.into_iter().map(|(k, v)| (k.to_string(), v)));
    Ok(())
}

/// Waits until `port` accepts connections (s3s-fs is ready in ~20 ms).
fn wait_listening(child: &mut Child, port: u16, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("s3s-fs exited with {status}: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        if Instant::now() > deadline {
            bail!("s3s-fs did not listen on 127.0.0.1:{port}: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Debian's `nats-server` (installed when missing) as a 3-server JetStream cluster on free
/// loopback ports, each with its own store folder; the tests get the client URLs in
/// `OPSHOST_TEST_NATS_URLS` and the binary in `OPSHOST_TEST_NATS_SERVER` (tests that kill
/// servers start their own cluster with it).
fn start_nats(services: &mut Services) -> Result<()> {
    let bin = ["/usr/bin/nats-server", "/usr/sbin/nats-server"].into_iter().map(PathBuf::from).find(|p| p.is_file());
    let bin = match bin {
        Some(b) => b,
        None if crate::apt_install(&["nats-server"]) => PathBuf::from("/usr/sbin/nats-server"),
        None => bail!("the cluster tests need NATS: apt-get install nats-server"),
    };
    let base = std::env::temp_dir().join(format!("opshost-test-nats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    services.temp_dirs.push(base.clone());
    let free = || -> Result<u16> { Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()) };
    let ports: Vec<(u16, u16)> = (0..3).map(|_| Ok((free()?, free()?))).collect::<Result<_>>()?;
    let routes: Vec<String> = ports.iter().map(|(_, r)| format!("nats-route://127.0.0.1:{r}")).collect();
    for (i, (client, route)) in ports.iter().enumerate() {
        let store = base.join(format!("n{i}"));
        std::fs::create_dir_all(&store)?;
        let conf = base.join(format!("n{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{client}\njetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 2GB }}\ncluster {{ name: opshost_test, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                store.display(),
                routes.join(", ")
            ),
        )?;
        let log_path = base.join(format!("n{i}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        services.children.push(child);
        let child = services.children.last_mut().expect("just pushed");
        wait_listening(child, *client, &log_path)?;
    }
    let urls: Vec<String> = ports.iter().map(|(c, _)| format!("nats://127.0.0.1:{c}")).collect();
    services.env.push(("OPSHOST_TEST_NATS_URLS".to_string(), urls.join(",")));
    services.env.push(("OPSHOST_TEST_NATS_SERVER".to_string(), bin.display().to_string()));
    Ok(())
}
