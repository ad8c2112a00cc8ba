//! `alter_role`: replaces a role's permission (and its name, when given) and answers the
//! updated role record.
//!
//! Request: `{"operation": "alter_role", "id": "f6a1...", "role": "developer", "permission":
//! {"super_user": false, "dev": {"tables": {}}}}` (`role` optional). Capabilities: `users`.

use opshost_guest::prelude::*;
use serde_json::Map;

pub struct AlterRole;

#[derive(Deserialize)]
pub struct Request {
    id: String,
    role: Option<String>,
    permission: Map<String, Value>,
}

impl Operation for AlterRole {
    const NAME: &'static str = "alter_role";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        users::alter_role(&req.id, req.role.as_deref(), &Value::Object(req.permission))
    }
}

opshost_guest::export_operation!(AlterRole);

#[cfg(test)]
mod tests {
    use super::*;
    use opshost_guest::decode_error;

    fn err(body: &str) -> String {
        decode_error::<Request>(body)
    }

    #[test]
    fn names_missing_and_mistyped_fields() {
        assert_eq!(err(r#"{"permission":{}}"#), "'id' is required");
        assert_eq!(err(r#"{"id":"x"}"#), "'permission' is required");
        assert_eq!(err(r#"{"id":"x","role":[],"permission":{}}"#), "'role' must be a string");
    }
}
