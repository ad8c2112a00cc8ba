//! What the tests need beyond the build, set up by `cargo xtask test`: the `openssl` and `curl`
//! commands (certificates made by an independent tool, a real TLS client), installed from
//! Debian's packages when missing. Started services (the S3 server for export_to_s3 joins
//! here) stop when the guard drops.

use anyhow::{bail, Result};
use std::process::Command;

/// Keeps the started services alive for the duration of the test run.
pub struct Services {
    children: Vec<std::process::Child>,
}

impl Drop for Services {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn start_for_tests() -> Result<Services> {
    ensure_commands(&[("openssl", "openssl"), ("curl", "curl")])?;
    Ok(Services { children: Vec::new() })
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
