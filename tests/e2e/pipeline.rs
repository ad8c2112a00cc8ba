//! The request pipeline of harper-behaviour.md §2: body parsing, the `operation` property,
//! authentication before lookup, unknown operations. Error bodies use the one shape of
//! deviations.md.

use opshost_tests::{basic, Server, ADMIN};
use serde_json::{json, Value};

fn error_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[test]
fn body_parse_errors_come_before_anything_else() {
    let server = Server::start();
    let auth = basic(ADMIN.0, ADMIN.1);

    let (status, body) = server.raw(Some("application/json"), b"", Some(&auth));
    assert_eq!((status, error_of(&body)), (400, json!({"error": "Body cannot be empty when content-type is set to 'application/json'"})));

    // Even without credentials: parsing comes first.
    let (status, body) = server.raw(Some("application/json"), b"{oops", None);
    assert_eq!(status, 400);
    assert!(error_of(&body)["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");

    let (status, body) = server.raw(Some("application/x-www-form-urlencoded"), b"operation=x", Some(&auth));
    assert_eq!((status, error_of(&body)), (415, json!({"error": "Unsupported Media Type: application/x-www-form-urlencoded"})));

    let (status, body) = server.raw(None, b"{}", Some(&auth));
    assert_eq!((status, error_of(&body)), (415, json!({"error": "Unsupported Media Type: undefined"})));
}

#[test]
fn a_body_without_a_string_operation_is_refused() {
    let server = Server::start();
    let auth = basic(ADMIN.0, ADMIN.1);
    let missing = json!({"error": "Request body must include an 'operation' property."});
    for body in ["{}", "[]", "\"str\"", "123", "null", r#"{"foo":1}"#, r#"{"operation":null}"#, r#"{"operation":5}"#] {
        let (status, text) = server.raw(Some("application/json"), body.as_bytes(), Some(&auth));
        assert_eq!((status, error_of(&text)), (400, missing.clone()), "body {body}");
    }
    // text/plain is not parsed, so the operation is missing.
    let (status, text) = server.raw(Some("text/plain"), br#"{"operation":"get_configuration"}"#, Some(&auth));
    assert_eq!((status, error_of(&text)), (400, missing));
}

#[test]
fn authentication_comes_before_operation_lookup() {
    let server = Server::start();
    let (status, body) = server.raw(Some("application/json"), br#"{"operation":"no_such_op"}"#, None);
    assert_eq!((status, error_of(&body)), (401, json!({"error": "Must login"})));

    let (status, body) = server.post(json!({"operation": "GET_CONFIGURATION"}));
    assert_eq!((status, body), (400, json!({"error": "Operation 'GET_CONFIGURATION' not found"})));
    let (status, body) = server.post(json!({"operation": ""}));
    assert_eq!((status, body), (400, json!({"error": "Operation '' not found"})));
}

#[test]
fn success_responses_are_plain_application_json() {
    let server = Server::start();
    let resp = ureq::post(&server.url())
        .set("Content-Type", "application/json")
        .set("Authorization", &basic(ADMIN.0, ADMIN.1))
        .send_string(r#"{"operation":"get_configuration"}"#)
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
}
