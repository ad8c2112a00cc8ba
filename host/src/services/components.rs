//! Components deployed through the operations API: the kept versions (files under
//! `<rootPath>/component-store/<name>/<version>.wasm`, 0600), one record per version in
//! `system.hdb_component` and an audit event per deploy, drop and rollback in
//! `system.hdb_component_event`. Checking a candidate and swapping it in needs the runtime and
//! the registry, which sit above the services: the server hands them in as a [`Deployer`].

use super::grants::{Deployed, Policy};
use super::storage::{StorageBackend, WriteMode, SYSTEM_DATABASE};
use super::ServiceError;
use anyhow::Context as _;
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};

const TABLE: &str = "hdb_component";
const EVENTS: &str = "hdb_component_event";

/// What a deploy, drop or rollback needs from the layers above: a check of candidate bytes by
/// the loader (compile, imports against grants, names, describe) and a reload that publishes.
pub trait Deployer: Send + Sync {
    /// Checks `bytes` as the loader would load them from `path` under `policy`, publishing
    /// nothing; returns the names the component serves.
    /// `name` is the operation name the component must describe itself with.
    fn check(&self, name: &str, path: &Path, bytes: &[u8], hash: &str, policy: &Policy) -> Result<Vec<String>, String>;
    /// Rebuilds the registry from disk and publishes it.
    fn reload(self: Arc<Self>) -> futures::future::BoxFuture<'static, ()>;
    /// What serves `name` now: `(source file, hash)`.
    fn serving(&self, name: &str) -> Option<(PathBuf, String)>;
    /// The policy the loader applies now (configuration and deployed grants).
    fn policy(&self) -> Policy;
    /// Where deployed components are written: `componentsRoot`.
    fn components_root(&self) -> PathBuf;
    /// `(versions kept, largest component in bytes)`.
    fn limits(&self) -> (usize, usize);
}

/// One kept version.
#[derive(Clone, Debug)]
pub struct Version {
    pub name: String,
    pub version: u64,
    pub hash: String,
    pub size: u64,
    pub grants: Option<Vec<String>>,
    pub signature: Option<String>,
    pub deployed_by: String,
    pub deployed_at: u64,
    /// Whether this version is the one in `componentsRoot`.
    pub active: bool,
    /// Whether it was deployed on every node of the cluster (`replicated: true` here, or applied
    /// from another node's replicated deploy): rolling back to it rolls every node back.
    /// Records kept before this field read as `false` (local).
    pub replicated: bool,
}

impl Version {
    fn id(name: &str, version: u64) -> String {
        format!("{name}@{version}")
    }

    fn to_record(&self) -> Value {
        json!({
            "id": Self::id(&self.name, self.version),
            "name": self.name,
            "version": self.version,
            "hash": self.hash,
            "size": self.size,
            "grants": self.grants,
            "signature": self.signature,
            "deployed_by": self.deployed_by,
            "deployed_at": self.deployed_at,
            "active": self.active,
            "replicated": self.replicated,
        })
    }

    fn from_record(v: &Value) -> Option<Self> {
        let strings = |k: &str| v.get(k).and_then(Value::as_array).map(|l| l.iter().filter_map(|g| g.as_str().map(str::to_string)).collect());
        Some(Self {
            name: v.get("name")?.as_str()?.to_string(),
            version: v.get("version")?.as_u64()?,
            hash: v.get("hash")?.as_str()?.to_string(),
            size: v.get("size").and_then(Value::as_u64).unwrap_or(0),
            grants: strings("grants"),
            signature: v.get("signature").and_then(Value::as_str).map(str::to_string),
            deployed_by: v.get("deployed_by").and_then(Value::as_str).unwrap_or_default().to_string(),
            deployed_at: v.get("deployed_at").and_then(Value::as_u64).unwrap_or(0),
            active: v.get("active").and_then(Value::as_bool).unwrap_or(false),
            replicated: v.get("replicated").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    fn summary(&self) -> Value {
        json!({
            "version": self.version,
            "hash": self.hash,
            "size": self.size,
            "grants": self.grants,
            "signed": self.signature.is_some(),
            "deployed_by": self.deployed_by,
            "deployed_at": self.deployed_at,
            "replicated": self.replicated,
        })
    }
}

pub struct ComponentService {
    storage: Arc<dyn StorageBackend>,
    store: PathBuf,
    deployer: OnceLock<Weak<dyn Deployer>>,
    /// One change (deploy, drop, rollback) at a time: each reads, checks and writes versions.
    changes: tokio::sync::Mutex<()>,
    /// Carries `replicated` deploys and drops to the other nodes (set once at start).
    cluster: OnceLock<Arc<super::cluster::Cluster>>,
}

/// What `deploy_component` asks for.
pub struct DeployRequest {
    pub name: String,
    pub payload: String,
    pub grants: Option<Vec<String>>,
    pub signature: Option<String>,
    pub user: String,
    /// Also on every node of the cluster (services/cluster/components.rs).
    pub replicated: bool,
}

fn bad(message: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest(message.into())
}

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

/// A component name names its file: an operation name (a letter, then letters, digits, `_`).
pub fn check_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(bad("'name' must be an operation name: a letter, then letters, digits or '_' (at most 64)"))
    }
}

impl ComponentService {
    pub fn open(root: &Path, storage: Arc<dyn StorageBackend>) -> anyhow::Result<Arc<Self>> {
        for table in [TABLE, EVENTS] {
            if storage.describe_table(SYSTEM_DATABASE, table).is_err() {
                storage
                    .create_table(SYSTEM_DATABASE, table, "id")
                    .map_err(ServiceError::into_anyhow)
                    .with_context(|| format!("creating system.{table}"))?;
            }
        }
        let store = root.join("component-store");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&store).with_context(|| format!("creating {}", store.display()))?;
        Ok(Arc::new(Self { storage, store, deployer: OnceLock::new(), changes: tokio::sync::Mutex::new(()), cluster: OnceLock::new() }))
    }

    /// Hands in the loader (once, at start-up).
    pub fn set_deployer(&self, deployer: Weak<dyn Deployer>) {
        let _ = self.deployer.set(deployer);
    }

    /// Hands in the cluster that carries `replicated` changes (once, at start-up).
    pub fn set_cluster(&self, cluster: Arc<super::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    fn deployer(&self) -> Result<Arc<dyn Deployer>, ServiceError> {
        self.deployer.get().and_then(Weak::upgrade).ok_or_else(|| internal(anyhow::anyhow!("the server is shutting down")))
    }

    /// The active version of every deployed component, as the loader's policy needs it.
    pub fn deployed(&self) -> Result<HashMap<String, Deployed>, ServiceError> {
        Ok(self
            .versions()?
            .into_iter()
            .filter(|v| v.active)
            .map(|v| (v.name.clone(), Deployed { version: v.version, hash: v.hash, grants: v.grants, signature: v.signature }))
            .collect())
    }

    fn versions(&self) -> Result<Vec<Version>, ServiceError> {
        let rows = self.storage.search(SYSTEM_DATABASE, TABLE, Default::default())?.collect_all()?;
        let mut out: Vec<Version> = rows.iter().filter_map(Version::from_record).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
        Ok(out)
    }

    /// Every kept version of every component (a cluster snapshot offers the replicated active
    /// ones and names them all; a node re-seeded from it compares them with its own).
    pub fn kept_versions(&self) -> Result<Vec<Version>, ServiceError> {
        self.versions()
    }

    /// A kept version's bytes.
    pub fn version_bytes(&self, name: &str, version: u64) -> Result<Vec<u8>, ServiceError> {
        std::fs::read(self.version_file(name, version)).map_err(internal)
    }

    fn versions_of(&self, name: &str) -> Result<Vec<Version>, ServiceError> {
        Ok(self.versions()?.into_iter().filter(|v| v.name == name).collect())
    }

    fn version_file(&self, name: &str, version: u64) -> PathBuf {
        self.store.join(name).join(format!("{version}.wasm"))
    }

    /// Checks and swaps in a component. Nothing changes unless every check passes.
    pub async fn deploy(&self, request: DeployRequest) -> Result<Value, ServiceError> {
        self.deploy_as(request, false).await
    }

    /// Applies another node's replicated deploy (services/cluster/components.rs): the same
    /// checks as a local deploy; the version is recorded as replicated and not published again.
    pub async fn apply_deploy(&self, request: DeployRequest) -> Result<Value, ServiceError> {
        self.deploy_as(request, true).await
    }

    async fn deploy_as(&self, request: DeployRequest, received: bool) -> Result<Value, ServiceError> {
        check_name(&request.name)?;
        let deployer = self.deployer()?;
        let (_, max_size) = deployer.limits();
        // Base64 is 4/3 of the bytes: refuse an oversized payload before decoding it.
        if request.payload.len() / 4 * 3 > max_size + 3 {
            return Err(bad(format!("'payload' is larger than operationsApi.components.maxSizeMB ({} MB)", max_size >> 20)));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(request.payload.trim())
            .map_err(|e| bad(format!("'payload' must be a base64 component: {e}")))?;
        if bytes.len() > max_size {
            return Err(bad(format!("'payload' is larger than operationsApi.components.maxSizeMB ({} MB)", max_size >> 20)));
        }
        if let Some(grants) = &request.grants {
            if let Some(bad_name) = grants.iter().find(|g| !super::grants::INTERFACES.contains(&g.as_str()) || *g == "types") {
                return Err(bad(format!("'grants' names an unknown interface '{bad_name}' (known: {})", super::grants::INTERFACES[1..].join(", "))));
            }
        }
        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let mut policy = deployer.policy();
        if let Some(signature) = &request.signature {
            // A signature always has to verify, and it covers exactly the grants deployed.
            let grants = request.grants.clone().unwrap_or_default();
            super::signing::verify(&policy.trusted_keys, &hash, &grants, signature).map_err(bad)?;
        } else if policy.require_signed {
            return Err(bad("operationsApi.components.requireSigned is on: 'signature' is required"));
        }

        let _change = self.changes.lock().await;
        let existing = self.versions_of(&request.name)?;
        let version = existing.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let candidate = Deployed { version, hash: hash.clone(), grants: request.grants.clone(), signature: request.signature.clone() };
        policy.deployed.insert(request.name.clone(), candidate);
        let target = deployer.components_root().join(format!("{}.wasm", request.name));
        let names = self.check(&deployer, &target, bytes.clone(), &hash, policy, &request.name).await?;

        // Keep the version, then make it the active one, then put it where the loader reads.
        let record = Version {
            name: request.name.clone(),
            version,
            hash: hash.clone(),
            size: bytes.len() as u64,
            grants: request.grants.clone(),
            signature: request.signature.clone(),
            deployed_by: request.user.clone(),
            deployed_at: super::jobs::now_ms(),
            active: true,
            replicated: request.replicated || received,
        };
        let store_file = self.version_file(&request.name, version);
        let root = deployer.components_root();
        let (keep, _) = deployer.limits();
        let this = self.blocking_parts();
        let written = record.clone();
        let replica = (request.replicated && !received).then(|| bytes.clone());
        tokio::task::spawn_blocking(move || -> Result<(), ServiceError> {
            write_private(&store_file, &bytes)?;
            this.activate(&written, &existing, keep)?;
            install(&root, &written.name, &bytes)
        })
        .await
        .map_err(internal)??;
        self.event("deploy", &record.name, version, &hash, &request.user).await?;
        deployer.clone().reload().await;
        let answer = self.answer("Successfully deployed", &deployer, &record, names)?;
        if let (Some(bytes), Some(cluster)) = (replica, self.cluster.get()) {
            cluster.publish_component_deploy(&record.name, bytes, &hash, record.grants.clone(), record.signature.clone(), &request.user, None).await?;
        }
        Ok(answer)
    }

    /// Serves a kept version again. Rolling back to a replicated version (see
    /// [`Version::replicated`]) rolls every node back: the cluster carries it as a deploy of
    /// that version's bytes marked as a rollback to its number, which each node applies as a
    /// rollback to its own kept version of the same bytes (so version numbers stay as they
    /// were on every node) or, lacking one, as a deploy. A version deployed here only stays
    /// local, as its deploy did: what serves on the other nodes then never depends on a
    /// version they never had.
    pub async fn rollback(&self, name: &str, version: Option<u64>, user: &str) -> Result<Value, ServiceError> {
        check_name(name)?;
        let _change = self.changes.lock().await;
        let versions = self.versions_of(name)?;
        self.rollback_locked(name, version, versions, user, true).await
    }

    /// Applies another node's replicated rollback to `version` with these bytes (`hash`),
    /// grants and signature: a rollback to the kept version that matches them (that number
    /// first, else the newest one), not published again; `None` when no kept version matches
    /// (the caller deploys the bytes instead).
    pub async fn apply_rollback(
        &self,
        name: &str,
        version: u64,
        hash: &str,
        grants: &Option<Vec<String>>,
        signature: &Option<String>,
        user: &str,
    ) -> Result<Option<Value>, ServiceError> {
        check_name(name)?;
        let _change = self.changes.lock().await;
        let versions = self.versions_of(name)?;
        let same = |v: &&Version| v.hash == hash && v.grants == *grants && v.signature == *signature;
        let found = versions.iter().filter(same).find(|v| v.version == version).or_else(|| versions.iter().rev().find(same)).map(|v| v.version);
        match found {
            Some(kept) => self.rollback_locked(name, Some(kept), versions, user, false).await.map(Some),
            None => Ok(None),
        }
    }

    /// The rollback itself, under the change lock; `publish`: a replicated version's rollback
    /// goes to the other nodes.
    async fn rollback_locked(&self, name: &str, version: Option<u64>, versions: Vec<Version>, user: &str, publish: bool) -> Result<Value, ServiceError> {
        let deployer = self.deployer()?;
        let active = versions.iter().find(|v| v.active).map(|v| v.version);
        let wanted = match version {
            Some(v) => versions.iter().find(|k| k.version == v).ok_or_else(|| {
                ServiceError::NotFound(format!("component '{name}' has no version {v} (kept: {})", kept_list(&versions)))
            })?,
            None => versions
                .iter()
                .rev()
                .find(|k| Some(k.version) != active && active.is_none_or(|a| k.version < a))
                .ok_or_else(|| ServiceError::NotFound(format!("component '{name}' has no earlier version to roll back to")))?,
        }
        .clone();
        let bytes = std::fs::read(self.version_file(name, wanted.version)).map_err(internal)?;
        let mut policy = deployer.policy();
        policy.deployed.insert(
            name.to_string(),
            Deployed { version: wanted.version, hash: wanted.hash.clone(), grants: wanted.grants.clone(), signature: wanted.signature.clone() },
        );
        let target = deployer.components_root().join(format!("{name}.wasm"));
        let names = self.check(&deployer, &target, bytes.clone(), &wanted.hash, policy, name).await?;
        let replica = (publish && wanted.replicated).then(|| bytes.clone());
        let mut record = wanted.clone();
        record.active = true;
        let root = deployer.components_root();
        let (keep, _) = deployer.limits();
        let this = self.blocking_parts();
        let written = record.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ServiceError> {
            this.activate(&written, &versions, keep)?;
            install(&root, &written.name, &bytes)
        })
        .await
        .map_err(internal)??;
        self.event("rollback", name, record.version, &record.hash, user).await?;
        deployer.clone().reload().await;
        let mut answer = self.answer("Successfully rolled back", &deployer, &record, names)?;
        answer["replicated"] = Value::Bool(record.replicated);
        if let (Some(bytes), Some(cluster)) = (replica, self.cluster.get()) {
            let (grants, signature) = (record.grants.clone(), record.signature.clone());
            cluster.publish_component_deploy(name, bytes, &record.hash, grants, signature, user, Some(record.version)).await?;
        }
        Ok(answer)
    }

    /// Stops serving a deployed component and deletes its kept versions.
    pub async fn remove(&self, name: &str, user: &str, replicated: bool) -> Result<Value, ServiceError> {
        check_name(name)?;
        let deployer = self.deployer()?;
        let _change = self.changes.lock().await;
        let versions = self.versions_of(name)?;
        let Some(active) = versions.iter().find(|v| v.active).cloned() else {
            return Err(ServiceError::NotFound(format!("component '{name}' is not deployed")));
        };
        let root = deployer.components_root();
        let (storage, dir, owned) = (self.storage.clone(), self.store.join(name), name.to_string());
        let ids: Vec<Value> = versions.iter().map(|v| Value::String(Version::id(&v.name, v.version))).collect();
        tokio::task::spawn_blocking(move || -> Result<(), ServiceError> {
            match std::fs::remove_file(root.join(format!("{owned}.wasm"))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(internal(e)),
            }
            storage.delete(SYSTEM_DATABASE, TABLE, ids)?;
            let _ = std::fs::remove_dir_all(dir);
            Ok(())
        })
        .await
        .map_err(internal)??;
        self.event("drop", name, active.version, &active.hash, user).await?;
        deployer.clone().reload().await;
        if let (true, Some(cluster)) = (replicated, self.cluster.get()) {
            cluster.publish_component_drop(name, user).await?;
        }
        Ok(json!({ "message": format!("Successfully dropped: {name}"), "name": name, "version": active.version }))
    }

    /// Every deployed component with its kept versions and what serves its name.
    pub fn list(&self) -> Result<Value, ServiceError> {
        let deployer = self.deployer()?;
        let mut by_name: std::collections::BTreeMap<String, Vec<Version>> = Default::default();
        for v in self.versions()? {
            by_name.entry(v.name.clone()).or_default().push(v);
        }
        let out: Vec<Value> = by_name
            .into_iter()
            .map(|(name, versions)| {
                let active = versions.iter().find(|v| v.active);
                let serving = deployer.serving(&name);
                let status = match (active, &serving) {
                    (Some(a), Some((_, hash))) if *hash == a.hash => "serving",
                    (Some(_), _) => "failed",
                    (None, _) => "inactive",
                };
                json!({
                    "name": name,
                    "version": active.map(|a| a.version),
                    "hash": active.map(|a| a.hash.clone()),
                    "size": active.map(|a| a.size),
                    "grants": active.and_then(|a| a.grants.clone()),
                    "signed": active.is_some_and(|a| a.signature.is_some()),
                    "deployed_by": active.map(|a| a.deployed_by.clone()),
                    "deployed_at": active.map(|a| a.deployed_at),
                    "status": status,
                    "versions": versions.iter().map(Version::summary).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(Value::Array(out))
    }

    /// One kept version's bytes (base64) and metadata.
    pub fn file(&self, name: &str, version: Option<u64>) -> Result<Value, ServiceError> {
        check_name(name)?;
        let versions = self.versions_of(name)?;
        let found = match version {
            Some(v) => versions.iter().find(|k| k.version == v),
            None => versions.iter().find(|k| k.active),
        }
        .ok_or_else(|| match version {
            Some(v) => ServiceError::NotFound(format!("component '{name}' has no version {v}")),
            None => ServiceError::NotFound(format!("component '{name}' is not deployed")),
        })?;
        let bytes = std::fs::read(self.version_file(name, found.version)).map_err(internal)?;
        Ok(json!({
            "name": name,
            "version": found.version,
            "hash": found.hash,
            "size": found.size,
            "grants": found.grants,
            "signature": found.signature,
            "payload": base64::engine::general_purpose::STANDARD.encode(bytes),
        }))
    }

    /// Audit events, oldest first.
    pub fn events(&self, name: Option<&str>) -> Result<Value, ServiceError> {
        let rows = self.storage.search(SYSTEM_DATABASE, EVENTS, Default::default())?.collect_all()?;
        let mut events: Vec<Value> = rows
            .into_iter()
            .filter(|e| name.is_none_or(|n| e.get("name").and_then(Value::as_str) == Some(n)))
            .map(|mut e| {
                if let Some(o) = e.as_object_mut() {
                    o.retain(|k, _| !k.starts_with("__"));
                }
                e
            })
            .collect();
        events.sort_by_key(|e| (e.get("at").and_then(Value::as_u64).unwrap_or(0), e.get("seq").and_then(Value::as_u64).unwrap_or(0)));
        Ok(Value::Array(events))
    }

    async fn event(&self, action: &str, name: &str, version: u64, hash: &str, user: &str) -> Result<(), ServiceError> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let record = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "action": action,
            "name": name,
            "version": version,
            "hash": hash,
            "user": user,
            "at": super::jobs::now_ms(),
            "seq": SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        });
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || storage.write(SYSTEM_DATABASE, EVENTS, WriteMode::Insert, vec![record]).map(|_| ()))
            .await
            .map_err(internal)?
    }

    /// The loader's verdict on candidate bytes, off the async workers (it may compile).
    async fn check(
        &self,
        deployer: &Arc<dyn Deployer>,
        target: &Path,
        bytes: Vec<u8>,
        hash: &str,
        policy: Policy,
        name: &str,
    ) -> Result<Vec<String>, ServiceError> {
        let (deployer, target, hash, name) = (deployer.clone(), target.to_path_buf(), hash.to_string(), name.to_string());
        tokio::task::spawn_blocking(move || {
            deployer.check(&name, &target, &bytes, &hash, &policy).map_err(bad)
        })
        .await
        .map_err(internal)?
    }

    fn answer(&self, what: &str, deployer: &Arc<dyn Deployer>, record: &Version, names: Vec<String>) -> Result<Value, ServiceError> {
        let serving = deployer.serving(&record.name);
        match serving {
            Some((_, hash)) if hash == record.hash => Ok(json!({
                "message": format!("{what}: {} version {}", record.name, record.version),
                "name": record.name,
                "version": record.version,
                "hash": record.hash,
                "size": record.size,
                "operations": names,
                "grants": record.grants,
            })),
            _ => Err(internal(anyhow::anyhow!(
                "component '{}' version {} passed its checks but is not serving after the reload (see list_operations)",
                record.name,
                record.version
            ))),
        }
    }

    fn blocking_parts(&self) -> Store {
        Store { storage: self.storage.clone(), store: self.store.clone() }
    }
}

/// The parts of the service a blocking task needs.
struct Store {
    storage: Arc<dyn StorageBackend>,
    store: PathBuf,
}

impl Store {
    /// Makes `record` the active version (in one write with the others' deactivation) and
    /// deletes the oldest versions beyond `keep`.
    fn activate(&self, record: &Version, others: &[Version], keep: usize) -> Result<(), ServiceError> {
        let mut rows: Vec<Value> = others
            .iter()
            .filter(|v| v.active && v.version != record.version)
            .map(|v| {
                let mut off = v.clone();
                off.active = false;
                off.to_record()
            })
            .collect();
        rows.push(record.to_record());
        self.storage.write(SYSTEM_DATABASE, TABLE, WriteMode::Upsert, rows)?;
        let mut all: Vec<u64> = others.iter().map(|v| v.version).chain([record.version]).collect();
        all.sort_unstable();
        all.dedup();
        let excess = all.len().saturating_sub(keep);
        let old: Vec<u64> = all.into_iter().filter(|v| *v != record.version).take(excess).collect();
        if !old.is_empty() {
            let ids = old.iter().map(|v| Value::String(Version::id(&record.name, *v))).collect();
            self.storage.delete(SYSTEM_DATABASE, TABLE, ids)?;
            for v in old {
                let _ = std::fs::remove_file(self.store.join(&record.name).join(format!("{v}.wasm")));
            }
        }
        Ok(())
    }
}

fn kept_list(versions: &[Version]) -> String {
    versions.iter().map(|v| v.version.to_string()).collect::<Vec<_>>().join(", ")
}

/// Writes a file readable by this user only, durably.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(internal)?;
    }
    super::fsutil::write_atomically_mode(path, bytes, 0o600).map_err(internal)
}

/// Puts the bytes at `<componentsRoot>/<name>.wasm` atomically (under a hidden temporary name the
/// watcher ignores, then renamed over the old file).
fn install(root: &Path, name: &str, bytes: &[u8]) -> Result<(), ServiceError> {
    std::fs::create_dir_all(root).map_err(internal)?;
    super::fsutil::write_atomically_mode(&root.join(format!("{name}.wasm")), bytes, 0o644).map_err(internal)
}
