//! `update_node`: changes a registered node's subscriptions (404 when it is not registered).
//!
//! Request (HarperDB's NATS-era shape; `database` may stand for `schema`):
//! `{"operation": "update_node", "node_name": "node_b", "subscriptions": [{"schema": "dev", "table":
//! "dog", "subscribe": true, "publish": true}]}` → `{"message": "Successfully updated 'node_b'"}`. Without
//! subscriptions every database and table flows both ways. Capabilities: `cluster`.

use opshost_guest::cluster::NodeChange;
use opshost_guest::prelude::*;
use serde_json::Map;

pub struct UpdateNode;

impl Operation for UpdateNode {
    const NAME: &'static str = "update_node";
    type Request = Map<String, Value>;
    type Response = Value;

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let (name, node) = cluster::node_request(&req)?;
        cluster::set_node(&node, NodeChange::Update)?;
        Ok(json!({ "message": format!("Successfully updated '{name}'") }))
    }
}

opshost_guest::export_operation!(UpdateNode);
