//! `cluster_get_routes`: HarperDB's hub routes, which in opshost are the NATS servers this node
//! connects to (`clustering.nats.servers`); opshost has no leaf servers.
//!
//! Request: `{"operation": "cluster_get_routes"}` → `{"hub": [{"host": "127.0.0.1", "port":
//! 4222}], "leaf": []}`. Capabilities: `config`.

use opshost_guest::prelude::*;

pub struct ClusterGetRoutes;

impl Operation for ClusterGetRoutes {
    const NAME: &'static str = "cluster_get_routes";
    type Request = Empty;
    type Response = Value;

    fn handle(_ctx: &Context, _req: Empty) -> Result<Value, Error> {
        let hub: Vec<Value> = cluster::routes()?.into_iter().map(|(host, port)| json!({ "host": host, "port": port })).collect();
        Ok(json!({ "hub": hub, "leaf": [] }))
    }
}

opshost_guest::export_operation!(ClusterGetRoutes);
