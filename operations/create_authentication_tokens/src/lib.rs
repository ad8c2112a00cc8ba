//! `create_authentication_tokens`: an operation token (1 day) and a refresh token (30 days),
//! for the user named in the body (checked by password), or else for the caller.
//!
//! Request: `{"operation": "create_authentication_tokens", "username": "admin", "password":
//! "secret"}` (both or neither). Answers `{"operation_token", "refresh_token"}`.
//! Capabilities: `users`.

use opshost_guest::prelude::*;

pub struct CreateAuthenticationTokens;

#[derive(Deserialize)]
pub struct Request {
    username: Option<String>,
    password: Option<String>,
}

impl Operation for CreateAuthenticationTokens {
    const NAME: &'static str = "create_authentication_tokens";
    const SUPER_USER_ONLY: bool = false;
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let tokens = match credentials(req.username.as_deref(), req.password.as_deref())? {
            Some((username, password)) => users::create_tokens(username, password)?,
            None => users::create_tokens_for_caller()?,
        };
        Ok(json!({ "operation_token": tokens.operation_token, "refresh_token": tokens.refresh_token }))
    }
}

opshost_guest::export_operation!(CreateAuthenticationTokens);

/// Both given: log in with them; neither: the caller. An empty string counts as absent.
fn credentials<'a>(username: Option<&'a str>, password: Option<&'a str>) -> Result<Option<(&'a str, &'a str)>, Error> {
    let given = |v: Option<&'a str>| v.filter(|s| !s.is_empty());
    match (given(username), given(password)) {
        (Some(u), Some(p)) => Ok(Some((u, p))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::BadRequest("password is required".into())),
        (None, Some(_)) => Err(Error::BadRequest("username is required".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_or_neither() {
        assert!(matches!(credentials(Some("u"), Some("p")), Ok(Some(("u", "p")))));
        assert!(matches!(credentials(None, None), Ok(None)));
        assert!(matches!(credentials(Some(""), None), Ok(None)));
        assert!(matches!(credentials(Some("u"), None), Err(Error::BadRequest(m)) if m == "password is required"));
        assert!(matches!(credentials(None, Some("p")), Err(Error::BadRequest(m)) if m == "username is required"));
    }
}
