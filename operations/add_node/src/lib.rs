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
        let name = node_name(&req)?;
        let node = json!({ "node_name": name, "subscriptions": req.get("subscriptions").cloned().unwrap_or(json!([])) });
        cluster::set_node(&node, NodeChange::Add)?;
        Ok(json!({ "message": format!("Successfully added '{name}' to manifest") }))
    }
}

opshost_guest::export_operation!(AddNode);

/// HarperDB's text for a missing or empty `node_name`.
fn node_name(req: &Map<String, Value>) -> Result<&str, Error> {
    match req.get("node_name") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(Error::BadRequest("'node_name' is required".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_name_is_required() {
        let req = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(node_name(&req(json!({"node_name": "b"}))).ok(), Some("b"));
        for bad in [json!({}), json!({"node_name": ""}), json!({"node_name": 1})] {
            assert!(matches!(node_name(&req(bad)), Err(Error::BadRequest(_))));
        }
    }
}
