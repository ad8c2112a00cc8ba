//! Unit tests of the sysinfo service against the machine they run on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use super::clock::{format_offset, utc_string};
use super::linux::{Ticks, LOAD_KINDS};
use super::sections::{brand, nominal_ghz, redact_params};
use super::{Section, SysinfoService};

#[test]
fn secret_flags_are_redacted_in_params() {
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        redact_params(&args(&[
            "--admin-password",
            "secret",
            "run",
            "--root",
            "/srv/x"
        ]))
        .join(" "),
        "--admin-password *** run --root /srv/x"
    );
    assert_eq!(
        redact_params(&args(&["--admin-password=secret", "--password=p"])).join(" "),
        "--admin-password=*** --password=***"
    );
    assert_eq!(
        redact_params(&args(&["--admin-username", "admin", "run"])).join(" "),
        "--admin-username admin run"
    );
    // A secret flag with no value before the next flag hides nothing else.
    assert_eq!(
        redact_params(&args(&["--admin-password", "--root", "/r"])).join(" "),
        "--admin-password --root /r"
    );
}

fn has_keys(v: &Value, keys: &[&str]) {
    for k in keys {
        assert!(v.get(*k).is_some(), "missing key {k} in {v}");
    }
}

fn in_pct(v: &Value) -> bool {
    v.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p))
}

/// A service sampled twice by hand, far enough apart that the tick deltas are not empty.
fn sampled() -> Arc<SysinfoService> {
    let svc = Arc::new(SysinfoService::new());
    svc.sample();
    std::thread::sleep(Duration::from_millis(50));
    svc.sample();
    svc
}

#[test]
fn system_and_time() -> Result<()> {
    let svc = sampled();
    let v = svc.section(Section::System)?;
    has_keys(
        &v,
        &[
            "distro", "release", "codename", "kernel", "arch", "hostname", "fqdn",
        ],
    );
    assert_eq!(v["platform"], "linux");
    assert_eq!(v["opshost_version"], env!("CARGO_PKG_VERSION"));
    assert!(v
        .as_object()
        .is_some_and(|m| m.values().all(Value::is_string)));

    let v = svc.section(Section::Time)?;
    assert!(v["current"]
        .as_u64()
        .is_some_and(|ms| ms > 1_600_000_000_000));
    assert!(v["uptime"].as_f64().is_some_and(|u| u > 0.0));
    let tz = v["timezone"].as_str().unwrap_or_default();
    let (sign, digits) = (
        tz.get(..4).unwrap_or_default(),
        tz.get(4..).unwrap_or_default(),
    );
    assert!(sign == "UTC+" || sign == "UTC-", "{tz}");
    assert!(
        digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit()),
        "{tz}"
    );
    assert!(v["timezoneName"].as_str().is_some_and(|s| !s.is_empty()));
    Ok(())
}

#[test]
fn cpu() -> Result<()> {
    let v = sampled().section(Section::Cpu)?;
    has_keys(
        &v,
        &[
            "manufacturer",
            "brand",
            "vendor",
            "speed",
            "speedMin",
            "speedMax",
            "flags",
        ],
    );
    has_keys(&v["cpu_speed"], &["min", "max", "avg", "cores"]);
    let cores = v["cores"].as_u64().unwrap_or(0);
    assert!(cores >= 1 && v["physicalCores"].as_u64().is_some_and(|c| c >= 1));
    assert!(v["virtualization"].is_boolean() && v["efficiencyCores"] == 0);
    let load = &v["current_load"];
    has_keys(load, &["avgLoad", "rawCurrentLoad", "rawCurrentLoadIdle"]);
    let mut shares = 0.0;
    for kind in LOAD_KINDS {
        assert!(
            in_pct(&load[format!("currentLoad{kind}")]),
            "{kind} in {load}"
        );
        shares += load[format!("currentLoad{kind}")].as_f64().unwrap_or(0.0);
    }
    assert!(in_pct(&load["currentLoad"]));
    assert!((shares - 100.0).abs() < 0.01, "shares sum to {shares}");
    let cpus = load["cpus"].as_array().cloned().unwrap_or_default();
    assert_eq!(cpus.len() as u64, cores);
    for c in &cpus {
        has_keys(c, &["rawLoad", "rawLoadUser", "rawLoadGuest"]);
        assert!(in_pct(&c["load"]) && in_pct(&c["loadIdle"]) && in_pct(&c["loadSteal"]));
    }
    Ok(())
}

#[test]
fn memory_and_disk() -> Result<()> {
    let svc = sampled();
    let v = svc.section(Section::Memory)?;
    has_keys(
        &v,
        &[
            "active",
            "reclaimable",
            "buffcache",
            "swaptotal",
            "swapused",
        ],
    );
    has_keys(&v, &["swapfree", "writeback", "dirty"]);
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    assert!(n("total") > 0 && n("free") <= n("total") && n("available") <= n("total"));
    assert_eq!(n("used"), n("total") - n("free"));
    assert!(n("rss") > 0 && n("rss") < n("total"));

    let v = svc.section(Section::Disk)?;
    for d in v["size"].as_array().into_iter().flatten() {
        has_keys(d, &["fs", "type", "size", "used", "available", "mount"]);
        assert!(in_pct(&d["use"]));
    }
    Ok(())
}

#[test]
fn network() -> Result<()> {
    let v = sampled().section(Section::Network)?;
    has_keys(&v, &["default_interface", "latency", "connections"]);
    let ifaces = v["interfaces"].as_array().cloned().unwrap_or_default();
    for i in &ifaces {
        has_keys(i, &["iface", "ip4", "ip6", "mac", "internal", "operstate"]);
    }
    if let Some(lo) = ifaces.iter().find(|i| i["iface"] == "lo") {
        assert_eq!(lo["internal"], true);
    }
    for s in v["stats"].as_array().into_iter().flatten() {
        has_keys(
            s,
            &["iface", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors"],
        );
    }
    Ok(())
}

#[test]
fn processes_threads_and_placeholders() -> Result<()> {
    let svc = sampled();
    let v = svc.section(Section::Processes)?;
    assert_eq!(v["core"].as_array().map(Vec::len), Some(1));
    let p = &v["core"][0];
    has_keys(
        p,
        &[
            "parentPid",
            "name",
            "priority",
            "nice",
            "user",
            "command",
            "params",
            "path",
        ],
    );
    assert_eq!(p["pid"].as_u64(), Some(u64::from(std::process::id())));
    assert!(in_pct(&p["cpu"]) && in_pct(&p["mem"]));
    assert!(p["memRss"].as_u64().is_some_and(|r| r > 0));
    assert!(p["memVsz"].as_u64() >= p["memRss"].as_u64());
    let started = p["started"].as_str().unwrap_or_default();
    assert!(
        started.len() == 19 && started.starts_with("20"),
        "{started}"
    );
    assert_ne!(p["state"], "unknown");
    assert_eq!(v["clustering"], json!([]));

    let threads = svc.section(Section::Threads)?;
    let threads = threads.as_array().cloned().unwrap_or_default();
    assert!(!threads.is_empty());
    for t in &threads {
        has_keys(t, &["threadId", "name", "cpuTimeMs", "state"]);
    }
    assert_eq!(svc.section(Section::TableSize)?, json!([]));
    assert_eq!(svc.section(Section::Metrics)?, json!({}));
    Ok(())
}

#[test]
fn helpers() {
    assert_eq!(utc_string(0), "1970-01-01 00:00:00");
    assert_eq!(utc_string(951_782_400 + 3_723), "2000-02-29 01:02:03");
    assert_eq!(format_offset(-(5 * 3600 + 30 * 60)), "UTC-0530");
    assert_eq!(format_offset(3600), "UTC+0100");
    assert_eq!(
        brand("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"),
        "Xeon® CPU E5-2680 v4"
    );
    assert_eq!(
        nominal_ghz("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"),
        Some(2.4)
    );
    let t = Ticks::parse(&[10, 5, 3, 100, 2, 1, 1, 0, 4, 1]);
    assert_eq!(t, Ticks([6, 4, 3, 102, 2, 0, 5]));
}

#[test]
fn background_thread_samples_and_stops() {
    // A fast tick and generous deadlines: one sample can take long on a loaded machine (disk
    // listing), so the test waits for outcomes instead of sleeping a fixed margin.
    let svc = SysinfoService::start_every(Duration::from_millis(10));
    let weak = Arc::downgrade(&svc);
    let deadline = Instant::now() + Duration::from_secs(60);
    while svc.state.lock().samples < 3 {
        assert!(Instant::now() < deadline, "the sampler never ticked twice");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(svc);
    // Dropping the service disconnects the stop channel; the sampler returns at once, or after
    // the sample it is in the middle of (which holds the last strong reference).
    while weak.upgrade().is_some() {
        assert!(
            Instant::now() < deadline,
            "the sampler kept the service alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
