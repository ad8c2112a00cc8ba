//! `cluster` capability: this node's cluster status and its registrations of remote nodes,
//! through the cluster service (services/cluster).

use super::CallState;
use crate::bindings::opshost::host::cluster::{Host, NodeChange};
use crate::bindings::OpError;
use crate::services::cluster::NodeEntry;

impl Host for CallState {
    fn status(&mut self) -> Result<String, OpError> {
        self.check("cluster")?;
        Ok(self.services.cluster.status().to_string())
    }

    fn set_node(&mut self, node: String, change: NodeChange) -> Result<(), OpError> {
        self.check("cluster")?;
        let entry: NodeEntry = serde_json::from_str(&node).map_err(|e| OpError::BadRequest(format!("invalid node registration: {e}")))?;
        let (must_be_new, must_exist) = match change {
            NodeChange::Add => (true, false),
            NodeChange::Update => (false, true),
            NodeChange::Upsert => (false, false),
        };
        // One small synced write to the node's own system table.
        Ok(self.services.cluster.set_node(entry, must_be_new, must_exist)?)
    }

    fn remove_node(&mut self, node_name: String) -> Result<(), OpError> {
        self.check("cluster")?;
        Ok(self.services.cluster.remove_node(&node_name)?)
    }

    fn list_nodes(&mut self) -> Result<String, OpError> {
        self.check("cluster")?;
        Ok(serde_json::to_string(&self.services.cluster.nodes()).map_err(|e| OpError::Internal(e.to_string()))?)
    }
}
