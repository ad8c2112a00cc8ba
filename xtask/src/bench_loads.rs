//! `cargo xtask bench loads`: bulk-load figures. A 100,000-row CSV loaded three ways
//! (`csv_data_load` with the CSV in the request, `csv_file_load` from the import root, then
//! the same file as `upsert` over the loaded rows), and a 1,000,000-row file through
//! `csv_file_load` with the server's RSS growth while it runs (sampled every 5 ms).
//! Each time is request to COMPLETE, polled with `get_job`.
//!
//! The memory figure is taken the same way in every run so runs compare (issue 16: one
//! unchanged binary read 29-96 MiB when it was measured after other loads in the same process,
//! because what the allocators kept from those moved the baseline): a fresh server on a fresh
//! root, the same warm-up (a 100,000-row `csv_file_load`, so the load path, the wasm instance
//! pool and RocksDB's threads exist), 5 s idle (mimalloc returns freed memory after 1 s), the
//! baseline RSS, the 1M load with its peak, then the RSS 5 s after it ends ("steady").
//! `OPSHOST_BENCH_LOAD_RUNS` runs (default 7) of each variant, interleaved; a variant is a set
//! of environment variables for the server, `OPSHOST_BENCH_LOAD_VARIANTS` as
//! `name:K=V,K=V;name2:` (default: the server as shipped), where `DIST=<folder>` runs another
//! dist's server (`base:DIST=/tmp/base-dist;new:` alternates an earlier build with this one).

use super::{free_port, post, rss_kib, run_job, scratch_root, server_command, server_command_of, spawn_server, stop, wait_ready, PEAK};
use anyhow::Result;
use std::io::Write;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

pub fn run() -> Result<()> {
    let root = scratch_root("loads")?;
    let port = free_port()?;
    let mut child = spawn_server(&root, port)?;
    wait_ready(port, Duration::from_secs(60))?;
    let result = (|| -> Result<()> {
        let imports = root.join("imports");
        std::fs::create_dir_all(&imports)?;
        let small = imports.join("dogs-100k.csv");
        let big = imports.join("dogs-1m.csv");
        write_csv(&small, 100_000)?;
        write_csv(&big, 1_000_000)?;
        for t in ["data_load", "file_load"] {
            post(port, &format!(r#"{{"operation":"create_table","database":"bench","table":"{t}","primary_key":"id"}}"#))?;
        }

        let data = std::fs::read_to_string(&small)?;
        let body = serde_json::json!({"operation": "csv_data_load", "database": "bench", "table": "data_load", "data": data}).to_string();
        let (took, job) = run_job(port, &body, None)?;
        println!("csv_data_load 100,000 rows ({:.1} MB in the request): {:.2} s request to COMPLETE ({})", data.len() as f64 / 1e6, took.as_secs_f64(), job["message"]);

        for action in ["insert", "upsert"] {
            let body = format!(r#"{{"operation":"csv_file_load","action":"{action}","database":"bench","table":"file_load","file_path":"{}"}}"#, small.display());
            let (took, job) = run_job(port, &body, None)?;
            println!("csv_file_load {action} 100,000 rows: {:.2} s request to COMPLETE ({})", took.as_secs_f64(), job["message"]);
        }

        Ok(())
    })();
    stop(&mut child);
    result?;
    let big = root.join("imports").join("dogs-1m.csv");
    let small = root.join("imports").join("dogs-100k.csv");
    let memory = million(&small, &big);
    let _ = std::fs::remove_dir_all(&root);
    memory
}

/// One figure of one run of the 1M load.
struct Run {
    baseline: u64,
    growth: u64,
    steady: u64,
    secs: f64,
}

/// The 1M-row load's memory, run by run on fresh servers (see the module doc).
fn million(small: &Path, big: &Path) -> Result<()> {
    let runs: usize = std::env::var("OPSHOST_BENCH_LOAD_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let variants: Vec<(String, Vec<(String, String)>)> = std::env::var("OPSHOST_BENCH_LOAD_VARIANTS")
        .unwrap_or_else(|_| "shipped:".into())
        .split(';')
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            let (name, vars) = v.split_once(':').unwrap_or((v, ""));
            let vars = vars.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
            (name.trim().to_string(), vars)
        })
        .collect();
    println!(
        "csv_file_load 1,000,000 rows ({:.1} MB file), fresh server per run, after a 100,000-row warm-up load and 5 s idle; {runs} runs per variant, interleaved:",
        std::fs::metadata(big)?.len() as f64 / 1e6
    );
    let mut results: Vec<Vec<Run>> = variants.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for (i, (name, vars)) in variants.iter().enumerate() {
            let r = one_run(small, big, vars)?;
            println!(
                "  run {} {name}: {:.1} s, RSS {} MiB before, peak growth {} MiB, steady growth {} MiB",
                run + 1,
                r.secs,
                r.baseline / 1024,
                r.growth / 1024,
                r.steady / 1024
            );
            results[i].push(r);
        }
    }
    for ((name, _), rs) in variants.iter().zip(&mut results) {
        let mmm = |f: &dyn Fn(&Run) -> f64| -> String {
            let mut v: Vec<f64> = rs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            format!("{:.0}/{:.0}/{:.0}", v[0], v[v.len() / 2], v[v.len() - 1])
        };
        let secs = {
            let mut v: Vec<f64> = rs.iter().map(|r| r.secs).collect();
            v.sort_by(f64::total_cmp);
            format!("{:.1}/{:.1}/{:.1}", v[0], v[v.len() / 2], v[v.len() - 1])
        };
        println!(
            "{name}: peak growth {} MiB, steady growth {} MiB, RSS before {} MiB, load {secs} s (min/median/max of {})",
            mmm(&|r| r.growth as f64 / 1024.0),
            mmm(&|r| r.steady as f64 / 1024.0),
            mmm(&|r| r.baseline as f64 / 1024.0),
            rs.len()
        );
    }
    Ok(())
}

/// A fresh server on a fresh root (the CSV files hard-linked into its import root): warm-up,
/// baseline, the 1M load with its peak, the RSS 5 s later.
fn one_run(small: &Path, big: &Path, vars: &[(String, String)]) -> Result<Run> {
    let root = scratch_root("loads-run")?;
    let imports = root.join("imports");
    std::fs::create_dir_all(&imports)?;
    std::fs::hard_link(small, imports.join("warm.csv")).or_else(|_| std::fs::copy(small, imports.join("warm.csv")).map(|_| ()))?;
    std::fs::hard_link(big, imports.join("big.csv")).or_else(|_| std::fs::copy(big, imports.join("big.csv")).map(|_| ()))?;
    let port = free_port()?;
    let mut child = spawn_with(&root, port, vars)?;
    let result = (|| -> Result<Run> {
        wait_ready(port, Duration::from_secs(60))?;
        let pid = child.id();
        for t in ["warm", "million"] {
            post(port, &format!(r#"{{"operation":"create_table","database":"bench","table":"{t}","primary_key":"id"}}"#))?;
        }
        let load = |table: &str, file: &str, watch: Option<u32>| {
            let body = format!(r#"{{"operation":"csv_file_load","database":"bench","table":"{table}","file_path":"{}"}}"#, imports.join(file).display());
            run_job(port, &body, watch)
        };
        load("warm", "warm.csv", None)?;
        std::thread::sleep(Duration::from_secs(5));
        let baseline = rss_kib(pid);
        let (took, _) = load("million", "big.csv", Some(pid))?;
        let peak = PEAK.with(|p| p.get());
        std::thread::sleep(Duration::from_secs(5));
        let after = rss_kib(pid);
        Ok(Run { baseline, growth: peak.saturating_sub(baseline), steady: after.saturating_sub(baseline), secs: took.as_secs_f64() })
    })();
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// [`spawn_server`] with a variant's environment; `DIST=<folder>` in it runs the server of
/// that dist folder (a copy of an earlier `target/opshost`, for base-against-new runs) instead.
fn spawn_with(root: &Path, port: u16, vars: &[(String, String)]) -> Result<Child> {
    if vars.is_empty() {
        return spawn_server(root, port);
    }
    let mut cmd = match vars.iter().find(|(k, _)| k == "DIST") {
        Some((_, dist)) => server_command_of(Path::new(dist), root, port),
        None => server_command(root, port),
    };
    for (k, v) in vars.iter().filter(|(k, _)| k != "DIST") {
        cmd.env(k, v);
    }
    Ok(cmd.spawn()?)
}

/// The bench's dog rows as CSV: an integer key, text, a number, a boolean.
fn write_csv(path: &Path, rows: usize) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "id,name,breed,age,owner,weight,adopted")?;
    for i in 0..rows {
        writeln!(f, "{i},dog-{i},breed-{},{},owner-{},{}.5,{}", i % 500, i % 20, i % 1000, i % 90, i % 2 == 0)?;
    }
    f.flush()?;
    Ok(())
}
