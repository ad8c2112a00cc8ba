//! `add_user`: adds a user with a role (by role name); the host hashes the password.
//!
//! Request: `{"operation": "add_user", "username": "hdb_user", "password": "secret", "role":
//! "developer", "active": true}`. Answers `{"message": "hdb_user successfully added"}`.
//! Capabilities: `users`.

use opshost_guest::prelude::*;
use opshost_guest::users::NewUser;

pub struct AddUser;

/// Every field is checked here, so HarperDB's texts (`Username can't be blank`) come out.
#[derive(Deserialize)]
pub struct Request {
    username: Option<Value>,
    password: Option<Value>,
    role: Option<Value>,
    active: Option<Value>,
}

impl Operation for AddUser {
    const NAME: &'static str = "add_user";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let user = validate(req)?;
        users::add_user(&user)?;
        Ok(json!({ "message": format!("{} successfully added", user.username) }))
    }
}

opshost_guest::export_operation!(AddUser);

/// HarperDB (validate.js) reports every problem at once, joined by ",", in field order.
fn validate(req: Request) -> Result<NewUser, Error> {
    let mut errors = Vec::new();
    let username = text("Username", req.username, &mut errors);
    let password = text("Password", req.password, &mut errors);
    let role = text("Role", req.role, &mut errors);
    let active = match req.active {
        None | Some(Value::Null) => {
            errors.push("Active can't be blank".to_string());
            None
        }
        Some(Value::Bool(b)) => Some(b),
        Some(_) => {
            errors.push("Active must be a boolean".to_string());
            None
        }
    };
    match (username, password, role, active) {
        (Some(username), Some(password), Some(role), Some(active)) if errors.is_empty() => {
            Ok(NewUser { username, password, role, active })
        }
        _ => Err(Error::BadRequest(errors.join(","))),
    }
}

fn text(label: &str, value: Option<Value>, errors: &mut Vec<String>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            errors.push(format!("{label} can't be blank"));
            None
        }
        Some(_) => {
            errors.push(format!("{label} must be a string"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opshost_guest::decode_request;

    fn check(body: &str) -> Result<NewUser, String> {
        let req: Request = decode_request(body).map_err(|e| format!("{e:?}"))?;
        validate(req).map_err(|e| match e {
            Error::BadRequest(t) => t,
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn accepts_a_complete_user() {
        let user = check(r#"{"operation":"add_user","username":"u","password":"p","role":"dev","active":false}"#)
            .expect("valid");
        assert_eq!((user.username.as_str(), user.password.as_str(), user.role.as_str(), user.active), ("u", "p", "dev", false));
    }

    #[test]
    fn reports_every_problem_in_harper_words() {
        assert_eq!(check(r#"{"password":"p","role":"dev","active":true}"#).err().as_deref(), Some("Username can't be blank"));
        assert_eq!(check(r#"{"username":"u","password":"","role":"dev","active":true}"#).err().as_deref(), Some("Password can't be blank"));
        assert_eq!(check(r#"{"username":"u","password":"p","active":true}"#).err().as_deref(), Some("Role can't be blank"));
        assert_eq!(check(r#"{"username":"u","password":"p","role":"dev"}"#).err().as_deref(), Some("Active can't be blank"));
        assert_eq!(check(r#"{"username":"u","password":"p","role":"dev","active":"yes"}"#).err().as_deref(), Some("Active must be a boolean"));
        assert_eq!(check(r#"{"username":1,"password":"p","role":"dev","active":true}"#).err().as_deref(), Some("Username must be a string"));
        assert_eq!(
            check(r#"{"operation":"add_user"}"#).err().as_deref(),
            Some("Username can't be blank,Password can't be blank,Role can't be blank,Active can't be blank")
        );
    }
}
