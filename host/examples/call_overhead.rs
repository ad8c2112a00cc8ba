//! Measures the wasm overhead of one call (new store + instantiate + call + drop) of a real
//! operation component, without HTTP: `call_overhead <component.wasm> [iterations]`.
//! Prints wall-clock and thread-CPU median/p90/p99 per call in microseconds.
//!
//! It runs as the server does, so its profile is the server's: mimalloc as the global allocator
//! (the server's `main.rs`), and a persistent compile cache (`$OPSHOST_COMPILE_CACHE`, else
//! `~/.cache/opshost/call-overhead`), so only the first run of a component compiles it and a
//! profile of a later run holds calls alone. CPU time is this thread's (`CLOCK_THREAD_CPUTIME_ID`):
//! the call runs on it (wasmtime's async fibers are polled here), and other processes on a busy
//! machine delay the wall clock but not this figure.

use opshost::bindings::CallContext;
use opshost::capabilities::{Caller, Grants};
use opshost::runtime::{CallLimits, CallOutcome, Runtime};
use opshost::services::{config::ConfigService, Services};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let component = args.next().ok_or_else(|| anyhow::anyhow!("usage: call_overhead <component.wasm> [iterations]"))?;
    let iterations: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let root = std::env::temp_dir().join(format!("opshost-bench-{}", std::process::id()));
    let cache = match std::env::var_os("OPSHOST_COMPILE_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache/opshost/call-overhead"),
    };
    let config = ConfigService::open(&root)?;
    let settings = config.settings()?;
    let services = Services::open(config, &settings)?;
    let runtime = Runtime::new(cache, 64, 128 << 20)?;
    let limits = CallLimits { memory_bytes: 128 << 20, timeout: Duration::from_secs(10) };
    let loading = Instant::now();
    let op = runtime.load(component.as_ref(), &services, limits, |_, _| Ok(Grants::with(&["config", "sysinfo"])))?;
    let load_time = loading.elapsed();
    let context = CallContext {
        username: "bench".into(),
        role: "super_user".into(),
        super_user: true,
        request_id: "bench".into(),
        job_id: None,
    };
    let request = format!(r#"{{"operation":"{}"}}"#, op.info.name);
    let executor = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut wall = Vec::with_capacity(iterations);
    let mut cpu = Vec::with_capacity(iterations);
    for i in 0..iterations + 1000 {
        let started = Instant::now();
        let cpu_started = thread_cpu();
        let outcome = executor.block_on(runtime.call(&op, &services, &context, Caller { username: "bench".into(), super_user: true, ..Caller::default() }, &request, limits));
        let cpu_elapsed = thread_cpu().saturating_sub(cpu_started);
        let elapsed = started.elapsed();
        if !matches!(outcome, CallOutcome::Answered(Ok(_), _, _)) {
            anyhow::bail!("call {i} did not succeed");
        }
        if i >= 1000 {
            wall.push(elapsed);
            cpu.push(cpu_elapsed);
        }
    }
    wall.sort();
    cpu.sort();
    let pct = |s: &[Duration], p: f64| s[((s.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "call overhead ({}, {} calls, pooling: {}, load {:.0} ms): wall median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs; thread CPU median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
        op.info.name,
        iterations,
        runtime.pooled(),
        load_time.as_secs_f64() * 1e3,
        pct(&wall, 0.5),
        pct(&wall, 0.9),
        pct(&wall, 0.99),
        pct(&cpu, 0.5),
        pct(&cpu, 0.9),
        pct(&cpu, 0.99)
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
