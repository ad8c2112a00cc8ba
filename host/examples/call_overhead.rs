//! Measures the wasm overhead of one call (new store + instantiate + call + drop) of a real
//! operation component, without HTTP: `call_overhead <component.wasm> [iterations]`.
//! Prints the median and percentiles in microseconds.

use opshost::bindings::CallContext;
use opshost::capabilities::{Caller, Grants};
use opshost::runtime::{CallLimits, CallOutcome, Runtime};
use opshost::services::{config::ConfigService, Services};
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let component = args.next().ok_or_else(|| anyhow::anyhow!("usage: call_overhead <component.wasm> [iterations]"))?;
    let iterations: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let root = std::env::temp_dir().join(format!("opshost-bench-{}", std::process::id()));
    let config = ConfigService::open(&root)?;
    let settings = config.settings()?;
    let services = Services::open(config, &settings)?;
    let runtime = Runtime::new(root.join("cache"), 64, 128 << 20)?;
    let limits = CallLimits { memory_bytes: 128 << 20, timeout: Duration::from_secs(10) };
    let op = runtime.load(component.as_ref(), &services, limits, |_, _| Ok(Grants::with(&["config", "sysinfo"])))?;
    let context = CallContext {
        username: "bench".into(),
        role: "super_user".into(),
        super_user: true,
        request_id: "bench".into(),
        job_id: None,
    };
    let request = format!(r#"{{"operation":"{}"}}"#, op.info.name);
    let executor = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + 1000 {
        let started = Instant::now();
        let outcome = executor.block_on(runtime.call(&op, &services, &context, Caller { username: "bench".into(), super_user: true, ..Caller::default() }, &request, limits));
        let elapsed = started.elapsed();
        if !matches!(outcome, CallOutcome::Answered(Ok(_), _)) {
            anyhow::bail!("call {i} did not succeed");
        }
        if i >= 1000 {
            samples.push(elapsed);
        }
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "call overhead ({}, {} calls, pooling: {}): median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
        op.info.name,
        iterations,
        runtime.pooled(),
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
