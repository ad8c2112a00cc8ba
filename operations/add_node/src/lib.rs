//! `add_node`: registers a remote node and which tables flow in which direction (`subscribe`: remote → local, `publish`: local → remote).
//!
//! Request (HarperDB's NATS-era shape; `database` may stand for `schema`):
//! `{"operation": "add_node", "node_name": "node_b", "subscriptions": [{"schema": "dev", "table":
//! "dog", "subscribe": true, "publish": true}]}` → `{"message": "Successfully added 'node_b' to manifest"}`. Without
//! subscriptions every database and table flows both ways. Capabilities: `cluster`.

use opshost_guest::cluster::NodeChange;
use opshost_guest::prelude::*;
use serde_json::Map;

pub struct AddNode;

impl Operation for AddNode {
    const NAME: &'static str = "add_node";
    type Request = Map<String, Value>;
    type Response = Value;

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let (name, node) = cluster::node_request(&req)?;
        cluster::set_node(&node, NodeChange::Add)?;
        Ok(json!({ "message": format!("Successfully added '{name}' to manifest") }))
    }
}

opshost_guest::export_operation!(AddNode);
