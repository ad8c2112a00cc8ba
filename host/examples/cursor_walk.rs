//! Shows that a storage cursor walks a large table in flat memory: fills a table with
//! `N` records (default 1,000,000), then walks it in batches of 1,000 and prints the
//! resident-memory growth during the walk. `cursor_walk [records]`.

use opshost::services::storage::{query::Query, Storage, WriteMode};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("opshost-walk-{}", std::process::id()));
    let storage = Arc::new(Storage::open(&dir, true)?);
    storage.create_table("bench", "walk", "id").map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    for chunk in 0..n.div_ceil(10_000) {
        let records: Vec<_> = (chunk * 10_000..((chunk + 1) * 10_000).min(n))
            .map(|i| json!({"id": i, "name": format!("name-{i}"), "group": i % 100, "score": i as f64 / 7.0, "city": "Denver", "active": i % 2 == 0}))
            .collect();
        storage.write("bench", "walk", WriteMode::Insert, records).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    println!("filled {n} records in {:.1} s", started.elapsed().as_secs_f64());
    let before = rss_mib();
    let mut peak = before;
    let mut seen = 0;
    let started = Instant::now();
    let mut cursor = storage
        .search("bench", "walk", Query { attributes: vec!["*".into()], ..Default::default() })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    loop {
        let batch = cursor.next_batch(1000).map_err(|e| anyhow::anyhow!("{e}"))?;
        if batch.is_empty() {
            break;
        }
        seen += batch.len();
        peak = peak.max(rss_mib());
    }
    println!(
        "cursor walked {seen} records in {:.1} s; RSS before {before:.0} MiB, peak during the walk {peak:.0} MiB (growth {:.0} MiB)",
        started.elapsed().as_secs_f64(),
        peak - before
    );
    drop(cursor);
    drop(storage);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
