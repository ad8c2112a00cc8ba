//! What a search condition means: the comparators of HarperDB's `search_by_conditions` and how one
//! attribute value is matched against them. The host's query engine and the guest SDK's SQL
//! evaluator both call [`leaf_matches`], so `age = 1.0` or `tags LIKE`-with-`OR` cannot answer
//! differently depending on which side evaluates it. [`members`] is the other definition both
//! sides share: how a compact JSON row splits into its members.

pub mod members;

use serde_json::Value;
use std::cmp::Ordering;

/// A comparator of HarperDB's `search_by_conditions` (and the SQL predicates planned onto them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Equals,
    NotEqual,
    Contains,
    StartsWith,
    EndsWith,
    GreaterThan,
    GreaterThanEqual,
    LessThan,
    LessThanEqual,
    Between,
    Exists,
    IsNull,
}

/// Type-sensitive matching of one attribute value: `"3"` never equals `3`, ordering comparisons
/// hold only between values of the same type, numbers compare by value (`1` equals `1.0`, as the
/// order-preserving index keys and JavaScript have it), and `contains` also finds an array item.
pub fn leaf_matches(actual: &Value, cmp: Cmp, value: &Value, upper: Option<&Value>) -> bool {
    match cmp {
        Cmp::Equals => equals(actual, value),
        Cmp::NotEqual => !equals(actual, value),
        Cmp::Exists => !actual.is_null(),
        Cmp::IsNull => actual.is_null(),
        Cmp::Contains => match (actual, value) {
            (Value::String(a), Value::String(v)) => a.contains(v.as_str()),
            (Value::Array(items), v) => items.iter().any(|item| equals(item, v)),
            _ => false,
        },
        Cmp::StartsWith => matches!((actual, value), (Value::String(a), Value::String(v)) if a.starts_with(v.as_str())),
        Cmp::EndsWith => matches!((actual, value), (Value::String(a), Value::String(v)) if a.ends_with(v.as_str())),
        Cmp::GreaterThan => compare(actual, value) == Some(Ordering::Greater),
        Cmp::GreaterThanEqual => matches!(compare(actual, value), Some(Ordering::Greater | Ordering::Equal)),
        Cmp::LessThan => compare(actual, value) == Some(Ordering::Less),
        Cmp::LessThanEqual => matches!(compare(actual, value), Some(Ordering::Less | Ordering::Equal)),
        Cmp::Between => {
            let Some(upper) = upper else { return false };
            matches!(compare(actual, value), Some(Ordering::Greater | Ordering::Equal))
                && matches!(compare(actual, upper), Some(Ordering::Less | Ordering::Equal))
        }
    }
}

/// Equality: numbers by value, everything else structurally.
pub fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        _ => a == b,
    }
}

/// Ordering between two values of the same type; `None` across types (and for arrays/objects).
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        // Integers compare exactly (f64 would call 2^53 and 2^53 + 1 equal).
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(a), Some(b), _, _) => Some(a.cmp(&b)),
            (_, _, Some(a), Some(b)) => Some(a.cmp(&b)),
            (Some(_), None, _, Some(_)) => Some(Ordering::Less),
            (None, Some(_), Some(_), _) => Some(Ordering::Greater),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (stored value, comparator, asked value, upper, matches?)
    fn cases() -> Vec<(Value, Cmp, Value, Option<Value>, bool)> {
        use Cmp::*;
        vec![
            (json!(1), Equals, json!(1.0), None, true),
            (json!(1.5), Equals, json!(1.5), None, true),
            (json!(1), Equals, json!("1"), None, false),
            (json!(9007199254740993u64), Equals, json!(9007199254740992u64), None, false),
            (json!(1), NotEqual, json!(1.0), None, false),
            (json!("1"), NotEqual, json!(1), None, true),
            (json!(["a", "b"]), Contains, json!("a"), None, true),
            (json!([1, 2]), Contains, json!(2.0), None, true),
            (json!("abc"), Contains, json!("b"), None, true),
            (json!(12), Contains, json!(1), None, false),
            (json!("abc"), StartsWith, json!("ab"), None, true),
            (json!("abc"), EndsWith, json!("bc"), None, true),
            (json!(3), GreaterThan, json!(2.5), None, true),
            (json!("3"), GreaterThan, json!(2), None, false),
            (json!(2), GreaterThanEqual, json!(2.0), None, true),
            (json!(2), LessThan, json!(3), None, true),
            (json!(null), LessThan, json!(3), None, false),
            (json!(3), LessThanEqual, json!(3), None, true),
            (json!(2), Between, json!(1), Some(json!(3)), true),
            (json!(4), Between, json!(1), Some(json!(3)), false),
            (json!(2), Between, json!(1), None, false),
            (json!(null), Exists, json!(null), None, false),
            (json!(0), Exists, json!(null), None, true),
            (json!(null), IsNull, json!(null), None, true),
            (json!({"a": 1}), Equals, json!({"a": 1}), None, true),
            (json!(true), Equals, json!(true), None, true),
            (json!(true), GreaterThan, json!(false), None, true),
        ]
    }

    #[test]
    fn the_condition_table_holds() {
        for (actual, cmp, value, upper, expected) in cases() {
            assert_eq!(leaf_matches(&actual, cmp, &value, upper.as_ref()), expected, "{actual} {cmp:?} {value} {upper:?}");
        }
    }
}
