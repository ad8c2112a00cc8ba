//! Typed access to the `users` interface (users, roles, login tokens). The shapes HarperDB gives
//! them that the host does not (the `system` table permissions `list_users` shows) live in
//! `opshost-harper`.

use crate::bindings::opshost::host::users as wit;
use crate::Error;
use serde_json::Value;

pub use wit::{NewUser, Tokens, UserChange};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_stripped() {
        let mut u = json!({"username": "u", "password": "h", "hash": "x", "refresh_token": "t", "active": true});
        strip_secrets(&mut u);
        assert_eq!(u, json!({"username": "u", "active": true}));
    }
}
