//! The shapes HarperDB gives users that the host does not: the `system` table permissions
//! `list_users` shows. Re-exports `opshost_guest::users`,
//! so an operation imports one `users` module.

pub use opshost_guest::users::*;
use serde_json::{json, Map, Value};

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
}
