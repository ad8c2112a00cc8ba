//! `csv_file_load`: a job loading a CSV file on the server into a table as `insert` (default),
//! `update` or `upsert`, with HarperDB's type inference for cells. `file_path` must be a
//! regular file inside an import root (`operationsApi.importRoots`, default
//! `<rootPath>/imports`; the same confinement as exports: no traversal, no symbolic link as the
//! file, checked on the opened descriptor). The file streams from the host in 1 MiB chunks
//! and rows are written in batches, so memory stays flat whatever the file's size; a bad row
//! fails the job naming it, and the rows before it stay stored.
//!
//! Request: `{"operation": "csv_file_load", "database": "dev", "table": "breed", "file_path":
//! "/home/me/opshost/imports/breeds.csv"}` → `{"message": "Starting job with id <id>",
//! "job_id": "<id>"}`; the job's message is `successfully loaded <n> of <n> records`.
//! Open to every role with the table permission the action needs. Capabilities: `storage`,
//! `jobs`, `sources`.

use opshost_harper::load::{self, Source, Target};
use opshost_guest::prelude::*;
use serde_json::Map;

pub struct CsvFileLoad;

impl Operation for CsvFileLoad {
    const NAME: &'static str = "csv_file_load";
    const SUPER_USER_ONLY: bool = false;
    const JOB: bool = true;
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        let path = load::required_text(req, "file_path", "File path")?;
        Target::from_request(req)?;
        // Opened (and closed) now so a missing or refused file answers the request itself.
        Source::file(path)?;
        Ok(None)
    }

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let target = Target::from_request(&req)?;
        let source = Source::file(load::required_text(&req, "file_path", "File path")?)?;
        Ok(load::load_csv(source, target)?.response())
    }
}

opshost_guest::export_operation!(CsvFileLoad);
