//! `user_info`: the caller's own user record with its role, without the password. Any
//! authenticated user may call it.
//!
//! Request: `{"operation": "user_info"}`. Answers exactly HarperDB's `{"active", "username",
//! "role": {"role", "id", "permission", ...}}`. Capabilities: `users`.

use opshost_guest::prelude::*;

pub struct UserInfo;

impl Operation for UserInfo {
    const NAME: &'static str = "user_info";
    const SUPER_USER_ONLY: bool = false;
    type Request = Empty;
    type Response = Value;

    fn handle(ctx: &Context, _req: Empty) -> Result<Value, Error> {
        let user = users::get_user(&ctx.username)?
            .ok_or_else(|| Error::NotFound(format!("User {} does not exist", ctx.username)))?;
        Ok(only_harpers_keys(user))
    }
}

opshost_guest::export_operation!(UserInfo);

/// HarperDB's `user_info` shows the user's `active`, `username` and `role`, nothing else.
fn only_harpers_keys(mut user: Value) -> Value {
    if let Some(map) = user.as_object_mut() {
        map.retain(|k, _| matches!(k.as_str(), "active" | "username" | "role"));
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_active_username_and_role() {
        let user = json!({"active": true, "username": "ann", "role": {"id": "r"}, "__createdtime__": 1, "__updatedtime__": 2});
        assert_eq!(only_harpers_keys(user), json!({"active": true, "username": "ann", "role": {"id": "r"}}));
    }
}
