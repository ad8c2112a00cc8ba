//! Searches: the condition tree, type-sensitive matching, and the planner that picks the
//! index range a search is driven by (the rest of the tree filters the fetched records).

use super::keys;
use serde_json::Value;
use std::cmp::Ordering;

/// What a comparator means is defined once, for the host and the guests' SQL evaluator alike.
pub use opshost_conditions::{compare, leaf_matches, Cmp};

#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Leaf { attribute: String, cmp: Cmp, value: Value, upper: Option<Value> },
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

/// A search as the storage service runs it.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub cond: Option<Cond>,
    /// Attribute names, or `["*"]`.
    pub attributes: Vec<String>,
    pub sort: Vec<(String, bool)>,
    pub offset: u64,
    pub limit: Option<u64>,
}

impl Cond {
    /// Whether `record` satisfies the condition.
    pub fn matches(&self, record: &Value) -> bool {
        self.matches_with(&|attribute| record.get(attribute))
    }

    /// Whether the record whose attributes `get` reads (a missing one is null) satisfies the
    /// condition: a whole record, or one known only by its primary key (raw_read.rs).
    pub fn matches_with<'v>(&self, get: &impl Fn(&str) -> Option<&'v Value>) -> bool {
        match self {
            Cond::Leaf { attribute, cmp, value, upper } => leaf_matches(get(attribute).unwrap_or(&Value::Null), *cmp, value, upper.as_ref()),
            Cond::And(children) => children.iter().all(|c| c.matches_with(get)),
            Cond::Or(children) => children.iter().any(|c| c.matches_with(get)),
            Cond::Not(child) => !child.matches_with(get),
        }
    }

    /// How many nodes the tree has: the cost of matching one record.
    pub fn size(&self) -> usize {
        match self {
            Cond::Leaf { .. } => 1,
            Cond::And(c) | Cond::Or(c) => 1 + c.iter().map(Cond::size).sum::<usize>(),
            Cond::Not(c) => 1 + c.size(),
        }
    }

    /// Every attribute the condition names.
    pub fn attributes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Cond::Leaf { attribute, .. } => out.push(attribute),
            Cond::And(c) | Cond::Or(c) => c.iter().for_each(|c| c.attributes(out)),
            Cond::Not(c) => c.attributes(out),
        }
    }
}

/// Total order for sorting results: nulls first, then by type tag, then by value.
pub fn sort_order(a: &Value, b: &Value) -> Ordering {
    compare(a, b).unwrap_or_else(|| keys::tag_of(a).cmp(&keys::tag_of(b)))
}

/// How a search reads the table.
#[derive(Clone, Debug, PartialEq)]
pub enum Driver {
    /// Every record, in primary-key order.
    FullScan,
    /// Records by primary key.
    Keys(Vec<Value>),
    /// A range of the primary-key order: `[start, end)` over encoded keys.
    PrimaryRange { start: Vec<u8>, end: Vec<u8> },
    /// A range of one attribute's index: `[start, end)` over `value ++ pk` encodings.
    Index { attribute: String, start: Vec<u8>, end: Vec<u8> },
}

/// Chooses the most selective index-backed condition of the tree's top-level conjunction.
/// `or` and `not` at the top read the whole table (the filter still applies).
pub fn plan(cond: Option<&Cond>, primary_key: &str) -> Driver {
    let Some(cond) = cond else { return Driver::FullScan };
    let candidates: Vec<&Cond> = match cond {
        Cond::And(children) => children.iter().collect(),
        leaf @ Cond::Leaf { .. } => vec![leaf],
        _ => return Driver::FullScan,
    };
    let mut best: Option<(u8, Driver)> = None;
    for c in candidates {
        if let Cond::Leaf { attribute, cmp, value, upper } = c {
            if let Some((score, driver)) = leaf_driver(attribute, *cmp, value, upper.as_ref(), attribute == primary_key) {
                if best.as_ref().is_none_or(|(s, _)| score > *s) {
                    best = Some((score, driver));
                }
            }
        }
    }
    best.map(|(_, d)| d).unwrap_or(Driver::FullScan)
}

/// An index range for one leaf, with a selectivity score (higher is narrower).
fn leaf_driver(attribute: &str, cmp: Cmp, value: &Value, upper: Option<&Value>, is_pk: bool) -> Option<(u8, Driver)> {
    if is_pk && cmp == Cmp::Equals {
        return Some((10, Driver::Keys(vec![value.clone()])));
    }
    let type_range = |v: &Value| {
        let tag = keys::tag_of(v);
        (vec![tag], vec![tag + 1])
    };
    let (score, start, end) = match cmp {
        Cmp::Equals if is_scalar(value) => {
            let e = keys::encoded(value);
            let end = keys::prefix_end(&e);
            (9, e, end)
        }
        Cmp::StartsWith => {
            let p = keys::string_prefix(value.as_str()?);
            let end = keys::prefix_end(&p);
            (7, p, end)
        }
        Cmp::Between if is_scalar(value) => {
            let end = match upper {
                Some(u) if keys::tag_of(u) == keys::tag_of(value) => keys::prefix_end(&keys::encoded(u)),
                _ => type_range(value).1,
            };
            (6, keys::encoded(value), end)
        }
        Cmp::GreaterThan | Cmp::GreaterThanEqual if is_scalar(value) => {
            let (_, end) = type_range(value);
            (5, keys::encoded(value), end)
        }
        Cmp::LessThan | Cmp::LessThanEqual if is_scalar(value) => {
            let (start, _) = type_range(value);
            (5, start, keys::prefix_end(&keys::encoded(value)))
        }
        // Only strings end with a string; `contains` also matches array items, and `exists` also
        // holds for arrays and objects, none of which the attribute indexes hold: those two read
        // the records themselves.
        Cmp::EndsWith if value.is_string() => {
            let (start, end) = type_range(value);
            (2, start, end)
        }
        Cmp::Exists if is_pk => (1, vec![0x00], vec![0xFF]),
        _ => return None,
    };
    if is_pk {
        Some((score, Driver::PrimaryRange { start, end }))
    } else {
        Some((score, Driver::Index { attribute: attribute.to_string(), start, end }))
    }
}

fn is_scalar(v: &Value) -> bool {
    !(v.is_object() || v.is_array())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaf(attribute: &str, cmp: Cmp, value: Value) -> Cond {
        Cond::Leaf { attribute: attribute.into(), cmp, value, upper: None }
    }

    #[test]
    fn matching_is_type_sensitive() {
        let r = json!({"a": 3, "s": "3", "name": "Beagle"});
        assert!(leaf("a", Cmp::Equals, json!(3)).matches(&r));
        assert!(!leaf("a", Cmp::Equals, json!("3")).matches(&r));
        assert!(!leaf("s", Cmp::GreaterThan, json!(2)).matches(&r));
        assert!(leaf("name", Cmp::Contains, json!("eag")).matches(&r));
        assert!(leaf("missing", Cmp::IsNull, json!(null)).matches(&r));
        let between = Cond::Leaf { attribute: "a".into(), cmp: Cmp::Between, value: json!(1), upper: Some(json!(3)) };
        assert!(between.matches(&r));
    }

    #[test]
    fn the_planner_prefers_equality_and_reads_all_for_or() {
        let and = Cond::And(vec![leaf("age", Cmp::GreaterThan, json!(3)), leaf("name", Cmp::Equals, json!("x"))]);
        assert!(matches!(plan(Some(&and), "id"), Driver::Index { attribute, .. } if attribute == "name"));
        let or = Cond::Or(vec![leaf("a", Cmp::Equals, json!(1)), leaf("b", Cmp::Equals, json!(2))]);
        assert_eq!(plan(Some(&or), "id"), Driver::FullScan);
        assert_eq!(plan(Some(&leaf("id", Cmp::Equals, json!(7))), "id"), Driver::Keys(vec![json!(7)]));
        assert_eq!(plan(Some(&leaf("a", Cmp::NotEqual, json!(1))), "id"), Driver::FullScan);
    }
}
