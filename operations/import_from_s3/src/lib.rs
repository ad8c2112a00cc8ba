//! `import_from_s3`: a job loading a CSV or JSON object from S3 (or an S3-compatible store)
//! into a table as `insert` (default), `update` or `upsert`. The format follows the key's
//! extension, as in HarperDB: `.csv` (HarperDB's type inference for cells) or `.json` (an
//! array of objects, read element by element). The object streams from the store in ranged
//! reads and rows are written in batches; a bad row fails the job naming it, and the rows
//! before it stay stored. super_user only (deviations.md), as `export_to_s3`: the request names
//! the store the server talks to. The credentials are used for this one download and never
//! logged or echoed.
//!
//! Request: `{"operation": "import_from_s3", "database": "dev", "table": "dog", "s3":
//! {"aws_access_key_id": "...", "aws_secret_access_key": "...", "bucket": "b", "key":
//! "dogs.csv", "region": "us-east-1", "endpoint": "http://127.0.0.1:9000"}}` → `{"message":
//! "Starting job with id <id>", "job_id": "<id>"}`; the job's message is `successfully loaded
//! <n> of <n> records` (`endpoint` is opshost's addition, for S3-compatible stores).
//! Capabilities: `storage`, `jobs`, `sources`.

use opshost_harper::export;
use opshost_harper::load::{self, S3Target, Source, Target};
use opshost_guest::prelude::*;
use serde_json::Map;

pub struct ImportFromS3;

#[derive(Debug, PartialEq)]
enum Kind {
    Csv,
    Json,
}

impl Operation for ImportFromS3 {
    const NAME: &'static str = "import_from_s3";
    const JOB: bool = true;
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        target(req)?;
        Target::from_request(req)?;
        Ok(None)
    }

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let (kind, s3) = target(&req)?;
        let into = Target::from_request(&req)?;
        let source = Source::s3(&s3)?;
        let loaded = match kind {
            Kind::Csv => load::load_csv(source, into)?,
            Kind::Json => load::load_json(source, into)?,
        };
        Ok(loaded.response())
    }
}

opshost_guest::export_operation!(ImportFromS3);

/// The `s3` object's fields (the texts `export_to_s3` uses), and the format from the key.
fn target(req: &Map<String, Value>) -> Result<(Kind, S3Target), Error> {
    let s3 = match req.get("s3") {
        None | Some(Value::Null) => return Err(Error::bad_request("S3 object is missing.")),
        Some(Value::Object(s3)) => s3,
        Some(_) => return Err(Error::bad_request("'s3' must be an object")),
    };
    let field = |name: &str| -> Result<String, Error> {
        export::text_field(s3, name, &format!("s3.{name}"))?.map(str::to_string).ok_or_else(|| Error::bad_request(format!("{name} is missing.")))
    };
    let access_key_id = field("aws_access_key_id")?;
    let secret_access_key = field("aws_secret_access_key")?;
    let bucket = field("bucket")?;
    let key = field("key")?;
    let region = field("region")?;
    let endpoint = export::text_field(s3, "endpoint", "s3.endpoint")?.map(str::to_string);
    let lower = key.to_ascii_lowercase();
    let kind = if lower.ends_with(".csv") {
        Kind::Csv
    } else if lower.ends_with(".json") {
        Kind::Json
    } else {
        return Err(Error::bad_request(format!("s3.key '{key}' must have a valid file extension: '.csv' or '.json'")));
    };
    Ok((kind, S3Target { access_key_id, secret_access_key, region, bucket, key, endpoint }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: Value) -> String {
        match target(v.as_object().expect("object")) {
            Err(Error::BadRequest(m)) => m,
            Err(other) => panic!("expected a bad request, got {other:?}"),
            Ok(_) => panic!("expected a bad request"),
        }
    }

    #[test]
    fn s3_fields_and_the_extension() {
        let full = json!({"aws_access_key_id": "A", "aws_secret_access_key": "S", "bucket": "b", "key": "dogs.csv", "region": "r"});
        assert_eq!(text(json!({})), "S3 object is missing.");
        for name in ["aws_access_key_id", "aws_secret_access_key", "bucket", "key", "region"] {
            let mut s3 = full.as_object().cloned().unwrap_or_default();
            s3.remove(name);
            assert_eq!(text(json!({"s3": s3})), format!("{name} is missing."));
        }
        let mut s3 = full.clone();
        s3["key"] = json!("dogs.xml");
        assert_eq!(text(json!({"s3": s3})), "s3.key 'dogs.xml' must have a valid file extension: '.csv' or '.json'");
        let (kind, t) = target(json!({"s3": full}).as_object().expect("object")).expect("ok");
        assert_eq!((kind, t.key.as_str()), (Kind::Csv, "dogs.csv"));
        let mut s3 = full;
        s3["key"] = json!("a/b.JSON");
        assert_eq!(target(json!({"s3": s3}).as_object().expect("object")).expect("ok").0, Kind::Json);
    }
}
