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

/// The body of `insert`, `update` and `upsert`. The records stay the request's own JSON text:
/// the host validates and stores them, so splitting or decoding them here would only cost time.
#[derive(Debug, serde::Deserialize)]
pub struct RecordsRequest {
    #[serde(alias = "schema", default = "default_database")]
    pub database: String,
    pub table: String,
    pub records: RecordsText,
}

/// A request's `records` as its JSON text, known to be an array (anything else is refused as
/// a list of records would be: `'records' must be an array`).
#[derive(Debug)]
pub struct RecordsText(pub Box<RawValue>);

impl<'de> serde::Deserialize<'de> for RecordsText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if raw.get().starts_with('[') {
            Ok(RecordsText(raw))
        } else {
            Err(serde::de::Error::invalid_type(serde::de::Unexpected::Other("not an array"), &"a sequence"))
        }
    }
}

/// Runs a write operation and answers in HarperDB's shape for its mode (see [`WriteAnswer`]).
pub fn write_records(mode: WriteMode, req: &RecordsRequest) -> Result<WriteAnswer, Error> {
    let out = write_text(&req.database, &req.table, mode, &req.records.0)?;
    Ok(WriteAnswer { mode, out })
}

/// The answer of a write: `inserted_hashes` + `skipped_hashes`, `update_hashes` +
/// `skipped_hashes`, or `upserted_hashes` alone, after the message. The keys are the host's
/// JSON texts, copied into the answer as they are. Every record is either written or skipped,
/// so the two counts add up to the records asked for.
pub struct WriteAnswer {
    mode: WriteMode,
    out: WrittenText,
}

impl serde::Serialize for WriteAnswer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (verb, key) = match self.mode {
            WriteMode::Insert => ("inserted", "inserted_hashes"),
            WriteMode::Update => ("updated", "update_hashes"),
            WriteMode::Upsert => ("upserted", "upserted_hashes"),
        };
        let (written, asked) = (self.out.written_count, self.out.written_count + self.out.skipped_count);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("message", &format!("{verb} {written} of {asked} records"))?;
        map.serialize_entry(key, &self.out.written)?;
        if self.mode != WriteMode::Upsert {
            map.serialize_entry("skipped_hashes", &self.out.skipped)?;
        }
        map.end()
    }
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

    /// `records` is passed on as its own text, and only an array is accepted, with the text a
    /// list of records gave before.
    #[test]
    fn records_stay_text_and_must_be_an_array() {
        let req: RecordsRequest = opshost_guest::decode_request(r#"{"table": "t", "records": [{"id": 1}, {"id": "a b"}]}"#).expect("valid");
        assert_eq!((req.database.as_str(), req.records.0.get()), ("data", r#"[{"id": 1}, {"id": "a b"}]"#));
        for bad in [r#""x""#, "null", "{}", "5"] {
            let body = format!(r#"{{"table": "t", "records": {bad}}}"#);
            assert_eq!(opshost_guest::decode_error::<RecordsRequest>(&body), "'records' must be an array", "{bad}");
        }
        assert_eq!(opshost_guest::decode_error::<RecordsRequest>(r#"{"table": "t"}"#), "'records' is required");
    }

    /// Each mode's answer, the host's key texts copied in as they are.
    #[test]
    fn write_answers_have_harpers_shapes() {
        let raw = |t: &str| RawValue::from_string(t.to_string()).expect("json");
        let answer = |mode| {
            let out = WrittenText { written: raw(r#"[1,"b"]"#), written_count: 2, skipped: raw("[3]"), skipped_count: 1 };
            serde_json::to_string(&WriteAnswer { mode, out }).expect("encodes")
        };
        assert_eq!(answer(WriteMode::Insert), r#"{"message":"inserted 2 of 3 records","inserted_hashes":[1,"b"],"skipped_hashes":[3]}"#);
        assert_eq!(answer(WriteMode::Update), r#"{"message":"updated 2 of 3 records","update_hashes":[1,"b"],"skipped_hashes":[3]}"#);
        assert_eq!(answer(WriteMode::Upsert), r#"{"message":"upserted 2 of 3 records","upserted_hashes":[1,"b"]}"#);
    }

}
