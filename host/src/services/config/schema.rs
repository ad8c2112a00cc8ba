//! The configuration file's schema: every key it may hold with the kind of value it takes, and
//! the validation `set_configuration` and start-up overrides apply before anything is written.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const LEVELS: &[&str] = &["notify", "fatal", "error", "warn", "info", "debug", "trace"];

/// What a configuration value may be.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
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
pub(super) const SCHEMA: &[(&str, Kind)] = &[
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
    ("clustering.nats.maxMsgs", Kind::Count),
    ("clustering.user", Kind::String),
    ("clustering.password", Kind::String),
    ("clustering.tls.certificateAuthority", Kind::String),
    ("clustering.publishTimeout", Kind::Count),
    ("clustering.publishInFlight", Kind::Count),
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
    ("operationsApi.answerCache", Kind::Bool),
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

/// Keys that replicate with clustering on (services/cluster, `Kind::SetConfiguration`): a
/// `set_configuration` of one of them on any node reaches every node's file. They are the
/// settings that must agree for nodes to treat the same data and users alike; everything else
/// (ports, paths, TLS files, `clustering.*`, log level and files, thread and call limits, which
/// fit each machine) stays on the node it was set on.
pub(super) const CLUSTER_WIDE: &[&str] = &[
    // A token issued by one node is presented to any node: one lifetime for all.
    "authentication.operationTokenTimeout",
    "authentication.refreshTokenTimeout",
    // The audit log of replicated tables: every node keeps (and answers read_audit_log with)
    // the same history.
    "logging.auditLog",
    "logging.auditRetention",
    // Who logged in (or failed to) is audited alike for the same users on every node.
    "logging.auditAuthEvents.logFailed",
    "logging.auditAuthEvents.logSuccessful",
    // A request (or csv_url_load download) one node accepts, every node accepts.
    "operationsApi.network.maxBodySize",
    "operationsApi.importMaxSizeMB",
    // Replicated deploys are checked by each node under these: the same component is accepted
    // or refused, granted the same interfaces, and kept for the same rollbacks everywhere.
    "operationsApi.grants",
    "operationsApi.components.trustedKeys",
    "operationsApi.components.requireSigned",
    "operationsApi.components.keepVersions",
    "operationsApi.components.maxSizeMB",
];

/// Keys fixed at first start: the root is where the file itself lives.
pub(super) const READ_ONLY: &[&str] = &["rootPath"];

/// Finds the schema entry for a flattened key, case-insensitively
/// (`operationsapi_network_port` -> `operationsApi.network.port`).
pub(super) fn lookup_flat(key: &str) -> Option<(&'static str, Kind)> {
    let key = key.to_ascii_lowercase();
    SCHEMA.iter().find(|(path, _)| path.replace('.', "_").to_ascii_lowercase() == key).copied()
}

pub(super) fn validate(path: &str, kind: Kind, value: &Value) -> Result<(), String> {
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
