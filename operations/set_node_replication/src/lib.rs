//! `set_node_replication`: sets which tables flow to and from a node (registering it when new).
//!
//! Request (HarperDB's NATS-era shape; `database` may stand for `schema`):
//! `{"operation": "set_node_replication", "node_name": "node_b", "subscriptions": [{"schema": "dev", "table":
//! "dog", "subscribe": true, "publish": true}]}` → `{"message": "Successfully updated 'node_b'"}`. Without
//! subscriptions every database and table flows both ways. Capabilities: `cluster`.

use opshost_guest::cluster::NodeChange;
use opshost_guest::prelude::*;
use serde_json::Map;

pub struct SetNodeReplication;

impl Operation for SetNodeReplication {
    const NAME: &'static str = "set_node_replication";
    type Request = Map<String, Value>;
    type Response = Value;

    fn handle(_ctx: &Context, req: Map<String, Value>) -> Result<Value, Error> {
        let (name, node) = cluster::node_request(&req)?;
        cluster::set_node(&node, NodeChange::Upsert)?;
        Ok(json!({ "message": format!("Successfully updated '{name}'") }))
    }
}

opshost_guest::export_operation!(SetNodeReplication);
