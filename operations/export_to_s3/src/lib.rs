//! `export_to_s3`: a job exporting the rows of a search (`search_by_value`, `search_by_hash`,
//! `search_by_conditions` or a SQL SELECT) to the S3 object `<s3.key>.<format>`, as JSON or CSV
//! in HarperDB's exact formats, streamed as a (multipart) upload that appears only when
//! complete. Read permission on the table suffices (the host enforces it in storage). The
//! credentials are used for this one upload and never logged or echoed.
//!
//! Request: `{"operation": "export_to_s3", "format": "csv", "s3": {"aws_access_key_id": "...",
//! "aws_secret_access_key": "...", "bucket": "b", "key": "dogs", "region": "us-east-1",
//! "endpoint": "http://127.0.0.1:9000"}, "search_operation": {"operation": "search_by_value",
//! "database": "dev", "table": "dog", "attribute": "name", "value": "*", "get_attributes": ["*"]}}`
//! → `{"message": "Starting job with id <id>", "job_id": "<id>"}`; the job's message is
//! `Successfully completed job: <id>`, its result `{"message": "Successfully exported CSV to
//! S3.", "location": "s3://b/dogs.csv"}` (`endpoint` is opshost's addition, for S3-compatible
//! stores). Capabilities: `storage`, `jobs`, `objectstore`.

use opshost_guest::export::{self, Format, S3Object, S3Target};
use opshost_guest::prelude::*;
use opshost_guest::{jobs, search};
use serde_json::Map;

pub struct ExportToS3;

impl Operation for ExportToS3 {
    const NAME: &'static str = "export_to_s3";
    const SUPER_USER_ONLY: bool = false;
    const JOB: bool = true;
    // Decoded by hand: HarperDB checks the fields in a set order with its own texts.
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        target(req)?;
        search::validate_operation(export::search_operation(req)?)?;
        Ok(None)
    }

    fn handle(ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let (format, target) = target(&req)?;
        let rows = search::from_operation(export::search_operation(&req)?)?;
        let upload = S3Object::put(&target)?;
        let (location, _) = export::export(rows, format, upload)?;
        Ok(json!({
            "message": jobs::completed_message(ctx),
            "result": { "message": format!("Successfully exported {} to S3.", format.label()), "location": location },
        }))
    }
}

opshost_guest::export_operation!(ExportToS3);

fn bad(text: impl Into<String>) -> Error {
    Error::BadRequest(text.into())
}

/// The `s3` object's fields in HarperDB's order and words, then the format; the object key
/// gets the format's extension.
fn target(req: &Map<String, Value>) -> Result<(Format, S3Target), Error> {
    let s3 = match req.get("s3") {
        None | Some(Value::Null) => return Err(bad("S3 object is missing.")),
        Some(Value::Object(s3)) => s3,
        Some(_) => return Err(bad("'s3' must be an object")),
    };
    let field = |name: &str| -> Result<String, Error> {
        export::text_field(s3, name, &format!("s3.{name}"))?
            .map(str::to_string)
            .ok_or_else(|| bad(format!("{name} is missing.")))
    };
    let access_key_id = field("aws_access_key_id")?;
    let secret_access_key = field("aws_secret_access_key")?;
    let bucket = field("bucket")?;
    let key = field("key")?;
    let region = field("region")?;
    let endpoint = export::text_field(s3, "endpoint", "s3.endpoint")?.map(str::to_string);
    let format = Format::from_request(req.get("format"))?;
    let key = format!("{key}.{}", format.extension());
    Ok((format, S3Target { access_key_id, secret_access_key, region, bucket, key, endpoint }))
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
    fn s3_fields_are_checked_in_harper_order() {
        let full = json!({"aws_access_key_id": "A", "aws_secret_access_key": "S", "bucket": "b", "key": "k", "region": "r"});
        assert_eq!(text(json!({"format": "json"})), "S3 object is missing.");
        assert_eq!(text(json!({"format": "json", "s3": {}})), "aws_access_key_id is missing.");
        for name in ["aws_access_key_id", "aws_secret_access_key", "bucket", "key", "region"] {
            let mut s3 = full.as_object().cloned().unwrap_or_default();
            s3.remove(name);
            assert_eq!(text(json!({"format": "json", "s3": s3})), format!("{name} is missing."));
        }
        assert_eq!(text(json!({"s3": {"bucket": "b"}, "format": "json"})), "aws_access_key_id is missing.");
        assert_eq!(text(json!({"s3": {"aws_access_key_id": " "}, "format": "json"})), "aws_access_key_id is missing.");
        assert_eq!(text(json!({"s3": full})), "format missing");
        assert_eq!(text(json!({"s3": full, "format": "xml"})), "format invalid. must be one of the following values: json, csv");
    }

    #[test]
    fn the_key_gets_the_extension() {
        let req = json!({"format": "csv", "s3": {"aws_access_key_id": "A", "aws_secret_access_key": "S", "bucket": "b", "key": "dogs", "region": "r", "endpoint": "http://127.0.0.1:9000"}});
        let (format, t) = target(req.as_object().expect("object")).expect("ok");
        assert_eq!((format, t.key.as_str(), t.endpoint.as_deref()), (Format::Csv, "dogs.csv", Some("http://127.0.0.1:9000")));
    }
}
