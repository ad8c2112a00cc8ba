//! `cargo xtask sign --key KEY.pem [--grants a,b] COMPONENT.wasm`: signs a built component for
//! servers with `operationsApi.components.trustedKeys`. Writes `COMPONENT.wasm.sig` (what a
//! server reads beside a file dropped into `componentsRoot`) and prints the base64 signature to
//! pass as `deploy_component`'s `signature` with the same `grants`. The key is an Ed25519 PKCS#8
//! PEM (`openssl genpkey -algorithm ed25519 -out key.pem`); openssl does the signing, over the
//! message the host's `services::signing` defines.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use sha2::Digest as _;
use std::path::PathBuf;
use std::process::Command;

/// Must match `MAGIC` in host/src/services/signing.rs.
const MAGIC: &str = "opshost-component-signature-v1";

pub fn sign(args: &[String]) -> Result<()> {
    let mut key = None;
    let mut grants: Vec<String> = Vec::new();
    let mut component = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--key" => key = it.next().map(PathBuf::from),
            "--grants" => grants = it.next().map(|g| g.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default(),
            other if other.starts_with("--") => bail!("unknown flag {other}"),
            other => component = Some(PathBuf::from(other)),
        }
    }
    let (Some(key), Some(component)) = (key, component) else {
        bail!("usage: cargo xtask sign --key KEY.pem [--grants storage,jobs] COMPONENT.wasm");
    };
    let bytes = std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
    let hash = hex(&sha2::Sha256::digest(&bytes));
    let mut sorted: Vec<&str> = grants.iter().map(String::as_str).filter(|g| *g != "types").collect();
    sorted.sort_unstable();
    sorted.dedup();
    let message = format!("{MAGIC}\n{hash}\n{}", sorted.join(","));
    let scratch = std::env::temp_dir().join(format!("opshost-sign-{}", std::process::id()));
    std::fs::write(&scratch, &message)?;
    let out = Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(&scratch)
        .output()
        .context("running openssl (apt-get install openssl)")?;
    let _ = std::fs::remove_file(&scratch);
    if !out.status.success() {
        bail!("openssl could not sign with {}: {}", key.display(), String::from_utf8_lossy(&out.stderr));
    }
    let signature = base64::engine::general_purpose::STANDARD.encode(&out.stdout);
    let mut sidecar = component.as_os_str().to_owned();
    sidecar.push(".sig");
    let body = serde_json::json!({ "grants": sorted, "signature": signature });
    std::fs::write(&sidecar, format!("{body}\n")).with_context(|| format!("writing {}", PathBuf::from(&sidecar).display()))?;
    eprintln!("xtask: signed {} (sha256 {hash}, grants [{}]) -> {}", component.display(), sorted.join(", "), PathBuf::from(&sidecar).display());
    println!("{signature}");
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
