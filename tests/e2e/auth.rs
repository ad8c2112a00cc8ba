//! Authentication and the super_user check: HarperDB's 401 texts, and 403 with HarperDB's
//! body (naming the operation, deviations.md) for a non-super_user on every utility operation.

use opshost_tests::{basic, Server, USER};
use serde_json::json;

const SUPER_USER_ONLY: [&str; 4] = ["get_configuration", "set_configuration", "system_information", "restart"];

#[test]
fn missing_wrong_and_malformed_credentials_get_401() {
    let server = Server::start();
    let body = br#"{"operation":"get_configuration"}"#;
    let cases = [
        (None, "Must login"),
        (Some(basic("admin", "pw-never-logged-7731")), "Login failed"),
        (Some(basic("nobody", "x")), "Login failed"),
        (Some("Basic !!!not-base64!!!".to_string()), "Invalid character"),
        (Some("Bearer garbage".to_string()), "invalid token"),
    ];
    for (auth, text) in cases {
        let (status, resp) = server.raw(Some("application/json"), body, auth.as_deref());
        assert_eq!(status, 401, "{auth:?}: {resp}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&resp).expect("json"), json!({ "error": text }));
    }
    // The password is never echoed into the log.
    assert!(!server.log().contains("pw-never-logged-7731"), "log leaks a password");
}

#[test]
fn a_non_super_user_gets_403_on_every_super_user_operation() {
    let server = Server::start();
    for op in SUPER_USER_ONLY {
        let (status, body) = server.post_as(USER, json!({ "operation": op, "logging_level": "info" }));
        assert_eq!(status, 403, "{op}");
        assert_eq!(
            body,
            json!({
                "error": "This operation is not authorized due to role restrictions and/or invalid database items",
                "unauthorized_access": [format!("Operation '{op}' is restricted to 'super_user' roles")],
                "invalid_schema_items": [],
            })
        );
    }
    // Nothing was changed by the refused set_configuration.
    let (_, config) = server.post(json!({"operation": "get_configuration"}));
    assert_eq!(config["logging"]["level"], "info");
    // An unknown operation is still a 400 for them.
    let (status, body) = server.post_as(USER, json!({"operation": "nope"}));
    assert_eq!((status, body), (400, json!({"error": "Operation 'nope' not found"})));
}

#[test]
fn the_super_user_is_created_from_the_environment_with_a_hashed_password() {
    let server = Server::start();
    let (status, users) = server.post(serde_json::json!({"operation": "list_users"}));
    assert_eq!(status, 200);
    assert!(users.as_array().expect("array").iter().any(|u| u["username"] == "admin" && u["role"]["role"] == "super_user"), "{users}");
    // Every byte the server keeps on disk (users live in system.hdb_user): an argon2 hash is
    // there, the password is not.
    let mut stored = Vec::new();
    let mut folders = vec![server.root().to_path_buf()];
    while let Some(dir) = folders.pop() {
        for entry in std::fs::read_dir(&dir).expect("root").filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_none_or(|x| x != "cwasm") {
                stored.extend(std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"$argon2id$"), "password stored as an argon2 hash");
    assert!(!contains(opshost_tests::ADMIN.1.as_bytes()), "plain password stored");
}
