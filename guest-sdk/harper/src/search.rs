//! HarperDB's search requests (`search_by_value`, `search_by_hash`/`search_by_id`,
//! `search_by_conditions`, and `sql` SELECT with the `sql` feature) as typed structs, and
//! [`Rows`], a streaming source of their result rows (raw JSON) that exports read in batches.
//! Backed by the `storage` interface through [`crate::data`].

use crate::data::{self, wildcard, Comparator, Cond, Cursor, Search};
use opshost_guest::Error;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// HarperDB's text for a `search_operation.operation` it does not export.
pub const UNKNOWN_OPERATION: &str =
    "searchOperation.operation must be one of the following values: search_by_value, search_by_hash, sql, search_by_conditions";

/// Rows are pulled from the host this many at a time when collecting.
const BATCH: u32 = 1000;

/// `search_by_value`: records whose attribute equals a value (type-sensitive), with `*` wildcards.
#[derive(Debug, Deserialize)]
pub struct ByValue {
    #[serde(alias = "schema", default = "data::default_database")]
    pub database: String,
    pub table: String,
    #[serde(alias = "search_attribute")]
    pub attribute: String,
    #[serde(alias = "search_value")]
    pub value: Value,
    pub get_attributes: Vec<String>,
    #[serde(default)]
    pub offset: u64,
    pub limit: Option<u64>,
}

impl ByValue {
    pub fn search(&self) -> Search {
        Search {
            cond: Some(wildcard(&self.attribute, &self.value)),
            attributes: self.get_attributes.clone(),
            offset: self.offset,
            limit: self.limit,
            ..Default::default()
        }
    }

    pub fn rows(&self) -> Result<Rows, Error> {
        Ok(Rows::new(self.search().run(&self.database, &self.table)?).on(&self.database, &self.table))
    }
}

/// `search_by_hash` / `search_by_id`: records by primary key, in request order, missing ids left out.
#[derive(Debug, Deserialize)]
pub struct ByHash {
    #[serde(alias = "schema", default = "data::default_database")]
    pub database: String,
    pub table: String,
    #[serde(alias = "ids")]
    pub hash_values: Vec<Value>,
    pub get_attributes: Vec<String>,
}

impl ByHash {
    /// Every record at once (the ids are in the request, so the answer is bounded by it).
    pub fn get(&self) -> Result<Vec<Box<RawValue>>, Error> {
        data::get(&self.database, &self.table, &self.hash_values, &self.get_attributes)
    }

    /// The records, fetched [`BATCH`] ids at a time.
    pub fn rows(self) -> Result<Rows, Error> {
        let (database, table) = (self.database.clone(), self.table.clone());
        let expected = self.hash_values.len() as u64;
        let mut rows = Rows::new(HashRows { req: self, next: 0 }).on(&database, &table);
        rows.expected = Some(expected);
        Ok(rows)
    }
}

struct HashRows {
    req: ByHash,
    next: usize,
}

impl RowSource for HashRows {
    fn next_batch(&mut self, max: u32) -> Result<Vec<Box<RawValue>>, Error> {
        // Missing ids are left out, so a chunk may come back empty before the end.
        while self.next < self.req.hash_values.len() {
            let end = (self.next + max.max(1) as usize).min(self.req.hash_values.len());
            let ids = &self.req.hash_values[self.next..end];
            self.next = end;
            let found = data::get(&self.req.database, &self.req.table, ids, &self.req.get_attributes)?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Ok(Vec::new())
    }
}

/// `search_by_conditions`: a tree of conditions (`and`/`or`, nested groups) with sort, offset
/// and limit; the host plans the tree onto its indexes.
#[derive(Debug, Deserialize)]
pub struct ByConditions {
    #[serde(alias = "schema", default = "data::default_database")]
    pub database: String,
    pub table: String,
    #[serde(default)]
    pub operator: Option<String>,
    pub conditions: Vec<Value>,
    pub get_attributes: Vec<String>,
    #[serde(default)]
    pub sort: Option<Value>,
    #[serde(default)]
    pub offset: u64,
    pub limit: Option<u64>,
}

impl ByConditions {
    /// The search, or a 400 in HarperDB's words for a malformed tree or sort.
    pub fn search(&self) -> Result<Search, Error> {
        Ok(Search {
            cond: Some(group(self.operator.as_deref(), &self.conditions)?),
            attributes: self.get_attributes.clone(),
            sort: sort_keys(self.sort.as_ref())?,
            offset: self.offset,
            limit: self.limit,
        })
    }

    pub fn rows(&self) -> Result<Rows, Error> {
        Ok(Rows::new(self.search()?.run(&self.database, &self.table)?).on(&self.database, &self.table))
    }
}

/// A search request of any kind, decoded and checked without calling the host.
#[derive(Debug)]
pub enum Request {
    ByValue(ByValue),
    ByHash(ByHash),
    ByConditions(ByConditions),
    #[cfg(feature = "sql")]
    Sql(Box<crate::sql::Select>),
}

impl Request {
    /// Decodes an export's `search_operation` by its `operation`; field errors name the field in
    /// HarperDB's words, a malformed condition tree or SQL is refused here.
    pub fn from_operation(op: &Value) -> Result<Request, Error> {
        let name = op.get("operation").and_then(Value::as_str).unwrap_or("");
        let req = match name {
            "search_by_value" => Request::ByValue(decode(op)?),
            "search_by_hash" | "search_by_id" => Request::ByHash(decode(op)?),
            "search_by_conditions" => {
                let req: ByConditions = decode(op)?;
                req.search()?;
                Request::ByConditions(req)
            }
            "sql" => sql_request(op)?,
            _ => return Err(Error::bad_request(UNKNOWN_OPERATION)),
        };
        Ok(req)
    }

    /// `(database, table)` the search reads.
    pub fn table(&self) -> (&str, &str) {
        match self {
            Request::ByValue(r) => (&r.database, &r.table),
            Request::ByHash(r) => (&r.database, &r.table),
            Request::ByConditions(r) => (&r.database, &r.table),
            #[cfg(feature = "sql")]
            Request::Sql(s) => (&s.db, &s.table),
        }
    }

    /// Checks that the table exists: a missing table or database is a 400 with HarperDB's text.
    pub fn validate(&self) -> Result<(), Error> {
        let (database, table) = self.table();
        data::check_table(database, table).map(drop)
    }

    /// Starts the search.
    pub fn rows(self) -> Result<Rows, Error> {
        match self {
            Request::ByValue(r) => r.rows(),
            Request::ByHash(r) => r.rows(),
            Request::ByConditions(r) => r.rows(),
            #[cfg(feature = "sql")]
            Request::Sql(s) => {
                let (database, table) = (s.db.clone(), s.table.clone());
                Ok(Rows::new(crate::sql::SelectRows::start(*s)?).on(&database, &table))
            }
        }
    }
}

#[cfg(feature = "sql")]
fn sql_request(op: &Value) -> Result<Request, Error> {
    let empty = serde_json::Map::new();
    let sql = crate::sql::statement(op.as_object().unwrap_or(&empty))?;
    crate::sql::parse_select(sql).map(|s| Request::Sql(Box::new(s)))
}

#[cfg(not(feature = "sql"))]
fn sql_request(_op: &Value) -> Result<Request, Error> {
    Err(Error::Internal("this operation was built without SQL support (the SDK's `sql` feature)".into()))
}

/// Starts the search an export's `search_operation` describes.
pub fn from_operation(op: &Value) -> Result<Rows, Error> {
    Request::from_operation(op)?.rows()
}

/// Checks an export's `search_operation` before a job starts: its shape, its SQL, its table.
pub fn validate_operation(op: &Value) -> Result<(), Error> {
    Request::from_operation(op)?.validate()
}

fn decode<T: serde::de::DeserializeOwned>(op: &Value) -> Result<T, Error> {
    opshost_guest::decode_request(&op.to_string())
}

/// Anything that hands out result rows in batches; an empty batch means the end.
pub trait RowSource {
    fn next_batch(&mut self, max: u32) -> Result<Vec<Box<RawValue>>, Error>;

    /// The next batch as one text, each row followed by a newline (compact JSON has none
    /// inside); empty at the end.
    fn next_page(&mut self, max: u32) -> Result<String, Error> {
        let batch = self.next_batch(max)?;
        let mut page = String::with_capacity(batch.iter().map(|r| r.get().len() + 1).sum());
        for row in &batch {
            // A newline in valid JSON is whitespace between tokens (strings escape theirs).
            if row.get().contains('\n') {
                page.extend(row.get().chars().filter(|c| *c != '\n'));
            } else {
                page.push_str(row.get());
            }
            page.push('\n');
        }
        Ok(page)
    }
}

impl RowSource for Cursor {
    fn next_batch(&mut self, max: u32) -> Result<Vec<Box<RawValue>>, Error> {
        Cursor::next_batch(self, max)
    }

    /// Straight from the host: one string per page, rows not validated one by one.
    fn next_page(&mut self, max: u32) -> Result<String, Error> {
        Cursor::next_page(self, max)
    }
}

/// Rows already in memory.
impl RowSource for std::vec::IntoIter<Box<RawValue>> {
    fn next_batch(&mut self, max: u32) -> Result<Vec<Box<RawValue>>, Error> {
        Ok(self.take(max.max(1) as usize).collect())
    }
}

/// A search's result rows as raw JSON objects, pulled in batches so nobody holds a whole table.
pub struct Rows {
    source: Box<dyn RowSource>,
    table: Option<(String, String)>,
    expected: Option<u64>,
}

impl Rows {
    pub fn new(source: impl RowSource + 'static) -> Self {
        Rows { source: Box::new(source), table: None, expected: None }
    }

    /// Rows already in memory.
    pub fn from_vec(rows: Vec<Box<RawValue>>) -> Self {
        let expected = rows.len() as u64;
        Rows { expected: Some(expected), ..Rows::new(rows.into_iter()) }
    }

    /// Records which table the rows come from (for [`Rows::total_hint`]).
    pub fn on(mut self, database: &str, table: &str) -> Self {
        self.table = Some((database.to_string(), table.to_string()));
        self
    }

    /// Up to `max` rows; empty at the end.
    pub fn next_batch(&mut self, max: u32) -> Result<Vec<Box<RawValue>>, Error> {
        self.source.next_batch(max)
    }

    /// Up to `max` rows as one text, each a compact JSON object followed by a newline; empty
    /// at the end. Cheaper than [`Rows::next_batch`] for rows that are copied through.
    pub fn next_page(&mut self, max: u32) -> Result<String, Error> {
        self.source.next_page(max)
    }

    /// Every remaining row.
    pub fn collect_all(mut self) -> Result<Vec<Box<RawValue>>, Error> {
        let mut out = Vec::new();
        loop {
            let batch = self.next_batch(BATCH)?;
            if batch.is_empty() {
                return Ok(out);
            }
            out.extend(batch);
        }
    }

    /// An upper bound for progress reports: the number of ids asked for, else the table's
    /// record count (one cheap describe), else 0 (unknown).
    pub fn total_hint(&self) -> u64 {
        if let Some(n) = self.expected {
            return n;
        }
        self.table
            .as_ref()
            .and_then(|(d, t)| data::table_info(d, t).ok())
            .map_or(0, |info| info.record_count)
    }
}

/// A group of conditions joined by `operator` (`and` by default).
pub fn group(operator: Option<&str>, conditions: &[Value]) -> Result<Cond, Error> {
    let children = conditions.iter().map(condition).collect::<Result<Vec<_>, _>>()?;
    match operator.unwrap_or("and") {
        "and" | "AND" => Ok(Cond::And(children)),
        "or" | "OR" if children.len() < 2 => Err(Error::bad_request("An \"or\" operator requires at least two conditions")),
        "or" | "OR" => Ok(Cond::Or(children)),
        other => Err(Error::bad_request(format!("'operator' must be 'and' or 'or', got '{other}'"))),
    }
}

/// One condition: a leaf (`attribute`/`search_attribute`, `comparator`/`search_type`,
/// `value`/`search_value`) or a nested group (`operator` + `conditions`).
pub fn condition(c: &Value) -> Result<Cond, Error> {
    let Some(obj) = c.as_object() else { return Err(Error::bad_request("each condition must be an object")) };
    if let Some(nested) = obj.get("conditions") {
        let list = nested.as_array().ok_or_else(|| Error::bad_request("'conditions' must be an array"))?;
        return group(obj.get("operator").and_then(Value::as_str), list);
    }
    let field = |a: &str, b: &str| obj.get(a).or_else(|| obj.get(b));
    let attribute = match field("attribute", "search_attribute") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Error::bad_request("'attribute' must be a string")),
        None => return Err(Error::bad_request("'attribute' is required")),
    };
    let comparator = match field("comparator", "search_type") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(Error::bad_request("'comparator' must be a string")),
        None => return Err(Error::bad_request("'comparator' is required")),
    };
    let value = field("value", "search_value").cloned().ok_or_else(|| Error::bad_request("'value' is required"))?;
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
            let pair = value.as_array().filter(|a| a.len() == 2).ok_or_else(|| Error::bad_request("'between' needs 'value' as an array of two values"))?;
            return Ok(Cond::Leaf { attribute, comparator: Comparator::Between, value: pair[0].clone(), upper: Some(pair[1].clone()) });
        }
        other => return Err(Error::bad_request(format!("Unknown query comparator \"{other}\""))),
    };
    Ok(Cond::leaf(attribute, cmp, value))
}

/// `{"attribute", "descending", "next": {...}}`, HarperDB's chained sort.
pub fn sort_keys(sort: Option<&Value>) -> Result<Vec<(String, bool)>, Error> {
    let mut keys = Vec::new();
    let mut next = sort;
    while let Some(s) = next.filter(|s| !s.is_null()) {
        let attribute = s.get("attribute").and_then(Value::as_str).ok_or_else(|| Error::bad_request("'sort.attribute' is required"))?;
        keys.push((attribute.to_string(), s.get("descending").and_then(Value::as_bool).unwrap_or(false)));
        next = s.get("next");
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(op: Value) -> String {
        match Request::from_operation(&op) {
            Err(Error::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn dispatches_on_the_operation_with_harper_texts() {
        assert_eq!(err(json!({"operation": "describe_all"})), UNKNOWN_OPERATION);
        assert_eq!(err(json!({"table": "dog"})), UNKNOWN_OPERATION);
        assert_eq!(err(json!({"operation": "search_by_value", "table": "dog", "value": 1, "get_attributes": ["*"]})), "'attribute' is required");
        assert_eq!(err(json!({"operation": "search_by_hash", "table": "dog", "hash_values": 1, "get_attributes": ["*"]})), "'hash_values' must be an array");
        assert_eq!(
            err(json!({"operation": "search_by_conditions", "table": "dog", "get_attributes": ["*"], "conditions": [{"attribute": "a", "comparator": "bogus", "value": 1}]})),
            "Unknown query comparator \"bogus\""
        );
        let r = Request::from_operation(&json!({"operation": "search_by_id", "schema": "dev", "table": "dog", "ids": [1], "get_attributes": ["*"]})).expect("ok");
        assert_eq!(r.table(), ("dev", "dog"));
        let r = Request::from_operation(&json!({"operation": "search_by_value", "table": "dog", "search_attribute": "a", "search_value": "x*", "get_attributes": ["*"]})).expect("ok");
        assert_eq!(r.table(), ("data", "dog"));
    }

    #[cfg(feature = "sql")]
    #[test]
    fn sql_searches_parse_up_front() {
        let r = Request::from_operation(&json!({"operation": "sql", "sql": "SELECT * FROM dev.breed"})).expect("ok");
        assert_eq!(r.table(), ("dev", "breed"));
        assert!(err(json!({"operation": "sql", "sql": "SELEC *"})).starts_with("Invalid SQL at: SELEC *."));
        assert_eq!(err(json!({"operation": "sql"})), "The 'sql' parameter is missing from the request body");
    }

    #[test]
    fn in_memory_rows_come_in_batches() {
        let raw = |v: Value| serde_json::value::to_raw_value(&v).expect("raw");
        let mut rows = Rows::from_vec(vec![raw(json!({"a": 1})), raw(json!({"a": 2})), raw(json!({"a": 3}))]);
        assert_eq!(rows.total_hint(), 3);
        assert_eq!(rows.next_batch(2).expect("batch").len(), 2);
        assert_eq!(rows.next_batch(2).expect("batch").len(), 1);
        assert!(rows.next_batch(2).expect("batch").is_empty());
    }

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
