//! `cargo xtask bench polyglot`: the same trivial operation written in Rust (`hello_v1`, the
//! test guest), in JavaScript (`js_probe_v1`, componentize-js) and in Python (`py_probe_v1`,
//! componentize-py), side by side in one run: component size, first compile (Cranelift,
//! `opshost precompile` into an empty cache), compile-cache load (the same again on the filled
//! cache: process start plus deserializing), per-call overhead without HTTP (the host's
//! `call_overhead` example: new store, instantiate, call, drop), an HTTP round trip, a cached
//! restart with all three in `componentsRoot`, and the server's resident memory after serving
//! each.

use super::{free_port, median_ms, post, rss_kib, scratch_root, spawn_server, stop, wait_ready};
use crate::paths;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// (language, component file in the test guests, operation name, calls for call_overhead)
const OPERATIONS: [(&str, &str, &str, u32); 3] =
    [("Rust", "hello_v1", "test_hello", 20_000), ("JavaScript", "js_probe_v1", "js_probe", 5_000), ("Python", "py_probe_v1", "py_probe", 3_000)];

pub fn run() -> Result<()> {
    for (lang, file, _, _) in OPERATIONS {
        let path = paths::test_guests().join(format!("{file}.wasm"));
        let size = std::fs::metadata(&path).with_context(|| format!("{} (cargo xtask build)", path.display()))?.len();
        let (compile, cached) = first_compile(&path)?;
        println!(
            "{lang:<10} {file}.wasm: {:.1} MB, first compile {:.1} s, compile-cache load {:.0} ms",
            size as f64 / 1e6,
            compile.as_secs_f64(),
            cached.as_secs_f64() * 1e3
        );
    }
    for (lang, file, _, calls) in OPERATIONS {
        let example = paths::host_target().join("release").join("examples").join("call_overhead");
        let output = Command::new(&example).arg(paths::test_guests().join(format!("{file}.wasm"))).arg(calls.to_string()).output()?;
        if !output.status.success() {
            bail!("call_overhead {file} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        print!("{lang:<10} {}", String::from_utf8_lossy(&output.stdout));
    }
    served()
}

/// `opshost precompile` of one file into an empty cache (Cranelift's compile, plus the process
/// start, a few milliseconds), then again on the filled cache (the process start plus loading
/// and checking the cached artifact).
fn first_compile(path: &Path) -> Result<(Duration, Duration)> {
    let scratch = scratch_root("polyglot-compile")?;
    let precompile = || -> Result<Duration> {
        let started = Instant::now();
        let status = Command::new(paths::dist().join("opshost"))
            .arg("precompile")
            .arg(path)
            .env("OPSHOST_COMPILE_CACHE", scratch.join("cache"))
            .env("ROOTPATH", scratch.join("root"))
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            bail!("opshost precompile {} failed", path.display());
        }
        Ok(started.elapsed())
    };
    let result = precompile().and_then(|first| Ok((first, precompile()?)));
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// A server with the three operations in `componentsRoot`: restarted on a warm compile cache, then
/// HTTP round trips and resident memory for each.
fn served() -> Result<()> {
    let root = scratch_root("polyglot")?;
    std::fs::create_dir_all(root.join("components"))?;
    for (_, file, _, _) in OPERATIONS {
        std::fs::copy(paths::test_guests().join(format!("{file}.wasm")), root.join("components").join(format!("{file}.wasm")))?;
    }
    let all_served = |port: u16| OPERATIONS.iter().all(|(_, _, op, _)| post(port, &format!(r#"{{"operation":"{op}"}}"#)).is_ok());
    let result = (|| -> Result<()> {
        let mut restarts = Vec::new();
        for i in 0..4 {
            let port = free_port()?;
            let started = Instant::now();
            let mut child = spawn_server(&root, port)?;
            wait_ready(port, Duration::from_secs(120))?;
            let deadline = Instant::now() + Duration::from_secs(120);
            while !all_served(port) {
                if Instant::now() > deadline {
                    stop(&mut child);
                    bail!("the operations were not served within 120 s");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let took = started.elapsed();
            if i == 0 {
                println!("start with all three operations, cold compile cache: {:.2} s", took.as_secs_f64());
            } else {
                restarts.push(took);
            }
            if i < 3 {
                stop(&mut child);
                continue;
            }
            // The last start stays up for the per-request figures.
            let pid = child.id();
            let outcome = (|| -> Result<()> {
                println!("restart with all three operations, warm compile cache, to all served: median {:.0} ms", median_ms(&mut restarts));
                for (lang, _, op, _) in OPERATIONS {
                    let body = format!(r#"{{"operation":"{op}"}}"#);
                    let before = rss_kib(pid);
                    let mut samples = Vec::new();
                    for _ in 0..1000 {
                        let started = Instant::now();
                        post(port, &body)?;
                        samples.push(started.elapsed());
                    }
                    let after = rss_kib(pid);
                    samples.sort();
                    let p99 = samples[samples.len() * 99 / 100].as_secs_f64() * 1e3;
                    println!(
                        "{lang:<10} {op} over HTTP (new connection each, 1000 calls): median {:.2} ms, p99 {p99:.2} ms; server RSS {} MiB -> {} MiB",
                        median_ms(&mut samples),
                        before / 1024,
                        after / 1024
                    );
                }
                Ok(())
            })();
            stop(&mut child);
            outcome?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&root);
    result
}
