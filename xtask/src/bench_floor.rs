//! `cargo xtask bench floor`: what a request costs on this machine before the operation does
//! any work, next to three real operations, on one server in one run (issue 18). Six wrk
//! scenarios at c16, alternated round by round so the machine's drift falls on all alike:
//! a static `GET /` (no auth, no wasm), an authenticated POST naming no operation (auth, body,
//! lookup; answers 400), `test_hello` (the same plus a fresh wasm instance that does nothing),
//! then `get_configuration`, `list_certificates` and `search_by_hash` (one record of a
//! 1,000-record table, as `../shared/anchors/harper/bench.sh` asks). Each prints req/s and the
//! server's CPU per request (utime + stime from /proc): the gap between the no-wasm POST and
//! `test_hello` is the per-call price of an isolated instance, and `test_hello`'s req/s bounds
//! what any operation can reach here with the client on the same cores. The server runs with
//! the answer cache off, so the three operations are real calls every time;
//! `OPSHOST_BENCH_FLOOR_ANSWER_CACHE=true` turns it on (their answers are then kept ones).

use super::{free_port, post, post_script, scratch_root, server_command, stop, wait_ready};
use crate::paths;
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Duration;

/// (label, request body; `None` is a plain `GET /`)
const SCENARIOS: [(&str, Option<&str>); 6] = [
    ("GET / (no auth, no wasm)", None),
    ("POST unknown operation (auth, no wasm)", Some(r#"{"operation":"no_such_operation"}"#)),
    ("test_hello (auth + an empty wasm call)", Some(r#"{"operation":"test_hello","name":"x"}"#)),
    ("get_configuration", Some(r#"{"operation":"get_configuration"}"#)),
    ("list_certificates", Some(r#"{"operation":"list_certificates"}"#)),
    (
        "search_by_hash",
        Some(r#"{"operation":"search_by_hash","database":"bench","table":"kv","hash_values":[42],"get_attributes":["*"]}"#),
    ),
];

pub fn run() -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() && !crate::apt_install(&["wrk"]) {
        bail!("wrk is not installed and could not be installed: apt-get install wrk");
    }
    let rounds: usize = std::env::var("OPSHOST_BENCH_FLOOR_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seconds: u32 = std::env::var("OPSHOST_BENCH_FLOOR_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let root = scratch_root("floor")?;
    std::fs::create_dir_all(root.join("components"))?;
    let hello = paths::test_guests().join("hello_v1.wasm");
    std::fs::copy(&hello, root.join("components").join("hello_v1.wasm")).with_context(|| format!("{} (cargo xtask build)", hello.display()))?;
    let port = free_port()?;
    let cache = std::env::var("OPSHOST_BENCH_FLOOR_ANSWER_CACHE").unwrap_or_else(|_| "false".into());
    let mut child = server_command(&root, port).env("OPERATIONSAPI_ANSWERCACHE", &cache).spawn().context("starting opshost")?;
    let result = (|| -> Result<Vec<Vec<(f64, f64)>>> {
        wait_ready(port, Duration::from_secs(60))?;
        setup(port)?;
        let mut figures = vec![Vec::new(); SCENARIOS.len()];
        for _ in 0..rounds {
            for (i, (_, body)) in SCENARIOS.iter().enumerate() {
                figures[i].push(measure(port, child.id(), seconds, &root, *body)?);
            }
        }
        Ok(figures)
    })();
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&root);
    println!("request floor, wrk -t2 -c16 -d{seconds}s per scenario, {rounds} rounds alternated, answer cache {}: (req/s; server CPU µs per request):", if cache == "true" { "on" } else { "off" });
    for ((label, _), runs) in SCENARIOS.iter().zip(result?) {
        let rps: Vec<String> = runs.iter().map(|(r, _)| format!("{r:.0}")).collect();
        let cpu: Vec<String> = runs.iter().map(|(_, c)| format!("{c:.1}")).collect();
        println!("  {label:<42} {} req/s; {} µs", rps.join(" / "), cpu.join(" / "));
    }
    Ok(())
}

/// The table `search_by_hash` reads, as bench.sh makes it; and a check that each POST scenario
/// answers what it should (a floor measured on errors would be no floor).
fn setup(port: u16) -> Result<()> {
    post(port, r#"{"operation":"create_database","database":"bench"}"#)?;
    post(port, r#"{"operation":"create_table","database":"bench","table":"kv","primary_key":"id"}"#)?;
    let records: Vec<serde_json::Value> = (1..=1000)
        .map(|i| {
            let size = ["small", "medium", "large"][i % 3];
            serde_json::json!({"id": i, "name": format!("name-{i}"), "size": size, "age": i % 20})
        })
        .collect();
    post(port, &serde_json::json!({"operation": "insert", "database": "bench", "table": "kv", "records": records}).to_string())?;
    for (label, body) in SCENARIOS.iter().skip(2) {
        let body = body.expect("POST scenarios have a body");
        post(port, body).with_context(|| format!("{label} did not answer 200"))?;
    }
    Ok(())
}

/// One wrk run: (req/s, server CPU µs per request).
fn measure(port: u16, pid: u32, seconds: u32, root: &std::path::Path, body: Option<&str>) -> Result<(f64, f64)> {
    let mut wrk = Command::new("wrk");
    wrk.args(["-t2", "-c16", &format!("-d{seconds}s")]);
    if let Some(body) = body {
        let script = root.join("floor.lua");
        std::fs::write(&script, post_script(body))?;
        wrk.arg("-s").arg(script);
    }
    let before = cpu_ticks(pid)?;
    let out = wrk.arg(format!("http://127.0.0.1:{port}/")).output().context("running wrk")?;
    let after = cpu_ticks(pid)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let requests: f64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no request count in wrk's output: {text}"))?;
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    // /proc counts CPU time in clock ticks of 10 ms (USER_HZ = 100 on Linux).
    Ok((rps, (after - before) as f64 * 10_000.0 / requests.max(1.0)))
}

/// The server's user + system CPU so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state: utime and stime are
    // the 14th and 15th fields overall, so the 12th and 13th after the closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields.get(11).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0) + fields.get(12).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0))
}
