//! Snapshot catch-up: a node whose place in the stream was discarded (the stream's limits,
//! `clustering.nats.maxMsgs`, dropped changes it had not applied) asks a peer for a snapshot of
//! the replicated tables instead of silently missing those changes.
//!
//! Each node keeps the last stream sequence it applied (node-local `system.hdb_cluster_position`,
//! stored at most once a second: a stale, lower value only costs an unneeded snapshot). When the
//! stream's first sequence is past it + 1 (checked when the consumer starts, and whenever a
//! delivered sequence jumps over changes that were not this node's own), the node requests
//! `<stream>-snapshot` (NATS request/reply, outside the stream's subjects) and collects the
//! answers on its own inbox. Every other node answers at once: `building` (then, once built,
//! the snapshot: every replicated table, records with the node that wrote each version,
//! tombstones with their node and time, the cluster-wide configuration keys' values and the
//! replicated components, as one array of changes in the stream's object store)
//! or `busy` when it is catching up itself. The asker merges the first snapshot through the same
//! last-writer-wins path as stream changes (subscriptions and `publish: false` respected),
//! deletes the object and goes on with the stream. When only busy nodes answer (every node
//! fell off the stream, e.g. the only writer's own consumer lagged behind its own changes), it
//! asks again for a snapshot from any of them: merged, the asker is caught up, answers the
//! others as a caught-up node, and they merge its snapshot (the union of both). No answer:
//! logged, reported by `cluster_status` (`catch_up`), retried a few seconds later; the node
//! applies nothing from the stream until then.

use super::change::{Change, Kind};
use super::{now_ms, read_changes, store, Cluster, ClusterSettings};
use crate::services::storage::{StorageBackend, WriteMode, SYSTEM_DATABASE};
use crate::services::ServiceError;
use anyhow::Context as _;
use async_nats::jetstream;
use futures::StreamExt as _;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt as _;

/// The node-local table of the last applied stream sequence (key: the stream's name).
pub const POSITION_TABLE: &str = "hdb_cluster_position";
/// How long a node waits for a peer's snapshot (building and uploading it included).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);
/// How long a node waits for peers to say whether they build a snapshot (their first answer
/// is immediate; generous for a loaded machine, short beside `SNAPSHOT_WAIT`).
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// Pause after a failed catch-up before the next request.
const RETRY_PAUSE: Duration = Duration::from_secs(3);
/// Records per change in a snapshot.
const CHUNK: usize = 1_000;

fn subject(settings: &ClusterSettings) -> String {
    format!("{}-snapshot", settings.stream.to_lowercase())
}

/// Whether changes were discarded between what this node applied (`applied`, 0 for none) and
/// the stream's first remaining sequence.
pub fn missed(applied: u64, first: u64) -> bool {
    first > applied.saturating_add(1)
}

impl Cluster {
    pub(super) fn ensure_position_table(storage: &crate::services::storage::Storage) -> anyhow::Result<()> {
        if storage.describe_table(SYSTEM_DATABASE, POSITION_TABLE).is_err() {
            storage.create_table(SYSTEM_DATABASE, POSITION_TABLE, "stream").map_err(ServiceError::into_anyhow).context("creating system.hdb_cluster_position")?;
        }
        Ok(())
    }

    /// The last stream sequence this node stored as applied (0: none).
    pub(super) fn stored_position(&self, stream: &str) -> u64 {
        let found = StorageBackend::get(&*self.storage, SYSTEM_DATABASE, POSITION_TABLE, &[json!(stream)], &["sequence".into()]);
        found.ok().and_then(|rows| rows.first().and_then(|r| r.get("sequence")).and_then(Value::as_u64)).unwrap_or(0)
    }

    pub(super) fn store_position(&self, stream: &str, sequence: u64) {
        let record = json!({"stream": stream, "sequence": sequence});
        if let Err(e) = self.storage.write(SYSTEM_DATABASE, POSITION_TABLE, WriteMode::Upsert, vec![record]) {
            tracing::warn!("clustering: storing the stream position failed: {e}");
        }
    }

    /// Requests a snapshot and merges it; `first` is the stream's first sequence (the
    /// position stored afterwards). Errors after a pause (the caller retries).
    pub(super) async fn catch_up(self: &Arc<Self>, js: &jetstream::Context, settings: &ClusterSettings, applied: u64, first: u64) -> anyhow::Result<()> {
        let why = format!("the stream starts at sequence {first}, this node applied up to {applied}");
        tracing::warn!("clustering: changes were discarded before this node applied them ({why}); requesting a snapshot");
        self.status.lock().catch_up = Some(format!("requesting a snapshot: {why}"));
        match self.fetch_and_merge(js, settings).await {
            Ok((from, changes, complete)) => {
                self.store_position(&settings.stream, first.saturating_sub(1));
                if complete {
                    tracing::info!("clustering: merged a snapshot of {changes} changes from {from}");
                } else {
                    tracing::warn!("clustering: merged a snapshot of {changes} changes from {from}, which was catching up itself");
                }
                let mut status = self.status.lock();
                status.catch_up = None;
                status.snapshots += 1;
                status.last_snapshot = Some(json!({"from": from, "changes": changes, "complete": complete, "time": now_ms()}));
                Ok(())
            }
            Err(e) => {
                let text = format!("snapshot needed ({why}) but not merged, retrying: {e:#}");
                tracing::error!("clustering: {text}");
                self.status.lock().catch_up = Some(text);
                tokio::time::sleep(RETRY_PAUSE).await;
                Err(e)
            }
        }
    }

    async fn fetch_and_merge(self: &Arc<Self>, js: &jetstream::Context, settings: &ClusterSettings) -> anyhow::Result<(String, usize, bool)> {
        let (from, object, complete) = match self.request_snapshot(js, settings, false).await? {
            Answer::Snapshot { from, object, complete } => (from, object, complete),
            Answer::Busy(busy) => {
                tracing::warn!("clustering: only nodes catching up themselves answered ({}); taking a snapshot from one of them", busy.join(", "));
                match self.request_snapshot(js, settings, true).await? {
                    Answer::Snapshot { from, object, complete } => (from, object, complete),
                    Answer::Busy(busy) => anyhow::bail!("no node built a snapshot (busy: {})", busy.join(", ")),
                }
            }
        };
        let objects = self.object_store(js).await?;
        let mut bytes = Vec::new();
        objects.get(&object).await.map_err(|e| anyhow::anyhow!("fetching snapshot {object}: {e}"))?.read_to_end(&mut bytes).await.context("reading the snapshot")?;
        let changes = read_changes(&bytes).context("decoding the snapshot")?;
        let count = changes.len();
        // Records, schema and configuration first (the configuration's component limits and
        // trusted keys then judge the components), components last, as the stream applies them.
        let (components, changes): (Vec<Change>, Vec<Change>) =
            changes.into_iter().partition(|c| matches!(c.kind, Kind::DeployComponent { .. } | Kind::DropComponent { .. } | Kind::ComponentsKept { .. }));
        let results = self.apply_run(&settings.node_name, changes).await?;
        if let Some(e) = results.iter().find_map(|(_, _, r)| r.as_ref().err()) {
            anyhow::bail!("applying the snapshot from {from}: {e}");
        }
        self.merge_components(js, &from, components, complete).await;
        if let Err(e) = objects.delete(&object).await {
            tracing::warn!("clustering: deleting snapshot {object} failed (it expires with the bucket's age limit): {e}");
        }
        Ok((from, count, complete))
    }

    /// Publishes a snapshot request (`any`: busy nodes build one too) and reads the answers on
    /// this node's own inbox: the first snapshot wins; nodes that said `building` are waited
    /// for up to [`SNAPSHOT_WAIT`]; only `busy` answers within [`ANSWER_WAIT`] are reported as
    /// such; no answer at all is an error after [`ANSWER_WAIT`] (not a minute of silence).
    async fn request_snapshot(&self, js: &jetstream::Context, settings: &ClusterSettings, any: bool) -> anyhow::Result<Answer> {
        let client = js.client();
        let inbox = client.new_inbox();
        let mut replies = client.subscribe(inbox.clone()).await.map_err(|e| anyhow::anyhow!("subscribing to snapshot answers: {e}"))?;
        let request = json!({"node": settings.node_name, "any": any}).to_string();
        client.publish_with_reply(subject(settings), inbox, request.into()).await.map_err(|e| anyhow::anyhow!("requesting a snapshot: {e}"))?;
        client.flush().await.map_err(|e| anyhow::anyhow!("requesting a snapshot: {e}"))?;
        let started = std::time::Instant::now();
        let (mut building, mut busy, mut failed) = (Vec::<String>::new(), Vec::<String>::new(), Vec::<String>::new());
        loop {
            let limit = if building.is_empty() { ANSWER_WAIT } else { SNAPSHOT_WAIT };
            let Some(left) = limit.checked_sub(started.elapsed()) else { break };
            let message = match tokio::time::timeout(left, replies.next()).await {
                Err(_) => break,
                Ok(None) => anyhow::bail!("the snapshot answers' subscription ended"),
                Ok(Some(m)) => m,
            };
            let answer: Value = serde_json::from_slice(&message.payload).unwrap_or_default();
            let node = answer["node"].as_str().unwrap_or("?").to_string();
            if let Some(object) = answer["object"].as_str() {
                let complete = answer["complete"].as_bool().unwrap_or(true);
                return Ok(Answer::Snapshot { from: node, object: object.to_string(), complete });
            }
            if answer["building"] == json!(true) {
                building.push(node);
            } else if let Some(why) = answer["busy"].as_str() {
                busy.push(format!("{node}: {why}"));
            } else if let Some(error) = answer["error"].as_str() {
                building.retain(|n| *n != node);
                failed.push(format!("{node}: {error}"));
                if building.is_empty() && started.elapsed() > ANSWER_WAIT {
                    break;
                }
            }
        }
        if !building.is_empty() {
            anyhow::bail!("{} did not deliver a snapshot within {SNAPSHOT_WAIT:?}", building.join(", "));
        }
        if !failed.is_empty() {
            anyhow::bail!("building a snapshot failed on {}", failed.join("; "));
        }
        if busy.is_empty() {
            anyhow::bail!("no node answered the snapshot request within {ANSWER_WAIT:?}");
        }
        Ok(Answer::Busy(busy))
    }

    /// Answers other nodes' snapshot requests (not its own): `busy` while catching up itself
    /// (unless the asker takes any snapshot), else `building` and then the snapshot's object.
    pub(super) async fn serve_snapshots(self: Arc<Self>, js: jetstream::Context, settings: ClusterSettings) {
        loop {
            let mut requests = match js.client().subscribe(subject(&settings)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("clustering: subscribing to snapshot requests failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(message) = requests.next().await {
                let Some(reply) = message.reply.clone() else { continue };
                let request = serde_json::from_slice::<Value>(&message.payload).unwrap_or_default();
                let Some(asker) = request["node"].as_str().map(str::to_string).filter(|a| *a != settings.node_name) else { continue };
                let answer = |body: Value| {
                    let (client, reply, asker) = (js.client(), reply.clone(), asker.clone());
                    async move {
                        if let Err(e) = client.publish(reply, body.to_string().into()).await {
                            tracing::warn!("clustering: answering {asker}'s snapshot request failed: {e}");
                        }
                    }
                };
                let catching_up = self.status.lock().catch_up.clone();
                if let Some(why) = catching_up.as_ref().filter(|_| request["any"] != json!(true)) {
                    tracing::info!("clustering: {asker} asked for a snapshot; answering busy (catching up: {why})");
                    answer(json!({"node": settings.node_name, "busy": why})).await;
                    continue;
                }
                tracing::info!("clustering: building a snapshot for {asker}{}", if catching_up.is_some() { " (while catching up itself)" } else { "" });
                answer(json!({"node": settings.node_name, "building": true})).await;
                match self.offer_snapshot(&js, &asker).await {
                    Ok(object) => answer(json!({"node": settings.node_name, "object": object, "complete": catching_up.is_none()})).await,
                    Err(e) => {
                        tracing::error!("clustering: building a snapshot for {asker} failed: {e:#}");
                        answer(json!({"node": settings.node_name, "error": format!("{e:#}")})).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn offer_snapshot(self: &Arc<Self>, js: &jetstream::Context, asker: &str) -> anyhow::Result<String> {
        let me = self.clone();
        let (bytes, components) = tokio::task::spawn_blocking(move || me.snapshot_bytes()).await?.map_err(ServiceError::into_anyhow)?;
        let name = format!("snapshot-{asker}-{}", uuid::Uuid::new_v4());
        let objects = self.object_store(js).await?;
        // The offered components' bytes travel as their deploys' did: objects named by their
        // hash in the same bucket (a deploy's object expires with the bucket's age limit, so
        // one older than that is put again). Not inline: components reach maxSizeMB (64 MB),
        // the snapshot is held whole in memory on both sides, and the asker fetches only the
        // bytes it does not already keep.
        for (name, version, hash) in components {
            if objects.info(&hash).await.is_ok() {
                continue;
            }
            let service = self.components.get().and_then(std::sync::Weak::upgrade).context("the component service is gone (shutting down)")?;
            let owned = name.clone();
            let component = tokio::task::spawn_blocking(move || service.version_bytes(&owned, version)).await?.map_err(ServiceError::into_anyhow)?;
            objects.put(hash.as_str(), &mut component.as_slice()).await.map_err(|e| anyhow::anyhow!("storing component {name} for the snapshot: {e}"))?;
        }
        objects.put(name.as_str(), &mut bytes.as_slice()).await.map_err(|e| anyhow::anyhow!("storing the snapshot: {e}"))?;
        Ok(name)
    }

    /// Everything replicated as changes: the cluster-wide configuration keys' values; every
    /// replicated table (schema, records grouped by the node that wrote them, tombstones
    /// grouped by node and time); each component's active version when it is replicated (a
    /// deploy marked as a rollback to that version, as a replicated rollback travels) and the
    /// names of all components kept here. With it, the components whose bytes the snapshot
    /// needs in the object store: `(name, version, hash)`.
    fn snapshot_bytes(&self) -> Result<(Vec<u8>, Vec<(String, u64, String)>), ServiceError> {
        let me = self.node_name();
        let time = now_ms();
        let mut changes = Vec::new();
        let mut push = |origin: &str, kind: Kind| {
            let exclude = self.excluded(&kind);
            changes.push(Change { origin: origin.to_string(), time, exclude, kind });
        };
        if let Some(config) = self.config.get() {
            let values = config.cluster_wide_values()?;
            if !values.is_empty() {
                push(&me, Kind::SetConfiguration { changes: values, user: format!("snapshot from {me}") });
            }
        }
        let mut tables = Vec::new();
        for (database, names) in StorageBackend::list_databases(&*self.storage) {
            push(&me, Kind::CreateDatabase { database: database.clone() });
            tables.extend(names.into_iter().map(|t| (database.clone(), t)));
        }
        for table in store::REPLICATED_SYSTEM_TABLES {
            if self.storage.describe_table(SYSTEM_DATABASE, table).is_ok() {
                tables.push((SYSTEM_DATABASE.to_string(), table.to_string()));
            }
        }
        for (database, table) in tables {
            let snapshot = self.storage.replication_snapshot(&database, &table, &me)?;
            let primary_key = snapshot.primary_key;
            if database != SYSTEM_DATABASE {
                push(&me, Kind::CreateTable { database: database.clone(), table: table.clone(), primary_key: primary_key.clone() });
            }
            let mut by_origin: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (origin, mut record) in snapshot.records {
                if database == SYSTEM_DATABASE && table == store::CERTIFICATES {
                    record["private_key_name"] = Value::Null;
                }
                by_origin.entry(origin).or_default().push(record);
            }
            for (origin, records) in by_origin {
                for chunk in records.chunks(CHUNK) {
                    let kind = Kind::Put { database: database.clone(), table: table.clone(), primary_key: primary_key.clone(), records: chunk.to_vec() };
                    push(&origin, kind);
                }
            }
            let mut deletes: BTreeMap<(String, u64), Vec<Value>> = BTreeMap::new();
            for (origin, at, id) in snapshot.tombstones {
                deletes.entry((origin, at)).or_default().push(id);
            }
            for ((origin, at), ids) in deletes {
                push(&origin, Kind::Delete { database: database.clone(), table: table.clone(), ids, at });
            }
        }
        let mut uploads = Vec::new();
        if let Some(components) = self.components.get().and_then(std::sync::Weak::upgrade) {
            let kept = components.kept_versions()?;
            for v in kept.iter().filter(|v| v.active && v.replicated) {
                uploads.push((v.name.clone(), v.version, v.hash.clone()));
                let kind = Kind::DeployComponent {
                    name: v.name.clone(),
                    hash: v.hash.clone(),
                    grants: v.grants.clone(),
                    signature: v.signature.clone(),
                    user: v.deployed_by.clone(),
                    rollback: Some(v.version),
                };
                push(&me, kind);
            }
            let mut names: Vec<String> = kept.into_iter().map(|v| v.name).collect();
            names.dedup();
            push(&me, Kind::ComponentsKept { names });
        }
        let bytes = serde_json::to_vec(&changes).map_err(|e| ServiceError::Internal(e.into()))?;
        Ok((bytes, uploads))
    }
}

/// What a snapshot request brought.
enum Answer {
    Snapshot { from: String, object: String, complete: bool },
    /// Only nodes catching up themselves answered (each with why).
    Busy(Vec<String>),
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_gap_is_a_first_sequence_past_the_next_one() {
        assert!(!super::missed(0, 1), "a new node on a whole stream");
        assert!(!super::missed(0, 0), "an empty new stream");
        assert!(!super::missed(41, 42));
        assert!(!super::missed(50, 42), "already past the first");
        assert!(super::missed(0, 2), "a new node on a truncated stream");
        assert!(super::missed(40, 42));
    }
}
