//! The `time` section (now, uptime, UTC offset, zone name) and the date format of `processes`.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sysinfo::System;
use time::macros::format_description;
use time::OffsetDateTime;

use super::linux::read_trimmed;

pub(super) fn time() -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let uptime = read_trimmed("/proc/uptime")
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|u| u.parse::<f64>().ok())
        })
        .unwrap_or_else(|| System::uptime() as f64);
    json!({
        "current": now.as_millis() as u64,
        "uptime": uptime,
        "timezone": format_offset(utc_offset_secs(now.as_secs() as i64)),
        "timezoneName": timezone_name(),
    })
}

/// The local UTC offset at `now`. libc rather than `time::UtcOffset::current_local_offset`,
/// which refuses (returns an error) in a multi-threaded process on Unix, which the server is.
fn utc_offset_secs(now: i64) -> i64 {
    let t = now as libc::time_t;
    // SAFETY: `tm` is plain integers plus a nullable pointer, so all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r keeps no reference to them.
    let res = unsafe { libc::localtime_r(&t, &mut tm) };
    if res.is_null() {
        0
    } else {
        tm.tm_gmtoff as i64
    }
}

pub(super) fn format_offset(secs: i64) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    format!("UTC{sign}{:02}{:02}", abs / 3600, (abs % 3600) / 60)
}

fn timezone_name() -> String {
    let from_path = |p: &str| p.split_once("zoneinfo/").map(|(_, name)| name.to_string());
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.trim().trim_start_matches(':');
        if !tz.is_empty() {
            return from_path(tz).unwrap_or_else(|| tz.to_string());
        }
    }
    if let Some(tz) = read_trimmed("/etc/timezone").filter(|s| !s.is_empty()) {
        return tz;
    }
    fs::read_link("/etc/localtime")
        .ok()
        .and_then(|target| from_path(&target.to_string_lossy()))
        .unwrap_or_else(|| "Etc/UTC".into())
}

/// "YYYY-MM-DD HH:MM:SS" in UTC, as systeminformation shows a process start.
pub(super) fn utc_string(epoch_secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(epoch_secs)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_default()
}
