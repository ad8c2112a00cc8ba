//! `export_to_s3`: a job exporting the rows of a search (`search_by_value`, `search_by_hash`,
//! `search_by_conditions` or a SQL SELECT) to the S3 object `<s3.key>.<format>`, as JSON or CSV
//! in HarperDB's exact formats, streamed as a (multipart) upload that appears only when
//! complete. Restricted to super_user roles, as in HarperDB (the upload goes wherever the
//! request says, and the job's error quotes the store's answer). `s3.region` must be a region
//! name and `s3.bucket` a valid bucket name (checked up front; the host checks again before it
//! builds a client). The credentials are used for this one upload and never logged or echoed.
//!
//! Request: `{"operation": "export_to_s3", "format": "csv", "s3": {"aws_access_key_id": "...",
//! "aws_secret_access_key": "...", "bucket": "b", "key": "dogs", "region": "us-east-1",
//! "endpoint": "http://127.0.0.1:9000"}, "search_operation": {"operation": "search_by_value",
//! "database": "dev", "table": "dog", "attribute": "name", "value": "*", "get_attributes": ["*"]}}`
//! → `{"message": "Starting job with id <id>", "job_id": "<id>"}`; the job's message is
//! `Successfully completed job: <id>`, its result `{"message": "Successfully exported CSV to
//! S3.", "location": "s3://b/dogs.csv"}` (`endpoint` is opshost's addition, for S3-compatible
//! stores). Capabilities: `storage`, `jobs`, `objectstore`.

use opshost_harper::export::{self, Format, S3Object, S3Target};
use opshost_guest::prelude::*;
use opshost_guest::jobs;
use opshost_harper::search;
use serde_json::Map;

pub struct ExportToS3;

impl Operation for ExportToS3 {
    const NAME: &'static str = "export_to_s3";
    const SUPER_USER_ONLY: bool = true;
    const JOB: bool = true;
    // Decoded by hand: HarperDB checks the fields in a set order with its own texts.
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        let (_, s3) = target(req)?;
        search::validate_operation(export::search_operation(req)?)?;
        check_names(&s3)?;
        Ok(None)
    }

    fn handle(ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let (format, target) = target(&req)?;
        check_names(&target)?;
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

/// The `s3` object's fields in HarperDB's order and words, then the format; the object key
/// gets the format's extension.
fn target(req: &Map<String, Value>) -> Result<(Format, S3Target), Error> {
    let s3 = match req.get("s3") {
        None | Some(Value::Null) => return Err(Error::bad_request("S3 object is missing.")),
        Some(Value::Object(s3)) => s3,
        Some(_) => return Err(Error::bad_request("'s3' must be an object")),
    };
    let field = |name: &str| -> Result<String, Error> {
        export::text_field(s3, name, &format!("s3.{name}"))?
            .map(str::to_string)
            .ok_or_else(|| Error::bad_request(format!("{name} is missing.")))
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

/// `s3.region` is a region name (`^[a-z0-9-]+$`), not a URL: the S3 client puts it verbatim
/// into `https://s3.{region}.amazonaws.com`. `s3.bucket` follows S3's naming rules (3-63 of
/// a-z, 0-9, '.', '-', a letter or digit at each end, no '..', not an IP address).
fn check_names(t: &S3Target) -> Result<(), Error> {
    let region_ok = !t.region.is_empty() && t.region.len() <= 64 && t.region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(Error::bad_request(format!("s3.region '{}' must be a region name such as 'us-east-1' (a-z, 0-9 and '-')", t.region)));
    }
    let b = t.bucket.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bucket_ok = (3..=63).contains(&b.len())
        && b.iter().all(|&c| edge(c) || c == b'.' || c == b'-')
        && b.first().is_some_and(|&c| edge(c))
        && b.last().is_some_and(|&c| edge(c))
        && !t.bucket.contains("..")
        && t.bucket.parse::<core::net::Ipv4Addr>().is_err();
    if !bucket_ok {
        return Err(Error::bad_request(format!(
            "s3.bucket '{}' is not a valid bucket name (3-63 characters: a-z, 0-9, '.' and '-', starting and ending with a letter or digit)",
            t.bucket
        )));
    }
    Ok(())
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
    fn region_and_bucket_must_be_names() {
        let with = |region: &str, bucket: &str| {
            let req = json!({"format": "json", "s3": {"aws_access_key_id": "A", "aws_secret_access_key": "S", "bucket": bucket, "key": "k", "region": region}});
            let (_, t) = target(req.as_object().expect("object")).expect("fields present");
            check_names(&t)
        };
        assert!(with("us-east-1", "my-bucket").is_ok());
        assert!(matches!(with("x@127.0.0.1:8443/", "my-bucket"), Err(Error::BadRequest(m)) if m.starts_with("s3.region")));
        assert!(matches!(with("evil.example/", "my-bucket"), Err(Error::BadRequest(m)) if m.starts_with("s3.region")));
        assert!(matches!(with("us-east-1", "b"), Err(Error::BadRequest(m)) if m.starts_with("s3.bucket")));
        assert!(matches!(with("us-east-1", "a/b@c"), Err(Error::BadRequest(m)) if m.starts_with("s3.bucket")));
    }

    #[test]
    fn the_key_gets_the_extension() {
        let req = json!({"format": "csv", "s3": {"aws_access_key_id": "A", "aws_secret_access_key": "S", "bucket": "b", "key": "dogs", "region": "r", "endpoint": "http://127.0.0.1:9000"}});
        let (format, t) = target(req.as_object().expect("object")).expect("ok");
        assert_eq!((format, t.key.as_str(), t.endpoint.as_deref()), (Format::Csv, "dogs.csv", Some("http://127.0.0.1:9000")));
    }
}
