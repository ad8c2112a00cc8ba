//! `refresh_operation_token`: a new operation token from a refresh token, the one in the body
//! or else the one the caller authenticated with (`Authorization: Bearer <refresh token>`).
//!
//! Request: `{"operation": "refresh_operation_token", "refresh_token": "eyJ..."}`
//! (`refresh_token` optional). Answers `{"operation_token"}`. Capabilities: `users`.

use opshost_guest::prelude::*;

pub struct RefreshOperationToken;

#[derive(Deserialize)]
pub struct Request {
    refresh_token: Option<String>,
}

impl Operation for RefreshOperationToken {
    const NAME: &'static str = "refresh_operation_token";
    const SUPER_USER_ONLY: bool = false;
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let refresh_token = req.refresh_token.as_deref().filter(|t| !t.is_empty());
        Ok(json!({ "operation_token": users::refresh_operation_token(refresh_token)? }))
    }
}

opshost_guest::export_operation!(RefreshOperationToken);
