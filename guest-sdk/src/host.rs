//! Thin, typed wrappers over the host interfaces, so operations deal in serde values and
//! `Error`, never in raw bindings.

use crate::bindings::opshost::host as wit;
use crate::Error;

fn parse_json(text: &str, what: &str) -> Result<serde_json::Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::Internal(format!("host returned invalid {what}: {e}")))
}

/// The configuration file.
pub mod config {
    use super::*;

    /// The configuration file as a JSON value.
    pub fn get() -> Result<serde_json::Value, Error> {
        parse_json(&wit::config::get()?, "configuration")
    }

    /// The configuration file as the host's JSON text, passed through without re-encoding
    /// (get_configuration is a hot path).
    pub fn get_raw() -> Result<Box<serde_json::value::RawValue>, Error> {
        serde_json::value::RawValue::from_string(wit::config::get()?)
            .map_err(|e| Error::Internal(format!("host returned invalid configuration: {e}")))
    }

    /// Sets flattened keys persistently; all are validated before anything is written.
    pub fn set<'a>(changes: impl IntoIterator<Item = (&'a str, &'a serde_json::Value)>) -> Result<(), Error> {
        let changes: Vec<(String, String)> =
            changes.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        wit::config::set(&changes)
    }
}

/// Facts about the machine and this server.
pub mod sysinfo {
    use super::*;
    pub use crate::bindings::opshost::host::sysinfo::Section;

    /// One section of `system_information` as JSON.
    pub fn get(section: Section) -> Result<serde_json::Value, Error> {
        parse_json(&wit::sysinfo::get(section)?, "system information")
    }
}

/// This node's cluster (NATS JetStream replication) and its registrations of remote nodes.
pub mod cluster {
    use super::*;
    pub use crate::bindings::opshost::host::cluster::NodeChange;

    /// `cluster_status`'s body.
    pub fn status() -> Result<serde_json::Value, Error> {
        parse_json(&wit::cluster::status()?, "cluster status")
    }

    /// Registers or changes a node: `{"node_name", "subscriptions": [...]}`.
    pub fn set_node(node: &serde_json::Value, change: NodeChange) -> Result<(), Error> {
        wit::cluster::set_node(&node.to_string(), change)
    }

    pub fn remove_node(node_name: &str) -> Result<(), Error> {
        wit::cluster::remove_node(node_name)
    }

    /// What a registration request (`add_node`, `update_node`, `set_node_replication`) asks
    /// for: the node's name and the registration in [`set_node`]'s shape, with HarperDB's
    /// `subscriptions` (`schema` or `database`, `table`, `subscribe`, `publish`) passed as given
    /// (none: every table both ways). A missing or empty `node_name` is HarperDB's 400.
    pub fn node_request(req: &serde_json::Map<String, serde_json::Value>) -> Result<(String, serde_json::Value), Error> {
        let name = match req.get("node_name") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(Error::BadRequest("'node_name' is required".into())),
        };
        let subscriptions = req.get("subscriptions").cloned().unwrap_or_else(|| serde_json::json!([]));
        Ok((name.clone(), serde_json::json!({ "node_name": name, "subscriptions": subscriptions })))
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn node_request_needs_a_name_and_keeps_subscriptions() {
            let req = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
            let subs = json!([{"schema": "dev", "table": "dog", "subscribe": true, "publish": false}]);
            let (name, node) = node_request(&req(json!({"node_name": "b", "subscriptions": subs}))).expect("valid");
            assert_eq!((name.as_str(), node), ("b", json!({"node_name": "b", "subscriptions": subs})));
            assert_eq!(node_request(&req(json!({"node_name": "b"}))).expect("valid").1["subscriptions"], json!([]));
            for bad in [json!({}), json!({"node_name": ""}), json!({"node_name": 1})] {
                assert!(matches!(node_request(&req(bad)), Err(Error::BadRequest(_))));
            }
        }
    }

    /// The registered nodes.
    pub fn list_nodes() -> Result<serde_json::Value, Error> {
        parse_json(&wit::cluster::list_nodes()?, "node list")
    }

    /// HarperDB's cluster routes are opshost's NATS servers (`clustering.nats.servers`), as
    /// `(host, port)` pairs; an unset list is empty.
    pub fn routes() -> Result<Vec<(String, u16)>, Error> {
        let config = super::config::get()?;
        let servers = config.pointer("/clustering/nats/servers").and_then(serde_json::Value::as_str).unwrap_or_default();
        Ok(servers.split(',').filter_map(|url| parse_route(url.trim())).collect())
    }

    /// Replaces `clustering.nats.servers` (taking effect on `restart_service clustering`).
    pub fn set_routes(routes: &[(String, u16)]) -> Result<(), Error> {
        let text: Vec<String> = routes.iter().map(|(h, p)| format!("nats://{h}:{p}")).collect();
        let value = serde_json::Value::String(text.join(","));
        super::config::set([("clustering_nats_servers", &value)])
    }

    /// A route as HarperDB gives it: `{"host": "...", "port": 12345}`.
    pub fn route_from_json(v: &serde_json::Value) -> Result<(String, u16), Error> {
        let host = v.get("host").and_then(serde_json::Value::as_str).filter(|h| !h.is_empty() && !h.contains([',', '/', ' ']));
        let port = v.get("port").and_then(serde_json::Value::as_u64).filter(|p| (1..=65535).contains(p));
        match (host, port) {
            (Some(h), Some(p)) => Ok((h.to_string(), p as u16)),
            _ => Err(Error::BadRequest("each route needs a 'host' and a 'port' (1-65535)".into())),
        }
    }

    fn parse_route(url: &str) -> Option<(String, u16)> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, port) = rest.rsplit_once(':')?;
        Some((host.to_string(), port.trim_end_matches('/').parse().ok()?))
    }
}

/// Control over the running server.
pub mod control {
    use super::*;

    /// Restart in place after this call answers.
    pub fn restart() -> Result<(), Error> {
        wit::control::restart()
    }

    /// Restarts one service (`http_workers`/`http` rebind the listeners gracefully;
    /// `clustering`, `clustering_config` do nothing without clustering). Any other name is a
    /// `bad-request` `Invalid service`.
    pub fn restart_service(service: &str) -> Result<(), Error> {
        wit::control::restart_service(service)
    }
}

/// Log lines into the host's log.
pub mod log {
    use super::wit::log::{write, Level};
    pub use super::wit::log::LogQuery;

    /// The server log's entries as a JSON array (super users only).
    pub fn read(query: &LogQuery) -> Result<String, crate::Error> {
        super::wit::log::read(query)
    }

    pub fn info(message: &str) {
        write(Level::Info, message);
    }
    pub fn warn(message: &str) {
        write(Level::Warn, message);
    }
    pub fn error(message: &str) {
        write(Level::Error, message);
    }
    pub fn debug(message: &str) {
        write(Level::Debug, message);
    }
}

/// On wasm32-unknown-unknown a panic message is otherwise lost: send it to the host log
/// before the trap ends the call.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            wit::log::write(wit::log::Level::Error, &format!("operation panicked: {info}"));
        }));
    });
}

/// The certificate store. Private keys go in, never come out.
pub mod certs {
    use super::*;
    pub use crate::bindings::opshost::host::certs::Certificate;

    /// Every certificate, sorted by name.
    pub fn list() -> Result<Vec<Certificate>, Error> {
        wit::certs::list_all()
    }

    /// Every certificate as `list_certificates` answers it (JSON encoded by the host).
    pub fn list_raw() -> Result<Box<serde_json::value::RawValue>, Error> {
        serde_json::value::RawValue::from_string(wit::certs::list_json()?)
            .map_err(|e| Error::Internal(format!("host returned an invalid certificate list: {e}")))
    }

    /// Adds or replaces a certificate; the key, when given, must match it.
    pub fn add(name: &str, certificate: &str, is_authority: bool, private_key: Option<&str>, hosts: Option<&[String]>) -> Result<(), Error> {
        wit::certs::add(name, certificate, is_authority, private_key, hosts.map(|h| h.to_vec()).as_deref())
    }

    pub fn remove(name: &str) -> Result<(), Error> {
        wit::certs::remove(name)
    }
}

/// The operation catalog: every component the host knows and how it is doing.
pub mod catalog {
    use super::*;

    /// One JSON object per component file, sorted by operation name: `{name, aliases, version,
    /// source, builtin, hash, grants, loaded_at, status, last_error, stats}` (see
    /// `wit/catalog.wit`). Empty when the operation is not granted `catalog`.
    pub fn operations() -> Result<Vec<serde_json::Value>, Error> {
        wit::catalog::operations().iter().map(|entry| parse_json(entry, "catalog entry")).collect()
    }
}

/// Package managers run by the host in project folders under `componentsRoot`.
pub mod packages {
    use super::*;
    pub use crate::bindings::opshost::host::packages::NpmResult;

    /// Runs `npm install` (`--dry-run` when asked) in `<componentsRoot>/<project>` and returns
    /// what npm printed. `not-found` when the project or its `package.json` does not exist,
    /// `bad-request` when `project` is not a plain folder name; a failing or missing npm is
    /// not an error (its text is in `error`).
    pub fn npm_install(project: &str, dry_run: bool) -> Result<NpmResult, Error> {
        wit::packages::npm_install(project, dry_run)
    }
}

/// Components deployed through the operations API (super_user operations only).
pub mod components {
    use super::*;
    pub use crate::bindings::opshost::host::components::DeployRequest;

    /// Checks and swaps in a component; the answer says what now serves.
    pub fn deploy(request: &DeployRequest) -> Result<serde_json::Value, Error> {
        parse_json(&wit::components::deploy(request)?, "deploy answer")
    }

    /// Every deployed component with its kept versions.
    pub fn list() -> Result<serde_json::Value, Error> {
        parse_json(&wit::components::list()?, "component list")
    }

    /// One kept version (default: the serving one), the bytes base64 in `payload`.
    pub fn file(name: &str, version: Option<u64>) -> Result<serde_json::Value, Error> {
        parse_json(&wit::components::file(name, version)?, "component file")
    }

    /// Stops serving a deployed component and deletes its versions (`replicated`: on every
    /// node of the cluster).
    pub fn drop_component(name: &str, replicated: bool) -> Result<serde_json::Value, Error> {
        parse_json(&wit::components::drop(name, replicated)?, "drop answer")
    }

    /// Serves a kept version again (default: the one before the serving one).
    pub fn rollback(name: &str, version: Option<u64>) -> Result<serde_json::Value, Error> {
        parse_json(&wit::components::rollback(name, version)?, "rollback answer")
    }

    /// Audit events (deploy, drop, rollback), oldest first.
    pub fn events(name: Option<&str>) -> Result<serde_json::Value, Error> {
        parse_json(&wit::components::events(name)?, "component events")
    }
}
