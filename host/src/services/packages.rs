//! Package installs for component projects: the real `npm install`, run in a project folder
//! under `componentsRoot` with a scrubbed environment, lifecycle scripts off, one install per
//! project at a time, a time limit, and the whole process group killed when it is stopped.

use super::ServiceError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// An install that takes longer than this is stopped (the call's own time limit, callTimeout,
/// is usually shorter and applies too).
const NPM_TIMEOUT: Duration = Duration::from_secs(300);

/// Environment variables npm may see. Everything else (HDB_ADMIN_PASSWORD, cloud credentials,
/// whatever the service manager set) stays out of reach of npm and of any package script.
const KEEP_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "NODE_EXTRA_CA_CERTS", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"];

/// Runs `npm install [--dry-run] --ignore-scripts` in `<root>/<project>`; returns npm's stdout
/// and stderr (absent when empty). A missing npm is reported as the project's error, not as a
/// failure. `limit` bounds the run (the caller passes its callTimeout).
pub async fn npm_install(
    root: &Path,
    project: &str,
    dry_run: bool,
    limit: Duration,
) -> Result<(Option<String>, Option<String>), ServiceError> {
    if project.is_empty() || project.contains(['/', '\\']) || project.contains("..") || project.starts_with('.') {
        return Err(ServiceError::BadRequest(format!("project '{project}' must be a folder name under componentsRoot")));
    }
    let dir = root.join(project);
    if !dir.is_dir() {
        return Err(ServiceError::NotFound(format!("project '{project}' does not exist in componentsRoot")));
    }
    if !dir.join("package.json").is_file() {
        return Err(ServiceError::NotFound(format!("project '{project}' has no package.json")));
    }
    // Two installs in one node_modules corrupt it: one at a time per project.
    let lock = project_lock(&dir);
    let _installing = lock.lock().await;

    let mut cmd = tokio::process::Command::new("npm");
    // Lifecycle scripts (preinstall, postinstall, ...) of the project and of every dependency
    // would run as the server's user: off.
    cmd.arg("install").arg("--ignore-scripts").arg("--no-audit").arg("--no-fund").arg("--no-progress");
    if dry_run {
        cmd.arg("--dry-run");
    }
    cmd.env_clear();
    for (key, value) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if KEEP_ENV.contains(&name.as_ref()) || name.to_ascii_lowercase().starts_with("npm_config_") {
            cmd.env(&key, value);
        }
    }
    // Its own process group, so stopping it stops every child it started too.
    cmd.current_dir(&dir).stdin(std::process::Stdio::null()).process_group(0).kill_on_drop(true);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = match cmd.spawn() {
        Ok(child) => child,
        // Not a server failure: the project simply could not be installed here.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((None, Some("npm is not installed on this server (install Node.js and npm, e.g. apt-get install npm)".into())));
        }
        Err(e) => return Err(ServiceError::Internal(anyhow::anyhow!("running npm: {e}"))),
    };
    // Kills the group when the install is stopped: on timeout, and when the call itself is
    // dropped at its time limit (kill_on_drop alone would reach npm only, not its children).
    let _group = child.id().map(GroupKill);
    let limit = limit.min(NPM_TIMEOUT);
    let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Err(_) => return Ok((None, Some(format!("npm install did not finish within {} s and was stopped", limit.as_secs_f64())))),
        Ok(Err(e)) => return Err(ServiceError::Internal(anyhow::anyhow!("running npm: {e}"))),
        Ok(Ok(out)) => out,
    };
    let text = |b: &[u8]| Some(String::from_utf8_lossy(b).trim().to_string()).filter(|s| !s.is_empty());
    let mut error = text(&out.stderr);
    if !out.status.success() && error.is_none() {
        error = Some(format!("npm install failed ({})", out.status));
    }
    Ok((text(&out.stdout), error))
}

/// The install lock of one project folder.
fn project_lock(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<parking_lot::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock();
    // Forget locks nobody holds or waits for, so the map stays as small as the live installs.
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(dir.to_path_buf()).or_default().clone()
}

/// Sends SIGKILL to a process group when dropped (a group whose processes all exited is gone,
/// and the kill then does nothing).
struct GroupKill(u32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Ok(pgid) = libc::pid_t::try_from(self.0) {
            // SAFETY: killpg has no memory-safety preconditions; the group is the one npm leads.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_install_kills_its_whole_process_group() {
        // A fake `npm` that starts a grandchild and waits: stopping the install must end both.
        let dir = std::env::temp_dir().join(format!("opshost-npm-{}", uuid::Uuid::new_v4().simple()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(dir.join("proj")).expect("mkdir");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::write(dir.join("proj/package.json"), "{}").expect("package.json");
        let marker = dir.join("grandchild.pid");
        let script = format!("#!/bin/sh\nsleep 300 &\necho $! > {}\nwait\n", marker.display());
        std::fs::write(bin.join("npm"), script).expect("fake npm");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(bin.join("npm"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let old_path = std::env::var_os("PATH").unwrap_or_default();
        // The only test that touches PATH.
        std::env::set_var("PATH", format!("{}:{}", bin.display(), old_path.to_string_lossy()));
        let (_, error) = npm_install(&dir, "proj", false, Duration::from_millis(1500)).await.expect("runs");
        std::env::set_var("PATH", old_path);
        assert!(error.is_some_and(|e| e.contains("did not finish")));
        let pid: i32 = std::fs::read_to_string(&marker).expect("pid").trim().parse().expect("a pid");
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0 && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ");
        assert!(!alive, "the grandchild {pid} survived the stop");
        let _ = std::fs::remove_dir_all(dir);
    }
}
