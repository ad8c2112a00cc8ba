//! Users, roles, tokens and table permissions over HTTP (harper-behaviour.md §2, §3, §7;
//! deviations.md): HarperDB's 401 texts for every user operation, 403 bodies for super_user
//! operations and for table and attribute permissions, the user and role shapes (never a
//! password), tokens that survive `restart` and a stop and start, end with a changed password,
//! a deactivation or a dropped user, and expire after a short configured lifetime; and the
//! throttle (429) after repeated failed logins.

use opshost_tests::{basic, Server, ADMIN, USER};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers

const NOT_AUTHORIZED: &str = "This operation is not authorized due to role restrictions and/or invalid database items";

/// The 16 system tables `list_users` adds to every role's permission.
const SYSTEM_TABLES: [&str; 16] = [
    "hdb_user",
    "hdb_role",
    "hdb_job",
    "hdb_license",
    "hdb_info",
    "hdb_nodes",
    "hdb_certificate",
    "hdb_analytics_hostname",
    "hdb_analytics",
    "hdb_raw_analytics",
    "hdb_temp",
    "hdb_durable_session",
    "hdb_session_will",
    "hdb_certificate_cache",
    "hdb_crl_cache",
    "hdb_revoked_certificates",
];

/// POST `body` with an optional Authorization header; the body parsed as JSON when it is.
fn call(server: &Server, auth: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = server.raw(Some("application/json"), body.to_string().as_bytes(), auth);
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn admin() -> String {
    basic(ADMIN.0, ADMIN.1)
}

/// A 200 answer to `body` sent with `auth`.
fn ok_with(server: &Server, auth: &str, body: Value) -> Value {
    let (status, resp) = call(server, Some(auth), &body);
    assert_eq!(status, 200, "{body} -> {resp}");
    resp
}

/// A 200 answer to `body` sent as the super_user.
fn ok(server: &Server, body: Value) -> Value {
    ok_with(server, &admin(), body)
}

/// The status and `{"error": ...}` text of a refused request.
fn refused(server: &Server, auth: Option<&str>, body: Value) -> (u16, String) {
    let (status, resp) = call(server, auth, &body);
    assert_ne!(status, 200, "{body} unexpectedly succeeded: {resp}");
    let text = resp["error"].as_str().unwrap_or_else(|| panic!("{body} -> {status} {resp}: no error text"));
    (status, text.to_string())
}

fn add_role(server: &Server, role: &str, permission: Value) -> Value {
    ok(server, json!({"operation": "add_role", "role": role, "permission": permission}))
}

fn add_user(server: &Server, username: &str, password: &str, role: &str) {
    let resp = ok(server, json!({"operation": "add_user", "username": username, "password": password, "role": role, "active": true}));
    assert_eq!(resp, json!({"message": format!("{username} successfully added")}));
}

/// `create_authentication_tokens` with the credentials in the body and no Authorization
/// header: (operation token, refresh token).
fn tokens(server: &Server, username: &str, password: &str) -> (String, String) {
    let (status, resp) = call(server, None, &json!({"operation": "create_authentication_tokens", "username": username, "password": password}));
    assert_eq!(status, 200, "create_authentication_tokens for {username}: {resp}");
    let keys: BTreeSet<&str> = resp.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(keys, BTreeSet::from(["operation_token", "refresh_token"]), "{resp}");
    let get = |k: &str| resp[k].as_str().unwrap_or_else(|| panic!("{k} is a string: {resp}")).to_string();
    (get("operation_token"), get("refresh_token"))
}

/// The payload of a JWT.
fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let bytes = base64url(parts[1]);
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT payload is JSON ({e}): {token}"))
}

fn base64url(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => panic!("not base64url: {text}"),
        }
    };
    let digits: Vec<u32> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, d)| n | (d << (18 - 6 * i)));
        out.extend(n.to_be_bytes()[1..chunk.len()].iter().copied());
    }
    out
}

/// HarperDB's 403 for a super_user-only operation (naming the operation, deviations.md).
fn super_user_only(operation: &str) -> Value {
    json!({
        "error": NOT_AUTHORIZED,
        "unauthorized_access": [format!("Operation '{operation}' is restricted to 'super_user' roles")],
        "invalid_schema_items": [],
    })
}

/// HarperDB's 403 for a missing table permission.
fn table_denied(database: &str, table: &str, permissions: &[&str]) -> Value {
    json!({
        "error": NOT_AUTHORIZED,
        "unauthorized_access": [{
            "schema": database,
            "table": table,
            "required_table_permissions": permissions,
            "required_attribute_permissions": [],
        }],
        "invalid_schema_items": [],
    })
}

/// One request per users/roles/tokens operation, valid enough to get past authentication.
fn user_operations() -> Vec<Value> {
    vec![
        json!({"operation": "add_role", "role": "matrix_role", "permission": {}}),
        json!({"operation": "alter_role", "id": "no-such-role", "permission": {}}),
        json!({"operation": "drop_role", "id": "no-such-role"}),
        json!({"operation": "list_roles"}),
        json!({"operation": "add_user", "username": "matrix_user", "password": "pw", "role": "super_user", "active": true}),
        json!({"operation": "alter_user", "username": ADMIN.0, "active": true}),
        json!({"operation": "drop_user", "username": "no-such-user"}),
        json!({"operation": "user_info"}),
        json!({"operation": "list_users"}),
        json!({"operation": "create_authentication_tokens"}),
        json!({"operation": "refresh_operation_token"}),
    ]
}

/// `dev.dog` (three dogs) and `dev.cat` (one cat), created by the super_user.
fn pets(server: &Server) {
    ok(server, json!({"operation": "create_table", "database": "dev", "table": "dog", "primary_key": "id"}));
    ok(server, json!({"operation": "insert", "database": "dev", "table": "dog", "records": [
        {"id": 1, "name": "Penny", "age": 5, "breed": "Beagle"},
        {"id": 2, "name": "Harper", "age": 3, "breed": "Mutt"},
        {"id": 3, "name": "Billy", "age": 7, "breed": "Beagle"},
    ]}));
    ok(server, json!({"operation": "create_table", "database": "dev", "table": "cat", "primary_key": "id"}));
    ok(server, json!({"operation": "insert", "database": "dev", "table": "cat", "records": [{"id": 1, "name": "Tom"}]}));
}

fn dog_permission(read: bool, insert: bool, update: bool, delete: bool, attributes: Value) -> Value {
    json!({"dev": {"tables": {"dog": {
        "read": read, "insert": insert, "update": update, "delete": delete, "attribute_permissions": attributes,
    }}}})
}

fn keys(record: &Value) -> BTreeSet<String> {
    record.as_object().unwrap_or_else(|| panic!("an object: {record}")).keys().cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Authentication of the user operations

#[test]
fn every_user_operation_answers_401_for_missing_wrong_and_unusable_credentials() {
    let server = Server::start();
    let (_, refresh) = tokens(&server, ADMIN.0, ADMIN.1);
    // Wrong passwords spread over three names, so none reaches the failed-login slowdown.
    let wrong = [basic(ADMIN.0, "wrong-pass"), basic(USER.0, "wrong-pass"), basic("ghost", "whatever")];
    for (i, body) in user_operations().into_iter().enumerate() {
        let op = body["operation"].as_str().unwrap_or_default().to_string();
        assert_eq!(refused(&server, None, body.clone()), (401, "Must login".into()), "{op} without credentials");
        assert_eq!(refused(&server, Some(&wrong[i % 3]), body.clone()), (401, "Login failed".into()), "{op} with a wrong password");
        assert_eq!(refused(&server, Some("Bearer garbage.not.ajwt"), body.clone()), (401, "invalid token".into()), "{op} with a garbage token");
        assert_eq!(refused(&server, Some("Bearer "), body.clone()), (401, "invalid token".into()), "{op} with an empty token");
        if op != "refresh_operation_token" {
            // A refresh token is not an operation token.
            assert_eq!(refused(&server, Some(&bearer(&refresh)), body.clone()), (401, "invalid token".into()), "{op} with a refresh token");
        }
    }
    // Nothing was changed by the refused calls.
    let roles = ok(&server, json!({"operation": "list_roles"}));
    assert!(!roles.to_string().contains("matrix_role"), "{roles}");
    let users = ok(&server, json!({"operation": "list_users"}));
    assert!(!users.to_string().contains("matrix_user"), "{users}");
}

#[test]
fn a_non_super_user_gets_403_on_user_and_role_administration() {
    let server = Server::start();
    let user = basic(USER.0, USER.1);
    let super_only = ["add_role", "alter_role", "drop_role", "list_roles", "add_user", "alter_user", "drop_user", "list_users"];
    for body in user_operations() {
        let op = body["operation"].as_str().unwrap_or_default();
        if super_only.contains(&op) {
            let (status, resp) = call(&server, Some(&user), &body);
            assert_eq!((status, resp), (403, super_user_only(op)), "{op}");
        }
    }
    // Nothing was added or changed.
    let names: Vec<Value> = ok(&server, json!({"operation": "list_users"})).as_array().expect("users").iter().map(|u| u["username"].clone()).collect();
    assert_eq!(names, vec![json!(ADMIN.0), json!(USER.0)]);
    // What every user may do: look at themselves and log in with tokens.
    let me = ok_with(&server, &user, json!({"operation": "user_info"}));
    assert_eq!((me["username"].clone(), me["active"].clone(), me["role"]["role"].clone()), (json!(USER.0), json!(true), json!("plain_role")), "{me}");
    let (operation, refresh) = tokens(&server, USER.0, USER.1);
    let me = ok_with(&server, &bearer(&operation), json!({"operation": "user_info"}));
    assert_eq!(me["username"], USER.0);
    let renewed = ok_with(&server, &bearer(&refresh), json!({"operation": "refresh_operation_token"}));
    let renewed = renewed["operation_token"].as_str().expect("operation_token");
    assert_eq!(claims(renewed)["super_user"], false);
    // Tokens carry no more rights than the user: still 403 with one.
    let (status, resp) = call(&server, Some(&bearer(renewed)), &json!({"operation": "list_users"}));
    assert_eq!((status, resp), (403, super_user_only("list_users")));
}

// ---------------------------------------------------------------------------------------------
// Users and roles

#[test]
fn users_and_roles_have_harpers_shapes_and_errors() {
    let server = Server::start();
    let permission = dog_permission(true, false, false, false, json!([]));
    let role = add_role(&server, "dog_reader", permission.clone());
    assert_eq!(keys(&role), BTreeSet::from(["role", "permission", "id", "__createdtime__", "__updatedtime__"].map(String::from)), "{role}");
    assert_eq!((role["role"].clone(), role["permission"].clone()), (json!("dog_reader"), permission.clone()));
    let role_id = role["id"].as_str().filter(|id| !id.is_empty()).expect("an id").to_string();
    assert!(role["__createdtime__"].as_f64().is_some_and(|t| t > 1.7e12), "{role}");
    assert_eq!(
        refused(&server, Some(&admin()), json!({"operation": "add_role", "role": "dog_reader", "permission": {}})),
        (409, "A role with name 'dog_reader' already exists".into())
    );

    // Users.
    assert_eq!(
        refused(&server, Some(&admin()), json!({"operation": "add_user", "username": "ann", "password": "ann-secret-31", "role": "nosuch", "active": true})),
        (404, "nosuch role not found".into())
    );
    assert_eq!(
        refused(&server, Some(&admin()), json!({"operation": "add_user", "username": "ann", "role": "dog_reader", "active": true})),
        (400, "Password can't be blank".into())
    );
    add_user(&server, "ann", "ann-secret-31", "dog_reader");
    assert_eq!(
        refused(&server, Some(&admin()), json!({"operation": "add_user", "username": "ann", "password": "other", "role": "dog_reader", "active": true})),
        (409, "User ann already exists".into())
    );

    // list_roles: the built-in roles and ours.
    let roles = ok(&server, json!({"operation": "list_roles"}));
    let names: BTreeSet<&str> = roles.as_array().expect("roles").iter().filter_map(|r| r["role"].as_str()).collect();
    for name in ["super_user", "cluster_user", "dog_reader", "plain_role"] {
        assert!(names.contains(name), "list_roles lacks {name}: {roles}");
    }
    let listed = roles.as_array().expect("roles").iter().find(|r| r["role"] == "dog_reader").expect("dog_reader");
    assert_eq!((listed["id"].clone(), listed["permission"].clone()), (json!(role_id), permission.clone()));

    // list_users: no passwords; every role permission gains the 16 system tables.
    let users = ok(&server, json!({"operation": "list_users"}));
    let text = users.to_string();
    assert!(!text.contains("ann-secret-31") && !text.contains(ADMIN.1) && !text.contains("$argon2"), "list_users leaks a password: {text}");
    let users = users.as_array().expect("users");
    assert_eq!(users.iter().map(|u| u["username"].clone()).collect::<Vec<_>>(), vec![json!(ADMIN.0), json!("ann"), json!(USER.0)]);
    for user in users {
        for key in ["password", "hash", "password_hash", "refresh_token"] {
            assert!(user.get(key).is_none(), "list_users shows {key}: {user}");
        }
        assert_eq!(user["active"], true, "{user}");
        let super_user = user["username"] == ADMIN.0;
        let system = &user["role"]["permission"]["system"]["tables"];
        assert_eq!(keys(system), SYSTEM_TABLES.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>(), "{user}");
        for table in SYSTEM_TABLES {
            assert_eq!(
                system[table],
                json!({"read": super_user, "insert": false, "update": false, "delete": false, "attribute_permissions": []}),
                "{table} for {}",
                user["username"]
            );
        }
    }
    let ann = users.iter().find(|u| u["username"] == "ann").expect("ann");
    assert_eq!((ann["role"]["role"].clone(), ann["role"]["id"].clone()), (json!("dog_reader"), json!(role_id)));
    assert_eq!(ann["role"]["permission"]["dev"], permission["dev"]);

    // user_info: the caller with their role, no password.
    let me = ok_with(&server, &basic("ann", "ann-secret-31"), json!({"operation": "user_info"}));
    assert!(!me.to_string().contains("ann-secret-31") && !me.to_string().contains("$argon2"), "{me}");
    assert!(me.get("password").is_none(), "{me}");
    assert_eq!((me["username"].clone(), me["active"].clone()), (json!("ann"), json!(true)), "{me}");
    assert_eq!((me["role"]["role"].clone(), me["role"]["id"].clone(), me["role"]["permission"].clone()), (json!("dog_reader"), json!(role_id), permission.clone()));
    let me = ok(&server, json!({"operation": "user_info"}));
    assert_eq!((me["username"].clone(), me["active"].clone()), (json!(ADMIN.0), json!(true)), "{me}");
    assert_eq!((me["role"]["role"].clone(), me["role"]["id"].clone(), me["role"]["permission"]["super_user"].clone()), (json!("super_user"), json!("super_user"), json!(true)), "{me}");

    // A role in use cannot be dropped; users and roles that do not exist are 404.
    assert_eq!(
        refused(&server, Some(&admin()), json!({"operation": "drop_role", "id": role_id})),
        (409, "Cannot drop role dog_reader as it has active user(s) tied to this role".into())
    );
    assert_eq!(refused(&server, Some(&admin()), json!({"operation": "drop_user", "username": "nobody"})), (404, "User nobody does not exist".into()));
    assert_eq!(ok(&server, json!({"operation": "drop_user", "username": "ann"})), json!({"message": "ann successfully deleted"}));
    assert_eq!(ok(&server, json!({"operation": "drop_role", "id": role_id})), json!({"message": "dog_reader successfully deleted"}));
    assert_eq!(refused(&server, Some(&admin()), json!({"operation": "drop_role", "id": role_id})), (404, "Role not found".into()));
    let roles = ok(&server, json!({"operation": "list_roles"}));
    assert!(!roles.to_string().contains("dog_reader"), "{roles}");
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[test]
fn tokens_from_body_credentials_refresh_and_survive_restart_and_a_stop_and_start() {
    let server = Server::start();
    // No Authorization header: the body's credentials log in.
    let (operation, refresh) = tokens(&server, ADMIN.0, ADMIN.1);
    let (op_claims, refresh_claims) = (claims(&operation), claims(&refresh));
    for (c, sub, lifetime) in [(&op_claims, "operation", 86_400), (&refresh_claims, "refresh", 30 * 86_400)] {
        assert_eq!((c["username"].clone(), c["super_user"].clone(), c["cluster_user"].clone(), c["sub"].clone()), (json!(ADMIN.0), json!(true), json!(false), json!(sub)), "{c}");
        let (iat, exp) = (c["iat"].as_u64().expect("iat"), c["exp"].as_u64().expect("exp"));
        assert_eq!(exp - iat, lifetime, "{sub} token lifetime: {c}");
    }
    for (body, what) in [
        (json!({"operation": "create_authentication_tokens", "username": ADMIN.0, "password": "wrong"}), "wrong password"),
        (json!({"operation": "create_authentication_tokens", "username": "nobody", "password": "x"}), "unknown user"),
    ] {
        let (status, resp) = call(&server, None, &body);
        assert_eq!((status, resp), (401, json!({"error": "invalid credentials"})), "{what}");
    }
    // With Basic auth and no body credentials: tokens for the caller.
    let mine = ok(&server, json!({"operation": "create_authentication_tokens"}));
    assert_eq!(claims(mine["operation_token"].as_str().expect("token"))["username"], ADMIN.0);

    // The operation token works on any operation; the refresh token only refreshes.
    assert_eq!(ok_with(&server, &bearer(&operation), json!({"operation": "user_info"}))["username"], ADMIN.0);
    ok_with(&server, &bearer(&operation), json!({"operation": "describe_all"}));
    assert_eq!(refused(&server, Some(&bearer(&refresh)), json!({"operation": "describe_all"})), (401, "invalid token".into()));
    assert_eq!(refused(&server, Some("Bearer garbage"), json!({"operation": "describe_all"})), (401, "invalid token".into()));
    let renewed = ok_with(&server, &bearer(&refresh), json!({"operation": "refresh_operation_token"}));
    assert_eq!(keys(&renewed), BTreeSet::from(["operation_token".to_string()]), "{renewed}");
    let renewed = renewed["operation_token"].as_str().expect("operation_token").to_string();
    assert_eq!(claims(&renewed)["sub"], "operation");
    assert_eq!(ok_with(&server, &bearer(&renewed), json!({"operation": "user_info"}))["username"], ADMIN.0);
    // The refresh token may also come in the body.
    let from_body = ok(&server, json!({"operation": "refresh_operation_token", "refresh_token": refresh}));
    assert!(from_body["operation_token"].as_str().is_some_and(|t| claims(t)["sub"] == "operation"), "{from_body}");
    // An operation token is not a refresh token.
    assert_eq!(
        refused(&server, Some(&admin()), json!({"operation": "refresh_operation_token", "refresh_token": operation})),
        (401, "invalid token".into())
    );

    // Tokens survive `restart`...
    assert_eq!(ok(&server, json!({"operation": "restart"}))["message"], "Restarting HarperDB. This may take up to 60 seconds.");
    assert!(server.log_contains("restarted in", Duration::from_secs(30)), "{}", server.log());
    assert_eq!(ok_with(&server, &bearer(&operation), json!({"operation": "user_info"}))["username"], ADMIN.0);
    ok_with(&server, &bearer(&refresh), json!({"operation": "refresh_operation_token"}));

    // ...and a stop and start on the same root.
    let (status, root) = server.stop_keeping_root();
    assert!(status.success(), "clean stop: {status}");
    let server = Server::builder().root(root).start();
    assert_eq!(ok_with(&server, &bearer(&operation), json!({"operation": "user_info"}))["username"], ADMIN.0);
    assert_eq!(ok_with(&server, &bearer(&renewed), json!({"operation": "user_info"}))["username"], ADMIN.0);
    let again = ok_with(&server, &bearer(&refresh), json!({"operation": "refresh_operation_token"}));
    ok_with(&server, &bearer(again["operation_token"].as_str().expect("token")), json!({"operation": "describe_all"}));
    assert_eq!(refused(&server, Some(&bearer(&refresh)), json!({"operation": "describe_all"})), (401, "invalid token".into()));
}

#[test]
fn a_changed_password_a_deactivation_and_a_dropped_user_end_their_tokens() {
    let server = Server::start();
    add_role(&server, "dog_reader", dog_permission(true, false, false, false, json!([])));
    for name in ["carol", "dave", "erin"] {
        add_user(&server, name, &format!("{name}-pass-1"), "dog_reader");
    }
    let issued: Vec<(String, String)> = ["carol", "dave", "erin"].iter().map(|n| tokens(&server, n, &format!("{n}-pass-1"))).collect();
    for (name, (operation, _)) in ["carol", "dave", "erin"].iter().zip(&issued) {
        assert_eq!(ok_with(&server, &bearer(operation), json!({"operation": "user_info"}))["username"], *name);
        // Their Basic credentials are cached now; changes must still take effect at once.
        ok_with(&server, &basic(name, &format!("{name}-pass-1")), json!({"operation": "user_info"}));
    }
    let dead = |token: &str, who: &str| {
        assert_eq!(refused(&server, Some(&bearer(token)), json!({"operation": "user_info"})), (401, "invalid token".into()), "{who}'s operation token");
    };
    let dead_refresh = |token: &str, who: &str| {
        assert_eq!(
            refused(&server, Some(&bearer(token)), json!({"operation": "refresh_operation_token"})),
            (401, "invalid token".into()),
            "{who}'s refresh token"
        );
    };

    // carol changes her password.
    let resp = ok(&server, json!({"operation": "alter_user", "username": "carol", "password": "carol-pass-2"}));
    assert_eq!(resp["message"], "updated 1 of 1 records", "{resp}");
    dead(&issued[0].0, "carol");
    dead_refresh(&issued[0].1, "carol");
    assert_eq!(refused(&server, Some(&basic("carol", "carol-pass-1")), json!({"operation": "user_info"})), (401, "Login failed".into()));
    let (status, resp) = call(&server, None, &json!({"operation": "create_authentication_tokens", "username": "carol", "password": "carol-pass-1"}));
    assert_eq!((status, resp), (401, json!({"error": "invalid credentials"})));
    ok_with(&server, &basic("carol", "carol-pass-2"), json!({"operation": "user_info"}));
    let (fresh, _) = tokens(&server, "carol", "carol-pass-2");
    ok_with(&server, &bearer(&fresh), json!({"operation": "user_info"}));

    // dave is deactivated.
    ok(&server, json!({"operation": "alter_user", "username": "dave", "active": false}));
    dead(&issued[1].0, "dave");
    dead_refresh(&issued[1].1, "dave");
    assert_eq!(refused(&server, Some(&basic("dave", "dave-pass-1")), json!({"operation": "user_info"})), (401, "Login failed".into()));
    let (status, resp) = call(&server, None, &json!({"operation": "create_authentication_tokens", "username": "dave", "password": "dave-pass-1"}));
    assert_eq!((status, resp), (401, json!({"error": "invalid credentials"})));
    let listed = ok(&server, json!({"operation": "list_users"}));
    let dave = listed.as_array().expect("users").iter().find(|u| u["username"] == "dave").cloned().expect("dave listed");
    assert_eq!(dave["active"], false);
    // Reactivated, he logs in again.
    ok(&server, json!({"operation": "alter_user", "username": "dave", "active": true}));
    ok_with(&server, &basic("dave", "dave-pass-1"), json!({"operation": "user_info"}));

    // erin is dropped.
    ok(&server, json!({"operation": "drop_user", "username": "erin"}));
    dead(&issued[2].0, "erin");
    dead_refresh(&issued[2].1, "erin");
    assert_eq!(refused(&server, Some(&basic("erin", "erin-pass-1")), json!({"operation": "user_info"})), (401, "Login failed".into()));
}

#[test]
fn a_short_operation_token_lifetime_expires_tokens_on_every_operation() {
    let server = Server::builder().env("AUTHENTICATION_OPERATIONTOKENTIMEOUT", "2s").start();
    let (operation, refresh) = tokens(&server, ADMIN.0, ADMIN.1);
    let issued = Instant::now();
    let c = claims(&operation);
    assert_eq!(c["exp"].as_u64().expect("exp") - c["iat"].as_u64().expect("iat"), 2, "{c}");
    let r = claims(&refresh);
    assert_eq!(r["exp"].as_u64().expect("exp") - r["iat"].as_u64().expect("iat"), 30 * 86_400, "the refresh lifetime is unchanged: {r}");
    // Fresh, it works (and is now in the login cache).
    assert_eq!(ok_with(&server, &bearer(&operation), json!({"operation": "user_info"}))["username"], ADMIN.0);
    // Whole seconds: expired at the latest 3 s after it was issued.
    std::thread::sleep(Duration::from_millis(3100).saturating_sub(issued.elapsed()));
    for body in user_operations() {
        let op = body["operation"].clone();
        assert_eq!(refused(&server, Some(&bearer(&operation)), body), (401, "invalid token".into()), "{op} with an expired token");
    }
    assert_eq!(refused(&server, Some(&bearer(&operation)), json!({"operation": "describe_all"})), (401, "invalid token".into()));
    // The refresh token still gives a new operation token, with the same short life.
    let renewed = ok_with(&server, &bearer(&refresh), json!({"operation": "refresh_operation_token"}));
    let renewed = renewed["operation_token"].as_str().expect("operation_token").to_string();
    let c = claims(&renewed);
    assert_eq!(c["exp"].as_u64().expect("exp") - c["iat"].as_u64().expect("iat"), 2, "{c}");
    assert_eq!(ok_with(&server, &bearer(&renewed), json!({"operation": "user_info"}))["username"], ADMIN.0);
}

// ---------------------------------------------------------------------------------------------
// Table and attribute permissions

#[test]
fn table_permissions_allow_reads_refuse_writes_and_follow_alter_role() {
    let server = Server::start();
    pets(&server);
    let role = add_role(&server, "dog_reader", dog_permission(true, false, false, false, json!([])));
    add_user(&server, "rita", "rita-pass-7", "dog_reader");
    let rita = basic("rita", "rita-pass-7");

    // Reads of dev.dog: the same answers the super_user gets.
    let reads = [
        json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1, 3], "get_attributes": ["*"]}),
        json!({"operation": "search_by_id", "database": "dev", "table": "dog", "ids": [2], "get_attributes": ["id", "name", "age"]}),
        json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": "breed", "value": "Beagle", "get_attributes": ["*"]}),
        json!({"operation": "search_by_conditions", "database": "dev", "table": "dog", "get_attributes": ["*"], "conditions": [
            {"search_attribute": "age", "search_type": "greater_than", "search_value": 4}]}),
        json!({"operation": "sql", "sql": "SELECT * FROM dev.dog ORDER BY id"}),
        json!({"operation": "sql", "sql": "SELECT name FROM dev.dog WHERE id = 2"}),
    ];
    for body in reads {
        let expected = ok(&server, body.clone());
        assert!(expected.as_array().is_some_and(|a| !a.is_empty()), "{body} -> {expected}");
        let mut got = ok_with(&server, &rita, body.clone());
        let mut expected = expected;
        let by_id = |v: &mut Value| v.as_array_mut().into_iter().for_each(|a| a.sort_by_key(|r| r["id"].as_i64()));
        by_id(&mut got);
        by_id(&mut expected);
        assert_eq!(got, expected, "{body}");
    }
    // An operation token carries the same rights.
    let (token, _) = tokens(&server, "rita", "rita-pass-7");
    let one = ok_with(&server, &bearer(&token), json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1], "get_attributes": ["name"]}));
    assert_eq!(one, json!([{"name": "Penny"}]));

    // Writes: 403 naming the permission the role lacks.
    let writes = [
        (json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 10, "name": "Rex"}]}), "insert"),
        (json!({"operation": "update", "database": "dev", "table": "dog", "records": [{"id": 1, "name": "Pen"}]}), "update"),
        (json!({"operation": "upsert", "database": "dev", "table": "dog", "records": [{"id": 1, "name": "Pen"}]}), "update"),
        (json!({"operation": "delete", "database": "dev", "table": "dog", "hash_values": [1]}), "delete"),
        (json!({"operation": "sql", "sql": "INSERT INTO dev.dog (id, name) VALUES (11, 'Max')"}), "insert"),
    ];
    for (body, permission) in &writes {
        let (status, resp) = call(&server, Some(&rita), body);
        assert_eq!((status, resp), (403, table_denied("dev", "dog", &[permission])), "{body}");
    }
    // Another table: read is what is missing.
    for body in [
        json!({"operation": "search_by_hash", "database": "dev", "table": "cat", "hash_values": [1], "get_attributes": ["*"]}),
        json!({"operation": "search_by_value", "database": "dev", "table": "cat", "attribute": "name", "value": "Tom", "get_attributes": ["*"]}),
        json!({"operation": "sql", "sql": "SELECT * FROM dev.cat"}),
    ] {
        let (status, resp) = call(&server, Some(&rita), &body);
        assert_eq!((status, resp), (403, table_denied("dev", "cat", &["read"])), "{body}");
    }
    // Nothing was written.
    let all = ok(&server, json!({"operation": "sql", "sql": "SELECT id, name FROM dev.dog ORDER BY id"}));
    assert_eq!(all, json!([{"id": 1, "name": "Penny"}, {"id": 2, "name": "Harper"}, {"id": 3, "name": "Billy"}]));

    // describe_all shows only what the role may see; with `attribute_permissions: []` HarperDB
    // lists no attributes.
    let described = ok_with(&server, &rita, json!({"operation": "describe_all"}));
    assert_eq!(keys(&described), BTreeSet::from(["dev".to_string()]), "{described}");
    assert_eq!(keys(&described["dev"]), BTreeSet::from(["dog".to_string()]), "{described}");
    assert_eq!((described["dev"]["dog"]["name"].clone(), described["dev"]["dog"]["record_count"].clone()), (json!("dog"), json!(3)), "{described}");
    assert_eq!(described["dev"]["dog"]["attributes"], json!([]), "{described}");

    // Granting insert takes effect at once, for Basic logins and tokens alike.
    let altered = ok(&server, json!({"operation": "alter_role", "id": role["id"], "role": "dog_reader",
        "permission": dog_permission(true, true, false, false, json!([]))}));
    assert_eq!(altered["permission"]["dev"]["tables"]["dog"]["insert"], true, "{altered}");
    let inserted = ok_with(&server, &rita, writes[0].0.clone());
    assert_eq!(inserted, json!({"message": "inserted 1 of 1 records", "inserted_hashes": [10], "skipped_hashes": []}));
    let inserted = ok_with(&server, &bearer(&token), json!({"operation": "insert", "database": "dev", "table": "dog", "records": [{"id": 12, "name": "Bo"}]}));
    assert_eq!(inserted["inserted_hashes"], json!([12]));
    // Still no update or delete.
    let (status, resp) = call(&server, Some(&rita), &writes[2].0);
    assert_eq!((status, resp), (403, table_denied("dev", "dog", &["update"])));
    let count = ok(&server, json!({"operation": "sql", "sql": "SELECT COUNT(*) AS c FROM dev.dog"}));
    assert_eq!(count, json!([{"c": 5}]));
}

#[test]
fn attribute_permissions_narrow_what_a_role_reads() {
    let server = Server::start();
    pets(&server);
    add_role(&server, "dog_names", dog_permission(true, false, false, false, json!([{"attribute_name": "name", "read": true}])));
    add_user(&server, "nora", "nora-pass-3", "dog_names");
    let nora = basic("nora", "nora-pass-3");
    let only = BTreeSet::from(["id".to_string(), "name".to_string()]);

    let records = ok_with(&server, &nora, json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1, 2], "get_attributes": ["*"]}));
    let records = records.as_array().expect("records");
    assert_eq!(records.len(), 2, "{records:?}");
    for r in records {
        assert_eq!(keys(r), only, "{r}");
    }
    assert_eq!(records.iter().find(|r| r["id"] == 1).map(|r| r["name"].clone()), Some(json!("Penny")));
    let found = ok_with(&server, &nora, json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": "name", "value": "*", "get_attributes": ["*"]}));
    assert_eq!(found.as_array().map(Vec::len), Some(3), "{found}");
    for r in found.as_array().expect("records") {
        assert_eq!(keys(r), only, "{r}");
    }
    // Naming an attribute the role may not read is refused.
    let (status, resp) = call(&server, Some(&nora), &json!({"operation": "search_by_hash", "database": "dev", "table": "dog", "hash_values": [1], "get_attributes": ["name", "age"]}));
    assert_eq!(status, 403, "{resp}");
    assert_eq!(
        resp,
        json!({
            "error": NOT_AUTHORIZED,
            "unauthorized_access": [{"schema": "dev", "table": "dog", "required_table_permissions": [],
                "required_attribute_permissions": [{"attribute_name": "age", "required_permissions": ["read"]}]}],
            "invalid_schema_items": [],
        })
    );
    // Filtering or sorting by a hidden attribute would reveal it: refused the same way.
    for body in [
        json!({"operation": "search_by_value", "database": "dev", "table": "dog", "attribute": "age", "value": 5, "get_attributes": ["id"]}),
        json!({"operation": "search_by_conditions", "database": "dev", "table": "dog", "get_attributes": ["id"],
               "conditions": [{"attribute": "age", "comparator": "greater_than", "value": 1}]}),
        json!({"operation": "search_by_conditions", "database": "dev", "table": "dog", "get_attributes": ["id"],
               "conditions": [{"attribute": "name", "comparator": "starts_with", "value": ""}], "sort": {"attribute": "age"}}),
        json!({"operation": "sql", "sql": "SELECT id FROM dev.dog WHERE age > 1"}),
    ] {
        let (status, resp) = call(&server, Some(&nora), &body);
        assert_eq!(status, 403, "{body}: {resp}");
        assert_eq!(resp["unauthorized_access"][0]["required_attribute_permissions"][0]["attribute_name"], "age", "{body}: {resp}");
    }
    // describe_all shows the readable attribute and none of the others.
    let described = ok_with(&server, &nora, json!({"operation": "describe_all"}));
    assert_eq!(keys(&described["dev"]), BTreeSet::from(["dog".to_string()]), "{described}");
    let attributes: Vec<Value> = described["dev"]["dog"]["attributes"].as_array().expect("attributes").iter().map(|a| a["attribute"].clone()).collect();
    assert!(attributes.contains(&json!("name")), "{described}");
    assert!(!attributes.contains(&json!("age")) && !attributes.contains(&json!("breed")), "{described}");
}

// ---------------------------------------------------------------------------------------------
// Failed logins

#[test]
fn repeated_failed_logins_are_refused_for_a_while_and_a_correct_login_then_succeeds() {
    let server = Server::start();
    let wrong = basic(USER.0, "not-the-password");
    // Past the free attempts, further attempts from this client for this name are refused at
    // once with 429 (no waiting while anything is held), instead of being checked.
    let mut throttled = None;
    for attempt in 1..=20 {
        let failed = refused(&server, Some(&wrong), json!({"operation": "user_info"}));
        if failed.0 == 429 {
            throttled = Some(attempt);
            break;
        }
        assert_eq!(failed, (401, "Login failed".into()), "attempt {attempt}");
    }
    let throttled = throttled.expect("20 failed logins in a row were never throttled");
    assert!(throttled > 5, "throttled already at attempt {throttled}");
    // Another user is not held back by it.
    let (status, _) = call(&server, None, &json!({"operation": "create_authentication_tokens", "username": ADMIN.0, "password": ADMIN.1}));
    assert_eq!(status, 200);
    // Once the wait (at most 5 s) is over, the right password gets in.
    std::thread::sleep(Duration::from_secs(6));
    let me = ok_with(&server, &basic(USER.0, USER.1), json!({"operation": "user_info"}));
    assert_eq!(me["username"], USER.0);
    let (status, _) = call(&server, None, &json!({"operation": "create_authentication_tokens", "username": USER.0, "password": USER.1}));
    assert_eq!(status, 200);
}

#[test]
fn tokens_of_a_dropped_user_do_not_work_for_a_new_user_of_the_same_name() {
    let server = Server::start();
    add_role(&server, "nobody_special", json!({}));
    add_user(&server, "sam", "sam-pass-1", "nobody_special");
    let (old_operation, old_refresh) = tokens(&server, "sam", "sam-pass-1");
    ok(&server, json!({"operation": "drop_user", "username": "sam"}));
    add_user(&server, "sam", "sam-pass-2", "nobody_special");
    let (status, body) = call(&server, Some(&bearer(&old_operation)), &json!({"operation": "user_info"}));
    assert_eq!((status, body), (401, json!({"error": "invalid token"})));
    let (status, _) = call(&server, Some(&bearer(&old_refresh)), &json!({"operation": "refresh_operation_token"}));
    assert_eq!(status, 401);
    // The new user's own tokens work.
    let (new_operation, _) = tokens(&server, "sam", "sam-pass-2");
    let (status, body) = call(&server, Some(&bearer(&new_operation)), &json!({"operation": "user_info"}));
    assert_eq!((status, body["username"].clone()), (200, json!("sam")));
}
