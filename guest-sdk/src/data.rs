//! Typed access to the `storage` interface: databases, tables, writes, deletes, reads, the
//! audit log and searches (condition trees flattened into WIT's node list, cursors). HarperDB's
//! request shapes on top of it live in `opshost-harper`.

use crate::bindings::opshost::host::storage as wit;
use crate::Error;
use serde_json::value::RawValue;
use serde_json::Value;

pub use wit::{Comparator, TableInfo, WriteMode};

/// What a write or delete did, keys as JSON values.
pub struct Written {
    pub written: Vec<Value>,
    pub skipped: Vec<Value>,
}

fn keys(texts: Vec<String>) -> Vec<Value> {
    texts.iter().map(|t| serde_json::from_str(t).unwrap_or(Value::Null)).collect()
}

fn texts<T: serde::Serialize>(values: &[T]) -> Vec<String> {
    values.iter().map(|v| serde_json::to_string(v).unwrap_or_else(|_| "null".into())).collect()
}

pub fn create_database(database: &str) -> Result<(), Error> {
    wit::create_database(database)
}

pub fn drop_database(database: &str) -> Result<(), Error> {
    wit::drop_database(database)
}

pub fn create_table(database: &str, table: &str, primary_key: &str) -> Result<(), Error> {
    wit::create_table(database, table, primary_key)
}

pub fn drop_table(database: &str, table: &str) -> Result<(), Error> {
    wit::drop_table(database, table)
}

/// Every user database with its tables' names.
pub fn list_databases() -> Result<Vec<(String, Vec<String>)>, Error> {
    wit::list_databases()
}

/// Writes records; an unknown table is a bad request for writes (HarperDB answers 400).
pub fn write<T: serde::Serialize>(database: &str, table: &str, mode: WriteMode, records: &[T]) -> Result<Written, Error> {
    let r = wit::write(database, table, mode, &texts(records)).map_err(not_found_is_bad_request)?;
    Ok(Written { written: keys(r.written), skipped: keys(r.skipped) })
}

/// What a write of records given as one text did: the keys as JSON array texts, passed into an
/// answer as they are, and how many.
pub struct WrittenText {
    pub written: Box<RawValue>,
    pub written_count: usize,
    pub skipped: Box<RawValue>,
    pub skipped_count: usize,
}

/// [`write`] for records that are one JSON array text already (a request's `records`): the text
/// crosses to the host as it is, with no string per record on either side (a bulk insert's
/// 10,000 records were split, copied and re-serialized here, and their keys parsed back).
pub fn write_text(database: &str, table: &str, mode: WriteMode, records: &RawValue) -> Result<WrittenText, Error> {
    let r = wit::write_text(database, table, mode, records.get()).map_err(not_found_is_bad_request)?;
    Ok(WrittenText {
        written: raw(r.written)?,
        written_count: r.written_count as usize,
        skipped: raw(r.skipped)?,
        skipped_count: r.skipped_count as usize,
    })
}

pub fn delete(database: &str, table: &str, ids: &[Value]) -> Result<Written, Error> {
    let r = wit::delete(database, table, &texts(ids)).map_err(not_found_is_bad_request)?;
    Ok(Written { written: keys(r.written), skipped: keys(r.skipped) })
}

/// Deletes records by primary keys given as JSON texts (as a search hands them out); returns
/// how many were deleted. For bulk deletes: no key is parsed or re-serialised in the guest.
pub fn delete_texts(database: &str, table: &str, ids: &[String]) -> Result<usize, Error> {
    Ok(wit::delete(database, table, ids).map_err(not_found_is_bad_request)?.written.len())
}

fn not_found_is_bad_request(e: Error) -> Error {
    match e {
        Error::NotFound(m) => Error::BadRequest(m),
        other => other,
    }
}

/// Records by primary key as raw JSON (no re-encoding on the way out).
pub fn get(database: &str, table: &str, ids: &[Value], attributes: &[String]) -> Result<Vec<Box<RawValue>>, Error> {
    let found = wit::get(database, table, &texts(ids), attributes)?;
    found.into_iter().map(raw).collect()
}

fn raw(text: String) -> Result<Box<RawValue>, Error> {
    RawValue::from_string(text).map_err(|e| Error::Internal(format!("host returned invalid JSON: {e}")))
}

/// The table's audit log in HarperDB's `read_audit_log` shape, as raw JSON. `search_type` is
/// `timestamp` (or empty), `username` or `hash_value`.
pub fn read_audit_log(database: &str, table: &str, search_type: &str, values: &[Value]) -> Result<Box<RawValue>, Error> {
    raw(wit::read_audit_log(database, table, search_type, &texts(values))?)
}

/// Deletes the table's audit entries older than `timestamp` (epoch ms); returns how many.
pub fn delete_audit_log_before(database: &str, table: &str, timestamp: f64) -> Result<u64, Error> {
    wit::delete_audit_log_before(database, table, timestamp)
}

/// One table's facts (primary key, attributes, record count). Raises `not-found` with
/// HarperDB's text (`Table 'dev.x' does not exist`, `database 'x' does not exist`).
pub fn table_info(database: &str, table: &str) -> Result<TableInfo, Error> {
    wit::describe_table(database, table)
}

/// Like [`table_info`], for checks made before anything runs (a job's `validate`): a missing
/// table or database is the request's fault, so it answers 400 with the same text.
pub fn check_table(database: &str, table: &str) -> Result<TableInfo, Error> {
    wit::describe_table(database, table).map_err(not_found_is_bad_request)
}

/// A search condition tree, flattened into WIT's node list by [`Search::run`].
#[derive(Clone, Debug)]
pub enum Cond {
    Leaf { attribute: String, comparator: Comparator, value: Value, upper: Option<Value> },
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    pub fn leaf(attribute: impl Into<String>, comparator: Comparator, value: Value) -> Self {
        Cond::Leaf { attribute: attribute.into(), comparator, value, upper: None }
    }

    fn flatten(&self, nodes: &mut Vec<wit::Node>) -> u32 {
        let index = nodes.len() as u32;
        match self {
            Cond::Leaf { attribute, comparator, value, upper } => nodes.push(wit::Node::Leaf(wit::Condition {
                attribute: attribute.clone(),
                comparator: *comparator,
                value: value.to_string(),
                upper: upper.as_ref().map(Value::to_string),
            })),
            Cond::And(children) | Cond::Or(children) => {
                let logic = if matches!(self, Cond::And(_)) { wit::Logic::And } else { wit::Logic::Or };
                nodes.push(wit::Node::Group(wit::Group { logic, children: Vec::new() }));
                let ids: Vec<u32> = children.iter().map(|c| c.flatten(nodes)).collect();
                if let wit::Node::Group(g) = &mut nodes[index as usize] {
                    g.children = ids;
                }
            }
            Cond::Not(child) => {
                nodes.push(wit::Node::Group(wit::Group { logic: wit::Logic::Not, children: Vec::new() }));
                let id = child.flatten(nodes);
                if let wit::Node::Group(g) = &mut nodes[index as usize] {
                    g.children = vec![id];
                }
            }
        }
        index
    }
}

/// A search to run against one table.
#[derive(Clone, Debug, Default)]
pub struct Search {
    pub cond: Option<Cond>,
    pub attributes: Vec<String>,
    pub sort: Vec<(String, bool)>,
    pub offset: u64,
    pub limit: Option<u64>,
}

/// Streams a search's results.
pub struct Cursor(wit::Cursor);

impl Cursor {
    /// Up to `max` records as raw JSON; empty at the end.
    pub fn next_batch(&self, max: u32) -> Result<Vec<Box<RawValue>>, Error> {
        self.0.next_batch(max)?.into_iter().map(raw).collect()
    }

    /// Up to `max` records as one text, each a compact JSON object followed by a newline;
    /// empty at the end. One copy per page, for callers that pass records through as text.
    pub fn next_page(&self, max: u32) -> Result<String, Error> {
        self.0.next_page(max)
    }

    /// Every remaining record.
    pub fn collect_all(&self) -> Result<Vec<Box<RawValue>>, Error> {
        let mut out = Vec::new();
        loop {
            let batch = self.next_batch(1000)?;
            if batch.is_empty() {
                return Ok(out);
            }
            out.extend(batch);
        }
    }
}

impl Search {
    pub fn run(&self, database: &str, table: &str) -> Result<Cursor, Error> {
        let mut nodes = Vec::new();
        if let Some(c) = &self.cond {
            c.flatten(&mut nodes);
        }
        let query = wit::Query {
            nodes,
            attributes: self.attributes.clone(),
            sort: self.sort.iter().map(|(a, d)| wit::SortKey { attribute: a.clone(), descending: *d }).collect(),
            offset: self.offset,
            limit: self.limit,
        };
        wit::search(database, table, &query).map(Cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trees_flatten_with_children_by_index() {
        let tree = Cond::Or(vec![Cond::leaf("a", Comparator::Equals, json!(1)), Cond::Not(Box::new(Cond::leaf("b", Comparator::Equals, json!(2))))]);
        let mut nodes = Vec::new();
        assert_eq!(tree.flatten(&mut nodes), 0);
        assert_eq!(nodes.len(), 4);
        match &nodes[0] {
            wit::Node::Group(g) => assert_eq!(g.children, vec![1, 2]),
            _ => panic!("group"),
        }
    }
}
