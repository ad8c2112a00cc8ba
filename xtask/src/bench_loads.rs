//! `cargo xtask bench loads`: bulk-load figures. A 100,000-row CSV loaded three ways
//! (`csv_data_load` with the CSV in the request, `csv_file_load` from the import root, then
//! the same file as `upsert` over the loaded rows), and a 1,000,000-row file through
//! `csv_file_load` with the server's peak RSS growth while it runs (sampled every 5 ms).
//! Each figure is request to COMPLETE, polled with `get_job`.

use super::{free_port, post, rss_kib, run_job, scratch_root, spawn_server, stop, wait_ready, PEAK};
use anyhow::Result;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub fn run() -> Result<()> {
    let root = scratch_root("loads")?;
    let port = free_port()?;
    let mut child = spawn_server(&root, port)?;
    wait_ready(port, Duration::from_secs(60))?;
    let pid = child.id();
    let result = (|| -> Result<()> {
        let imports = root.join("imports");
        std::fs::create_dir_all(&imports)?;
        let small = imports.join("dogs-100k.csv");
        let big = imports.join("dogs-1m.csv");
        write_csv(&small, 100_000)?;
        write_csv(&big, 1_000_000)?;
        for t in ["data_load", "file_load", "million"] {
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

        std::thread::sleep(Duration::from_secs(3));
        let before = rss_kib(pid);
        let body = format!(r#"{{"operation":"csv_file_load","database":"bench","table":"million","file_path":"{}"}}"#, big.display());
        let (took, job) = run_job(port, &body, Some(pid))?;
        let peak = PEAK.with(|p| p.get());
        println!(
            "csv_file_load 1,000,000 rows ({:.1} MB file): {:.1} s request to COMPLETE ({}); server RSS {} MiB before, peak growth {} MiB during the load",
            std::fs::metadata(&big)?.len() as f64 / 1e6,
            took.as_secs_f64(),
            job["message"],
            before / 1024,
            peak.saturating_sub(before) / 1024
        );
        Ok(())
    })();
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&root);
    result
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
