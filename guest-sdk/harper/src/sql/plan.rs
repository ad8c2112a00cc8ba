//! The plan of one SQL statement: what `parse.rs` builds from the SQL and the rest of the guest
//! runs (the host-plannable part of WHERE as a `data::Cond`, the rest as a guest-side predicate,
//! checked by `eval.rs`; grouped selects are built by `aggregate.rs`).

use crate::data::Cond;
use serde_json::{Map, Value};

pub use super::aggregate::Aggregator;
pub use super::parse::parse;

/// Anything we cannot parse or do not support: HarperDB answers all of it with one text.
#[derive(Debug)]
pub struct Unsupported;
pub(super) type R<T> = Result<T, Unsupported>;

pub fn invalid_sql(sql: &str) -> String {
    format!("Invalid SQL at: {sql}. Please ensure your SQL is valid. Try adding backticks to reserved words and schema table references.")
}

#[derive(Debug)]
pub enum Plan {
    Select(Select),
    Insert { db: String, table: String, records: Vec<Value> },
    Update { db: String, table: String, filter: Filter, set: Map<String, Value> },
    Delete { db: String, table: String, filter: Filter },
}

/// WHERE, split: what the host can plan onto its indexes, and what the guest checks per row.
#[derive(Debug, Default)]
pub struct Filter {
    pub cond: Option<Cond>,
    pub residual: Option<Pred>,
}

impl Filter {
    pub fn keep(&self, row: &Value) -> bool {
        self.residual.as_ref().is_none_or(|p| p.matches(row))
    }
}

#[derive(Debug)]
pub struct Select {
    pub db: String,
    pub table: String,
    pub filter: Filter,
    pub columns: Vec<Column>,
    pub group_by: Vec<String>,
    /// Aggregates, GROUP BY or DISTINCT: the guest builds the rows, sorts and windows them.
    pub grouped: bool,
    /// Attribute names when not grouped (pushed to the host), output names when grouped.
    pub order: Vec<(String, bool)>,
    pub offset: u64,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func { Count, Sum, Avg, Min, Max }

#[derive(Debug)]
pub enum Column {
    Star,
    Attr { attr: String, name: String },
    /// `arg` is None for `COUNT(*)`.
    Agg { func: Func, arg: Option<String>, distinct: bool, name: String },
}

/// A WHERE tree. `Cond` subtrees are exact and go to the host; the rest is checked in the guest.
#[derive(Debug)]
pub enum Pred {
    Cond(Cond),
    Like { attr: String, pattern: String },
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
}

impl Select {
    /// What to ask the host for; empty when only `COUNT(*)` is asked (the caller adds the key).
    pub fn fetch_attributes(&self) -> Vec<String> {
        if self.columns.iter().any(|c| matches!(c, Column::Star)) {
            return vec!["*".into()];
        }
        let mut out = Vec::new();
        for c in &self.columns {
            match c {
                Column::Attr { attr, .. } | Column::Agg { arg: Some(attr), .. } => push(&mut out, attr),
                _ => {}
            }
        }
        self.group_by.iter().for_each(|g| push(&mut out, g));
        if let Some(r) = &self.filter.residual {
            r.attributes(&mut out);
        }
        out
    }

    /// Sort, offset and limit can go to the host only when it sees every filter and builds the rows.
    pub fn pushes_window(&self) -> bool {
        !self.grouped && self.filter.residual.is_none()
    }

    /// The host's rows are already the answer: `*` or plain unaliased columns, nothing extra fetched.
    pub fn passthrough(&self) -> bool {
        self.filter.residual.is_none()
            && self.columns.iter().all(|c| match c {
                Column::Star => self.columns.len() == 1,
                Column::Attr { attr, name } => attr == name,
                Column::Agg { .. } => false,
            })
    }

    /// One output row from one stored row (not grouped).
    pub fn shape(&self, row: &Value) -> Value {
        let mut out = Map::new();
        for c in &self.columns {
            match c {
                Column::Star => out.extend(row.as_object().cloned().unwrap_or_default()),
                Column::Attr { attr, name } => {
                    out.insert(name.clone(), row.get(attr).cloned().unwrap_or(Value::Null));
                }
                Column::Agg { .. } => {}
            }
        }
        Value::Object(out)
    }
}

pub(super) fn push(out: &mut Vec<String>, a: &str) {
    if !out.iter().any(|x| x == a) {
        out.push(a.to_string());
    }
}

/// The SELECT of `sql`, for the tests of the modules that take a plan.
#[cfg(test)]
pub(super) fn select_of(sql: &str) -> Select {
    match parse(sql).expect("parses") {
        Plan::Select(s) => s,
        other => panic!("not a select: {other:?}"),
    }
}
