//! `delete_audit_logs_before`: a job deleting a table's audit log entries older than a time.
//! The table and the timestamp are checked before the job starts (400, nothing started).
//!
//! Request: `{"operation": "delete_audit_logs_before", "schema": "dev", "table": "dog",
//! "timestamp": 1598290282817}` (epoch ms) → `{"message": "Starting job with id <id>",
//! "job_id": "<id>"}`; the job ends with HarperDB's `Successfully completed job: <id>` and
//! `result.deleted`, the number of entries removed. Capabilities: `storage`, `jobs`.

use opshost_guest::prelude::*;
use opshost_harper::data;
use serde_json::Map;

pub struct DeleteAuditLogsBefore;

impl Operation for DeleteAuditLogsBefore {
    const NAME: &'static str = "delete_audit_logs_before";
    const JOB: bool = true;
    // Decoded by hand so each problem is named in HarperDB's words.
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        let t = Target::from_request(req)?;
        data::check_table(&t.database, &t.table)?;
        Ok(None)
    }

    fn handle(ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let t = Target::from_request(&req)?;
        let deleted = data::delete_audit_log_before(&t.database, &t.table, t.before)?;
        let id = ctx.job_id.clone().unwrap_or_default();
        Ok(json!({ "message": format!("Successfully completed job: {id}"), "result": { "deleted": deleted } }))
    }
}

opshost_guest::export_operation!(DeleteAuditLogsBefore);

#[derive(Debug, PartialEq)]
struct Target {
    database: String,
    table: String,
    before: f64,
}

impl Target {
    fn from_request(req: &Map<String, Value>) -> Result<Target, Error> {
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
        let table = text("table")?.ok_or_else(|| Error::BadRequest("'table' is required".into()))?;
        let before = match req.get("timestamp") {
            None | Some(Value::Null) => return Err(Error::BadRequest("'timestamp' is required".into())),
            Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite() && *f >= 0.0),
            Some(_) => None,
        }
        .ok_or_else(|| Error::BadRequest("'timestamp' is invalid".into()))?;
        Ok(Target { database, table, before })
    }
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
    fn checks_the_timestamp_in_harper_words() {
        assert_eq!(
            check(json!({"schema": "dev", "table": "dog", "timestamp": 1598290282817u64})),
            Ok(Target { database: "dev".into(), table: "dog".into(), before: 1598290282817.0 })
        );
        assert_eq!(check(json!({"schema": "dev", "table": "dog"})), Err("'timestamp' is required".into()));
        assert_eq!(check(json!({"table": "dog", "timestamp": "abc"})), Err("'timestamp' is invalid".into()));
        assert_eq!(check(json!({"timestamp": 1})), Err("'table' is required".into()));
    }
}
