//! `rollback_component`: serves a kept version of a deployed component again, in one atomic
//! swap (super_user); the version is checked by the loader first, as a deploy is.
//!
//! Request: `{"operation": "rollback_component", "name": "my_op", "version": 1}` (`version`
//! optional: the one before the serving one) → `{"message": "Successfully rolled back: my_op
//! version 1", "name": "my_op", "version": 1, "replicated": false, ...}`. A rollback to a version
//! deployed with `replicated: true` rolls every node of the cluster back (`replicated: true`;
//! services/components.rs). Capabilities: `components`.

use opshost_guest::prelude::*;

pub struct RollbackComponent;

#[derive(Deserialize)]
pub struct Request {
    name: String,
    #[serde(default)]
    version: Option<u64>,
}

impl Operation for RollbackComponent {
    const NAME: &'static str = "rollback_component";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        components::rollback(&req.name, req.version)
    }
}

opshost_guest::export_operation!(RollbackComponent);
