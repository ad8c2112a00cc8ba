//! Filtered reads that parse only what the filter looks at: a record's top-level fields are
//! borrowed from its stored bytes and only the attributes the condition names become values,
//! so a search over a large table (an export with a condition) does not build a whole
//! `serde_json::Value` (map, keys, every string) for each record it examines.

use super::keys;
use super::projection::borrow_fields;
use super::query::Cond;
use super::{internal, Projection, ServiceError};
use serde_json::{Map, Value};

/// The projected text of the stored record `bytes` when it satisfies `cond`; `names` are the
/// attributes `cond` reads ([`Cond::attributes`]), `pk` the primary key's name and `key` the
/// record's encoded primary key. A record whose fields cannot be borrowed (not an object,
/// escaped keys) takes the general path: parsed whole, matched, projected.
pub(super) fn filtered_json(
    projection: &Projection,
    cond: &Cond,
    names: &[&str],
    pk: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<Option<String>, ServiceError> {
    let mut out = String::new();
    Ok(filtered_into(projection, cond, names, pk, key, bytes, &mut out)?.then_some(out))
}

/// [`filtered_json`] appending the projected text to `out`; whether the record matched.
pub(super) fn filtered_into(
    projection: &Projection,
    cond: &Cond,
    names: &[&str],
    pk: &str,
    key: &[u8],
    bytes: &[u8],
    out: &mut String,
) -> Result<bool, ServiceError> {
    // A condition on the primary key alone (an export's `id >= 0`) is answered from the
    // record's key: the record is only copied, never split for the filter.
    if names.iter().all(|n| *n == pk) {
        if let Some(value) = key_value(key) {
            // Every attribute the condition names is the primary key.
            if !cond.matches_with(&|_| Some(&value)) {
                return Ok(false);
            }
            projection.json_from_raw_into(bytes, out)?;
            return Ok(true);
        }
    }
    let mut record = Vec::with_capacity(projection.names.len());
    if !borrow_fields(bytes, &mut record) {
        let record = serde_json::from_slice::<Value>(bytes).map_err(internal)?;
        if !cond.matches(&record) {
            return Ok(false);
        }
        out.push_str(&projection.json_from_value(&record));
        return Ok(true);
    }
    // `matches` reads top-level attributes only (a missing one is null), so the record made
    // of the named attributes answers exactly as the whole record would.
    let mut named = Map::with_capacity(names.len());
    for (key, value) in &record {
        if names.contains(key) {
            named.insert((*key).to_string(), serde_json::from_str(value).map_err(internal)?);
        }
    }
    if !cond.matches(&Value::Object(named)) {
        return Ok(false);
    }
    projection.json_from_fields_into(&record, out);
    Ok(true)
}

/// The primary key a record is stored under, when the key gives it back exactly as the
/// record holds it ([`keys::decoded_as_written`]; otherwise the record is read).
fn key_value(key: &[u8]) -> Option<Value> {
    let (value, rest) = keys::decode(key)?;
    (keys::decoded_as_written(&value) && rest.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::super::query::Cmp;
    use super::*;
    use serde_json::json;

    fn leaf(attribute: &str, cmp: Cmp, value: Value) -> Cond {
        Cond::Leaf { attribute: attribute.into(), cmp, value, upper: None }
    }

    /// Exactly what parsing the whole record gives, for records that borrow (plain keys) and
    /// records that do not (escaped keys, not an object), conditions on present, missing,
    /// nested and array attributes, conditions on the primary key alone (read from the key),
    /// and `*` and named projections.
    #[test]
    fn filtering_on_named_attributes_answers_like_the_whole_record() {
        let records = [
            r#"{"id":1,"name":"Penny","age":5,"tags":["a","b"],"owner":{"n":"x"},"note":null}"#,
            r#"{"id":2,"name":"Rex \"R\"","age":5.0,"tags":[],"owner":{"n":"y"}}"#,
            r#"{"id":3,"age":"5","name":"Ace","we\"ird":true}"#,
            r#"{"id":4}"#,
            r#"[1,2]"#,
            // Primary keys the key encoding gives back inexactly, or as another number text.
            r#"{"id":5.0,"name":"five"}"#,
            r#"{"id":-2,"name":"minus"}"#,
            r#"{"id":2.5,"name":"frac"}"#,
            r#"{"id":1152921504606846977,"name":"big"}"#,
            r#"{"id":"7","name":"text"}"#,
            r#"{"id":"a\"b","name":"escaped"}"#,
        ];
        let conds = [
            leaf("age", Cmp::Equals, json!(5)),
            leaf("age", Cmp::GreaterThanEqual, json!(4)),
            leaf("name", Cmp::StartsWith, json!("Re")),
            leaf("tags", Cmp::Contains, json!("a")),
            leaf("note", Cmp::IsNull, Value::Null),
            leaf("owner", Cmp::Exists, Value::Null),
            Cond::Or(vec![leaf("we\"ird", Cmp::Equals, json!(true)), Cond::Not(Box::new(leaf("age", Cmp::Exists, Value::Null)))]),
            Cond::And(vec![leaf("id", Cmp::LessThan, json!(3)), leaf("name", Cmp::EndsWith, json!("\"R\""))]),
            // On the primary key alone: answered from the record's key.
            leaf("id", Cmp::GreaterThanEqual, json!(0)),
            leaf("id", Cmp::GreaterThan, json!(2)),
            leaf("id", Cmp::Equals, json!(5)),
            leaf("id", Cmp::LessThan, json!(1152921504606846977u64)),
            leaf("id", Cmp::StartsWith, json!("a")),
            Cond::Leaf { attribute: "id".into(), cmp: Cmp::Between, value: json!(2), upper: Some(json!(5)) },
            Cond::Or(vec![leaf("id", Cmp::LessThan, json!(2)), Cond::Not(Box::new(leaf("id", Cmp::LessThanEqual, json!(4))))]),
            Cond::And(vec![]),
        ];
        let projections = [
            Projection { names: ["id", "__createdtime__", "__updatedtime__", "age", "name"].map(String::from).to_vec(), star: true },
            Projection { names: vec!["name".into(), "id".into()], star: false },
        ];
        for cond in &conds {
            let mut names = Vec::new();
            cond.attributes(&mut names);
            for projection in &projections {
                for text in records {
                    let whole: Value = serde_json::from_str(text).expect("valid");
                    let want = cond.matches(&whole).then(|| projection.json_from_value(&whole));
                    let key = keys::encoded(whole.get("id").unwrap_or(&Value::Null));
                    let got = filtered_json(projection, cond, &names, "id", &key, text.as_bytes()).expect("filter");
                    assert_eq!(got, want, "{cond:?} on {text}");
                }
            }
        }
    }
}
