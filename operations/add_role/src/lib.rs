//! `add_role`: adds a role with HarperDB's permission JSON and answers the stored role record
//! `{role, permission, id, __updatedtime__, __createdtime__}`.
//!
//! Request: `{"operation": "add_role", "role": "developer", "permission": {"super_user": false,
//! "dev": {"tables": {"dog": {"read": true, "insert": true, "update": true, "delete": false,
//! "attribute_permissions": []}}}}}` (`id` optional, default a new UUID). Capabilities: `users`.

use opshost_guest::prelude::*;
use serde_json::Map;

pub struct AddRole;

#[derive(Deserialize)]
pub struct Request {
    // Missing is blank: the host answers HarperDB's structured body (`main_permissions`:
    // "Role can't be blank") rather than the generic `'role' is required`.
    #[serde(default)]
    role: String,
    permission: Map<String, Value>,
    id: Option<String>,
}

impl Operation for AddRole {
    const NAME: &'static str = "add_role";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        users::add_role(&req.role, &Value::Object(req.permission), req.id.as_deref())
    }
}

opshost_guest::export_operation!(AddRole);

#[cfg(test)]
mod tests {
    use super::*;
    use opshost_guest::decode_error;

    fn err(body: &str) -> String {
        decode_error::<Request>(body)
    }

    #[test]
    fn names_missing_and_mistyped_fields() {
        assert_eq!(err(r#"{"role":"dev"}"#), "'permission' is required");
        assert_eq!(err(r#"{"role":"dev","permission":true}"#), "'permission' must be an object");
        assert_eq!(err(r#"{"role":1,"permission":{}}"#), "'role' must be a string");
        assert_eq!(err(r#"{"role":"dev","permission":{},"id":5}"#), "'id' must be a string");
    }
}
