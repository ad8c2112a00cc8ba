//! `search_by_conditions`: records matching a tree of conditions (`and`/`or`, nested groups),
//! with sort, offset and limit; the host plans the tree onto the indexes.
//!
//! Request: `{"operation": "search_by_conditions", "database": "dev", "table": "dog",
//! "operator": "and", "get_attributes": ["*"], "sort": {"attribute": "age", "descending": true},
//! "conditions": [{"attribute": "age", "comparator": "between", "value": [3, 8]},
//! {"operator": "or", "conditions": [...]}]}`. Capabilities: `storage`.

use opshost_guest::data::{Comparator, Cond, Search};
use opshost_guest::prelude::*;
use serde_json::value::RawValue;

pub struct SearchByConditions;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
    table: String,
    #[serde(default)]
    operator: Option<String>,
    conditions: Vec<Value>,
    get_attributes: Vec<String>,
    #[serde(default)]
    sort: Option<Value>,
    #[serde(default)]
    offset: u64,
    limit: Option<u64>,
}

impl Operation for SearchByConditions {
    const NAME: &'static str = "search_by_conditions";
    type Request = Request;
    type Response = Vec<Box<RawValue>>;

    fn handle(_ctx: &Context, req: Request) -> Result<Vec<Box<RawValue>>, Error> {
        let cond = group(req.operator.as_deref(), &req.conditions)?;
        let search = Search {
            cond: Some(cond),
            attributes: req.get_attributes,
            sort: sort_keys(req.sort.as_ref())?,
            offset: req.offset,
            limit: req.limit,
        };
        search.run(&req.database, &req.table)?.collect_all()
    }
}

opshost_guest::export_operation!(SearchByConditions);

fn bad(text: impl Into<String>) -> Error {
    Error::BadRequest(text.into())
}

fn group(operator: Option<&str>, conditions: &[Value]) -> Result<Cond, Error> {
    let children = conditions.iter().map(condition).collect::<Result<Vec<_>, _>>()?;
    match operator.unwrap_or("and") {
        "and" | "AND" => Ok(Cond::And(children)),
        "or" | "OR" if children.len() < 2 => Err(bad("An \"or\" operator requires at least two conditions")),
        "or" | "OR" => Ok(Cond::Or(children)),
        other => Err(bad(format!("'operator' must be 'and' or 'or', got '{other}'"))),
    }
}

/// One condition: a leaf (`attribute`/`search_attribute`, `comparator`/`search_type`,
/// `value`/`search_value`) or a nested group (`operator` + `conditions`).
fn condition(c: &Value) -> Result<Cond, Error> {
    let Some(obj) = c.as_object() else { return Err(bad("each condition must be an object")) };
    if let Some(nested) = obj.get("conditions") {
        let list = nested.as_array().ok_or_else(|| bad("'conditions' must be an array"))?;
        return group(obj.get("operator").and_then(Value::as_str), list);
    }
    let field = |a: &str, b: &str| obj.get(a).or_else(|| obj.get(b));
    let attribute = match field("attribute", "search_attribute") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("'attribute' must be a string")),
        None => return Err(bad("'attribute' is required")),
    };
    let comparator = match field("comparator", "search_type") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(bad("'comparator' must be a string")),
        None => return Err(bad("'comparator' is required")),
    };
    let value = field("value", "search_value").cloned().ok_or_else(|| bad("'value' is required"))?;
    let cmp = match comparator {
        "equals" => Comparator::Equals,
        "not_equal" => Comparator::NotEqual,
        "contains" => Comparator::Contains,
        "starts_with" => Comparator::StartsWith,
        "ends_with" => Comparator::EndsWith,
        "greater_than" => Comparator::GreaterThan,
        "greater_than_equal" => Comparator::GreaterThanEqual,
        "less_than" => Comparator::LessThan,
        "less_than_equal" => Comparator::LessThanEqual,
        "between" => {
            let pair = value.as_array().filter(|a| a.len() == 2).ok_or_else(|| bad("'between' needs 'value' as an array of two values"))?;
            return Ok(Cond::Leaf { attribute, comparator: Comparator::Between, value: pair[0].clone(), upper: Some(pair[1].clone()) });
        }
        other => return Err(bad(format!("Unknown query comparator \"{other}\""))),
    };
    Ok(Cond::leaf(attribute, cmp, value))
}

/// `{"attribute", "descending", "next": {...}}`, HarperDB's chained sort.
fn sort_keys(sort: Option<&Value>) -> Result<Vec<(String, bool)>, Error> {
    let mut keys = Vec::new();
    let mut next = sort;
    while let Some(s) = next.filter(|s| !s.is_null()) {
        let attribute = s.get("attribute").and_then(Value::as_str).ok_or_else(|| bad("'sort.attribute' is required"))?;
        keys.push((attribute.to_string(), s.get("descending").and_then(Value::as_bool).unwrap_or(false)));
        next = s.get("next");
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_groups_and_old_field_names() {
        let c = json!([{"search_attribute": "a", "search_type": "equals", "search_value": 1},
                       {"operator": "or", "conditions": [{"attribute": "b", "comparator": "between", "value": [1, 2]},
                                                         {"attribute": "c", "comparator": "starts_with", "value": "x"}]}]);
        let tree = group(Some("and"), c.as_array().expect("array")).expect("ok");
        assert!(matches!(tree, Cond::And(ref v) if v.len() == 2 && matches!(v[1], Cond::Or(_))));
    }

    #[test]
    fn harper_error_texts() {
        let e = condition(&json!({"attribute": "a", "comparator": "bogus", "value": 1})).expect_err("bogus");
        assert!(matches!(e, Error::BadRequest(m) if m == "Unknown query comparator \"bogus\""));
        let e = group(Some("or"), &[json!({"attribute": "a", "comparator": "equals", "value": 1})]).expect_err("or");
        assert!(matches!(e, Error::BadRequest(m) if m == "An \"or\" operator requires at least two conditions"));
        assert_eq!(sort_keys(Some(&json!({"attribute": "a", "next": {"attribute": "b", "descending": true}}))).expect("ok"),
                   vec![("a".to_string(), false), ("b".to_string(), true)]);
    }
}
