//! The typed, effective settings the host runs with, built from the configuration file over the
//! embedded defaults.

use super::schema::parse_duration;
use super::get_path;
use anyhow::{Context, Result};
use serde_json::Value;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The typed, effective settings the host runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub root: PathBuf,
    pub components_root: PathBuf,
    pub operations_addr: SocketAddr,
    pub log_level: String,
    pub call_memory: usize,
    pub call_timeout: Duration,
    pub max_concurrent_calls: u32,
    pub auth_cache_ttl: Duration,
    pub threads: usize,
    pub storage_path: PathBuf,
    /// The node certificate's name: the operations API host (`127.0.0.1` by default).
    pub node_name: String,
    /// `operationsApi.network.securePort`: HTTPS with the node certificate, when set.
    pub secure_addr: Option<SocketAddr>,
    pub write_async: bool,
    /// Folders export operations may write into.
    pub export_roots: Vec<PathBuf>,
    /// Folders bulk loads (`csv_file_load`) may read from.
    pub import_roots: Vec<PathBuf>,
    /// Largest download `csv_url_load` accepts, in bytes.
    pub import_max_bytes: u64,
    /// Time limit of one job's run.
    pub job_timeout: Duration,
    pub max_concurrent_jobs: usize,
    pub operation_token_timeout: Duration,
    pub refresh_token_timeout: Duration,
    pub log_failed_logins: bool,
    /// `logging.auditLog` and `logging.auditRetention`: user tables keep an audit log, and
    /// entries older than the retention are removed in the background.
    pub audit_log: bool,
    pub audit_retention: Duration,
    /// `logging.root`, `file`, `format`, `stdStreams` and `rotation`: where the server log goes.
    pub log: crate::services::logs::LogConfig,
    /// Who may import what, and which built-ins third-party components may replace.
    pub policy: crate::services::grants::Policy,
    /// Versions of each deployed component kept for `rollback_component`.
    pub component_versions: usize,
    /// Largest component `deploy_component` accepts, in bytes.
    pub component_max_size: usize,
    /// `operationsApi.network.maxBodySize`: largest request body of an authenticated caller, in
    /// bytes (an anonymous one gets far less; see api::routes).
    pub max_body_size: usize,
    /// `operationsApi.network.maxConnections`: open client connections, both listeners together;
    /// further connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// `operationsApi.network.headersTimeout` (ms): time to send a request's headers (and the
    /// idle time allowed between keep-alive requests) before the connection is closed.
    pub headers_timeout: Duration,
    /// `localStudio.enabled`: serve the Studio web console at `GET /`.
    pub studio_enabled: bool,
    /// `operationsApi.answerCache`: keep answers of calls that only read (answers.rs).
    pub answer_cache: bool,
}

/// The settings from the file's values (`file`), a key missing or null there taken from the
/// defaults (`defaults`).
pub(super) fn from_values(root: &Path, file: &Value, defaults: &Value) -> Result<Settings> {
    let get = |path: &str| get_path(file, path).filter(|v| !v.is_null()).or_else(|| get_path(defaults, path)).cloned();
    let num = |path: &str| get(path).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let string = |path: &str| get(path).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let host = string("operationsApi.network.host");
    let port = get("operationsApi.network.port").unwrap_or(Value::from(9925));
    let operations_addr = resolve_listen(&host, &port)?;
    Ok(Settings {
        root: root.to_path_buf(),
        components_root: PathBuf::from(string("componentsRoot")),
        operations_addr,
        log_level: string("logging.level"),
        call_memory: (num("operationsApi.limits.callMemoryMB") as usize).max(1) << 20,
        call_timeout: Duration::from_millis(num("operationsApi.limits.callTimeout").max(1.0) as u64),
        max_concurrent_calls: (num("operationsApi.limits.maxConcurrentCalls") as u32).max(1),
        auth_cache_ttl: Duration::from_millis(num("authentication.cacheTTL") as u64),
        threads: (num("threads.count") as usize).max(1),
        storage_path: PathBuf::from(string("storage.path")),
        node_name: host.clone(),
        secure_addr: match get("operationsApi.network.securePort") {
            Some(port) if !port.is_null() => Some(resolve_listen(&host, &port)?),
            _ => None,
        },
        write_async: get("storage.writeAsync").and_then(|v| v.as_bool()).unwrap_or(false),
        export_roots: match get("operationsApi.exportRoots") {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(PathBuf::from).collect(),
            // Not the shared temp folder: any local user could plant a folder there.
            _ => vec![root.join("exports")],
        },
        import_roots: match get("operationsApi.importRoots") {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(PathBuf::from).collect(),
            _ => vec![root.join("imports")],
        },
        import_max_bytes: (num("operationsApi.importMaxSizeMB").max(1.0) as u64).saturating_mul(1 << 20),
        job_timeout: Duration::from_millis(num("operationsApi.limits.jobTimeout").max(1.0) as u64),
        max_concurrent_jobs: (num("operationsApi.jobs.maxConcurrent") as usize).max(1),
        operation_token_timeout: parse_duration(&string("authentication.operationTokenTimeout")).unwrap_or(Duration::from_secs(86_400)),
        refresh_token_timeout: parse_duration(&string("authentication.refreshTokenTimeout")).unwrap_or(Duration::from_secs(30 * 86_400)),
        log_failed_logins: get("logging.auditAuthEvents.logFailed").and_then(|v| v.as_bool()).unwrap_or(false),
        audit_log: get("logging.auditLog").and_then(|v| v.as_bool()).unwrap_or(true),
        audit_retention: parse_duration(&string("logging.auditRetention")).unwrap_or(crate::services::storage::audit::DEFAULT_RETENTION),
        log: crate::services::logs::LogConfig {
            root: PathBuf::from(string("logging.root")),
            file: get("logging.file").and_then(|v| v.as_bool()).unwrap_or(true),
            std_streams: get("logging.stdStreams").and_then(|v| v.as_bool()).unwrap_or(true),
            json: string("logging.format") == "json",
            rotation: crate::services::logs::Rotation {
                enabled: get("logging.rotation.enabled").and_then(|v| v.as_bool()).unwrap_or(false),
                interval: get("logging.rotation.interval").and_then(|v| v.as_str().and_then(crate::services::logs::parse_interval)),
                max_size: get("logging.rotation.maxSize").and_then(|v| v.as_str().and_then(crate::services::logs::parse_size)),
                compress: get("logging.rotation.compress").and_then(|v| v.as_bool()).unwrap_or(false),
                path: get("logging.rotation.path").and_then(|v| v.as_str().filter(|p| !p.is_empty()).map(PathBuf::from)),
            },
        },
        policy: crate::services::grants::Policy {
            grants: get("operationsApi.grants")
                .and_then(|v| v.as_object().cloned())
                .map(|m| {
                    m.into_iter()
                        .map(|(op, list)| (op, list.as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_string)).collect()))
                        .collect()
                })
                .unwrap_or_default(),
            replace_builtins: get("operationsApi.replaceBuiltins")
                .and_then(|v| v.as_array().cloned())
                .map(|l| l.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            deployed: Default::default(),
            require_signed: get("operationsApi.components.requireSigned").and_then(|v| v.as_bool()).unwrap_or(false),
            trusted_keys: get("operationsApi.components.trustedKeys")
                .and_then(|v| v.as_array().cloned())
                .map(|l| l.iter().filter_map(Value::as_str).filter_map(|k| crate::services::signing::parse_public_key(k).ok()).collect())
                .unwrap_or_default(),
        },
        component_versions: (num("operationsApi.components.keepVersions") as usize).max(1),
        component_max_size: (num("operationsApi.components.maxSizeMB") as usize).max(1) << 20,
        max_body_size: (num("operationsApi.network.maxBodySize") as usize).max(1),
        max_connections: (num("operationsApi.network.maxConnections") as usize).max(1),
        headers_timeout: Duration::from_millis(num("operationsApi.network.headersTimeout").max(1.0) as u64),
        // Files written before the key existed keep the Studio on, HarperDB's default.
        studio_enabled: get("localStudio.enabled").and_then(|v| v.as_bool()).unwrap_or(true),
        answer_cache: get("operationsApi.answerCache").and_then(|v| v.as_bool()).unwrap_or(true),
    })
}

/// The listen address from `host` and a port value (a number, or `"host:port"`).
fn resolve_listen(host: &str, port: &Value) -> Result<SocketAddr> {
    let spec = match port {
        Value::Number(n) => format!("{host}:{n}"),
        Value::String(s) => s.clone(),
        other => anyhow::bail!("operationsApi.network.port has an unusable value {other}"),
    };
    spec.to_socket_addrs()
        .with_context(|| format!("resolving the listen address '{spec}'"))?
        .next()
        .with_context(|| format!("'{spec}' resolves to no address"))
}
