//! `drop_component`: stops serving a component deployed through the operations API and deletes
//! its kept versions (super_user); the audit events stay.
//!
//! Request: `{"operation": "drop_component", "name": "my_op", "replicated": true}` (`replicated`
//! optional: also on every node of the cluster) → `{"message": "Successfully dropped: my_op",
//! "name": "my_op", "version": 2}`. Capabilities: `components`.

use opshost_guest::prelude::*;

pub struct DropComponent;

#[derive(Deserialize)]
pub struct Request {
    name: String,
    #[serde(default)]
    replicated: Option<bool>,
}

impl Operation for DropComponent {
    const NAME: &'static str = "drop_component";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        components::drop_component(&req.name, req.replicated.unwrap_or(false))
    }
}

opshost_guest::export_operation!(DropComponent);
