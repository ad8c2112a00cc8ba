//! Package installs for component projects: the real `npm install`, run in a project folder
//! under `componentsRoot`, with a time limit and its output captured.

use super::ServiceError;
use std::path::Path;
use std::time::Duration;

/// An install that takes longer than this is stopped.
const NPM_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `npm install [--dry-run]` in `<root>/<project>`; returns npm's stdout and stderr
/// (absent when empty). A missing npm is reported as the project's error, not as a failure.
pub async fn npm_install(root: &Path, project: &str, dry_run: bool) -> Result<(Option<String>, Option<String>), ServiceError> {
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
    let mut cmd = tokio::process::Command::new("npm");
    cmd.arg("install").arg("--no-audit").arg("--no-fund").arg("--no-progress");
    if dry_run {
        cmd.arg("--dry-run");
    }
    cmd.current_dir(&dir).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let child = cmd.output();
    let out = match tokio::time::timeout(NPM_TIMEOUT, child).await {
        Err(_) => return Ok((None, Some(format!("npm install did not finish within {} s and was stopped", NPM_TIMEOUT.as_secs())))),
        // Not a server failure: the project simply could not be installed here.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((None, Some("npm is not installed on this server (install Node.js and npm, e.g. apt-get install npm)".into())));
        }
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
