//! Faulty guests: a panic, an endless loop and unbounded allocation each answer 500 naming the
//! operation (detail only in the log, with the id that is also in the response), and the next
//! request succeeds. A corrupt component is skipped while the rest serve.

use opshost_tests::{test_guest, Server};
use serde_json::json;
use std::time::Duration;

fn faulty_server() -> Server {
    Server::builder()
        .env("OPERATIONSAPI_LIMITS_CALLTIMEOUT", "1000")
        .env("OPERATIONSAPI_LIMITS_CALLMEMORYMB", "32")
        .component(test_guest("test_panic"), "test_panic.wasm")
        .component(test_guest("test_loop"), "test_loop.wasm")
        .component(test_guest("test_memory"), "test_memory.wasm")
        .start()
}

fn request_id(error: &str) -> String {
    let start = error.find("(request id ").expect("id in the error") + "(request id ".len();
    error[start..].trim_end_matches(')').to_string()
}

#[test]
fn each_fault_answers_500_naming_the_operation_and_the_server_keeps_serving() {
    let server = faulty_server();
    let cases = [
        ("test_panic", "Operation 'test_panic' failed"),
        ("test_loop", "Operation 'test_loop' ran past its time limit"),
        ("test_memory", "Operation 'test_memory' ran out of memory"),
    ];
    for (op, text) in cases {
        let started = std::time::Instant::now();
        let (status, body) = server.post(json!({ "operation": op }));
        assert_eq!(status, 500, "{op}: {body}");
        let error = body["error"].as_str().expect("error text");
        assert!(error.starts_with(text), "{op}: {error}");
        assert!(!error.contains("wasm") && !error.contains("backtrace"), "trap detail leaked: {error}");
        assert!(server.log_contains(&request_id(error), Duration::from_secs(5)), "the log has the request id");
        if op == "test_loop" {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "deadline enforced");
        }
        let (status, _) = server.post(json!({"operation": "get_configuration"}));
        assert_eq!(status, 200, "server still serves after {op}");
    }
    // The SDK's panic hook sent the panic message to the host log.
    assert!(server.log_contains("boom from test_panic", Duration::from_secs(5)), "{}", server.log());
}

#[test]
fn a_corrupt_component_is_skipped_and_the_rest_serve() {
    let root_components = opshost_tests::TempRoot::new();
    let junk = root_components.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm this is not a component").expect("write junk");
    let server = Server::builder()
        .component(junk, "junk.wasm")
        .component(test_guest("hello_v1"), "test_hello.wasm")
        .start();
    assert!(server.log_contains("junk.wasm", Duration::from_secs(5)), "the skipped file is named in the log");
    let (status, body) = server.post(json!({"operation": "test_hello"}));
    assert_eq!((status, body["version"].clone()), (200, json!(1)));
    let (status, _) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(status, 200);
}

#[test]
fn a_third_party_component_cannot_take_a_built_in_name() {
    // Granting `control` by that name lets the file pass the import check (made before any of it
    // runs), so what refuses it is the name.
    let server = Server::builder()
        .env("OPERATIONSAPI_GRANTS", r#"{"restart": ["control"]}"#)
        .component(opshost_tests::dist().join("operations").join("restart.wasm"), "my_restart.wasm")
        .start();
    assert!(server.log_contains("is a built-in operation and cannot be replaced", Duration::from_secs(5)), "{}", server.log());
}
