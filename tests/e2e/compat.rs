//! Compatibility differences closed against HarperDB 4.7.29 (reference/harper-behaviour.md §9):
//! role ids are role names, `user_info`'s keys, `set_configuration`'s type errors, and the
//! `delete_records_before` date text.

use opshost_tests::{err, ok, Server};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn role_ids_are_role_names_everywhere() {
    let server = Server::start();
    let permission = json!({"super_user": false, "dev": {"tables": {}}});
    let role = ok(&server, json!({"operation": "add_role", "role": "conf_reader", "permission": permission}));
    assert_eq!((role["role"].clone(), role["id"].clone()), (json!("conf_reader"), json!("conf_reader")), "{role}");
    let roles = ok(&server, json!({"operation": "list_roles"}));
    let listed = roles.as_array().expect("roles").iter().find(|r| r["role"] == "conf_reader").cloned().expect("listed");
    assert_eq!(listed["id"], "conf_reader");
    assert!(roles.as_array().expect("roles").iter().any(|r| r["id"] == "super_user" && r["role"] == "super_user"), "{roles}");

    ok(&server, json!({"operation": "add_user", "role": "conf_reader", "username": "ann", "password": "ann-pass-77", "active": true}));
    let users = ok(&server, json!({"operation": "list_users"}));
    let ann = users.as_array().expect("users").iter().find(|u| u["username"] == "ann").cloned().expect("ann");
    assert_eq!(ann["role"]["id"], "conf_reader", "{ann}");
    // user_info: exactly HarperDB's keys, the role's id its name.
    let (status, me) = server.post_as(("ann", "ann-pass-77"), json!({"operation": "user_info"}));
    assert_eq!(status, 200, "{me}");
    assert_eq!(keys(&me), BTreeSet::from(["active".to_string(), "username".to_string(), "role".to_string()]), "{me}");
    assert_eq!(me["role"]["id"], "conf_reader");

    // drop_role by that id: 409 while a user has it, then HarperDB's message.
    let (status, _) = err(&server, json!({"operation": "drop_role", "id": "conf_reader"}));
    assert_eq!(status, 409);
    ok(&server, json!({"operation": "drop_user", "username": "ann"}));
    assert_eq!(ok(&server, json!({"operation": "drop_role", "id": "conf_reader"})), json!({"message": "conf_reader successfully deleted"}));
}

#[test]
fn a_refused_role_gets_harpers_structured_body_and_nothing_is_stored() {
    let server = Server::start();
    ok(&server, json!({"operation": "add_role", "role": "keeper", "permission": {"dev": {"tables": {}}}}));
    let before = ok(&server, json!({"operation": "list_roles"}));
    let (status, body) = server.post(json!({"operation": "add_role", "permission": {"super_user": false}}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body,
        json!({"error": "Errors in the role permissions JSON provided", "main_permissions": ["Role can't be blank"], "schema_permissions": {}})
    );
    let (status, body) = server.post(json!({"operation": "add_role", "role": "r", "permission": {"super_user": "yes"}}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "Errors in the role permissions JSON provided", "{body}");
    assert_eq!(body["main_permissions"], json!(["'super_user' must be a boolean"]), "{body}");
    // alter_role goes through the same check.
    let (status, body) = server.post(json!({"operation": "alter_role", "id": "keeper", "permission": {"dev": {"tables": 5}}}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "Errors in the role permissions JSON provided", "{body}");
    assert_eq!(ok(&server, json!({"operation": "list_roles"})), before);
}

#[test]
fn configuration_and_date_errors_use_harpers_texts() {
    let server = Server::start();
    assert_eq!(
        err(&server, json!({"operation": "set_configuration", "threads_count": "abc"})),
        (400, "HarperDB config file validation error: 'threads.count' must be a number".into())
    );
    assert_eq!(
        err(&server, json!({"operation": "set_configuration", "logging_rotation_enabled": "yes"})),
        (400, "HarperDB config file validation error: 'logging.rotation.enabled' must be a boolean".into())
    );
    ok(&server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    assert_eq!(
        err(&server, json!({"operation": "delete_records_before", "date": 12345, "schema": "dev", "table": "dog"})),
        (400, "'date' must be a valid date".into())
    );
    // The logging section has HarperDB's keys for what opshost implements.
    let logging = ok(&server, json!({"operation": "get_configuration"}))["logging"].clone();
    for key in ["auditLog", "auditRetention", "file", "level", "root", "rotation", "stdStreams"] {
        assert!(logging.get(key).is_some(), "logging.{key} missing: {logging}");
    }
    assert_eq!(keys(&logging["rotation"]), BTreeSet::from(["enabled", "compress", "interval", "maxSize", "path"].map(String::from)), "{logging}");
}
