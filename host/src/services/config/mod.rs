//! The configuration service: `<rootPath>/opshost-config.yaml`, created with embedded defaults,
//! validated against a schema, written atomically with a backup, and cached in memory keyed by
//! the file's modification stamp (get_configuration is a hot path).
//!
//! The schema and validation are in `schema`, the typed [`Settings`] in `settings`.

mod schema;
mod settings;

pub use schema::{parse_duration, MAX_DURATION};
pub use settings::Settings;

use super::fsutil::write_atomically;
use super::ServiceError;
use anyhow::{Context, Result};
use parking_lot::Mutex;
use schema::{lookup_flat, validate, CLUSTER_WIDE, READ_ONLY, SCHEMA};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub const FILE_NAME: &str = "opshost-config.yaml";
/// How long `get_configuration` answers from the cache without looking at the file again.
const ANSWER_RECHECK: Duration = Duration::from_millis(20);
const DEFAULTS: &str = include_str!("default-config.yaml");

pub struct ConfigService {
    root: PathBuf,
    path: PathBuf,
    cache: Mutex<Option<Cached>>,
    /// Counts this service's writes of the file: a reader that started before a write must
    /// not put what it read into the cache after the write cleared it (with the 20 ms answer
    /// window, that stale entry would be served after set_configuration returned).
    writes: std::sync::atomic::AtomicU64,
    /// Serializes writers so two set_configuration calls cannot interleave.
    write_lock: Mutex<()>,
    /// The settings last computed by [`ConfigService::settings`] (at start and on restart):
    /// what the running server uses, without re-reading the file, re-parsing the defaults or
    /// resolving the host name (a blocking getaddrinfo) on a request path.
    effective: Mutex<Option<Arc<Settings>>>,
}

struct Cached {
    stamp: (SystemTime, u64),
    /// When the stamp was last compared with the file's.
    checked: Instant,
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
        let service = Self { root: root.to_path_buf(), path, cache: Mutex::new(None), writes: Default::default(), write_lock: Mutex::new(()), effective: Mutex::new(None) };
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
    /// unless the file changed on disk. The file is looked at again only after [`ANSWER_RECHECK`]
    /// (the stat was ~5 % of a get_configuration call's CPU under load), so a hand edit shows
    /// up to 20 ms late; set_configuration clears the cache, so its own writes show at once.
    pub fn file_json(&self) -> Result<Arc<str>, ServiceError> {
        self.cached(Some(ANSWER_RECHECK), |c| c.json.clone())
    }

    /// The file as a JSON value, always checked against the file (restart, set_configuration
    /// and the cluster act on it, so a hand edit made just before them must count).
    pub fn file_value(&self) -> Result<Value, ServiceError> {
        self.cached(None, |c| c.value.clone())
    }

    fn cached<T>(&self, recheck: Option<Duration>, f: impl FnOnce(&Cached) -> T) -> Result<T, ServiceError> {
        if let Some(recheck) = recheck {
            if let Some(c) = self.cache.lock().as_ref().filter(|c| c.checked.elapsed() < recheck) {
                return Ok(f(c));
            }
        }
        let writes = self.writes.load(std::sync::atomic::Ordering::Acquire);
        let stamp = file_stamp(&self.path).map_err(ServiceError::Internal)?;
        let mut cache = self.cache.lock();
        if let Some(c) = cache.as_mut().filter(|c| c.stamp == stamp) {
            c.checked = Instant::now();
            return Ok(f(c));
        }
        let value = read_file(&self.path).map_err(ServiceError::Internal)?;
        let json: Arc<str> = redacted(&value).to_string().into();
        let fresh = Cached { stamp, checked: Instant::now(), json, value };
        let out = f(&fresh);
        if self.writes.load(std::sync::atomic::Ordering::Acquire) == writes {
            *cache = Some(fresh);
        }
        Ok(out)
    }

    /// Sets flattened keys. Every key and value is validated before anything is written;
    /// the old file goes to `<root>/backup/` and the new one replaces it atomically.
    pub fn set(&self, changes: &[(String, String)]) -> Result<(), ServiceError> {
        let resolved = changes.iter().map(|(key, raw)| resolve(key, raw)).collect::<Result<Vec<_>, _>>()?;
        self.write_changes(&resolved, true).map_err(ServiceError::Internal)
    }

    /// The cluster-wide keys of a `set_configuration` change (`schema::CLUSTER_WIDE`), named by
    /// their flattened path (`logging_auditLog`), with their raw values: what the cluster
    /// publishes after [`ConfigService::set`] wrote them here.
    pub fn cluster_wide(changes: &[(String, String)]) -> Vec<(String, String)> {
        changes
            .iter()
            .filter_map(|(key, raw)| lookup_flat(key).filter(|(path, _)| CLUSTER_WIDE.contains(path)).map(|(path, _)| (path.replace('.', "_"), raw.clone())))
            .collect()
    }

    /// This node's file values of the cluster-wide keys (flattened path, raw JSON value), for a
    /// snapshot: what a node re-seeded from it writes through [`ConfigService::set_replicated`].
    /// Values start-up overrides wrote into the file are among them (HarperDB keeps those in
    /// the file too); keys the file lacks are not sent.
    pub fn cluster_wide_values(&self) -> Result<Vec<(String, String)>, ServiceError> {
        let current = self.file_value()?;
        Ok(CLUSTER_WIDE
            .iter()
            .filter_map(|path| get_path(&current, path).filter(|v| !v.is_null()).map(|v| (path.replace('.', "_"), v.to_string())))
            .collect())
    }

    /// Another node's cluster-wide change, validated like [`ConfigService::set`] but key by key:
    /// the keys this node accepts are written (one write, one backup), each refused one comes
    /// back with the reason (a node of another version may not know it), and a key that is not
    /// cluster-wide here is refused, so a node-local setting never arrives from elsewhere.
    /// A key already holding the value is left alone, so a snapshot that agrees with this
    /// node's file (services/cluster/snapshot.rs) writes nothing and leaves no backup.
    pub fn set_replicated(&self, changes: &[(String, String)]) -> Result<Vec<String>, ServiceError> {
        let current = self.file_value()?;
        let mut accepted = Vec::with_capacity(changes.len());
        let mut refused = Vec::new();
        for (key, raw) in changes {
            match resolve(key, raw) {
                Ok((path, _)) if !CLUSTER_WIDE.contains(&path) => refused.push(format!("'{key}' is not cluster-wide on this node")),
                Ok((path, value)) if get_path(&current, path) == Some(&value) => {}
                Ok(change) => accepted.push(change),
                Err(e) => refused.push(e.to_string()),
            }
        }
        if !accepted.is_empty() {
            self.write_changes(&accepted, true).map_err(ServiceError::Internal)?;
        }
        Ok(refused)
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
        settings::from_values(&self.root, &file, &defaults)
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
        self.writes.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        *self.cache.lock() = None;
        Ok(())
    }
}

/// A flattened key and its raw JSON value, checked against the schema: its path and value.
fn resolve(key: &str, raw: &str) -> Result<(&'static str, Value), ServiceError> {
    let (path, kind) = lookup_flat(key).ok_or_else(|| ServiceError::BadRequest(format!("Unknown configuration key '{key}'")))?;
    if READ_ONLY.contains(&path) {
        return Err(ServiceError::BadRequest(format!("'{key}' cannot be changed with set_configuration")));
    }
    let value: Value = serde_json::from_str(raw).map_err(|_| ServiceError::BadRequest(format!("'{key}' is not a valid value")))?;
    validate(path, kind, &value).map_err(ServiceError::BadRequest)?;
    Ok((path, value))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    /// Only cluster-wide keys travel, under their flattened path; a received change writes the
    /// keys this node accepts and names the ones it refuses (unknown, invalid, node-local).
    #[test]
    fn cluster_wide_keys_travel_and_are_applied_key_by_key() {
        for path in CLUSTER_WIDE {
            assert!(SCHEMA.iter().any(|(p, _)| p == path), "{path} is a schema key");
        }
        let changes = [("LOGGING_AUDITLOG".to_string(), "false".to_string()), ("logging_level".to_string(), "\"debug\"".to_string())];
        assert_eq!(ConfigService::cluster_wide(&changes), vec![("logging_auditLog".to_string(), "false".to_string())]);
        let (_dir, svc) = service();
        let refused = svc
            .set_replicated(&[
                ("logging_auditLog".into(), "false".into()),
                ("logging_auditRetention".into(), "\"never\"".into()),
                ("logging_level".into(), "\"debug\"".into()),
                ("some_future_key".into(), "1".into()),
            ])
            .expect("written");
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused[0].contains("'logging.auditRetention'") && refused[1].contains("not cluster-wide") && refused[2].contains("'some_future_key'"), "{refused:?}");
        let v = svc.file_value().expect("value");
        assert_eq!((v["logging"]["auditLog"].clone(), v["logging"]["level"].clone(), v["logging"]["auditRetention"].clone()), (Value::from(false), Value::from("warn"), Value::from("3d")));
        // A snapshot carries the file's cluster-wide values; applied where they already hold,
        // nothing is written (no new backup).
        let values = svc.cluster_wide_values().expect("values");
        assert!(values.contains(&("logging_auditLog".to_string(), "false".to_string())), "{values:?}");
        assert!(values.iter().all(|(k, _)| ConfigService::cluster_wide(&[(k.clone(), String::new())]).len() == 1), "only cluster-wide keys: {values:?}");
        let backups = || std::fs::read_dir(svc.root.join("backup")).map(|d| d.count()).unwrap_or(0);
        let before = backups();
        assert!(svc.set_replicated(&values).expect("written").is_empty());
        assert_eq!(backups(), before, "an agreeing snapshot writes nothing");
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