//! `drop_user`: drops a user; their tokens stop working.
//!
//! Request: `{"operation": "drop_user", "username": "hdb_user"}`. Answers
//! `{"message": "hdb_user successfully deleted"}`. Capabilities: `users`.

use opshost_guest::prelude::*;

pub struct DropUser;

#[derive(Deserialize)]
pub struct Request {
    username: Option<String>,
}

impl Operation for DropUser {
    const NAME: &'static str = "drop_user";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let username = required_username(req.username.as_deref())?;
        users::drop_user(username)?;
        Ok(json!({ "message": format!("{username} successfully deleted") }))
    }
}

opshost_guest::export_operation!(DropUser);

/// HarperDB's text for a missing or empty username.
fn required_username(username: Option<&str>) -> Result<&str, Error> {
    match username {
        Some(u) if !u.is_empty() => Ok(u),
        _ => Err(Error::BadRequest("Username can't be blank".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_username_is_blank() {
        assert!(matches!(required_username(None), Err(Error::BadRequest(m)) if m == "Username can't be blank"));
        assert!(matches!(required_username(Some("")), Err(Error::BadRequest(m)) if m == "Username can't be blank"));
        assert!(matches!(required_username(Some("u")), Ok("u")));
    }
}
