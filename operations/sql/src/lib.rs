//! `sql`: HarperDB's SQL operation. SELECT (WHERE, ORDER BY, LIMIT/OFFSET, aliases, COUNT/SUM/
//! AVG/MIN/MAX with GROUP BY, DISTINCT), INSERT ... VALUES, UPDATE ... SET and DELETE on one table.
//! WHERE becomes a condition tree the host plans onto its indexes; see `plan.rs`.
//!
//! Request: `{"operation": "sql", "sql": "SELECT COUNT(*) AS c FROM dev.dog"}` → `[{"c": 6}]`.
//! Capabilities: `storage`.

mod plan;

use opshost_guest::data::{Cursor, Search, WriteMode};
use opshost_guest::prelude::*;
use plan::{Aggregator, Filter, Plan, Select};
use serde_json::value::RawValue;
use serde_json::Map;

pub struct Sql;

/// SELECT answers rows (passed through as the host's raw JSON where possible), writes a message.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Response {
    Rows(Vec<Box<RawValue>>),
    Message(Value),
}

/// Rows are pulled from the host this many at a time.
const BATCH: u32 = 1000;

impl Operation for Sql {
    const NAME: &'static str = "sql";
    // Decoded by hand so the missing / not-a-string texts are HarperDB's own.
    type Request = Map<String, Value>;
    type Response = Response;

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Response, Error> {
        let sql = match req.get("sql") {
            None | Some(Value::Null) => return Err(bad("The 'sql' parameter is missing from the request body")),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(bad("We had trouble parsing your request. Please ensure your SQL is valid. Try adding backticks to reserved words and schema table references.")),
        };
        match plan::parse(sql).map_err(|_| bad(plan::invalid_sql(sql)))? {
            Plan::Select(s) => select(&s).map(Response::Rows),
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
                // HarperDB says "record" when exactly one was asked for.
                let noun = if keys.len() == 1 { "record" } else { "records" };
                Ok(Response::Message(json!({
                    "message": format!("{} of {} {noun} successfully deleted", out.written.len(), keys.len()),
                    "deleted_hashes": out.written,
                    "skipped_hashes": out.skipped,
                })))
            }
        }
    }
}

opshost_guest::export_operation!(Sql);

/// No match, no write: the host is not called with an empty batch.
fn nothing() -> data::Written {
    data::Written { written: Vec::new(), skipped: Vec::new() }
}

fn bad(text: impl Into<String>) -> Error {
    Error::BadRequest(text.into())
}

/// The table's primary key; also where a missing table becomes the host's 404.
fn primary_key(db: &str, table: &str) -> Result<String, Error> {
    let d = data::describe(db, table)?;
    d["hash_attribute"].as_str().map(str::to_string).ok_or_else(|| Error::Internal("table has no primary key".into()))
}

fn parse_row(raw: &RawValue) -> Result<Value, Error> {
    serde_json::from_str(raw.get()).map_err(|e| Error::Internal(format!("host returned invalid JSON: {e}")))
}

fn to_raw(v: &Value) -> Result<Box<RawValue>, Error> {
    serde_json::value::to_raw_value(v).map_err(|e| Error::Internal(format!("could not encode a row: {e}")))
}

/// Calls `f` on every row until it returns false or the cursor ends.
fn each_row(cursor: &Cursor, mut f: impl FnMut(Box<RawValue>) -> Result<bool, Error>) -> Result<(), Error> {
    loop {
        let batch = cursor.next_batch(BATCH)?;
        if batch.is_empty() {
            return Ok(());
        }
        for raw in batch {
            if !f(raw)? {
                return Ok(());
            }
        }
    }
}

fn select(s: &Select) -> Result<Vec<Box<RawValue>>, Error> {
    let mut attributes = s.fetch_attributes();
    if attributes.is_empty() {
        // `COUNT(*)` alone needs no attribute; ask for the smallest one there is.
        attributes.push(primary_key(&s.db, &s.table)?);
    }
    let window = s.pushes_window();
    let cursor = Search {
        cond: s.filter.cond.clone(),
        attributes,
        sort: if s.grouped { Vec::new() } else { s.order.clone() },
        offset: if window { s.offset } else { 0 },
        limit: if window { s.limit } else { None },
    }
    .run(&s.db, &s.table)?;

    if s.grouped {
        let mut agg = Aggregator::new(s);
        each_row(&cursor, |raw| {
            let row = parse_row(&raw)?;
            if s.filter.keep(&row) {
                agg.add(&row);
            }
            Ok(true)
        })?;
        return agg.finish().iter().map(to_raw).collect();
    }

    // With a guest-side filter the window is applied here, after filtering.
    let (mut skip, mut left) = if window { (0, None) } else { (s.offset, s.limit) };
    let passthrough = s.passthrough();
    let mut out = Vec::new();
    each_row(&cursor, |raw| {
        if left == Some(0) {
            return Ok(false);
        }
        let shaped = if passthrough {
            raw
        } else {
            let row = parse_row(&raw)?;
            if !s.filter.keep(&row) {
                return Ok(true);
            }
            to_raw(&s.shape(&row))?
        };
        if skip > 0 {
            skip -= 1;
            return Ok(true);
        }
        left = left.map(|n| n - 1);
        out.push(shaped);
        Ok(left != Some(0))
    })?;
    Ok(out)
}

/// The primary keys of the rows WHERE selects (keys only, so holding them all is cheap; the
/// write or delete then happens as one atomic batch after the cursor is done).
fn matching_keys(db: &str, table: &str, filter: &Filter) -> Result<(String, Vec<Value>), Error> {
    let pk = primary_key(db, table)?;
    let mut attributes = vec![pk.clone()];
    if let Some(r) = &filter.residual {
        r.attributes(&mut attributes);
    }
    let cursor = Search { cond: filter.cond.clone(), attributes, ..Default::default() }.run(db, table)?;
    let mut keys = Vec::new();
    each_row(&cursor, |raw| {
        let row = parse_row(&raw)?;
        if filter.keep(&row) {
            if let Some(k) = row.get(&pk).filter(|k| !k.is_null()) {
                keys.push(k.clone());
            }
        }
        Ok(true)
    })?;
    Ok((pk, keys))
}
