//! HarperDB's job JSON shapes (`get_job`, `search_jobs_by_start_date`) and the small date helpers
//! they need (ISO 8601 parsing and formatting of epoch milliseconds; guests have no clock and no
//! chrono). Re-exports `opshost_guest::jobs`, so an operation imports one `jobs` module.

pub use opshost_guest::jobs::*;
use serde_json::{json, Map, Value};

/// HarperDB's status strings.
pub fn status_text(status: JobStatus) -> &'static str {
    match status {
        JobStatus::InProgress => "IN_PROGRESS",
        JobStatus::Complete => "COMPLETE",
        JobStatus::Error => "ERROR",
    }
}

/// A job as `get_job` shows it. Finished: `id, result?, status, message, end_datetime, type,
/// start_datetime, created_datetime, user` (HarperDB's key order). In progress: `id, type,
/// start_datetime, created_datetime, status, user`, plus opshost's `progress: {done, total}`.
pub fn to_json(job: &Job) -> Value {
    shape(job, true)
}

/// A job as `search_jobs_by_start_date` shows it: the `get_job` object without `result`, plus
/// `start_datetime_converted` and (once finished) `end_datetime_converted` as ISO 8601 strings.
pub fn to_search_json(job: &Job) -> Value {
    let mut out = shape(job, false);
    if let Value::Object(map) = &mut out {
        map.insert("start_datetime_converted".into(), json!(iso8601(job.start)));
        if let Some(end) = job.end {
            map.insert("end_datetime_converted".into(), json!(iso8601(end)));
        }
    }
    out
}

fn shape(job: &Job, with_result: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(job.id));
    if job.status == JobStatus::InProgress {
        m.insert("type".into(), json!(job.job_type));
        m.insert("start_datetime".into(), json!(job.start));
        m.insert("created_datetime".into(), json!(job.created));
        m.insert("status".into(), json!(status_text(job.status)));
        m.insert("user".into(), json!(job.user));
        m.insert("progress".into(), json!({ "done": job.done, "total": job.total }));
        return Value::Object(m);
    }
    if with_result {
        if let Some(result) = job.result.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()) {
            m.insert("result".into(), result);
        }
    }
    m.insert("status".into(), json!(status_text(job.status)));
    m.insert("message".into(), json!(job.message));
    if let Some(end) = job.end {
        m.insert("end_datetime".into(), json!(end));
    }
    m.insert("type".into(), json!(job.job_type));
    m.insert("start_datetime".into(), json!(job.start));
    m.insert("created_datetime".into(), json!(job.created));
    m.insert("user".into(), json!(job.user));
    Value::Object(m)
}

/// Epoch milliseconds as `2026-11-27T03:39:23.123Z` (what JavaScript's `toISOString` prints).
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, mo, d) = civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// Parses an ISO 8601 date or date-time into epoch milliseconds:
/// `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|±HH[:MM]|±HHMM]`. Without an offset the time is UTC
/// (the server's zone). `None` when the text is not such a date or names an impossible one.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let mut p = Parser { b, i: 0 };
    let year = p.digits(4)? as i64;
    p.expect(b'-')?;
    let month = p.digits(2)?;
    p.expect(b'-')?;
    let day = p.digits(2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    if p.done() {
        return Some(ms);
    }
    if !matches!(p.next()?, b'T' | b't' | b' ') {
        return None;
    }
    let hour = p.digits(2)?;
    p.expect(b':')?;
    let minute = p.digits(2)?;
    let mut second = 0;
    let mut millis = 0;
    if p.peek() == Some(b':') {
        p.i += 1;
        second = p.digits(2)?;
        if matches!(p.peek(), Some(b'.' | b',')) {
            p.i += 1;
            let start = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            let frac = &b[start..p.i];
            if frac.is_empty() {
                return None;
            }
            // Milliseconds: the first three digits, padded (`.5` is 500 ms).
            millis = (0..3).map(|k| frac.get(k).map_or(0, |c| u32::from(c - b'0'))).fold(0, |acc, d| acc * 10 + d);
        }
    }
    if hour > 24 || minute > 59 || second > 59 || (hour == 24 && (minute, second, millis) != (0, 0, 0)) {
        return None;
    }
    ms += i64::from(hour) * 3_600_000 + i64::from(minute) * 60_000 + i64::from(second) * 1000 + i64::from(millis);
    match p.next() {
        None => {}
        Some(b'Z' | b'z') => {}
        Some(sign @ (b'+' | b'-')) => {
            let oh = p.digits(2)?;
            if p.peek() == Some(b':') {
                p.i += 1;
            }
            let om = if p.done() { 0 } else { p.digits(2)? };
            if oh > 23 || om > 59 {
                return None;
            }
            let offset = i64::from(oh) * 3_600_000 + i64::from(om) * 60_000;
            ms += if sign == b'+' { -offset } else { offset };
        }
        Some(_) => return None,
    }
    p.done().then_some(ms)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }
    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus) -> Job {
        Job {
            id: "j1".into(),
            job_type: "export_local".into(),
            status,
            message: (status != JobStatus::InProgress).then(|| "Successfully completed job: j1".to_string()),
            result: (status == JobStatus::Complete).then(|| r#"{"message":"Successfully exported JSON locally.","path":"/x/1.json"}"#.to_string()),
            created: 1_795_736_127_000,
            start: 1_795_736_127_053,
            end: (status != JobStatus::InProgress).then_some(1_795_736_128_001),
            user: "admin".into(),
            done: 5,
            total: 10,
        }
    }

    #[test]
    fn get_job_key_order_is_harpers() {
        let done = serde_json::to_string(&to_json(&job(JobStatus::Complete))).expect("json");
        assert_eq!(
            done,
            r#"{"id":"j1","result":{"message":"Successfully exported JSON locally.","path":"/x/1.json"},"status":"COMPLETE","message":"Successfully completed job: j1","end_datetime":1795736128001,"type":"export_local","start_datetime":1795736127053,"created_datetime":1795736127000,"user":"admin"}"#
        );
        let running = serde_json::to_string(&to_json(&job(JobStatus::InProgress))).expect("json");
        assert_eq!(
            running,
            r#"{"id":"j1","type":"export_local","start_datetime":1795736127053,"created_datetime":1795736127000,"status":"IN_PROGRESS","user":"admin","progress":{"done":5,"total":10}}"#
        );
        let search = serde_json::to_string(&to_search_json(&job(JobStatus::Complete))).expect("json");
        assert_eq!(
            search,
            r#"{"id":"j1","status":"COMPLETE","message":"Successfully completed job: j1","end_datetime":1795736128001,"type":"export_local","start_datetime":1795736127053,"created_datetime":1795736127000,"user":"admin","start_datetime_converted":"2026-11-26T23:35:27.053Z","end_datetime_converted":"2026-11-26T23:35:28.001Z"}"#
        );
    }

    #[test]
    fn iso_dates_round_trip() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_795_736_127_053), "2026-11-26T23:35:27.053Z");
        for ms in [0u64, 86_399_999, 951_782_400_000, 1_795_736_127_053, 4_102_444_800_000] {
            assert_eq!(parse_iso8601(&iso8601(ms)), Some(ms as i64), "{ms}");
        }
    }

    #[test]
    fn parses_harper_date_forms() {
        assert_eq!(parse_iso8601("2026-11-26"), Some(1_795_651_200_000));
        assert_eq!(parse_iso8601("2026-11-26T20:55"), Some(1_795_726_500_000));
        assert_eq!(parse_iso8601("2026-11-26T20:55:27.5"), Some(1_795_726_527_500));
        assert_eq!(parse_iso8601("2026-11-26T20:55:27.0531Z"), Some(1_795_726_527_053));
        assert_eq!(parse_iso8601("2026-11-26T22:55:27+02:00"), Some(1_795_726_527_000));
        assert_eq!(parse_iso8601("2026-11-26T18:55:27-0200"), Some(1_795_726_527_000));
        assert_eq!(parse_iso8601("1969-12-31T23:59:59.999Z"), Some(-1));
        for bad in ["", "2026", "2026-13-01", "2026-02-30", "2026-11-26T25:00", "2026-11-26X", "26-11-2026", "2026-11-26T20:55Zx", "yesterday"] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        assert_eq!(parse_iso8601("2024-02-29"), Some(1_709_164_800_000));
    }
}
