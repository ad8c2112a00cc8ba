//! Filtered reads that parse only what the filter looks at: a record's top-level fields are
//! borrowed from its stored bytes and only the attributes the condition names become values,
//! so a search over a large table (an export with a condition) does not build a whole
//! `serde_json::Value` (map, keys, every string) for each record it examines.

use super::query::Cond;
use super::projection::borrow_fields;
use super::{internal, Projection, ServiceError};
use serde_json::{Map, Value};

/// The projected text of the stored record `bytes` when it satisfies `cond`; `names` are the
/// attributes `cond` reads ([`Cond::attributes`]). A record whose fields cannot be borrowed
/// (not an object, escaped keys) takes the general path: parsed whole, matched, projected.
pub(super) fn filtered_json(projection: &Projection, cond: &Cond, names: &[&str], bytes: &[u8]) -> Result<Option<String>, ServiceError> {
    let mut record = Vec::with_capacity(projection.names.len());
    if !borrow_fields(bytes, &mut record) {
        let record = serde_json::from_slice::<Value>(bytes).map_err(internal)?;
        return Ok(cond.matches(&record).then(|| projection.json_from_value(&record)));
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
        return Ok(None);
    }
    Ok(Some(projection.json_from_fields(&record, bytes.len())))
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
    /// nested and array attributes, and `*` and named projections.
    #[test]
    fn filtering_on_named_attributes_answers_like_the_whole_record() {
        let records = [
            r#"{"id":1,"name":"Penny","age":5,"tags":["a","b"],"owner":{"n":"x"},"note":null}"#,
            r#"{"id":2,"name":"Rex \"R\"","age":5.0,"tags":[],"owner":{"n":"y"}}"#,
            r#"{"id":3,"age":"5","name":"Ace","we\"ird":true}"#,
            r#"{"id":4}"#,
            r#"[1,2]"#,
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
                    let got = filtered_json(projection, cond, &names, text.as_bytes()).expect("filter");
                    assert_eq!(got, want, "{cond:?} on {text}");
                }
            }
        }
    }
}
