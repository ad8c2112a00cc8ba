//! `cargo xtask bench components`: deploy-to-served time of `deploy_component` (the answer comes
//! once the new version serves), compile included: each deploy sends different bytes (a custom
//! section with a counter is appended, which every wasm validator accepts), so the compile cache
//! never answers. Figures for the 100 KB example operation and for a 10 MB file (the same code
//! plus a 10 MB custom section: transfer, base64, hashing and storing, not 10 MB of code).

use super::{free_port, median_ms, post, post_json, scratch_root, spawn_server, stop, wait_ready};
use crate::paths;
use anyhow::{Context, Result};
use base64::Engine as _;
use std::time::{Duration, Instant};

pub fn run() -> Result<()> {
    let root = scratch_root("components")?;
    let port = free_port()?;
    let mut child = spawn_server(&root, port)?;
    let result = (|| -> Result<()> {
        wait_ready(port, Duration::from_secs(60))?;
        let component = std::fs::read(paths::components().join("hello_operation.wasm")).context("the example component (cargo xtask build)")?;
        for (label, padding) in [("the example operation", 0usize), ("a 10 MB file", 10 << 20)] {
            let mut samples = Vec::new();
            for i in 0..7u32 {
                let bytes = with_custom_section(&component, i, padding);
                let body = format!(
                    r#"{{"operation":"deploy_component","name":"hello_world","payload":"{}"}}"#,
                    base64::engine::general_purpose::STANDARD.encode(&bytes)
                );
                let started = Instant::now();
                post(port, &body)?;
                samples.push(started.elapsed());
                // Served: the very next request answers from the new version.
                post(port, r#"{"operation":"hello_world"}"#)?;
                if i == 0 {
                    println!("deploy_component, {label} ({} KB):", bytes.len() >> 10);
                }
            }
            let min = samples.iter().min().copied().unwrap_or_default();
            println!("  deploy to served (compile included), 7 deploys: median {:.0} ms, min {:.0} ms", median_ms(&mut samples), min.as_secs_f64() * 1e3);
        }
        let versions = post_json(port, r#"{"operation":"get_components"}"#)?;
        println!("  versions kept: {}", versions[0]["versions"].as_array().map(Vec::len).unwrap_or(0));
        Ok(())
    })();
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// `bytes` with a custom section `opshost-bench` holding `n` and `padding` zero bytes appended.
fn with_custom_section(bytes: &[u8], n: u32, padding: usize) -> Vec<u8> {
    let name = b"opshost-bench";
    let mut payload = Vec::with_capacity(name.len() + 5 + padding);
    leb128(&mut payload, name.len() as u64);
    payload.extend_from_slice(name);
    payload.extend_from_slice(&n.to_le_bytes());
    payload.resize(payload.len() + padding, 0);
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    out
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
