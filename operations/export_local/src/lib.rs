//! `export_local`: a job exporting the rows of a search (`search_by_value`, `search_by_hash`,
//! `search_by_conditions` or a SQL SELECT) to `<path>/<filename>.<format>` on the server, as
//! JSON or CSV in HarperDB's exact formats. `path` must be inside an allowed export root
//! (`operationsApi.exportRoots`, deviations.md). Everything checkable is checked before the job
//! starts (400 with HarperDB's texts); rows then stream from a cursor to the file in chunks,
//! and the file appears (renamed into place) only when complete.
//!
//! Request: `{"operation": "export_local", "format": "json", "path": "/data/exports",
//! "filename": "dogs", "search_operation": {"operation": "sql", "sql": "SELECT * FROM dev.dog"}}`
//! → `{"message": "Starting job with id <id>", "job_id": "<id>"}`; the job's message is
//! `Successfully completed job: <id>`, its result `{"message": "Successfully exported JSON
//! locally.", "path": "/data/exports/dogs.json"}`. Without `filename` the file is named after
//! the job's start time in epoch ms. Capabilities: `storage`, `jobs`, `filesystem`.

use opshost_harper::export::{self, Format, LocalFile};
use opshost_guest::prelude::*;
use opshost_guest::jobs;
use opshost_harper::search;
use serde_json::Map;

pub struct ExportLocal;

impl Operation for ExportLocal {
    const NAME: &'static str = "export_local";
    const JOB: bool = true;
    // Decoded by hand: HarperDB checks the fields in a set order with its own texts.
    type Request = Map<String, Value>;
    type Response = Value;

    fn validate(_ctx: &Context, req: &Map<String, Value>) -> Result<Option<String>, Error> {
        Format::from_request(req.get("format"))?;
        export::check_folder(path(req)?)?;
        filename(req)?;
        search::validate_operation(export::search_operation(req)?)?;
        Ok(None)
    }

    fn handle(ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let format = Format::from_request(req.get("format"))?;
        let folder = path(&req)?;
        let name = match filename(&req)? {
            Some(name) => name,
            None => jobs::current(ctx)?.start.to_string(),
        };
        let rows = search::from_operation(export::search_operation(&req)?)?;
        let file = LocalFile::create(folder, &format!("{name}.{}", format.extension()))?;
        let (path, _) = export::export(rows, format, file)?;
        Ok(json!({
            "message": jobs::completed_message(ctx),
            "result": { "message": format!("Successfully exported {} locally.", format.label()), "path": path },
        }))
    }
}

opshost_guest::export_operation!(ExportLocal);

fn path(req: &Map<String, Value>) -> Result<&str, Error> {
    match req.get("path") {
        None | Some(Value::Null) => Err(Error::bad_request("path is missing.")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::bad_request("'path' must be a string")),
    }
}

/// The file name without its extension: absent (or blank) means the job's start time. It may
/// not leave the folder (deviations.md).
fn filename(req: &Map<String, Value>) -> Result<Option<String>, Error> {
    let name = match req.get("filename") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(Error::bad_request("'filename' must be a string")),
    };
    if name.contains(['/', '\\']) || name.contains("..") || name.chars().any(char::is_control) {
        // The host's text for the same rule (filesystem.create checks it again).
        return Err(Error::bad_request(format!("filename '{name}' must be a plain file name (no '/', '\\' or '..')")));
    }
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn text<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
        match r {
            Err(Error::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn path_and_filename_checks() {
        assert_eq!(text(path(&req(json!({})))), "path is missing.");
        assert_eq!(text(path(&req(json!({"path": 3})))), "'path' must be a string");
        assert_eq!(path(&req(json!({"path": "/tmp/x/"}))).ok(), Some("/tmp/x/"));
        assert_eq!(filename(&req(json!({}))).ok(), Some(None));
        assert_eq!(filename(&req(json!({"filename": "dogs"}))).ok(), Some(Some("dogs".into())));
        assert_eq!(filename(&req(json!({"filename": 42}))).ok(), Some(Some("42".into())));
        for evil in ["a/b", "..", "x..y", "a\\b"] {
            assert_eq!(text(filename(&req(json!({"filename": evil})))), format!("filename '{evil}' must be a plain file name (no '/', '\\' or '..')"));
        }
    }
}
