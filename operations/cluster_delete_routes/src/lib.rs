//! `cluster_delete_routes`: removes NATS servers from `clustering.nats.servers` (HarperDB's
//! routes). Takes effect on `restart_service clustering`.
//!
//! Request: `{"operation": "cluster_delete_routes", "routes": [{"host": "127.0.0.1", "port":
//! 4222}]}` → `{"message": "cluster routes successfully deleted", "deleted": [...], "skipped":
//! [...]}` (skipped: not there). Capabilities: `config`.

use opshost_guest::prelude::*;

pub struct ClusterDeleteRoutes;

#[derive(Deserialize)]
pub struct Request {
    routes: Option<Vec<Value>>,
}

impl Operation for ClusterDeleteRoutes {
    const NAME: &'static str = "cluster_delete_routes";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        let gone = req.routes.filter(|r| !r.is_empty()).ok_or_else(|| Error::BadRequest("'routes' must be a non-empty array".into()))?;
        let gone = gone.iter().map(cluster::route_from_json).collect::<Result<Vec<_>, _>>()?;
        let mut routes = cluster::routes()?;
        let (mut deleted, mut skipped) = (Vec::new(), Vec::new());
        for route in gone {
            let shown = json!({ "host": route.0, "port": route.1 });
            match routes.iter().position(|r| *r == route) {
                Some(i) => {
                    routes.remove(i);
                    deleted.push(shown);
                }
                None => skipped.push(shown),
            }
        }
        if !deleted.is_empty() {
            cluster::set_routes(&routes)?;
        }
        Ok(json!({ "message": "cluster routes successfully deleted", "deleted": deleted, "skipped": skipped }))
    }
}

opshost_guest::export_operation!(ClusterDeleteRoutes);
