//! `remove_node`: forgets a registered node; its changes are applied in full again.
//!
//! Request: `{"operation": "remove_node", "node_name": "node_b"}` →
//! `{"message": "Successfully removed 'node_b' from manifest"}`; 404 when it is not registered.
//! Capabilities: `cluster`.

use opshost_guest::prelude::*;

pub struct RemoveNode;

#[derive(Deserialize)]
pub struct Request {
    node_name: Option<String>,
}

impl Operation for RemoveNode {
    const NAME: &'static str = "remove_node";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let name = req.node_name.filter(|n| !n.is_empty()).ok_or_else(|| Error::BadRequest("'node_name' is required".into()))?;
        cluster::remove_node(&name)?;
        Ok(json!({ "message": format!("Successfully removed '{name}' from manifest") }))
    }
}

opshost_guest::export_operation!(RemoveNode);
