//! The configuration service: `<rootPath>/opshost-config.yaml`, created with embedded defaults,
//! validated against a schema, written atomically with a backup, and cached in memory keyed by
//! the file's modification stamp (get_configuration is a hot path).

use super::ServiceError;
use anyhow::{Context, Result};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const FILE_NAME: &str = "opshost-config.yaml";
const DEFAULTS: &str = include_str!("default-config.yaml");
const LEVELS: &[&str] = &["notify", "fatal", "error", "warn", "info", "debug", "trace"];

/// What a configuration value may be.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Bool,
    /// A non-negative number.
    Number,
    /// A positive integer.
    Count,
    String,
    /// A port number, or `"host:port"` as HarperDB accepts.
    Port,
    /// A port, or null for "off".
    OptionalPort,
    /// `1d`, `30m`, `3600s`, ... as HarperDB's token timeouts.
    Duration,
    /// An absolute path.
    Path,
    /// A list of absolute paths.
    Paths,
    /// Operation name -> list of interface names it may import.
    Grants,
    /// A list of operation names.
    Names,
    /// A list of Ed25519 public keys (PEM or base64).
    PublicKeys,
    OneOf(&'static [&'static str]),
    /// `logging.rotation.maxSize` (`64M`), or null.
    LogSize,
    /// `logging.rotation.interval` (`1D`, `12h`), or null.
    LogInterval,
}

/// Every key the file may hold. `set_configuration` refuses anything else by name.
const SCHEMA: &[(&str, Kind)] = &[
    ("authentication.cacheTTL", Kind::Number),
    ("authentication.operationTokenTimeout", Kind::Duration),
    ("authentication.refreshTokenTimeout", Kind::Duration),
    // Clustering over NATS JetStream (services/cluster): off unless enabled; no defaults in
    // the file, so a single node's configuration stays as it was.
    ("clustering.enabled", Kind::Bool),
    ("clustering.nodeName", Kind::String),
    ("clustering.nats.servers", Kind::String),
    ("clustering.nats.replicas", Kind::Count),
    ("clustering.nats.stream", Kind::String),
    ("clustering.user", Kind::String),
    ("clustering.password", Kind::String),
    ("clustering.tls.certificateAuthority", Kind::String),
    ("clustering.publishTimeout", Kind::Count),
    ("componentsRoot", Kind::Path),
    ("logging.auditAuthEvents.logFailed", Kind::Bool),
    ("logging.auditAuthEvents.logSuccessful", Kind::Bool),
    ("logging.auditLog", Kind::Bool),
    ("logging.auditRetention", Kind::Duration),
    ("logging.file", Kind::Bool),
    ("logging.format", Kind::OneOf(&["text", "json"])),
    ("logging.level", Kind::OneOf(LEVELS)),
    ("logging.root", Kind::Path),
    ("logging.rotation.enabled", Kind::Bool),
    ("logging.rotation.compress", Kind::Bool),
    ("logging.rotation.interval", Kind::LogInterval),
    ("logging.rotation.maxSize", Kind::LogSize),
    ("logging.rotation.path", Kind::Path),
    ("logging.stdStreams", Kind::Bool),
    ("localStudio.enabled", Kind::Bool),
    ("operationsApi.network.host", Kind::String),
    ("operationsApi.network.port", Kind::Port),
    ("operationsApi.network.securePort", Kind::OptionalPort),
    ("operationsApi.network.maxBodySize", Kind::Count),
    ("operationsApi.network.maxConnections", Kind::Count),
    ("operationsApi.network.headersTimeout", Kind::Count),
    ("operationsApi.limits.callMemoryMB", Kind::Count),
    ("operationsApi.limits.callTimeout", Kind::Count),
    ("operationsApi.limits.maxConcurrentCalls", Kind::Count),
    ("operationsApi.limits.jobTimeout", Kind::Count),
    ("operationsApi.jobs.maxConcurrent", Kind::Count),
    ("operationsApi.exportRoots", Kind::Paths),
    ("operationsApi.importRoots", Kind::Paths),
    ("operationsApi.importMaxSizeMB", Kind::Count),
    ("operationsApi.grants", Kind::Grants),
    ("operationsApi.replaceBuiltins", Kind::Names),
    ("operationsApi.components.trustedKeys", Kind::PublicKeys),
    ("operationsApi.components.requireSigned", Kind::Bool),
    ("operationsApi.components.keepVersions", Kind::Count),
    ("operationsApi.components.maxSizeMB", Kind::Count),
    ("rootPath", Kind::Path),
    ("storage.path", Kind::Path),
    ("storage.writeAsync", Kind::Bool),
    ("threads.count", Kind::Count),
    ("tls.certificate", Kind::Path),
    ("tls.certificateAuthority", Kind::Path),
    ("tls.privateKey", Kind::Path),
];

/// Keys fixed at first start: the root is where the file itself lives.
const READ_ONLY: &[&str] = &["rootPath"];

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
}

pub struct ConfigService {
    root: PathBuf,
    path: PathBuf,
    cache: Mutex<Option<Cached>>,
    /// Serializes writers so two set_configuration calls cannot interleave.
    write_lock: Mutex<()>,
    /// The settings last computed by [`ConfigService::settings`] (at start and on restart):
    /// what the running server uses, without re-reading the file, re-parsing the defaults or
    /// resolving the host name (a blocking getaddrinfo) on a request path.
    effective: Mutex<Option<Arc<Settings>>>,
}

struct Cached {
    stamp: (SystemTime, u64),
    json: Arc<str>,
    value: Value,
}

impl ConfigService {
    /// Opens `<root>/opshost-config.yaml`, creating the root and the file with defaults when
    /// they do not exist.
    pub fn open(root: &Path) -> Result<Self> {
        // 0700: the root holds the keys, the database and the exports (see files::private_dir).
        super::files::private_dir(root).with_context(|| format!("creating the root folder {}", root.display()))?;
        let path = root.join(FILE_NAME);
        let service = Self { root: root.to_path_buf(), path, cache: Mutex::new(None), write_lock: Mutex::new(()), effective: Mutex::new(None) };
        if !service.path.exists() {
            let text = DEFAULTS.replace("{ROOT}", &root.display().to_string()).replace("{TMP}", &std::env::temp_dir().display().to_string());
            write_atomically(&service.path, text.as_bytes())?;
        }
        Ok(service)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as JSON text (what `get_configuration` answers, secrets redacted), from the cache
    /// unless the file changed on disk.
    pub fn file_json(&self) -> Result<Arc<str>, ServiceError> {
        self.cached(|c| c.json.clone())
    }

    /// The file as a JSON value.
    pub fn file_value(&self) -> Result<Value, ServiceError> {
        self.cached(|c| c.value.clone())
    }

    fn cached<T>(&self, f: impl FnOnce(&Cached) -> T) -> Result<T, ServiceError> {
        let stamp = file_stamp(&self.path).map_err(ServiceError::Internal)?;
        let mut cache = self.cache.lock();
        if let Some(c) = cache.as_ref().filter(|c| c.stamp == stamp) {
            return Ok(f(c));
        }
        let value = read_file(&self.path).map_err(ServiceError::Internal)?;
        let json: Arc<str> = redacted(&value).to_string().into();
        let fresh = Cached { stamp, json, value };
        let out = f(&fresh);
        *cache = Some(fresh);
        Ok(out)
    }

    /// Sets flattened keys. Every key and value is validated before anything is written;
    /// the old file goes to `<root>/backup/` and the new one replaces it atomically.
    pub fn set(&self, changes: &[(String, String)]) -> Result<(), ServiceError> {
        let mut resolved = Vec::with_capacity(changes.len());
        for (key, raw) in changes {
            let (path, kind) = lookup_flat(key)
                .ok_or_else(|| ServiceError::BadRequest(format!("Unknown configuration key '{key}'")))?;
            if READ_ONLY.contains(&path) {
                return Err(ServiceError::BadRequest(format!(
                    "'{key}' cannot be changed with set_configuration"
                )));
            }
            let value: Value = serde_json::from_str(raw)
                .map_err(|_| ServiceError::BadRequest(format!("'{key}' is not a valid value")))?;
            validate(path, kind, &value).map_err(ServiceError::BadRequest)?;
            resolved.push((path, value));
        }
        self.write_changes(&resolved, true).map_err(ServiceError::Internal)
    }

    /// Applies overrides given by dotted path (environment variables and flags at start-up,
    /// as HarperDB does, which also writes them into the file). Invalid values fail start-up.
    pub fn apply_overrides(&self, overrides: &[(String, Value)]) -> Result<()> {
        let mut resolved = Vec::new();
        for (path, value) in overrides {
            let (path, kind) = SCHEMA
                .iter()
                .find(|(p, _)| p == path)
                .copied()
                .with_context(|| format!("unknown configuration key '{path}'"))?;
            validate(path, kind, value).map_err(anyhow::Error::msg)?;
            resolved.push((path, value.clone()));
        }
        let current = self.file_value().map_err(ServiceError::into_anyhow)?;
        if resolved.iter().all(|(p, v)| get_path(&current, p) == Some(v)) {
            return Ok(());
        }
        self.write_changes(&resolved, false)
    }

    /// Environment overrides named like the configuration keys (`LOGGING_LEVEL`,
    /// `OPERATIONSAPI_NETWORK_PORT`, ...), values parsed as YAML scalars.
    pub fn env_overrides(env: impl Fn(&str) -> Option<String>) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (path, _) in SCHEMA {
            if READ_ONLY.contains(path) {
                continue;
            }
            let name = path.replace('.', "_").to_uppercase();
            if let Some(raw) = env(&name) {
                let value = yaml_serde::from_str::<Value>(&raw).unwrap_or(Value::String(raw));
                out.push((path.to_string(), value));
            }
        }
        out
    }

    /// The settings in effect: those the last [`ConfigService::settings`] computed (start-up,
    /// restart), read from the file only if none was computed yet. Cheap and non-blocking.
    pub fn current(&self) -> Result<Arc<Settings>> {
        if let Some(s) = self.effective.lock().clone() {
            return Ok(s);
        }
        self.settings().map(Arc::new)
    }

    /// The effective settings, from the file (and remembered for [`ConfigService::current`]).
    pub fn settings(&self) -> Result<Settings> {
        let settings = self.read_settings()?;
        *self.effective.lock() = Some(Arc::new(settings.clone()));
        Ok(settings)
    }

    fn read_settings(&self) -> Result<Settings> {
        let file = self.file_value().map_err(ServiceError::into_anyhow)?;
        let defaults = defaults_value(&self.root)?;
        let get = |path: &str| get_path(&file, path).filter(|v| !v.is_null()).or_else(|| get_path(&defaults, path)).cloned();
        let num = |path: &str| get(path).and_then(|v| v.as_f64()).unwrap_or(0.0);
        let string = |path: &str| get(path).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let host = string("operationsApi.network.host");
        let port = get("operationsApi.network.port").unwrap_or(Value::from(9925));
        let operations_addr = resolve_listen(&host, &port)?;
        Ok(Settings {
            root: self.root.clone(),
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
                _ => vec![self.root.join("exports")],
            },
            import_roots: match get("operationsApi.importRoots") {
                Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(PathBuf::from).collect(),
                _ => vec![self.root.join("imports")],
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
        })
    }

    fn write_changes(&self, changes: &[(&str, Value)], backup: bool) -> Result<()> {
        let _guard = self.write_lock.lock();
        let mut doc = read_file(&self.path)?;
        for (path, value) in changes {
            set_path(&mut doc, path, value.clone());
        }
        if backup {
            let dir = self.root.join("backup");
            std::fs::create_dir_all(&dir)?;
            let stamp = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
                .replace(':', "-");
            let old = std::fs::read(&self.path)?;
            write_atomically(&dir.join(format!("{stamp}-{FILE_NAME}.bak")), &old)?;
        }
        let text = format!(
            "# opshost configuration (HarperDB-shaped). Edit with set_configuration and restart.\n{}",
            yaml_serde::to_string(&doc)?
        );
        write_atomically(&self.path, text.as_bytes())?;
        *self.cache.lock() = None;
        Ok(())
    }
}

/// Finds the schema entry for a flattened key, case-insensitively
/// (`operationsapi_network_port` -> `operationsApi.network.port`).
fn lookup_flat(key: &str) -> Option<(&'static str, Kind)> {
    let key = key.to_ascii_lowercase();
    SCHEMA.iter().find(|(path, _)| path.replace('.', "_").to_ascii_lowercase() == key).copied()
}

fn validate(path: &str, kind: Kind, value: &Value) -> Result<(), String> {
    let fail = |what: &str| Err(format!("HarperDB config file validation error: '{path}' {what}"));
    match kind {
        Kind::Bool if value.is_boolean() => Ok(()),
        Kind::Bool => fail("must be a boolean"),
        Kind::Number if value.as_f64().is_some_and(|n| n >= 0.0) => Ok(()),
        Kind::Number => fail("must be a number"),
        Kind::Count if value.as_u64().is_some_and(|n| n >= 1) => Ok(()),
        // HarperDB's text for a value that is not a number at all.
        Kind::Count if !value.is_number() => fail("must be a number"),
        Kind::Count => fail("must be a positive integer"),
        Kind::String if value.as_str().is_some_and(|s| !s.is_empty()) => Ok(()),
        Kind::String => fail("must be a string"),
        Kind::OptionalPort if value.is_null() => Ok(()),
        Kind::Port | Kind::OptionalPort => match value {
            Value::Number(n) if n.as_u64().is_some_and(|p| (1..=65535).contains(&p)) => Ok(()),
            Value::String(s) if s.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_some_and(|p| p > 0) => Ok(()),
            _ => fail("must be a port number (1-65535) or 'host:port'"),
        },
        Kind::Duration => match value.as_str() {
            Some(s) if parse_duration(s).is_some() => Ok(()),
            _ => fail("must be a duration such as '1d', '12h', '30m' or '60s', at most 10 years"),
        },
        Kind::Path => match value.as_str() {
            Some(s) if Path::new(s).is_absolute() => Ok(()),
            _ => fail("must be an absolute path"),
        },
        Kind::Paths => match value.as_array() {
            Some(list) if list.iter().all(|p| p.as_str().is_some_and(|s| Path::new(s).is_absolute())) => Ok(()),
            _ => fail("must be a list of absolute paths"),
        },
        Kind::Grants => match value.as_object() {
            Some(map) => {
                for (op, list) in map {
                    let names = list.as_array().filter(|l| l.iter().all(Value::is_string));
                    let Some(names) = names else { return fail(&format!("'{op}' must be a list of interface names")) };
                    if let Some(bad) = names.iter().filter_map(Value::as_str).find(|n| !crate::services::grants::INTERFACES.contains(n) || *n == "types") {
                        return fail(&format!(
                            "'{op}' names unknown interface '{bad}' (one of {})",
                            crate::services::grants::INTERFACES[1..].join(", ")
                        ));
                    }
                }
                Ok(())
            }
            None => fail("must be an object of operation name -> list of interface names"),
        },
        Kind::PublicKeys => match value.as_array() {
            Some(list) => list.iter().try_for_each(|k| match k.as_str() {
                Some(text) => crate::services::signing::parse_public_key(text).map(|_| ()).map_err(|e| format!("'{path}' holds a key that is {e}")),
                None => fail("must be a list of Ed25519 public keys (PEM or base64)"),
            }),
            None => fail("must be a list of Ed25519 public keys (PEM or base64)"),
        },
        Kind::Names => match value.as_array() {
            Some(list) if list.iter().all(Value::is_string) => Ok(()),
            _ => fail("must be a list of operation names"),
        },
        Kind::OneOf(allowed) => match value.as_str() {
            Some(s) if allowed.contains(&s) => Ok(()),
            _ => fail(&format!("must be one of [{}]", allowed.join(", "))),
        },
        Kind::LogSize if value.is_null() || value.as_str().and_then(crate::services::logs::parse_size).is_some() => Ok(()),
        Kind::LogSize => fail("must be a size such as '64M', '512K' or '1G'"),
        Kind::LogInterval if value.is_null() || value.as_str().and_then(crate::services::logs::parse_interval).is_some() => Ok(()),
        Kind::LogInterval => fail("must be an interval such as '1D', '12h' or '30m'"),
    }
}

/// The longest duration a setting may hold: larger values (a token valid for 200000000000000
/// days) overflow the time arithmetic that uses them, so they are refused, not clamped.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 86_400);

/// `1d`, `12h`, `30m`, `60s` or a plain number of seconds, at most [`MAX_DURATION`].
/// The configuration with its secrets (`clustering.password` and any other `password`/`secret`
/// key) replaced: an answer any super_user's client, log or browser may keep must not carry them.
fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = k.to_ascii_lowercase();
                    let secret = (key.contains("password") || key.contains("secret")) && !v.is_object();
                    (k.clone(), if secret && !v.is_null() { Value::String("[redacted]".into()) } else { redacted(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    let secs = n.checked_mul(scale)?;
    Some(Duration::from_secs(secs)).filter(|d| *d <= MAX_DURATION)
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

fn defaults_value(root: &Path) -> Result<Value> {
    let text = DEFAULTS.replace("{ROOT}", &root.display().to_string()).replace("{TMP}", &std::env::temp_dir().display().to_string());
    Ok(yaml_serde::from_str(&text)?)
}

fn read_file(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = yaml_serde::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(if value.is_null() { Value::Object(Map::new()) } else { value })
}

fn file_stamp(path: &Path) -> Result<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((meta.modified()?, meta.len()))
}

fn get_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| v.get(key))
}

/// Sets a dotted path, creating sections that do not exist yet.
fn set_path(doc: &mut Value, path: &str, value: Value) {
    let mut node = doc;
    let mut keys = path.split('.').peekable();
    while let Some(key) = keys.next() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        if keys.peek().is_none() {
            map.insert(key.to_string(), value);
            return;
        }
        node = map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Temp file in the same folder, fsync, rename: readers see the old file or the new one,
/// never half of either.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_mode(path, bytes, 0o666)
}

/// The same, the file created with `mode` (less the umask) from its first byte: a private file
/// is never readable by others, not even between its creation and the rename. The temporary
/// name is hidden (a leading `.`), so folder watchers and scans skip it.
pub fn write_atomically_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("a file path has a parent")?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| -> Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> (tempdir::Dir, ConfigService) {
        let dir = tempdir::Dir::new();
        let svc = ConfigService::open(dir.path()).expect("open");
        (dir, svc)
    }

    fn set(svc: &ConfigService, key: &str, value: Value) -> Result<(), ServiceError> {
        svc.set(&[(key.to_string(), value.to_string())])
    }

    #[test]
    fn the_answer_never_carries_a_password() {
        let v = serde_json::json!({"clustering": {"user": "c", "password": "p", "nats": {"servers": ["a"]}}, "s3": {"secretKey": "k"}, "logging": {"level": "info"}});
        let r = redacted(&v);
        assert_eq!(r["clustering"]["password"], "[redacted]");
        assert_eq!(r["s3"]["secretKey"], "[redacted]");
        assert_eq!(r["clustering"]["user"], "c");
        assert_eq!(r["logging"], v["logging"]);
    }

    #[test]
    fn first_start_writes_defaults_with_the_root() {
        let (dir, svc) = service();
        let v = svc.file_value().expect("value");
        assert_eq!(v["rootPath"], Value::String(dir.path().display().to_string()));
        assert_eq!(v["operationsApi"]["network"]["port"], 9925);
        let s = svc.settings().expect("settings");
        assert_eq!(s.operations_addr.to_string(), "127.0.0.1:9925");
        assert_eq!(s.call_memory, 128 << 20);
    }

    #[test]
    fn set_validates_before_writing_and_backs_up() {
        let (dir, svc) = service();
        let before = std::fs::read(svc.path()).expect("read");
        let err = svc
            .set(&[
                ("logging_level".into(), "\"info\"".into()),
                ("threads_count".into(), "\"many\"".into()),
            ])
            .expect_err("mistyped");
        assert!(matches!(&err, ServiceError::BadRequest(t) if t.contains("'threads.count'")), "{err:?}");
        assert_eq!(std::fs::read(svc.path()).expect("read"), before, "nothing written");

        let err = set(&svc, "logging_level", Value::from("loud")).expect_err("enum");
        assert!(matches!(&err, ServiceError::BadRequest(t) if t == "HarperDB config file validation error: 'logging.level' must be one of [notify, fatal, error, warn, info, debug, trace]"));
        let err = set(&svc, "bogus_key", Value::from(1)).expect_err("unknown");
        assert!(matches!(&err, ServiceError::BadRequest(t) if t.contains("'bogus_key'")));

        set(&svc, "LOGGING_LEVEL", Value::from("debug")).expect("valid");
        set(&svc, "operationsapi_network_port", Value::from("127.0.0.1:9999")).expect("valid");
        let v = svc.file_value().expect("value");
        assert_eq!(v["logging"]["level"], "debug");
        assert_eq!(svc.settings().expect("settings").operations_addr.port(), 9999);
        let backups = std::fs::read_dir(dir.path().join("backup")).expect("backup dir").count();
        assert_eq!(backups, 2);
    }

    #[test]
    fn env_overrides_are_named_like_keys() {
        let env = |name: &str| match name {
            "OPERATIONSAPI_NETWORK_PORT" => Some("9931".to_string()),
            "LOGGING_LEVEL" => Some("info".to_string()),
            _ => None,
        };
        let overrides = ConfigService::env_overrides(env);
        assert!(overrides.contains(&("operationsApi.network.port".to_string(), Value::from(9931))));
        let (_dir, svc) = service();
        svc.apply_overrides(&overrides).expect("apply");
        assert_eq!(svc.settings().expect("settings").operations_addr.port(), 9931);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("x"), None);
        // Bounded and overflow-free: a huge value is refused, never wrapped.
        assert_eq!(parse_duration("200000000000000d"), None);
        assert_eq!(parse_duration("18446744073709551615d"), None);
        assert_eq!(parse_duration("3650d"), Some(Duration::from_secs(3650 * 86400)));
        assert_eq!(parse_duration("4000d"), None);
    }

    /// A temporary folder removed on drop (no extra crate needed for this one use).
    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!("opshost-test-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&p).expect("temp dir");
                Self(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
