//! Row-side evaluation of a plan's residual predicate (the part of WHERE the host cannot plan:
//! LIKE patterns under OR/NOT), with the host's comparator semantics from `opshost_conditions`.

use super::plan::{push, Pred};
use crate::data::{Comparator, Cond};
use opshost_conditions::Cmp;
use serde_json::Value;
use std::cmp::Ordering;

impl Pred {
    pub fn matches(&self, row: &Value) -> bool {
        match self {
            Pred::Cond(c) => cond_matches(c, row),
            Pred::Like { attr, pattern } => row.get(attr).and_then(Value::as_str).is_some_and(|s| {
                like_match(&s.chars().collect::<Vec<_>>(), &pattern.chars().collect::<Vec<_>>())
            }),
            Pred::And(v) => v.iter().all(|p| p.matches(row)),
            Pred::Or(v) => v.iter().any(|p| p.matches(row)),
            Pred::Not(p) => !p.matches(row),
        }
    }

    /// The attributes the guest needs fetched to evaluate this.
    pub fn attributes(&self, out: &mut Vec<String>) {
        fn cond(c: &Cond, out: &mut Vec<String>) {
            match c {
                Cond::Leaf { attribute, .. } => push(out, attribute),
                Cond::And(v) | Cond::Or(v) => v.iter().for_each(|c| cond(c, out)),
                Cond::Not(c) => cond(c, out),
            }
        }
        match self {
            Pred::Cond(c) => cond(c, out),
            Pred::Like { attr, .. } => push(out, attr),
            Pred::And(v) | Pred::Or(v) => v.iter().for_each(|p| p.attributes(out)),
            Pred::Not(p) => p.attributes(out),
        }
    }
}

/// A condition evaluated in the guest (under an OR/NOT that also holds a LIKE): with the host's
/// exact semantics, from the one crate both sides use.
pub(super) fn cond_matches(c: &Cond, row: &Value) -> bool {
    match c {
        Cond::Leaf { attribute, comparator, value, upper } => {
            let actual = row.get(attribute).unwrap_or(&Value::Null);
            opshost_conditions::leaf_matches(actual, cmp_of(*comparator), value, upper.as_ref())
        }
        Cond::And(v) => v.iter().all(|c| cond_matches(c, row)),
        Cond::Or(v) => v.iter().any(|c| cond_matches(c, row)),
        Cond::Not(c) => !cond_matches(c, row),
    }
}

fn cmp_of(c: Comparator) -> Cmp {
    match c {
        Comparator::Equals => Cmp::Equals,
        Comparator::NotEqual => Cmp::NotEqual,
        Comparator::Contains => Cmp::Contains,
        Comparator::StartsWith => Cmp::StartsWith,
        Comparator::EndsWith => Cmp::EndsWith,
        Comparator::GreaterThan => Cmp::GreaterThan,
        Comparator::GreaterThanEqual => Cmp::GreaterThanEqual,
        Comparator::LessThan => Cmp::LessThan,
        Comparator::LessThanEqual => Cmp::LessThanEqual,
        Comparator::Between => Cmp::Between,
        Comparator::Exists => Cmp::Exists,
        Comparator::IsNull => Cmp::IsNull,
    }
}

/// SQL LIKE: `%` any run, `_` one character. Greedy with backtracking to the last `%`.
fn like_match(text: &[char], pat: &[char]) -> bool {
    let (mut t, mut p, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pat.len() && pat[p] == '%' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if p < pat.len() && (pat[p] == '_' || pat[p] == text[t]) {
            t += 1;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == '%')
}

/// A total order for sorting and MIN/MAX: null < booleans < numbers < strings < the rest.
pub(super) fn total_cmp(a: &Value, b: &Value) -> Ordering {
    let rank = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    };
    rank(a).cmp(&rank(b)).then_with(|| opshost_conditions::compare(a, b).unwrap_or(Ordering::Equal))
}

#[cfg(test)]
mod tests {
    use super::super::plan::select_of as sel;
    use super::*;
    use serde_json::json;

    #[test]
    fn complex_like_is_filtered_in_the_guest() {
        let s = sel("SELECT name FROM t WHERE age > 1 AND name LIKE 'P_n%y' LIMIT 1");
        assert!(s.filter.cond.is_some() && s.filter.residual.is_some());
        assert!(!s.pushes_window() && !s.passthrough());
        assert_eq!(s.fetch_attributes(), vec!["name".to_string()]);
        assert!(s.filter.keep(&json!({"name": "Penny"})) && !s.filter.keep(&json!({"name": "Pen"})));
        let s = sel("SELECT * FROM t WHERE a = 1 OR b LIKE '%'");
        assert!(s.filter.cond.is_none());
        assert!(s.filter.keep(&json!({"a": 1})) && s.filter.keep(&json!({"b": ""})) && !s.filter.keep(&json!({"a": "1"})));
        assert!(like_match(&['a', 'b', 'c'], &['%', 'c']) && !like_match(&['a', 'b'], &['_']));
    }
}
