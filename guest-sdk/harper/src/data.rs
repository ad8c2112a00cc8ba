//! HarperDB's data requests on top of `opshost_guest::data`: request defaults (`database`/`schema`
//! default `data`), the insert/update/upsert body and answer, the delete message, the
//! `describe_table` shape and search_by_value's `*` wildcards. Re-exports the typed storage calls,
//! so an operation imports one `data` module.

pub use opshost_guest::data::*;
use opshost_guest::Error;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// HarperDB's default database when a request names none.
pub fn default_database() -> String {
    "data".to_string()
}

/// A request naming one table: `database` (or `schema`, default `data`) and `table`.
#[derive(Debug, serde::Deserialize)]
pub struct TableRequest {
    #[serde(alias = "schema", default = "default_database")]
    pub database: String,
    pub table: String,
}

/// The body of `insert`, `update` and `upsert`. Records stay raw JSON text: the host
/// validates and stores them, so decoding them into values here would only cost time.
#[derive(Debug, serde::Deserialize)]
pub struct RecordsRequest {
    #[serde(alias = "schema", default = "default_database")]
    pub database: String,
    pub table: String,
    pub records: Vec<Box<RawValue>>,
}

/// Runs a write operation and answers in HarperDB's shape for its mode:
/// `inserted_hashes` + `skipped_hashes`, `update_hashes` + `skipped_hashes`, or
/// `upserted_hashes` alone.
pub fn write_records(mode: WriteMode, req: &RecordsRequest) -> Result<Value, Error> {
    let out = write(&req.database, &req.table, mode, &req.records)?;
    let (verb, key) = match mode {
        WriteMode::Insert => ("inserted", "inserted_hashes"),
        WriteMode::Update => ("updated", "update_hashes"),
        WriteMode::Upsert => ("upserted", "upserted_hashes"),
    };
    let mut body = Map::new();
    body.insert("message".into(), json!(format!("{verb} {} of {} records", out.written.len(), req.records.len())));
    body.insert(key.into(), Value::Array(out.written));
    if mode != WriteMode::Upsert {
        body.insert("skipped_hashes".into(), Value::Array(out.skipped));
    }
    Ok(Value::Object(body))
}

/// HarperDB's delete message; it says "record" when exactly one was asked for.
pub fn deleted_message(deleted: usize, asked: usize) -> String {
    let noun = if asked == 1 { "record" } else { "records" };
    format!("{deleted} of {asked} {noun} successfully deleted")
}

/// HarperDB's `describe_table` shape for one table.
pub fn describe(database: &str, table: &str) -> Result<Value, Error> {
    let info = table_info(database, table)?;
    let mut attributes: Vec<Value> = info
        .attributes
        .iter()
        .map(|a| {
            if *a == info.primary_key {
                json!({ "attribute": a, "is_primary_key": true })
            } else {
                json!({ "attribute": a, "indexed": true })
            }
        })
        .collect();
    // A role whose attribute permissions allow none sees none (HarperDB shows `[]`), not even
    // the timestamps.
    if !attributes.is_empty() {
        for t in ["__createdtime__", "__updatedtime__"] {
            attributes.push(json!({ "attribute": t, "indexed": true }));
        }
    }
    let mut out = Map::new();
    out.insert("schema".into(), json!(info.database));
    out.insert("name".into(), json!(info.table));
    out.insert("hash_attribute".into(), json!(info.primary_key));
    out.insert("audit".into(), json!(info.audit));
    out.insert("schema_defined".into(), json!(false));
    out.insert("attributes".into(), Value::Array(attributes));
    out.insert("db_size".into(), json!(info.table_size));
    out.insert("sources".into(), json!([]));
    out.insert("record_count".into(), json!(info.record_count));
    out.insert("table_size".into(), json!(info.table_size));
    out.insert("db_audit_size".into(), json!(info.audit_size));
    if let Some(last) = info.last_updated {
        out.insert("last_updated_record".into(), json!(last));
    }
    Ok(Value::Object(out))
}

/// HarperDB's `*` wildcards in a search_by_value: `abc*`, `*abc`, `*abc*`, `*`.
pub fn wildcard(attribute: &str, value: &Value) -> Cond {
    let Some(text) = value.as_str() else { return Cond::leaf(attribute, Comparator::Equals, value.clone()) };
    if text == "*" {
        return Cond::leaf(attribute, Comparator::Exists, Value::Null);
    }
    let (starts, ends) = (text.starts_with('*'), text.ends_with('*') && text.len() > 1);
    let inner = text.trim_start_matches('*').trim_end_matches('*').to_string();
    let comparator = match (starts, ends) {
        (true, true) => Comparator::Contains,
        (true, false) => Comparator::EndsWith,
        (false, true) => Comparator::StartsWith,
        (false, false) => Comparator::Equals,
    };
    Cond::leaf(attribute, comparator, Value::String(if comparator == Comparator::Equals { text.to_string() } else { inner }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_map_to_comparators() {
        let c = |v: &str| match wildcard("a", &json!(v)) {
            Cond::Leaf { comparator, value, .. } => (comparator, value),
            _ => panic!("leaf"),
        };
        assert_eq!(c("ab*"), (Comparator::StartsWith, json!("ab")));
        assert_eq!(c("*ab"), (Comparator::EndsWith, json!("ab")));
        assert_eq!(c("*ab*"), (Comparator::Contains, json!("ab")));
        assert_eq!(c("ab"), (Comparator::Equals, json!("ab")));
        assert_eq!(c("*").0, Comparator::Exists);
    }

}
