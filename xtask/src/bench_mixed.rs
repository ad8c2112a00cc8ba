//! `cargo xtask bench mixed`: durable single inserts into one table while a bulk insert goes
//! into another, on one server (issue 18). This mix froze every write of the server for good in
//! about one run of three while the memtable budget stalled writers (storage/tuning.rs), and no
//! single-scenario bench could show it: each scenario alone was fine. Per round, on fresh
//! tables: a 100,000-record bulk insert (10 x 10,000, bench.sh's records) alone, durable inserts
//! alone (wrk -t2 -c16), then both at once. Prints the times and rates, and fails when a request
//! fails or a bulk row is missing. `OPSHOST_BENCH_MIXED_ROUNDS` rounds (default 3),
//! `OPSHOST_BENCH_MIXED_SECONDS` per wrk run (default 8; the bulk insert starts 1 s into it).

use super::{free_port, post, post_json, scratch_root, spawn_server, stop, wait_ready, wrk};
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

pub fn run() -> Result<()> {
    let rounds: usize = std::env::var("OPSHOST_BENCH_MIXED_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seconds: u32 = std::env::var("OPSHOST_BENCH_MIXED_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let root = scratch_root("mixed")?;
    let port = free_port()?;
    let mut child = spawn_server(&root, port)?;
    let result = (|| -> Result<()> {
        wait_ready(port, Duration::from_secs(60))?;
        println!("inserts beside a bulk insert, {rounds} rounds (wrk -t2 -c16 -d{seconds}s durable single inserts; bulk 10 x 10,000 records):");
        for round in 0..rounds {
            for table in ["alone", "ins", "big"] {
                post(port, &format!(r#"{{"operation":"create_table","database":"bench","table":"{table}{round}","primary_key":"id"}}"#))?;
            }
            let bulk_alone = bulk(port, &format!("alone{round}"))?;
            let inserts_alone = checked(wrk(port, seconds, &root, "", Some(&inserts(&format!("ins{round}"), 0)))?)?;
            let (inserts_beside, bulk_beside) = std::thread::scope(|s| -> Result<(String, Duration)> {
                let load = s.spawn(|| wrk(port, seconds, &root, "", Some(&inserts(&format!("ins{round}"), 1))));
                std::thread::sleep(Duration::from_secs(1));
                let took = bulk(port, &format!("big{round}"));
                let load = load.join().map_err(|_| anyhow::anyhow!("the wrk thread panicked"))??;
                Ok((checked(load)?, took?))
            })?;
            println!(
                "  round {}: bulk alone {:.2} s, beside inserts {:.2} s; inserts alone {inserts_alone}; beside the bulk {inserts_beside}",
                round + 1,
                bulk_alone.as_secs_f64(),
                bulk_beside.as_secs_f64()
            );
        }
        Ok(())
    })();
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// 100,000 records into `table` as ten requests of 10,000 (bench.sh's bulk records); the time,
/// once every row is counted.
fn bulk(port: u16, table: &str) -> Result<Duration> {
    let started = Instant::now();
    for from in (0..100_000).step_by(10_000) {
        let records: Vec<serde_json::Value> = (from..from + 10_000)
            .map(|i: u32| {
                let breed = ["beagle", "pug", "husky", "corgi"][i as usize % 4];
                serde_json::json!({"id": i, "name": format!("dog-{i}"), "breed": breed, "age": i % 17, "weight": 3.5 + f64::from(i % 50) * 0.7, "vaccinated": i.is_multiple_of(2)})
            })
            .collect();
        post(port, &serde_json::json!({"operation": "insert", "database": "bench", "table": table, "records": records}).to_string())?;
    }
    let took = started.elapsed();
    let count = post_json(port, &format!(r#"{{"operation":"sql","sql":"SELECT COUNT(*) AS c FROM bench.{table}"}}"#))?;
    if count[0]["c"] != 100_000 {
        bail!("bench.{table} holds {} rows after the bulk insert, not 100000", count[0]["c"]);
    }
    Ok(took)
}

/// A wrk `request` function: one new record per request into `table`, ids unique per wrk
/// thread and per `run` of the same table.
fn inserts(table: &str, run: u32) -> String {
    format!(
        "local seen = 0\nsetup = function(thread)\n  thread:set(\"tid\", seen)\n  seen = seen + 1\nend\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  local id = {base} + tid * 100000000 + counter\n  return wrk.format(nil, nil, nil, string.format('{{\"operation\":\"insert\",\"database\":\"bench\",\"table\":\"{table}\",\"records\":[{{\"id\":%d,\"name\":\"n%d\",\"v\":%d}}]}}', id, id, counter))\nend\n",
        base = 1_000_000_000u64 * u64::from(run + 1),
    )
}

/// wrk's summary, or an error when any request failed (a non-2xx answer counts).
fn checked(summary: String) -> Result<String> {
    if !summary.contains("errors: 0)") {
        bail!("requests failed: {summary}");
    }
    Ok(summary)
}
