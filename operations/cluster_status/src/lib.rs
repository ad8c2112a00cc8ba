//! `cluster_status`: this node's name, whether clustering is enabled, its connection to NATS
//! (pending changes, replication lag of the last applied change) and each known node with its
//! connection state and subscriptions.
//!
//! Request: `{"operation": "cluster_status"}` → `{"node_name": "node_a", "is_enabled": true,
//! "connected": true, "pending_changes": 0, "lag_ms": 3, "connections": [{"node_name":
//! "node_b", "status": "open", "subscriptions": [...]}], ...}`. Capabilities: `cluster`.

use opshost_guest::prelude::*;

pub struct ClusterStatus;

impl Operation for ClusterStatus {
    const NAME: &'static str = "cluster_status";
    type Request = Empty;
    type Response = Value;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Value, Error> {
        cluster::status()
    }
}

opshost_guest::export_operation!(ClusterStatus);
