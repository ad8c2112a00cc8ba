//! `csv_url_load`: a job downloading CSV from an http(s) `csv_url` and loading it into a table
//! as `insert` (default), `update` or `upsert`, with HarperDB's type inference for cells. The
//! download streams (connect and read timeouts, `operationsApi.importMaxSizeMB` cap, HarperDB's
//! status and content-type checks) and rows are written in batches; a bad row fails the job
//! naming it, and the rows before it stay stored. super_user only (deviations.md): the server
//! fetches whatever URL the request names, loopback and private networks included, and
//! stores what comes back where the caller can read it.
//!
//! Request: `{"operation": "csv_url_load", "database": "dev", "table": "breed", "csv_url":
//! "https://example.com/breeds.csv"}` → `{"message": "Starting job with id <id>", "job_id":
//! "<id>"}`; the job's message is `successfully loaded <n> of <n> records`. Capabilities:
//! `storage`, `jobs`, `sources`.

use opshost_harper::load::{self, Source, Target};
use opshost_guest::prelude::*;
use serde_json::Map;

pub struct CsvUrlLoad;

impl Operation for CsvUrlLoad {
    const NAME: &'static str = "csv_url_load";
    const SUPER_USER_ONLY: bool = true;
    const JOB: bool = true;
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        url(req)?;
        Target::from_request(req)?;
        Ok(None)
    }

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let target = Target::from_request(&req)?;
        let source = Source::url(url(&req)?)?;
        Ok(load::load_csv(source, target)?.response())
    }
}

opshost_guest::export_operation!(CsvUrlLoad);

/// `csv_url`: required, an http(s) URL (HarperDB's texts).
fn url(req: &Map<String, Value>) -> Result<&str, Error> {
    let url = load::required_text(req, "csv_url", "'csv_url'")?;
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        return Err(Error::BadRequest("'csv_url' must be a valid url".into()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_url_must_be_http() {
        let check = |v: Value| url(v.as_object().expect("object")).map(str::to_string);
        assert!(matches!(check(json!({})), Err(Error::BadRequest(m)) if m == "'csv_url' is required"));
        for bad in ["ftp://x/y.csv", "x.csv", "http://", "https:///a"] {
            assert!(matches!(check(json!({"csv_url": bad})), Err(Error::BadRequest(m)) if m == "'csv_url' must be a valid url"), "{bad}");
        }
        assert_eq!(check(json!({"csv_url": "http://127.0.0.1:8080/a.csv"})).ok().as_deref(), Some("http://127.0.0.1:8080/a.csv"));
    }
}
