//! `read_audit_log`: a table's audit log (every insert, update, upsert and delete with its
//! user, time, primary keys and records after and before), as HarperDB answers it.
//!
//! Request: `{"operation": "read_audit_log", "schema": "dev", "table": "dog",
//! "search_type": "timestamp", "search_values": [from, to]}`; `search_type` is `timestamp`
//! (default: `[]` all, `[from]` since, `[from, to]` between, epoch ms), `username` or
//! `hash_value`. Answers a list of entries oldest first (`timestamp`), or an object keyed by
//! user name or primary key. Capability: `storage` (the host reads and shapes the log).

use opshost_guest::prelude::*;
use opshost_harper::data;
use serde_json::value::RawValue;
use serde_json::Map;

pub struct ReadAuditLog;

impl Operation for ReadAuditLog {
    const NAME: &'static str = "read_audit_log";
    // Decoded by hand so each problem is named in HarperDB's words.
    type Request = Map<String, Value>;
    type Response = Box<RawValue>;

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Box<RawValue>, Error> {
        let q = Search::from_request(&req)?;
        data::read_audit_log(&q.database, &q.table, &q.search_type, &q.values)
    }
}

opshost_guest::export_operation!(ReadAuditLog);

#[derive(Debug, PartialEq)]
struct Search {
    database: String,
    table: String,
    search_type: String,
    values: Vec<Value>,
}

impl Search {
    fn from_request(req: &Map<String, Value>) -> Result<Search, Error> {
        let text = |key: &str| -> Result<Option<String>, Error> {
            match req.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Error::BadRequest(format!("'{key}' must be a string"))),
            }
        };
        let database = match text("database")? {
            Some(d) => d,
            None => text("schema")?.unwrap_or_else(data::default_database),
        };
        let table = text("table")?.ok_or_else(|| Error::BadRequest("table is required".into()))?;
        let search_type = text("search_type")?.unwrap_or_default();
        let values = match req.get("search_values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list.clone(),
            Some(_) => return Err(Error::BadRequest("'search_values' must be an array".into())),
        };
        Ok(Search { database, table, search_type, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Value) -> Result<Search, String> {
        Search::from_request(v.as_object().expect("object")).map_err(|e| match e {
            Error::BadRequest(m) => m,
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn reads_the_request_in_harper_words() {
        assert_eq!(
            check(json!({"schema": "dev", "table": "dog", "search_type": "hash_value", "search_values": [318]})),
            Ok(Search { database: "dev".into(), table: "dog".into(), search_type: "hash_value".into(), values: vec![json!(318)] })
        );
        assert_eq!(check(json!({"table": "dog"})).map(|s| (s.database, s.search_type, s.values)), Ok(("data".into(), String::new(), vec![])));
        assert_eq!(check(json!({"schema": "dev"})), Err("table is required".into()));
        assert_eq!(check(json!({"table": "dog", "search_values": "x"})), Err("'search_values' must be an array".into()));
        assert_eq!(check(json!({"table": 5})), Err("'table' must be a string".into()));
    }
}
