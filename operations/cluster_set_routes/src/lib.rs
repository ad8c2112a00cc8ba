//! `cluster_set_routes`: adds NATS servers to `clustering.nats.servers` (HarperDB's hub routes;
//! `server: "leaf"` is refused, opshost has no leaf servers). Takes effect on `restart_service
//! clustering`.
//!
//! Request: `{"operation": "cluster_set_routes", "server": "hub", "routes": [{"host":
//! "127.0.0.1", "port": 4222}]}` → `{"message": "cluster routes successfully set", "set":
//! [...], "skipped": [...]}` (skipped: already there). Capabilities: `config`.

use opshost_guest::prelude::*;

pub struct ClusterSetRoutes;

#[derive(Deserialize)]
pub struct Request {
    server: Option<String>,
    routes: Option<Vec<Value>>,
}

impl Operation for ClusterSetRoutes {
    const NAME: &'static str = "cluster_set_routes";
    type Request = Request;
    type Response = Value;

    fn handle(_ctx: &Context, req: Request) -> Result<Value, Error> {
        match req.server.as_deref() {
            Some("hub") => {}
            Some("leaf") => return Err(Error::BadRequest("opshost connects to NATS servers directly: there are no leaf routes, use 'server': 'hub'".into())),
            _ => return Err(Error::BadRequest("'server' must be 'hub' or 'leaf'".into())),
        }
        let wanted = req.routes.filter(|r| !r.is_empty()).ok_or_else(|| Error::BadRequest("'routes' must be a non-empty array".into()))?;
        let wanted = wanted.iter().map(cluster::route_from_json).collect::<Result<Vec<_>, _>>()?;
        let mut routes = cluster::routes()?;
        let (mut set, mut skipped) = (Vec::new(), Vec::new());
        for route in wanted {
            let shown = json!({ "host": route.0, "port": route.1 });
            if routes.contains(&route) {
                skipped.push(shown);
            } else {
                routes.push(route);
                set.push(shown);
            }
        }
        if !set.is_empty() {
            cluster::set_routes(&routes)?;
        }
        Ok(json!({ "message": "cluster routes successfully set", "set": set, "skipped": skipped }))
    }
}

opshost_guest::export_operation!(ClusterSetRoutes);
