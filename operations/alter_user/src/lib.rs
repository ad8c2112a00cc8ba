//! `alter_user`: changes a user's password, role (by role name) or active flag; a changed
//! password or deactivation ends the user's tokens.
//!
//! Request: `{"operation": "alter_user", "username": "hdb_user", "password": "new", "role":
//! "developer", "active": true}` (all but `username` optional, at least one of them given).
//! Answers `{"message": "updated 1 of 1 records", "new_attributes": [], "txn_time": <ms>}`.
//! Capabilities: `users`.

use opshost_guest::prelude::*;
use opshost_guest::users::UserChange;
use serde_json::Map;

pub struct AlterUser;

/// Checked by hand so HarperDB's texts (`username is required`) come out.
#[derive(Deserialize)]
pub struct Request {
    username: Option<Value>,
    password: Option<Value>,
    role: Option<Value>,
    active: Option<Value>,
}

impl Operation for AlterUser {
    const NAME: &'static str = "alter_user";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let change = validate(req)?;
        users::alter_user(&change)?;
        // HarperDB's txn_time is the time the record was written: the user's __updatedtime__.
        let txn_time = users::get_user(&change.username)?.and_then(|u| u.get("__updatedtime__").cloned());
        let mut body = Map::new();
        body.insert("message".into(), json!("updated 1 of 1 records"));
        body.insert("new_attributes".into(), json!([]));
        if let Some(t) = txn_time {
            body.insert("txn_time".into(), t);
        }
        Ok(Value::Object(body))
    }
}

opshost_guest::export_operation!(AlterUser);

/// HarperDB's checks, in its order; the first failure answers.
fn validate(req: Request) -> Result<UserChange, Error> {
    let bad = |text: &str| Error::BadRequest(text.to_string());
    let present = |v: Option<Value>| v.filter(|v| !v.is_null());
    let username = match present(req.username) {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) | None => return Err(bad("username is required")),
        Some(_) => return Err(bad("username must be a string")),
    };
    let (password, role, active) = (present(req.password), present(req.role), present(req.active));
    if password.is_none() && role.is_none() && active.is_none() {
        return Err(bad("nothing to update, must supply active, role or password to update"));
    }
    let password = match password {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(Value::String(_)) => return Err(bad("password cannot be an empty string")),
        Some(_) => return Err(bad("password must be a string")),
    };
    let active = match active {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(bad("active must be true or false")),
    };
    let role = match role {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(Value::String(_)) => return Err(bad("If role is specified, it cannot be empty.")),
        Some(_) => return Err(bad("role must be a string")),
    };
    Ok(UserChange { username, password, role, active })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opshost_guest::decode_request;

    fn check(body: &str) -> Result<UserChange, String> {
        let req: Request = decode_request(body).map_err(|e| format!("{e:?}"))?;
        validate(req).map_err(|e| match e {
            Error::BadRequest(t) => t,
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn passes_only_the_given_changes() {
        let c = check(r#"{"operation":"alter_user","username":"u","active":false,"role":null}"#).expect("valid");
        assert_eq!(c.username, "u");
        assert_eq!((c.password, c.role, c.active), (None, None, Some(false)));
        let c = check(r#"{"username":"u","password":"p","role":"dev"}"#).expect("valid");
        assert_eq!((c.password.as_deref(), c.role.as_deref(), c.active), (Some("p"), Some("dev"), None));
    }

    #[test]
    fn refuses_in_harper_words() {
        assert_eq!(check(r#"{"password":"p"}"#).err().as_deref(), Some("username is required"));
        assert_eq!(check(r#"{"username":"","password":"p"}"#).err().as_deref(), Some("username is required"));
        assert_eq!(
            check(r#"{"username":"u"}"#).err().as_deref(),
            Some("nothing to update, must supply active, role or password to update")
        );
        assert_eq!(check(r#"{"username":"u","password":"  "}"#).err().as_deref(), Some("password cannot be an empty string"));
        assert_eq!(check(r#"{"username":"u","active":"no"}"#).err().as_deref(), Some("active must be true or false"));
        assert_eq!(check(r#"{"username":"u","role":""}"#).err().as_deref(), Some("If role is specified, it cannot be empty."));
    }
}
