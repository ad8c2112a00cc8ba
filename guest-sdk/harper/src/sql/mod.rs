//! SQL over the `storage` interface (cargo feature `sql`): one statement is parsed into a plan
//! (`plan.rs`, over sqlparser), a SELECT runs as a streaming row source ([`SelectRows`]), and
//! INSERT/UPDATE/DELETE answer in the shapes of HarperDB's insert, update and delete.

mod aggregate;
mod eval;
mod parse;
pub mod plan;

use crate::data::{self, Cursor, Search, WriteMode};
use crate::search::{RowSource, Rows};
use opshost_guest::Error;
pub use plan::{invalid_sql, Aggregator, Filter, Plan, Select};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// Rows are pulled from the host this many at a time.
const BATCH: u32 = 1000;

/// What a statement answers: rows (the host's raw JSON where possible) or a write's message.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum Response {
    Rows(Vec<Box<RawValue>>),
    Message(Value),
}

/// The `sql` field of a request, with HarperDB's texts when it is missing or not a string.
pub fn statement(request: &Map<String, Value>) -> Result<&str, Error> {
    match request.get("sql") {
        None | Some(Value::Null) => Err(Error::bad_request("The 'sql' parameter is missing from the request body")),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(Error::bad_request("We had trouble parsing your request. Please ensure your SQL is valid. Try adding backticks to reserved words and schema table references.")),
    }
}

/// Parses one statement; anything unparsable or unsupported is HarperDB's "Invalid SQL" 400.
pub fn parse(sql: &str) -> Result<Plan, Error> {
    plan::parse(sql).map_err(|_| Error::bad_request(invalid_sql(sql)))
}

/// Parses a statement that must be a SELECT (exports); other statements are refused.
pub fn parse_select(sql: &str) -> Result<Select, Error> {
    match parse(sql)? {
        Plan::Select(s) => Ok(s),
        _ => Err(Error::bad_request(format!("Only a SELECT statement can be exported: {sql}"))),
    }
}

/// Runs one statement: SELECT collects its rows, writes change the table.
pub fn execute(sql: &str) -> Result<Response, Error> {
    match parse(sql)? {
        Plan::Select(s) => Rows::new(SelectRows::start(s)?).collect_all().map(Response::Rows),
        Plan::Insert { db, table, records } => {
            let out = data::write(&db, &table, WriteMode::Insert, &records)?;
            Ok(Response::Message(json!({
                "message": format!("inserted {} of {} records", out.written.len(), records.len()),
                "inserted_hashes": out.written,
                "skipped_hashes": out.skipped,
            })))
        }
        Plan::Update { db, table, filter, set } => {
            let (pk, keys) = matching_keys(&db, &table, &filter)?;
            let records: Vec<Value> = keys
                .iter()
                .map(|k| {
                    let mut r = set.clone();
                    r.insert(pk.clone(), k.clone());
                    Value::Object(r)
                })
                .collect();
            let out = if records.is_empty() { nothing() } else { data::write(&db, &table, WriteMode::Update, &records)? };
            Ok(Response::Message(json!({
                "message": format!("updated {} of {} records", out.written.len(), keys.len()),
                "update_hashes": out.written,
                "skipped_hashes": out.skipped,
            })))
        }
        Plan::Delete { db, table, filter } => {
            let (_, keys) = matching_keys(&db, &table, &filter)?;
            let out = if keys.is_empty() { nothing() } else { data::delete(&db, &table, &keys)? };
            Ok(Response::Message(json!({
                "message": data::deleted_message(out.written.len(), keys.len()),
                "deleted_hashes": out.written,
                "skipped_hashes": out.skipped,
            })))
        }
    }
}

/// A SELECT's rows, streamed: plain selects pass the host's batches through (filtered and
/// shaped in the guest when needed); grouped selects aggregate every row on the first pull
/// (holding one accumulator per group, never the rows) and then hand out the result.
pub struct SelectRows {
    select: Select,
    cursor: Cursor,
    grouped: Option<std::vec::IntoIter<Box<RawValue>>>,
    /// The window still to apply in the guest (when the host could not apply it).
    skip: u64,
    left: Option<u64>,
    passthrough: bool,
    done: bool,
}

impl SelectRows {
    /// Starts the host's search for `select`.
    pub fn start(select: Select) -> Result<Self, Error> {
        let mut attributes = select.fetch_attributes();
        if attributes.is_empty() {
            // `COUNT(*)` alone needs no attribute; ask for the smallest one there is.
            attributes.push(data::table_info(&select.db, &select.table)?.primary_key);
        }
        let window = select.pushes_window();
        let cursor = Search {
            cond: select.filter.cond.clone(),
            attributes,
            sort: if select.grouped { Vec::new() } else { select.order.clone() },
            offset: if window { select.offset } else { 0 },
            limit: if window { select.limit } else { None },
        }
        .run(&select.db, &select.table)?;
        // With a guest-side filter the window is applied here, after filtering.
        let (skip, left) = if window { (0, None) } else { (select.offset, select.limit) };
        Ok(SelectRows { passthrough: select.passthrough(), select, cursor, grouped: None, skip, left, done: false })
    }

    /// The table the SELECT reads: `(database, table)`.
    pub fn table(&self) -> (&str, &str) {
        (&self.select.db, &self.select.table)
    }

    fn aggregate(&mut self) -> Result<std::vec::IntoIter<Box<RawValue>>, Error> {
        let mut agg = Aggregator::new(&self.select);
        if agg.counts_rows_only() {
            // The host keeps every table's count with its writes: no scan of 100,000 rows for
            // `SELECT COUNT(*)` (the search was still opened, so the same permissions apply).
            agg.count_rows(data::table_info(&self.select.db, &self.select.table)?.record_count);
            let rows = agg.finish().iter().map(to_raw).collect::<Result<Vec<_>, _>>()?;
            return Ok(rows.into_iter());
        }
        loop {
            let batch = self.cursor.next_batch(BATCH)?;
            if batch.is_empty() {
                break;
            }
            for raw in batch {
                let row = parse_row(&raw)?;
                if self.select.filter.keep(&row) {
                    agg.add(&row);
                }
            }
        }
        let rows = agg.finish().iter().map(to_raw).collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_iter())
    }
}

impl RowSource for SelectRows {
    fn next_batch(&mut self, max: u32) -> Result<Vec<Box<RawValue>>, Error> {
        let max = max.max(1);
        if self.select.grouped {
            let rows = match self.grouped.as_mut() {
                Some(rows) => rows,
                None => {
                    let rows = self.aggregate()?;
                    self.grouped.insert(rows)
                }
            };
            return Ok(rows.take(max as usize).collect());
        }
        let mut out = Vec::new();
        // A batch may filter down to nothing; keep pulling, since an empty answer means the end.
        while !self.done && out.len() < max as usize {
            if self.left == Some(0) {
                self.done = true;
                break;
            }
            let batch = self.cursor.next_batch(max - out.len() as u32)?;
            if batch.is_empty() {
                self.done = true;
                break;
            }
            for raw in batch {
                if self.left == Some(0) {
                    break;
                }
                let shaped = if self.passthrough {
                    raw
                } else {
                    let row = parse_row(&raw)?;
                    if !self.select.filter.keep(&row) {
                        continue;
                    }
                    to_raw(&self.select.shape(&row))?
                };
                if self.skip > 0 {
                    self.skip -= 1;
                    continue;
                }
                self.left = self.left.map(|n| n - 1);
                out.push(shaped);
            }
        }
        Ok(out)
    }
}

/// No match, no write: the host is not called with an empty batch.
fn nothing() -> data::Written {
    data::Written { written: Vec::new(), skipped: Vec::new() }
}

fn parse_row(raw: &RawValue) -> Result<Value, Error> {
    serde_json::from_str(raw.get()).map_err(|e| Error::Internal(format!("host returned invalid JSON: {e}")))
}

fn to_raw(v: &Value) -> Result<Box<RawValue>, Error> {
    serde_json::value::to_raw_value(v).map_err(|e| Error::Internal(format!("could not encode a row: {e}")))
}

/// The primary keys of the rows WHERE selects (keys only, so holding them all is cheap; the
/// write or delete then happens as one atomic batch after the cursor is done).
fn matching_keys(db: &str, table: &str, filter: &Filter) -> Result<(String, Vec<Value>), Error> {
    let pk = data::table_info(db, table)?.primary_key;
    let mut attributes = vec![pk.clone()];
    if let Some(r) = &filter.residual {
        r.attributes(&mut attributes);
    }
    let cursor = Search { cond: filter.cond.clone(), attributes, ..Default::default() }.run(db, table)?;
    let mut keys = Vec::new();
    loop {
        let batch = cursor.next_batch(BATCH)?;
        if batch.is_empty() {
            return Ok((pk, keys));
        }
        for raw in batch {
            let row = parse_row(&raw)?;
            if filter.keep(&row) {
                if let Some(k) = row.get(&pk).filter(|k| !k.is_null()) {
                    keys.push(k.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_texts_are_harpers() {
        let req = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(matches!(statement(&req(json!({}))), Err(Error::BadRequest(m)) if m == "The 'sql' parameter is missing from the request body"));
        assert!(matches!(statement(&req(json!({"sql": 1}))), Err(Error::BadRequest(m)) if m.starts_with("We had trouble parsing your request.")));
        assert_eq!(statement(&req(json!({"sql": "SELECT 1"}))).ok(), Some("SELECT 1"));
        assert!(matches!(parse("SELEC 1"), Err(Error::BadRequest(m)) if m.starts_with("Invalid SQL at: SELEC 1.")));
        assert!(parse_select("DELETE FROM dev.dog").is_err());
        assert!(parse_select("SELECT * FROM dev.dog").is_ok());
        assert_eq!(data::deleted_message(1, 1), "1 of 1 record successfully deleted");
        assert_eq!(data::deleted_message(0, 2), "0 of 2 records successfully deleted");
    }
}
