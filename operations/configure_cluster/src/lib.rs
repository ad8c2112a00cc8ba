//! `configure_cluster`: replaces every node registration in one call (nodes not listed are
//! removed).
//!
//! Request: `{"operation": "configure_cluster", "connections": [{"node_name": "node_b",
//! "subscriptions": [...]}]}` → `{"message": "Cluster successfully configured."}`.
//! Capabilities: `cluster`.

use opshost_guest::cluster::NodeChange;
use opshost_guest::prelude::*;

pub struct ConfigureCluster;

#[derive(Deserialize)]
pub struct Request {
    connections: Option<Vec<Value>>,
}

impl Operation for ConfigureCluster {
    const NAME: &'static str = "configure_cluster";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let connections = req.connections.ok_or_else(|| Error::BadRequest("'connections' must be an array".into()))?;
        let mut names = Vec::with_capacity(connections.len());
        for c in &connections {
            match c.get("node_name") {
                Some(Value::String(n)) if !n.is_empty() => names.push(n.clone()),
                _ => return Err(Error::BadRequest("every connection needs a 'node_name'".into())),
            }
        }
        for c in &connections {
            cluster::set_node(c, NodeChange::Upsert)?;
        }
        if let Value::Array(existing) = cluster::list_nodes()? {
            for node in existing {
                if let Some(name) = node.get("name").and_then(Value::as_str) {
                    if !names.iter().any(|n| n == name) {
                        cluster::remove_node(name)?;
                    }
                }
            }
        }
        Ok(json!({ "message": "Cluster successfully configured." }))
    }
}

opshost_guest::export_operation!(ConfigureCluster);
