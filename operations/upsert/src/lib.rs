//! `upsert`: writes records to a table in one atomic, durable batch (HarperDB's `upsert`).
//!
//! Request: `{"operation": "upsert", "database": "dev", "table": "dog", "records": [{"id": 1}]}`.
//! Capabilities: `storage`.

use opshost_guest::data::WriteMode;
use opshost_guest::prelude::*;

pub struct Upsert;

#[derive(Deserialize)]
pub struct Request {
    #[serde(alias = "schema", default = "data::default_database")]
    database: String,
    table: String,
    records: Vec<Value>,
}

impl Operation for Upsert {
    const NAME: &'static str = "upsert";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let out = data::write(&req.database, &req.table, WriteMode::Upsert, &req.records)?;
        Ok(json!({
            "message": format!("upserted {} of {} records", out.written.len(), req.records.len()),
            "upserted_hashes": out.written
        }))
    }
}

opshost_guest::export_operation!(Upsert);
