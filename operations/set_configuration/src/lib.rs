//! `set_configuration`: sets flattened configuration keys (`logging_level` -> `logging.level`)
//! persistently; they take effect on `restart`.
//!
//! Request: `{"operation": "set_configuration", "logging_level": "warn"}`.
//! Capabilities: `config` (the host validates keys and types, backs the file up and writes
//! it atomically).

use opshost_guest::prelude::*;
use serde_json::Map;

pub struct SetConfiguration;

#[derive(Serialize)]
pub struct Response {
    message: &'static str,
}

impl Operation for SetConfiguration {
    const NAME: &'static str = "set_configuration";
    type Request = Map<String, Value>;
    type Response = Response;

    fn handle(_ctx: &Context, request: Map<String, Value>) -> Result<Response, Error> {
        let changes = settings(&request)?;
        config::set(changes)?;
        Ok(Response {
            message: "Configuration successfully set. You must restart HarperDB for new config settings to take effect.",
        })
    }
}

opshost_guest::export_operation!(SetConfiguration);

/// The settings of a request: every key but `operation`. Nested objects are refused rather
/// than ignored (deviations.md), and an empty request is an error, not a silent no-op.
fn settings(request: &Map<String, Value>) -> Result<Vec<(&str, &Value)>, Error> {
    let mut changes = Vec::new();
    for (key, value) in request {
        if key == "operation" {
            continue;
        }
        if value.is_object() {
            return Err(Error::BadRequest(format!(
                "'{key}' must be a flattened key with a plain value, not an object"
            )));
        }
        changes.push((key.as_str(), value));
    }
    if changes.is_empty() {
        return Err(Error::BadRequest(
            "at least one configuration key is required, e.g. 'logging_level'".to_string(),
        ));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn skips_operation_and_keeps_the_rest() {
        let req = map(json!({"operation": "set_configuration", "logging_level": "warn"}));
        let changes = settings(&req).expect("ok");
        assert_eq!(changes, vec![("logging_level", &json!("warn"))]);
    }

    #[test]
    fn refuses_nested_objects_and_empty_requests() {
        let nested = map(json!({"operation": "x", "logging": {"level": "warn"}}));
        assert!(matches!(settings(&nested), Err(Error::BadRequest(t)) if t.contains("'logging'")));
        let empty = map(json!({"operation": "x"}));
        assert!(matches!(settings(&empty), Err(Error::BadRequest(_))));
    }
}
