//! Request decoding with HarperDB's error texts: a missing or mistyped field becomes a
//! `bad-request` naming the field (`'attributes' must be an array`), the same in every operation.

use crate::Error;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A request with no fields of its own (the `operation` key is ignored).
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

/// Decodes a JSON request body into `T`, turning serde's messages into HarperDB's.
/// For operations' unit tests: the 400 text decoding `body` as `T` gives (panics when it
/// decodes, or fails otherwise).
#[doc(hidden)]
pub fn decode_error<T: DeserializeOwned>(body: &str) -> String {
    match decode_request::<T>(body) {
        Err(Error::BadRequest(t)) => t,
        Err(other) => panic!("expected bad-request, got {other:?}"),
        Ok(_) => panic!("expected bad-request, got a request"),
    }
}

pub fn decode_request<T: DeserializeOwned>(body: &str) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = dotted(e.path());
        Error::BadRequest(harper_text(&path, &e.into_inner().to_string()))
    })
}

/// `attributes.1`: HarperDB names nested fields with dots, sequence items by index.
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let parts: Vec<String> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => Some(key.clone()),
            Segment::Unknown => None,
        })
        .collect();
    parts.join(".")
}

/// Maps one serde_json error message at `path` to HarperDB's wording.
fn harper_text(path: &str, message: &str) -> String {
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let full = if path.is_empty() { field.to_string() } else { format!("{path}.{field}") };
        return format!("'{full}' is required");
    }
    if path.is_empty() {
        return "Request body must be a JSON object".to_string();
    }
    let expected = message
        .split("expected ")
        .nth(1)
        .map(|e| e.split(" at line").next().unwrap_or(e))
        .unwrap_or("");
    let kind = if expected.contains("sequence") || expected.contains("array") {
        "an array"
    } else if expected.contains("string") {
        "a string"
    } else if expected.contains("bool") {
        "a boolean"
    } else if expected.starts_with('u') || expected.starts_with('i') || expected.starts_with('f')
        || expected.contains("number") || expected.contains("integer")
    {
        "a number"
    } else if expected.contains("map") || expected.contains("struct") || expected.contains("object") {
        "an object"
    } else {
        let detail = message.split(" at line").next().unwrap_or(message);
        return format!("'{path}' is invalid: {detail}");
    };
    format!("'{path}' must be {kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Req {
        name: String,
        attributes: Option<Vec<String>>,
        flag: Option<bool>,
        count: Option<u32>,
    }

    fn err(body: &str) -> String {
        decode_error::<Req>(body)
    }

    #[test]
    fn names_the_field_in_harper_words() {
        assert_eq!(err(r#"{"name":"a","attributes":"x"}"#), "'attributes' must be an array");
        assert_eq!(err(r#"{"name":1}"#), "'name' must be a string");
        assert_eq!(err(r#"{"attributes":[]}"#), "'name' is required");
        assert_eq!(err(r#"{"name":"a","flag":"yes"}"#), "'flag' must be a boolean");
        assert_eq!(err(r#"{"name":"a","count":"x"}"#), "'count' must be a number");
        assert_eq!(err(r#"{"name":"a","attributes":["ok",3]}"#), "'attributes.1' must be a string");
    }

    #[test]
    fn accepts_unknown_keys_and_nulls() {
        let r: Req = decode_request(r#"{"operation":"x","name":"a","attributes":null,"other":1}"#)
            .expect("valid");
        assert_eq!(r.name, "a");
        assert!(r.attributes.is_none());
    }
}
