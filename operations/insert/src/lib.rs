//! `insert`: writes records to a table in one atomic, durable batch (HarperDB's `insert`).
//!
//! Request: `{"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 1}]}`.
//! Capabilities: `storage`.

use opshost_guest::data::WriteMode;
use opshost_guest::prelude::*;

pub struct Insert;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
    table: String,
    records: Vec<Value>,
}

impl Operation for Insert {
    const NAME: &'static str = "insert";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let out = data::write(&req.database, &req.table, WriteMode::Insert, &req.records)?;
        Ok(json!({
            "message": format!("inserted {} of {} records", out.written.len(), req.records.len()),
            "inserted_hashes": out.written,
            "skipped_hashes": out.skipped,
        }))
    }
}

opshost_guest::export_operation!(Insert);
