//! `csv_data_load`: a job loading the CSV text of the request's `data` into a table as
//! `insert` (default), `update` or `upsert` (HarperDB's `action`), with HarperDB's type
//! inference for cells. The rows are parsed and written in batches (the SDK's `load`); a bad
//! row fails the job naming it, and the rows before it stay stored.
//!
//! Request: `{"operation": "csv_data_load", "database": "dev", "table": "breed", "action":
//! "insert", "data": "id,name\n1,ENGLISH POINTER\n"}` → `{"message": "Starting job with id
//! <id>", "job_id": "<id>"}`; the job's message is `successfully loaded 1 of 1 records`.
//! Open to every role with the table permission the action needs. Capabilities: `storage`,
//! `jobs`.

use opshost_harper::load::{self, Target};
use opshost_guest::prelude::*;
use serde_json::Map;

pub struct CsvDataLoad;

impl Operation for CsvDataLoad {
    const NAME: &'static str = "csv_data_load";
    const SUPER_USER_ONLY: bool = false;
    const JOB: bool = true;
    // Decoded by hand: HarperDB checks the fields with its own texts.
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        load::required_text(req, "data", "Data")?;
        Target::from_request(req)?;
        Ok(None)
    }

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let target = Target::from_request(&req)?;
        let data = load::required_text(&req, "data", "Data")?;
        let loaded = load::load_csv(data.as_bytes(), target)?;
        if loaded.rows == 0 {
            // HarperDB's answer when the text holds a header at most.
            return Ok(json!({ "message": "No records parsed from csv file." }));
        }
        Ok(loaded.response())
    }
}

opshost_guest::export_operation!(CsvDataLoad);
