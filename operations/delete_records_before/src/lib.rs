//! `delete_records_before`: a job deleting every record of a table whose `__createdtime__` is
//! before `date` (records updated since are deleted too). The date and the table are checked
//! before the job starts (400, nothing started); the job walks the matching primary keys with a
//! cursor and deletes them in bounded batches, reporting progress.
//!
//! Request: `{"operation": "delete_records_before", "date": "2021-01-25T23:05:27.464",
//! "schema": "dev", "table": "breed"}` (`database` also accepted, default `data`) →
//! `{"message": "Starting job with id <id>", "job_id": "<id>"}`; the job's message is
//! `5 of 5 records successfully deleted` or `No records found to delete`.
//! Capabilities: `storage`, `jobs`.

use opshost_harper::data::{Comparator, Cond, Search};
use opshost_harper::jobs;
use opshost_guest::prelude::*;
use opshost_harper::data;
use serde_json::Map;

pub struct DeleteRecordsBefore;

/// Primary keys fetched, and deleted, per batch.
const BATCH: u32 = 10_000;

impl Operation for DeleteRecordsBefore {
    const NAME: &'static str = "delete_records_before";
    const JOB: bool = true;
    // Decoded by hand so every problem is named in HarperDB's words, all at once.
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        let target = Target::from_request(req)?;
        data::check_table(&target.database, &target.table)?;
        Ok(None)
    }

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let t = Target::from_request(&req)?;
        let info = data::table_info(&t.database, &t.table)?;
        let pk = info.primary_key;
        let cursor = Search {
            cond: Some(Cond::leaf("__createdtime__", Comparator::LessThan, json!(t.before))),
            attributes: vec![pk.clone()],
            ..Default::default()
        }
        .run(&t.database, &t.table)?;
        let (mut found, mut deleted) = (0usize, 0usize);
        loop {
            // Keys go from the search to the delete as the host's JSON texts, unparsed.
            let page = cursor.next_page(BATCH)?;
            if page.is_empty() {
                break;
            }
            let ids = page.lines().map(|row| key_text(row, &pk)).collect::<Result<Vec<_>, _>>()?;
            found += ids.len();
            deleted += data::delete_texts(&t.database, &t.table, &ids)?;
            jobs::progress(found as u64, info.record_count.max(found as u64));
        }
        let message = if found == 0 { "No records found to delete".to_string() } else { data::deleted_message(deleted, found) };
        Ok(json!({ "message": message }))
    }
}

opshost_guest::export_operation!(DeleteRecordsBefore);

/// The checked request: which table, and the cutoff in epoch ms.
#[derive(Debug, PartialEq)]
struct Target {
    database: String,
    table: String,
    before: i64,
}

impl Target {
    fn from_request(req: &Map<String, Value>) -> Result<Target, Error> {
        let mut problems = Vec::new();
        let before = match req.get("date") {
            None | Some(Value::Null) => {
                problems.push("'date' is required".to_string());
                None
            }
            Some(Value::String(s)) => {
                let ms = jobs::parse_iso8601(s);
                if ms.is_none() {
                    problems.push("'date' must be in ISO 8601 date format".to_string());
                }
                ms
            }
            Some(_) => {
                problems.push("'date' must be a valid date".to_string());
                None
            }
        };
        let (db_key, database) = match (req.get("database"), req.get("schema")) {
            (Some(d), _) if !d.is_null() => ("database", Some(d)),
            (_, Some(s)) if !s.is_null() => ("schema", Some(s)),
            _ => ("database", None),
        };
        let database = match database {
            None => Some(data::default_database()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                problems.push(format!("'{db_key}' must be a string"));
                None
            }
        };
        let table = match req.get("table") {
            None | Some(Value::Null) => {
                problems.push("'table' is required".to_string());
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                problems.push("'table' must be a string".to_string());
                None
            }
        };
        match (before, database, table) {
            (Some(before), Some(database), Some(table)) if problems.is_empty() => Ok(Target { database, table, before }),
            _ => Err(Error::BadRequest(problems.join(". "))),
        }
    }
}

/// The primary key of one `[pk]`-projected row as JSON text: sliced out of the host's
/// `{"<pk>":<key>}`, parsed only if the row has another shape.
fn key_text(row: &str, pk: &str) -> Result<String, Error> {
    let sliced = row.strip_prefix("{\"").and_then(|r| r.strip_prefix(pk)).and_then(|r| r.strip_prefix("\":")).and_then(|r| r.strip_suffix('}'));
    // One member holding a scalar: a number or literal has no `,` `"` or space in it, a
    // string no `","` (which would end it and start another member).
    let one_scalar = |t: &str| match t.as_bytes().first() {
        Some(b'"') => !t.contains("\",\""),
        Some(_) => !t.contains([',', '"', ' ', ':']),
        None => false,
    };
    match sliced {
        Some(text) if one_scalar(text) => Ok(text.to_string()),
        _ => key(row, pk).map(|v| v.to_string()),
    }
}

/// The primary key of one `[pk]`-projected row.
fn key(row: &str, pk: &str) -> Result<Value, Error> {
    let mut row: Map<String, Value> =
        serde_json::from_str(row).map_err(|e| Error::Internal(format!("host returned invalid JSON: {e}")))?;
    row.remove(pk).ok_or_else(|| Error::Internal("a record without its primary key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Value) -> Result<Target, String> {
        Target::from_request(v.as_object().expect("object")).map_err(|e| match e {
            Error::BadRequest(m) => m,
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn checks_date_and_table_in_harper_words() {
        assert_eq!(
            check(json!({"date": "2021-01-25T23:05:27.464", "schema": "dev", "table": "breed"})),
            Ok(Target { database: "dev".into(), table: "breed".into(), before: 1_611_615_927_464 })
        );
        assert_eq!(check(json!({"date": "2021-01-25", "table": "breed"})).map(|t| t.database), Ok("data".into()));
        assert_eq!(check(json!({})), Err("'date' is required. 'table' is required".into()));
        assert_eq!(check(json!({"date": "25/01/2021", "table": "t"})), Err("'date' must be in ISO 8601 date format".into()));
        assert_eq!(check(json!({"date": 5, "table": "t"})), Err("'date' must be a valid date".into()));
        assert_eq!(check(json!({"date": "2021-01-25", "table": 1, "schema": 2})), Err("'schema' must be a string. 'table' must be a string".into()));
    }

    #[test]
    fn keys_come_from_the_projected_row() {
        assert_eq!(key(r#"{"id":"a"}"#, "id").ok(), Some(json!("a")));
        assert!(key(r#"{"x":1}"#, "id").is_err());
        // Sliced from the host's shape, parsed otherwise; the same text either way.
        for (row, want) in [
            (r#"{"id":"a"}"#, r#""a""#),
            (r#"{"id":12}"#, "12"),
            (r#"{"id":-1.5e3}"#, "-1.5e3"),
            (r#"{"id":"x"}"}"#, r#""x"}""#),
            (r#"{"id": 7}"#, "7"),
            (r#"{"idx":1,"id":2}"#, "2"),
            (r#"{"id":"a","b":"c"}"#, r#""a""#),
        ] {
            assert_eq!(key_text(row, "id").ok().as_deref(), Some(want), "{row}");
        }
        assert!(key_text(r#"{"x":1}"#, "id").is_err());
    }
}
