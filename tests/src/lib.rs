//! Test harness: starts the real `opshost` binary on a free loopback port with a fresh root
//! folder, talks HTTP to it, and stops it with SIGTERM.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod nats;

pub const ADMIN: (&str, &str) = ("admin", "admin-pass");
pub const USER: (&str, &str) = ("plain", "plain-pass");

/// `target/opshost/` as built by `cargo xtask build` (or `$OPSHOST_DIST`).
pub fn dist() -> PathBuf {
    std::env::var_os("OPSHOST_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target").join("opshost"))
}

/// Built test-only guests (`$OPSHOST_TEST_GUESTS`).
pub fn test_guest(name: &str) -> PathBuf {
    std::env::var_os("OPSHOST_TEST_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target").join("opshost-test-guests"))
        .join(format!("{name}.wasm"))
}

/// The clone the tests run in. Read when the test runs, not when it was compiled: the build cache
/// lives outside the clone and is shared by clones at other paths, and cargo reuses a test binary
/// built in one of them (its fingerprint does not include the clone's path).
pub fn repo() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.parent().expect("repo root").to_path_buf()
}

/// One compile cache for every test server, so only the first start compiles.
fn shared_compile_cache() -> PathBuf {
    repo().join("target").join("opshost-test-cache")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A fresh root folder under the system temp folder, removed on drop.
pub struct TempRoot(PathBuf);

impl TempRoot {
    pub fn new() -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("opshost-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp root");
        Self(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempRoot {
    /// An empty handle (nothing to remove), left behind by `Server::crash`.
    fn default() -> Self {
        Self(PathBuf::new())
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to start a server.
pub struct ServerBuilder {
    root: TempRoot,
    env: Vec<(String, String)>,
    components: Vec<(PathBuf, String)>,
}

impl ServerBuilder {
    /// Environment for the server process (e.g. `OPERATIONSAPI_LIMITS_CALLTIMEOUT`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Copies a component into `componentsRoot` under `file_name` before start.
    pub fn component(mut self, path: PathBuf, file_name: &str) -> Self {
        self.components.push((path, file_name.into()));
        self
    }

    /// Starts on an existing root folder (e.g. the one a crashed server left).
    pub fn root(mut self, root: TempRoot) -> Self {
        self.root = root;
        self
    }

    pub fn start(self) -> Server {
        let components = self.root.path().join("components");
        std::fs::create_dir_all(&components).expect("components dir");
        for (path, name) in &self.components {
            std::fs::copy(path, components.join(name)).unwrap_or_else(|e| panic!("copying {}: {e}", path.display()));
        }
        // A root an earlier server used already holds the user (its storage, its config).
        let reused = std::fs::read_dir(self.root.path())
            .map(|entries| entries.filter_map(Result::ok).any(|e| e.file_name() != "components"))
            .unwrap_or(false);
        // A non-super_user, created through the host's user store before the server starts
        // (on a reused root it already exists and the command fails harmlessly).
        let added = Command::new(dist().join("opshost"))
            .args(["user", "add", "--username", USER.0, "--password", USER.1, "--role", "plain_role"])
            .env("ROOTPATH", self.root.path())
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("running opshost user add");
        assert!(added.status.success() || reused, "opshost user add failed: {}", String::from_utf8_lossy(&added.stderr));
        Server::spawn(self.root, self.env)
    }
}

/// A running opshost process.
pub struct Server {
    pub port: u16,
    root: TempRoot,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder { root: TempRoot::new(), env: Vec::new(), components: Vec::new() }
    }

    pub fn start() -> Server {
        Self::builder().start()
    }

    fn spawn(root: TempRoot, env: Vec<(String, String)>) -> Server {
        let port = free_port();
        let mut cmd = Command::new(dist().join("opshost"));
        cmd.arg("run")
            .env("ROOTPATH", root.path())
            .env("HDB_ADMIN_USERNAME", ADMIN.0)
            .env("HDB_ADMIN_PASSWORD", ADMIN.1)
            .env("OPERATIONSAPI_NETWORK_PORT", port.to_string())
            .env("LOGGING_LEVEL", "info")
            .env("OPSHOST_COMPILE_CACHE", shared_compile_cache())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting opshost");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let (o, e) = (stdout.clone(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                o.lock().expect("lock").push(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                e.lock().expect("lock").push(line);
            }
        });
        let mut server = Server { port, root, child, stdout, stderr };
        let wanted = format!("opshost listening on http://127.0.0.1:{port}");
        server.wait_for_line(&wanted, Duration::from_secs(60));
        server
    }

    /// Waits until the server prints `wanted` on stdout (panics with its output otherwise).
    pub fn wait_for_line(&mut self, wanted: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stdout.lock().expect("lock").iter().any(|l| l.contains(wanted)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("server did not print '{wanted}'.\nstdout: {:?}\nstderr: {}", self.stdout_lines(), self.log());
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited with {status}.\nstderr: {}", self.log());
            }
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The server's process id (to read its /proc entries: open descriptors, memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().expect("lock").clone()
    }

    /// Everything the server wrote to its log so far.
    pub fn log(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    /// Whether the log contains `text` within `timeout` (log lines arrive through a pipe, a
    /// little after the HTTP response).
    pub fn log_contains(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr.lock().expect("lock").iter().any(|l| l.contains(text)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// POST a JSON body as the super_user.
    pub fn post(&self, body: Value) -> (u16, Value) {
        self.post_as(ADMIN, body)
    }

    pub fn post_as(&self, (user, pass): (&str, &str), body: Value) -> (u16, Value) {
        let auth = basic(user, pass);
        let (status, text) = self.raw(Some("application/json"), body.to_string().as_bytes(), Some(&auth));
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// POST raw bytes with an optional content type and Authorization header; returns the
    /// status and body text.
    pub fn raw(&self, content_type: Option<&str>, body: &[u8], auth: Option<&str>) -> (u16, String) {
        post_raw(&self.url(), content_type, body, auth)
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and hands back its root.
    pub fn crash(mut self) -> TempRoot {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut self.root)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    /// Sends SIGTERM, waits for a clean exit and hands back the root, to start again on it.
    pub fn stop_keeping_root(mut self) -> (std::process::ExitStatus, TempRoot) {
        let status = self.terminate();
        (status, std::mem::take(&mut self.root))
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

pub fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
}

/// POST to any URL; non-2xx statuses are returned, not raised.
pub fn post_raw(url: &str, content_type: Option<&str>, body: &[u8], auth: Option<&str>) -> (u16, String) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let mut req = agent.post(url);
    if let Some(ct) = content_type {
        req = req.set("Content-Type", ct);
    }
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    match req.send_bytes(body) {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b"admin:pass"), "YWRtaW46cGFzcw==");
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b"abc"), "YWJj");
    }
}

/// The 200 answer to `body` sent as the super_user (the request and answer are in the panic).
pub fn ok(server: &Server, body: Value) -> Value {
    let (status, resp) = server.post(body.clone());
    assert_eq!(status, 200, "{body} -> {resp}");
    resp
}

/// The status and `{"error": ...}` text of a request that must fail.
pub fn err(server: &Server, body: Value) -> (u16, String) {
    let (status, resp) = server.post(body.clone());
    assert_ne!(status, 200, "{body} unexpectedly succeeded: {resp}");
    (status, resp["error"].as_str().unwrap_or_default().to_string())
}

/// Base64 (RFC 4648, padded) of `bytes`, for request payloads.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64(bytes)
}
