//! `user_info`: the caller's own user record with its role, without the password. Any
//! authenticated user may call it.
//!
//! Request: `{"operation": "user_info"}`. Answers `{"username", "active", "role": {"role", "id",
//! "permission", ...}, "__createdtime__", "__updatedtime__"}`. Capabilities: `users`.

use opshost_guest::prelude::*;

pub struct UserInfo;

impl Operation for UserInfo {
    const NAME: &'static str = "user_info";
    const SUPER_USER_ONLY: bool = false;
    type Request = Empty;
    type Response = Value;

    fn handle(ctx: &Context, _req: Empty) -> Result<Value, Error> {
        users::get_user(&ctx.username)?
            .ok_or_else(|| Error::NotFound(format!("User {} does not exist", ctx.username)))
    }
}

opshost_guest::export_operation!(UserInfo);
