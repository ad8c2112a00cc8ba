//! Components across the cluster (`deploy_component` / `drop_component` with `replicated:
//! true`). A deploy first puts the component's bytes in the stream's JetStream object store
//! (bucket `<stream>_components`, object named by the bytes' SHA-256; NATS refuses messages
//! over 1 MiB, components reach 64 MB), then publishes a `deploy_component` change. Every other
//! node fetches the bytes, checks their hash, and deploys them through its own
//! [`ComponentService`]: the same checks as a local deploy (grants bound to the hash, the
//! signature under that node's `requireSigned` and trusted keys, compile, names, `describe`),
//! so a node that refuses the component keeps what it served. A drop travels as a change.
//! A `rollback_component` to a replicated version travels as a deploy of that version's bytes
//! marked `rollback`: each node rolls back to its own kept version of those bytes (the same
//! number when it has it), so nodes that took the same replicated deploys keep the same
//! version numbers; a node without such a version deploys the bytes as its next version.
//! Version numbers and audit events are each node's own.

use super::change::{Change, Kind};
use super::Cluster;
use crate::services::components::{ComponentService, DeployRequest, Version};
use crate::services::ServiceError;
use async_nats::jetstream;
use base64::Engine as _;
use std::sync::{Arc, Weak};
use tokio::io::AsyncReadExt as _;

/// How long the bucket keeps a component's bytes: the tombstone horizon, past which a node
/// that was away is re-seeded anyway.
const KEEP: std::time::Duration = std::time::Duration::from_millis(crate::services::storage::backend::TOMBSTONE_HORIZON_MS);

/// Tries of a replicated deploy before it is logged as not applied (pauses of 1 s, then 2 s).
const APPLY_ATTEMPTS: u32 = 3;

impl Cluster {
    /// Hands in the component service that applies other nodes' deploys (once, at start).
    pub fn set_components(&self, components: Weak<ComponentService>) {
        let _ = self.components.set(components);
    }

    /// After a local `replicated` deploy, or a rollback (`rollback`: the version rolled back
    /// to) to a replicated version: the bytes into the object store, then the change on the
    /// stream. A no-op when clustering is off (HarperDB answers a lone node the same).
    pub async fn publish_component_deploy(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
        hash: &str,
        grants: Option<Vec<String>>,
        signature: Option<String>,
        user: &str,
        rollback: Option<u64>,
    ) -> Result<(), ServiceError> {
        if !self.enabled() {
            return Ok(());
        }
        let not_replicated = |why: &str| not_replicated(why, rollback.is_some());
        let js = self.js.lock().clone().ok_or_else(|| not_replicated("not connected to NATS yet"))?;
        let store = self.object_store(&js).await.map_err(|e| not_replicated(&format!("{e:#}")))?;
        // The same bytes are the same object: a repeat (or another node's deploy of them)
        // replaces it with itself.
        if store.info(hash).await.is_err() {
            store.put(hash, &mut bytes.as_slice()).await.map_err(|e| not_replicated(&format!("storing the component in JetStream: {e}")))?;
        }
        let kind = Kind::DeployComponent { name: name.into(), hash: hash.into(), grants, signature, user: user.into(), rollback };
        self.publish_blocking(kind).await
    }

    /// After a local `replicated` drop.
    pub async fn publish_component_drop(self: &Arc<Self>, name: &str, user: &str) -> Result<(), ServiceError> {
        if !self.enabled() {
            return Ok(());
        }
        self.publish_blocking(Kind::DropComponent { name: name.into(), user: user.into() }).await
    }

    /// [`Cluster::publish`] (which waits for JetStream's acknowledgement) off the async workers.
    async fn publish_blocking(self: &Arc<Self>, kind: Kind) -> Result<(), ServiceError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.publish(kind)).await.map_err(|e| ServiceError::Internal(e.into()))?
    }

    pub(super) async fn object_store(&self, js: &jetstream::Context) -> anyhow::Result<jetstream::object_store::ObjectStore> {
        let settings = self.settings.read().clone();
        let bucket = format!("{}_components", settings.stream);
        if let Ok(store) = js.get_object_store(&bucket).await {
            return Ok(store);
        }
        let config = jetstream::object_store::Config {
            bucket: bucket.clone(),
            num_replicas: settings.replicas,
            max_age: KEEP,
            ..Default::default()
        };
        match js.create_object_store(config).await {
            Ok(store) => Ok(store),
            // Another node made it meanwhile.
            Err(e) => js.get_object_store(&bucket).await.map_err(|_| anyhow::anyhow!("creating object store {bucket}: {e}")),
        }
    }

    /// A replicated component's bytes from JetStream's object store, checked against their hash.
    async fn fetch_component(&self, js: &jetstream::Context, name: &str, hash: &str) -> Result<Vec<u8>, String> {
        let store = self.object_store(js).await.map_err(|e| format!("{e:#}"))?;
        let mut object = store.get(hash).await.map_err(|e| format!("fetching component {name} ({hash}) from JetStream: {e}"))?;
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.map_err(|e| format!("reading component {name} from JetStream: {e}"))?;
        let got = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if got != hash {
            return Err(format!("component {name}: the stored bytes hash to {got}, not {hash}"));
        }
        Ok(bytes)
    }

    /// Applies another node's component change: whether it changed anything here, or why not.
    pub(super) async fn apply_component(&self, js: &jetstream::Context, change: Change) -> (String, u64, Result<bool, String>) {
        let (origin, time) = (change.origin.clone(), change.time);
        let me = self.node_name();
        if !self.wanted(&me, &change) {
            return (origin, time, Ok(false));
        }
        let result = match self.components.get().and_then(Weak::upgrade) {
            None => Err("the component service is gone (shutting down)".to_string()),
            Some(components) => self.apply_component_kind(js, &components, change.kind).await,
        };
        if let Err(e) = &result {
            tracing::error!("clustering: a component change from {origin} was not applied here: {e}");
        }
        (origin, time, result)
    }

    async fn apply_component_kind(&self, js: &jetstream::Context, components: &ComponentService, kind: Kind) -> Result<bool, String> {
        match kind {
            Kind::DeployComponent { name, hash, grants, signature, user, rollback } => {
                // Delivered again (a restart before the ack), or rolled back to what serves here.
                let deployed = components.deployed().map_err(|e| e.to_string())?;
                if deployed.get(&name).is_some_and(|d| d.hash == hash) {
                    return Ok(false);
                }
                if let Some(version) = rollback {
                    let rolled = components.apply_rollback(&name, version, &hash, &grants, &signature, &user).await.map_err(|e| e.to_string())?;
                    if rolled.is_some() {
                        return Ok(true);
                    }
                }
                // A change not applied is never delivered again (the stream moves on), and under
                // load a JetStream request can time out or `describe` run past its deadline once:
                // tried again before giving up. A refusal that holds fails every try the same way.
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let tried = async {
                        // A try that failed after it was recorded here is not deployed twice.
                        if attempt > 1 && components.deployed().map_err(|e| e.to_string())?.get(&name).is_some_and(|d| d.hash == hash) {
                            return Ok(true);
                        }
                        let bytes = self.fetch_component(js, &name, &hash).await?;
                        let payload = base64::engine::general_purpose::STANDARD.encode(&bytes);
                        let request = DeployRequest {
                            name: name.clone(),
                            payload,
                            grants: grants.clone(),
                            signature: signature.clone(),
                            user: user.clone(),
                            replicated: false,
                        };
                        components.apply_deploy(request).await.map(|_| true).map_err(|e| e.to_string())
                    };
                    match tried.await {
                        Err(e) if attempt < APPLY_ATTEMPTS => {
                            tracing::warn!("clustering: deploying component {name} from another node failed (try {attempt} of {APPLY_ATTEMPTS}): {e}");
                            tokio::time::sleep(std::time::Duration::from_secs(1 << (attempt - 1))).await;
                        }
                        result => return result,
                    }
                }
            }
            Kind::DropComponent { name, user } => match components.remove(&name, &user, false).await {
                Ok(_) => Ok(true),
                Err(ServiceError::NotFound(_)) => Ok(false),
                Err(e) => Err(e.to_string()),
            },
            other => Err(format!("not a component change: {:?}", other.target())),
        }
    }

    /// A snapshot's components (snapshot.rs), applied after its records and configuration.
    /// Each replicated component the sender serves comes as the stream's deploy, or rollback,
    /// would ([`Cluster::apply_component`]: the same checks, a rollback to this node's kept
    /// version of the same bytes when it has one, never published again), unless this node
    /// serves a local-only version and keeps the sender's bytes too: it took that replicated
    /// deploy before and deployed over it here afterwards, which is what the stream's order
    /// would have left. From a complete snapshot (the sender was not catching up itself), a
    /// component served here as replicated of which the sender keeps no version at all was
    /// dropped while this node was away: it is dropped here too. A component served here as
    /// local-only, or one the sender keeps only locally, stays. A component refused here is
    /// logged, as on the stream, and does not fail the snapshot.
    pub(super) async fn merge_components(&self, js: &jetstream::Context, from: &str, changes: Vec<Change>, complete: bool) {
        let Some(components) = self.components.get().and_then(Weak::upgrade) else {
            tracing::warn!("clustering: the snapshot's components from {from} were not applied: the component service is gone (shutting down)");
            return;
        };
        // What this node kept before the merge, read once: the snapshot names each component
        // once, so applying one does not change what is compared for another.
        let before = match components.kept_versions() {
            Ok(all) => all,
            Err(e) => return tracing::error!("clustering: the snapshot's components from {from} were not applied: reading the kept versions: {e}"),
        };
        let mut kept_there = None;
        for change in changes {
            match &change.kind {
                Kind::ComponentsKept { names } => {
                    kept_there = Some(names.clone());
                    continue;
                }
                Kind::DeployComponent { name, hash, .. } => {
                    let mine: Vec<&Version> = before.iter().filter(|v| v.name == *name).collect();
                    if mine.iter().any(|v| v.active && !v.replicated) && mine.iter().any(|v| v.hash == *hash) {
                        tracing::info!("clustering: keeping this node's own version of component {name} (deployed here after {from}'s replicated one)");
                        continue;
                    }
                }
                _ => {}
            }
            // A refusal was logged there; the rest of the snapshot still applies.
            let _ = self.apply_component(js, change).await;
        }
        let Some(kept_there) = kept_there.filter(|_| complete) else { return };
        let here = match components.kept_versions() {
            Ok(all) => all,
            Err(e) => return tracing::error!("clustering: checking components against {from}'s snapshot failed: {e}"),
        };
        for gone in here.iter().filter(|v| v.active && v.replicated && !kept_there.contains(&v.name)) {
            match components.remove(&gone.name, &format!("snapshot from {from}"), false).await {
                Ok(_) => tracing::info!("clustering: dropped component {} ({from} keeps none: dropped while this node was away)", gone.name),
                Err(e) => tracing::error!("clustering: dropping component {} ({from} keeps none) failed: {e}", gone.name),
            }
        }
    }
}

/// The 503 of a deploy (or a rollback) made here whose replication could not start.
fn not_replicated(why: &str, rollback: bool) -> ServiceError {
    ServiceError::Unavailable(if rollback {
        format!("clustering: rolled back on this node but not on the others ({why}); roll back to the same version again to retry")
    } else {
        format!("clustering: deployed on this node but not replicated ({why}); deploy it again with 'replicated' to retry")
    })
}
