//! `cluster_network`: the nodes this node knows on the NATS network: itself, the nodes it
//! registered, and the nodes whose changes it has seen on the stream.
//!
//! Request: `{"operation": "cluster_network"}` (HarperDB's `timeout`, `connected_nodes` and
//! `routes` flags are accepted) → `{"nodes": [{"name": "node_a", "is_self": true}, {"name":
//! "node_b", "status": "open", "last_change_time": 1700000000000, "lag_ms": 3}]}`. Capabilities: `cluster`.

use opshost_guest::prelude::*;
use serde_json::Map;

pub struct ClusterNetwork;

impl Operation for ClusterNetwork {
    const NAME: &'static str = "cluster_network";
    type Request = Map<String, Value>;
    type Response = Value;

    fn handle(_ctx: &Context, _req: Map<String, Value>) -> Result<Value, Error> {
        let status = cluster::status()?;
        let mut nodes = vec![json!({ "name": status["node_name"], "is_self": true, "connected": status["connected"] })];
        for c in status["connections"].as_array().into_iter().flatten() {
            nodes.push(json!({ "name": c["node_name"], "status": c["status"], "last_change_time": c["last_change_time"], "lag_ms": c["lag_ms"] }));
        }
        Ok(json!({ "nodes": nodes }))
    }
}

opshost_guest::export_operation!(ClusterNetwork);
