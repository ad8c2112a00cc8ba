//! The operation catalog: what each component file is (name, version, hash, grants, load time,
//! status, last load error) and how each operation is doing (calls, errors, latency
//! percentiles). Counters are lock-free atomics, cheap enough for every call.

use parking_lot::RwLock;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Latency buckets: bucket `i` holds calls that took under `2^(i/4)` µs (four per doubling),
/// from 1 µs to about 70 minutes.
const BUCKETS: usize = 128;

/// Call statistics of one operation name, shared by all its versions.
pub struct OpStats {
    calls: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for OpStats {
    fn default() -> Self {
        Self { calls: AtomicU64::new(0), errors: AtomicU64::new(0), buckets: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

fn bucket(elapsed: Duration) -> usize {
    let micros = elapsed.as_micros().max(1) as f64;
    ((micros.log2() * 4.0).ceil() as usize).min(BUCKETS - 1)
}

fn bucket_upper_ms(i: usize) -> f64 {
    2f64.powf(i as f64 / 4.0) / 1000.0
}

impl OpStats {
    pub fn record(&self, elapsed: Duration, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.buckets[bucket(elapsed)].fetch_add(1, Ordering::Relaxed);
    }

    /// The upper bound (ms) of the bucket holding the `q` quantile.
    fn quantile(&self, counts: &[u64], total: u64, q: f64) -> Option<f64> {
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some((bucket_upper_ms(i) * 1000.0).round() / 1000.0);
            }
        }
        None
    }

    pub fn to_json(&self) -> Value {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        json!({
            "calls": self.calls.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "latency_ms": {
                "p50": self.quantile(&counts, total, 0.50),
                "p90": self.quantile(&counts, total, 0.90),
                "p99": self.quantile(&counts, total, 0.99),
            },
        })
    }
}

/// What happened to one component file.
#[derive(Clone, Debug)]
pub struct FileEntry {
    pub source: PathBuf,
    /// From the component's `describe`, once it loaded.
    pub name: Option<String>,
    pub aliases: Vec<String>,
    pub version: Option<String>,
    pub hash: Option<String>,
    pub grants: Vec<String>,
    pub loaded_at: Option<SystemTime>,
    /// `serving` (with `last_error` set when a newer file failed and this version still
    /// serves), `failed`, `replaced` (a built-in taken over from componentsRoot) or `removed`.
    pub status: &'static str,
    pub last_error: Option<String>,
    pub builtin: bool,
    /// The version of a component deployed through the API (`deploy_component`) that serves.
    pub deployed_version: Option<u64>,
}

#[derive(Default)]
pub struct Catalog {
    files: RwLock<BTreeMap<PathBuf, FileEntry>>,
    stats: RwLock<HashMap<String, Arc<OpStats>>>,
}

impl Catalog {
    /// The statistics of `name`, created on first use (kept across versions and reloads).
    pub fn stats(&self, name: &str) -> Arc<OpStats> {
        if let Some(s) = self.stats.read().get(name) {
            return s.clone();
        }
        self.stats.write().entry(name.to_string()).or_default().clone()
    }

    pub fn loaded(&self, entry: FileEntry) {
        self.files.write().insert(entry.source.clone(), entry);
    }

    /// A load failed: the file's entry records the error; with `kept`, its previous version
    /// still serves.
    pub fn failed(&self, source: &Path, builtin: bool, error: String, kept: bool) {
        let mut files = self.files.write();
        let entry = files.entry(source.to_path_buf()).or_insert_with(|| FileEntry {
            source: source.to_path_buf(),
            name: None,
            aliases: Vec::new(),
            version: None,
            hash: None,
            grants: Vec::new(),
            loaded_at: None,
            status: "failed",
            last_error: None,
            builtin,
            deployed_version: None,
        });
        entry.status = if kept { "serving" } else { "failed" };
        entry.last_error = Some(error);
    }

    /// A built-in whose name a third-party component took over (`operationsApi.replaceBuiltins`).
    pub fn replaced(&self, source: &Path) {
        if let Some(e) = self.files.write().get_mut(source) {
            e.status = "replaced";
        }
    }

    /// Every file not in `present` is gone from its folder.
    pub fn sweep(&self, present: &std::collections::HashSet<PathBuf>) {
        for (path, e) in self.files.write().iter_mut() {
            if !present.contains(path) {
                e.status = "removed";
            }
        }
    }

    /// One JSON object per component file, sorted by operation name then file.
    pub fn to_json(&self) -> Vec<Value> {
        let files = self.files.read();
        let mut out: Vec<(String, Value)> = files
            .values()
            .map(|f| {
                let stats = f.name.as_ref().map(|n| self.stats(n).to_json()).unwrap_or(Value::Null);
                let loaded = f.loaded_at.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64);
                let name = f.name.clone().unwrap_or_default();
                (
                    name.clone(),
                    json!({
                        "name": f.name,
                        "aliases": f.aliases,
                        "version": f.version,
                        "source": f.source.display().to_string(),
                        "builtin": f.builtin,
                        "hash": f.hash,
                        "grants": f.grants,
                        "loaded_at": loaded,
                        "status": f.status,
                        "last_error": f.last_error,
                        "deployed_version": f.deployed_version,
                        "stats": stats,
                    }),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, v)| v).collect()
    }

    /// `system_information.metrics.operations`: per operation name, its counters.
    pub fn metrics(&self) -> Value {
        let stats = self.stats.read();
        let mut names: Vec<&String> = stats.keys().collect();
        names.sort();
        Value::Object(names.into_iter().map(|n| (n.clone(), stats[n].to_json())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_buckets() {
        let s = OpStats::default();
        for _ in 0..90 {
            s.record(Duration::from_micros(100), false);
        }
        for _ in 0..10 {
            s.record(Duration::from_millis(10), true);
        }
        let j = s.to_json();
        assert_eq!((j["calls"].as_u64(), j["errors"].as_u64()), (Some(100), Some(10)));
        let p50 = j["latency_ms"]["p50"].as_f64().expect("p50");
        let p99 = j["latency_ms"]["p99"].as_f64().expect("p99");
        assert!((0.1..0.13).contains(&p50), "{p50}");
        assert!((10.0..12.0).contains(&p99), "{p99}");
    }
}
