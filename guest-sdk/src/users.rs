//! Typed access to the `users` interface (users, roles, login tokens) and the shapes HarperDB
//! gives them that the host does not: the `system` table permissions `list_users` shows.

use crate::bindings::opshost::host::users as wit;
use crate::Error;
use serde_json::{json, Map, Value};

pub use wit::{NewUser, Tokens, UserChange};

/// HarperDB's system tables, in the order `list_users` lists them under `permission.system`.
pub const SYSTEM_TABLES: [&str; 16] = [
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

/// Keys a user record may hold that no operation ever answers with.
const SECRET_KEYS: [&str; 3] = ["password", "hash", "refresh_token"];

fn parse(text: &str, what: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::Internal(format!("host returned an invalid {what}: {e}")))
}

/// Adds a role; `id` defaults to a new UUID. Returns the stored role record.
pub fn add_role(role: &str, permission: &Value, id: Option<&str>) -> Result<Value, Error> {
    parse(&wit::add_role(role, &permission.to_string(), id)?, "role record")
}

/// Replaces a role's permission (and its name, when given). Returns the stored role record.
pub fn alter_role(id: &str, role: Option<&str>, permission: &Value) -> Result<Value, Error> {
    parse(&wit::alter_role(id, role, &permission.to_string())?, "role record")
}

/// Drops a role. Returns its name.
pub fn drop_role(id: &str) -> Result<String, Error> {
    wit::drop_role(id)
}

/// Every role record, sorted by name.
pub fn list_roles() -> Result<Vec<Value>, Error> {
    wit::list_roles()?.iter().map(|r| parse(r, "role record")).collect()
}

pub fn add_user(user: &NewUser) -> Result<(), Error> {
    wit::add_user(user)
}

/// Changes a user; `None` fields stay as they are.
pub fn alter_user(change: &UserChange) -> Result<(), Error> {
    wit::alter_user(change)
}

pub fn drop_user(username: &str) -> Result<(), Error> {
    wit::drop_user(username)
}

/// One user with its role record, never with a password.
pub fn get_user(username: &str) -> Result<Option<Value>, Error> {
    let Some(text) = wit::get_user(username)? else { return Ok(None) };
    let mut user = parse(&text, "user")?;
    strip_secrets(&mut user);
    Ok(Some(user))
}

/// Every user with its role record, sorted by name, never with a password.
pub fn list_users() -> Result<Vec<Value>, Error> {
    wit::list_users()?
        .iter()
        .map(|text| {
            let mut user = parse(text, "user")?;
            strip_secrets(&mut user);
            Ok(user)
        })
        .collect()
}

/// Checks a username and password and issues an operation and a refresh token.
pub fn create_tokens(username: &str, password: &str) -> Result<Tokens, Error> {
    wit::create_tokens(username, password)
}

/// Issues tokens for the (already authenticated) caller.
pub fn create_tokens_for_caller() -> Result<Tokens, Error> {
    wit::create_tokens_for_caller()
}

/// A new operation token from `refresh_token`, or from the refresh token the caller
/// authenticated with.
pub fn refresh_operation_token(refresh_token: Option<&str>) -> Result<String, Error> {
    wit::refresh_operation_token(refresh_token)
}

/// Removes anything secret from a user record (the host never sends one; this is a second lock).
pub fn strip_secrets(user: &mut Value) {
    if let Some(user) = user.as_object_mut() {
        for key in SECRET_KEYS {
            user.remove(key);
        }
    }
}

/// HarperDB's `list_users` adds to each user's `role.permission` a `system.tables` object with
/// every system table: `{"read": <role is super_user>, "insert": false, "update": false,
/// "delete": false, "attribute_permissions": []}`. A user without a role or permission object
/// is left as it is (HarperDB logs and skips it too).
pub fn add_system_table_permissions(user: &mut Value) {
    let Some(permission) = user
        .get_mut("role")
        .and_then(|role| role.get_mut("permission"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let read = permission.get("super_user").and_then(Value::as_bool).unwrap_or(false);
    let system = permission.entry("system").or_insert_with(|| json!({}));
    if !system.is_object() {
        *system = json!({});
    }
    let Some(system) = system.as_object_mut() else { return };
    let tables = system.entry("tables").or_insert_with(|| json!({}));
    if !tables.is_object() {
        *tables = json!({});
    }
    let Some(tables) = tables.as_object_mut() else { return };
    for table in SYSTEM_TABLES {
        tables.insert(table.to_string(), system_table_permission(read));
    }
}

fn system_table_permission(read: bool) -> Value {
    let mut p = Map::new();
    p.insert("read".into(), Value::Bool(read));
    p.insert("insert".into(), Value::Bool(false));
    p.insert("update".into(), Value::Bool(false));
    p.insert("delete".into(), Value::Bool(false));
    p.insert("attribute_permissions".into(), Value::Array(Vec::new()));
    Value::Object(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(permission: Value) -> Value {
        json!({"username": "u", "active": true, "role": {"role": "r", "id": "r", "permission": permission}})
    }

    #[test]
    fn system_tables_are_readable_by_super_users_only() {
        let mut admin = user(json!({"super_user": true}));
        add_system_table_permissions(&mut admin);
        let tables = &admin["role"]["permission"]["system"]["tables"];
        assert_eq!(tables.as_object().map(Map::len), Some(16));
        assert_eq!(
            tables["hdb_user"],
            json!({"read": true, "insert": false, "update": false, "delete": false, "attribute_permissions": []})
        );
        assert_eq!(admin["role"]["permission"]["super_user"], json!(true));

        let mut reader = user(json!({"super_user": false, "dev": {"tables": {}}}));
        add_system_table_permissions(&mut reader);
        let tables = &reader["role"]["permission"]["system"]["tables"];
        assert_eq!(tables["hdb_revoked_certificates"]["read"], json!(false));
        assert_eq!(reader["role"]["permission"]["dev"], json!({"tables": {}}));

        let mut cluster = user(json!({"cluster_user": true}));
        add_system_table_permissions(&mut cluster);
        assert_eq!(cluster["role"]["permission"]["system"]["tables"]["hdb_job"]["read"], json!(false));
    }

    #[test]
    fn system_tables_keep_the_order_and_replace_stored_entries() {
        let mut u = user(json!({"super_user": true, "system": {"tables": {"hdb_user": {"read": false}}, "x": 1}}));
        add_system_table_permissions(&mut u);
        let system = &u["role"]["permission"]["system"];
        assert_eq!(system["x"], json!(1));
        assert_eq!(system["tables"]["hdb_user"]["read"], json!(true));
        let names: Vec<&str> = system["tables"].as_object().map(|t| t.keys().map(String::as_str).collect()).unwrap_or_default();
        assert_eq!(names, SYSTEM_TABLES);
    }

    #[test]
    fn users_without_a_role_are_left_alone() {
        for mut u in [json!({"username": "u"}), json!({"username": "u", "role": null}), json!({"role": {"role": "r"}})] {
            let before = u.clone();
            add_system_table_permissions(&mut u);
            assert_eq!(u, before);
        }
    }

    #[test]
    fn secrets_are_stripped() {
        let mut u = json!({"username": "u", "password": "h", "hash": "x", "refresh_token": "t", "active": true});
        strip_secrets(&mut u);
        assert_eq!(u, json!({"username": "u", "active": true}));
    }
}
