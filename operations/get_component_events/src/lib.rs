//! `get_component_events`: the audit log of component changes (super_user): every deploy, drop
//! and rollback with who, which version and hash, and when; all, or one component's.
//!
//! Request: `{"operation": "get_component_events", "name": "my_op"}` (`name` optional) →
//! `[{"action": "deploy", "name": "my_op", "version": 1, "hash": "...", "user": "admin", "at":
//! 1764211200000, ...}, ...]`. Capabilities: `components`.

use opshost_guest::prelude::*;

pub struct GetComponentEvents;

#[derive(Deserialize)]
pub struct Request {
    #[serde(default)]
    name: Option<String>,
}

impl Operation for GetComponentEvents {
    const NAME: &'static str = "get_component_events";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        components::events(req.name.as_deref())
    }
}

opshost_guest::export_operation!(GetComponentEvents);
