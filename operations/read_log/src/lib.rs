//! `read_log`: the server log (`<logging.root>/hdb.log`), filtered as HarperDB's `read_log`.
//!
//! Request: `{"operation": "read_log", "start": 0, "limit": 1000, "level": "error",
//! "from": "2021-01-25T22:05:27.464+0000", "until": "2021-01-25 23:05:27", "order": "desc",
//! "filter": "text"}` (all optional) → `[{"timestamp", "thread", "level", "tags",
//! "message"}]`. Capability: `log` (the host reads the file).

use opshost_harper::jobs::parse_iso8601;
use opshost_guest::log::{read, LogQuery};
use opshost_guest::prelude::*;
use serde_json::value::RawValue;
use serde_json::Map;

/// HarperDB's default number of entries.
const DEFAULT_LIMIT: u64 = 1000;
const LEVELS: [&str; 7] = ["notify", "fatal", "error", "warn", "info", "debug", "trace"];

pub struct ReadLog;

impl Operation for ReadLog {
    const NAME: &'static str = "read_log";
    // Decoded by hand so each problem is named in HarperDB's words.
    type Request = Map<String, Value>;
    type Response = Box<RawValue>;

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Box<RawValue>, Error> {
        let query = query(&req)?;
        RawValue::from_string(read(&query)?).map_err(|e| Error::Internal(format!("host returned invalid JSON: {e}")))
    }
}

opshost_guest::export_operation!(ReadLog);

fn query(req: &Map<String, Value>) -> Result<LogQuery, Error> {
    let bad = |m: String| Error::BadRequest(m);
    let number = |key: &str, default: u64| -> Result<u64, Error> {
        match req.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(default)),
            // HarperDB accepts numeric strings too.
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().unwrap_or(default)),
            Some(_) => Err(bad(format!("'{key}' must be a number"))),
        }
    };
    let text = |key: &str| -> Option<String> { req.get(key).and_then(Value::as_str).map(str::to_string) };
    let date = |key: &str| -> Result<Option<i64>, Error> {
        match req.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_iso8601(s).map(Some).ok_or_else(|| bad(format!("'{key}' date '{s}' is invalid."))),
            Some(other) => Err(bad(format!("'{key}' date '{other}' is invalid."))),
        }
    };
    let level = match req.get("level") {
        None | Some(Value::Null) => None,
        Some(Value::String(l)) if LEVELS.contains(&l.as_str()) => Some(l.clone()),
        Some(_) => return Err(bad(format!("'level' must be one of [{}]", LEVELS.join(", ")))),
    };
    let descending = match req.get("order") {
        None | Some(Value::Null) => None,
        Some(Value::String(o)) if o == "asc" => Some(false),
        Some(Value::String(o)) if o == "desc" => Some(true),
        Some(_) => return Err(bad("'order' must be one of [asc, desc]".into())),
    };
    Ok(LogQuery {
        start: number("start", 0)?,
        limit: number("limit", DEFAULT_LIMIT)?,
        level,
        since: date("from")?,
        until: date("until")?,
        descending,
        filter: text("filter"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Value) -> Result<LogQuery, String> {
        query(v.as_object().expect("object")).map_err(|e| match e {
            Error::BadRequest(m) => m,
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn reads_the_filters_in_harper_words() {
        let q = check(json!({"start": 2, "limit": 5, "level": "error", "from": "2021-01-25", "until": "2021-01-25 23:05:27", "order": "desc"})).expect("valid");
        assert_eq!((q.start, q.limit, q.level.as_deref(), q.descending), (2, 5, Some("error"), Some(true)));
        assert_eq!(q.since, Some(1_611_532_800_000));
        assert_eq!(check(json!({})).map(|q| (q.limit, q.descending)), Ok((1000, None)));
        assert_eq!(check(json!({"limit": "x"})).err(), Some("'limit' must be a number".into()));
        assert_eq!(check(json!({"start": "x"})).err(), Some("'start' must be a number".into()));
        assert_eq!(check(json!({"level": "loud"})).err(), Some("'level' must be one of [notify, fatal, error, warn, info, debug, trace]".into()));
        assert_eq!(check(json!({"from": "yesterday"})).err(), Some("'from' date 'yesterday' is invalid.".into()));
        assert_eq!(check(json!({"order": "up"})).err(), Some("'order' must be one of [asc, desc]".into()));
    }
}
